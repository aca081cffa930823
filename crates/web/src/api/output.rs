//! A node's output: paged rows as JSON, the whole table as CSV (safe to open in a spreadsheet,
//! like `flow runs output`) or as an Arrow IPC stream.

use arrow_array::RecordBatch;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use flow_engine::data::{self, Body, Data, Output};
use flow_engine::store::StateStore;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::query;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// A column of a table output.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Column {
    pub name: String,
    /// The Arrow type (`Int64`, `Utf8`, ...).
    #[serde(rename = "type")]
    pub column_type: String,
}

/// A page of a node's output.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OutputPage {
    /// `table`, `json`, `empty`, or `cases` (a decision's output asked for without `case`).
    pub kind: String,
    pub columns: Vec<Column>,
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Map<String, Value>>,
    pub total_rows: usize,
    pub offset: usize,
    pub limit: usize,
    /// The value of a JSON output.
    #[schema(value_type = Option<Object>)]
    pub json: Option<Value>,
    /// A decision's cases, in order.
    pub cases: Option<Vec<String>>,
    /// Rows per case, for a decision's output.
    pub case_rows: Option<Map<String, Value>>,
}

/// Reads and decodes a node's stored output.
async fn load(state: &AppState, id: &str, node: &str) -> Result<Output, ApiError> {
    let store = state.store.clone();
    let (run_id, node_id) = (id.to_string(), node.to_string());
    let (run, bytes) = tokio::task::spawn_blocking(move || {
        Ok::<_, ApiError>((store.run(&run_id)?, store.output(&run_id, &node_id)?))
    })
    .await
    .map_err(|_| ApiError::internal("internal", "reading the output failed"))??;
    if run.is_none() {
        return Err(ApiError::not_found(format!("no run `{id}`")));
    }
    let bytes = bytes.ok_or_else(|| {
        ApiError::not_found(format!("node `{node}` of run `{id}` has no stored output"))
    })?;
    data::decode(&bytes).map_err(|e| {
        ApiError::internal(
            "output_unreadable",
            format!("the output of `{node}` cannot be read: {e}"),
        )
    })
}

/// The `case` query parameter, checked against the output's cases.
fn select(output: &Output, case: Option<&str>, node: &str) -> Result<Option<Data>, ApiError> {
    match (&output.body, case) {
        (Body::Cases(cases), Some(case)) => cases
            .iter()
            .find(|(c, _)| c == case)
            .map(|(_, d)| Some(d.clone()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "node `{node}` has no case `{case}` (its cases: {})",
                    cases
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
        (Body::Cases(_), None) => Ok(None),
        (Body::Data(_), Some(_)) => Err(ApiError::bad_request(format!(
            "node `{node}` is not a decision; leave out `case`"
        ))),
        (Body::Data(d), None) => Ok(Some(d.clone())),
    }
}

#[utoipa::path(get, path = "/api/runs/{id}/nodes/{node}/output", tag = "output",
    params(
        ("id" = String, Path, description = "The run id"),
        ("node" = String, Path, description = "The node id"),
        ("offset" = Option<usize>, Query, description = "First row (default 0)"),
        ("limit" = Option<usize>, Query, description = "1 to 1000 rows (default 100)"),
        ("case" = Option<String>, Query, description = "A decision's case"),
    ),
    responses(
        (status = 200, description = "A page of the output", body = OutputPage),
        (status = 400, description = "Bad paging or case", body = ErrorBody),
        (status = 404, description = "No such run or output", body = ErrorBody)))]
pub(crate) async fn output_page(
    State(state): State<AppState>,
    Path((id, node)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<OutputPage>, ApiError> {
    let pairs = query::pairs(raw.as_deref())?;
    query::only(&pairs, &["offset", "limit", "case"])?;
    let offset = query::number(&pairs, "offset", 0, 0, usize::MAX)?;
    let limit = query::number(&pairs, "limit", 100, 1, 1000)?;
    let output = load(&state, &id, &node).await?;
    let mut page = OutputPage {
        kind: "empty".into(),
        columns: Vec::new(),
        rows: Vec::new(),
        total_rows: 0,
        offset,
        limit,
        json: None,
        cases: None,
        case_rows: None,
    };
    match select(&output, query::last(&pairs, "case"), &node)? {
        None => {
            if let Body::Cases(cases) = &output.body {
                page.kind = "cases".into();
                page.cases = Some(cases.iter().map(|(c, _)| c.clone()).collect());
                page.case_rows = Some(
                    cases
                        .iter()
                        .map(|(c, d)| (c.clone(), Value::from(rows_of(d))))
                        .collect(),
                );
            }
        }
        Some(Data::Empty) => {}
        Some(Data::Json(v)) => {
            page.kind = "json".into();
            page.json = Some(v);
        }
        Some(Data::Table(batch)) => {
            page.kind = "table".into();
            page.columns = batch
                .schema()
                .fields()
                .iter()
                .map(|f| Column {
                    name: f.name().clone(),
                    column_type: f.data_type().to_string(),
                })
                .collect();
            page.total_rows = batch.num_rows();
            page.rows = crate::rows::rows_json(&batch, offset, limit).map_err(|e| {
                ApiError::internal(
                    "output_unreadable",
                    format!("the rows cannot be shown: {e}"),
                )
            })?;
        }
    }
    Ok(Json(page))
}

fn rows_of(data: &Data) -> usize {
    match data {
        Data::Table(b) => b.num_rows(),
        _ => 0,
    }
}

/// The table to download, or why there is none.
async fn table(
    state: &AppState,
    id: &str,
    node: &str,
    raw: Option<&str>,
) -> Result<RecordBatch, ApiError> {
    let pairs = query::pairs(raw)?;
    query::only(&pairs, &["case"])?;
    let output = load(state, id, node).await?;
    match select(&output, query::last(&pairs, "case"), node)? {
        Some(Data::Table(batch)) => Ok(batch),
        None => Err(ApiError::bad_request(format!(
            "node `{node}` is a decision: choose one of its cases with `case`"
        ))),
        Some(_) => Err(ApiError::bad_request(format!(
            "the output of `{node}` is not a table; read it from /api/runs/{id}/nodes/{node}/output"
        ))),
    }
}

fn download(bytes: Vec<u8>, content_type: &'static str, name: String) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

#[utoipa::path(get, path = "/api/runs/{id}/nodes/{node}/output.csv", tag = "output",
    params(
        ("id" = String, Path, description = "The run id"),
        ("node" = String, Path, description = "The node id"),
        ("case" = Option<String>, Query, description = "A decision's case"),
    ),
    responses(
        (status = 200, description = "The whole table as CSV; text cells a spreadsheet would evaluate start with `'`", content_type = "text/csv", body = String),
        (status = 400, description = "Not a table", body = ErrorBody),
        (status = 404, description = "No such run or output", body = ErrorBody)))]
pub(crate) async fn output_csv(
    State(state): State<AppState>,
    Path((id, node)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let batch = table(&state, &id, &node, raw.as_deref()).await?;
    let mut out = Vec::new();
    flow_engine::spreadsheet::write_csv_for_spreadsheets(&batch, &mut out)
        .map_err(|e| ApiError::internal("output_unreadable", e.to_string()))?;
    Ok(download(
        out,
        "text/csv; charset=utf-8",
        format!("{id}-{node}.csv"),
    ))
}

#[utoipa::path(get, path = "/api/runs/{id}/nodes/{node}/output.arrow", tag = "output",
    params(
        ("id" = String, Path, description = "The run id"),
        ("node" = String, Path, description = "The node id"),
        ("case" = Option<String>, Query, description = "A decision's case"),
    ),
    responses(
        (status = 200, description = "The whole table as an Arrow IPC stream", content_type = "application/vnd.apache.arrow.stream", body = Vec<u8>),
        (status = 400, description = "Not a table", body = ErrorBody),
        (status = 404, description = "No such run or output", body = ErrorBody)))]
pub(crate) async fn output_arrow(
    State(state): State<AppState>,
    Path((id, node)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let batch = table(&state, &id, &node, raw.as_deref()).await?;
    let out =
        ipc_stream(&batch).map_err(|e| ApiError::internal("output_unreadable", e.to_string()))?;
    Ok(download(
        out,
        "application/vnd.apache.arrow.stream",
        format!("{id}-{node}.arrow"),
    ))
}

fn ipc_stream(batch: &RecordBatch) -> Result<Vec<u8>, arrow_schema::ArrowError> {
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}
