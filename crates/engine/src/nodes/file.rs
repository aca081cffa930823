//! `file.read` and `file.write`: tables and values from and to files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value as Json, json};

use crate::data::{self, Data, Output};
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};

#[derive(Debug)]
pub struct ReadFile;

#[derive(Debug)]
pub struct WriteFile;

const FORMATS: &[&str] = &["csv", "tsv", "jsonl", "json", "text"];

/// The format from a `format` parameter or the file's extension.
/// The `path` and `format` parameters both file node types take.
fn path_and_format(params: &Params) -> Result<(PathBuf, String), Vec<ParamError>> {
    let path = params
        .path("path")
        .map_err(|e| vec![e])?
        .unwrap_or_default();
    let format = format_of(params, &path).map_err(|e| vec![e])?;
    Ok((path, format))
}

fn format_of(params: &Params, path: &Path) -> Result<String, ParamError> {
    if let Some(f) = params.opt_str("format")? {
        if FORMATS.contains(&f) {
            return Ok(f.to_string());
        }
        return Err(ParamError::new(
            "format",
            format!("`format` must be one of {}, got `{f}`", FORMATS.join(", ")),
        ));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "csv" => "csv",
        "tsv" | "tab" => "tsv",
        "jsonl" | "ndjson" => "jsonl",
        "json" => "json",
        _ => "text",
    }
    .to_string())
}

struct Reader {
    path: PathBuf,
    format: String,
}

impl NodeType for ReadFile {
    fn name(&self) -> &'static str {
        "file.read"
    }
    fn summary(&self) -> &'static str {
        "Reads a CSV, TSV, JSON Lines, JSON or text file (tables for CSV/TSV/JSON Lines)."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required(
                "path",
                ParamType::Path,
                "the file; relative to the workflow's directory",
            ),
            ParamSpec::optional(
                "format",
                ParamType::String,
                "csv, tsv, jsonl, json or text (default: from the extension)",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let (path, format) = path_and_format(params)?;
        Ok(Arc::new(Reader { path, format }))
    }
}

#[async_trait]
impl Node for Reader {
    async fn run(&self, _ctx: NodeContext, _inputs: Inputs) -> Result<Output, NodeError> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|e| NodeError::io(format!("cannot read {}", self.path.display()), e))?;
        let where_ =
            |e: &dyn std::fmt::Display| NodeError::msg(format!("{}: {e}", self.path.display()));
        // Without this an empty CSV reads as a table with no columns, and the failure shows up
        // in some later node that cannot name the file.
        if self.format != "text" && bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(NodeError::msg(format!(
                "{} is empty: expected {}",
                self.path.display(),
                match self.format.as_str() {
                    "csv" | "tsv" => "a header row",
                    "jsonl" => "JSON lines",
                    _ => "a JSON value",
                }
            )));
        }
        let data = match self.format.as_str() {
            "csv" => Data::Table(data::read_csv(&bytes, b',').map_err(|e| where_(&e))?),
            "tsv" => Data::Table(data::read_csv(&bytes, b'\t').map_err(|e| where_(&e))?),
            "jsonl" => Data::Table(data::read_jsonl(&bytes).map_err(|e| where_(&e))?),
            "json" => Data::Json(serde_json::from_slice(&bytes).map_err(|e| where_(&e))?),
            _ => Data::Json(Json::String(String::from_utf8_lossy(&bytes).into_owned())),
        };
        Ok(Output::data(data).with_meta("path", self.path.display().to_string()))
    }
}

struct Writer {
    path: PathBuf,
    format: String,
}

impl NodeType for WriteFile {
    fn name(&self) -> &'static str {
        "file.write"
    }
    fn summary(&self) -> &'static str {
        "Writes its input to a file (tables as CSV, TSV or JSON Lines; values as JSON or text), atomically."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action, NodeKind::Output]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required(
                "path",
                ParamType::Path,
                "the file to write; parent directories are created",
            ),
            ParamSpec::optional(
                "format",
                ParamType::String,
                "csv, tsv, jsonl, json or text (default: from the extension)",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let (path, format) = path_and_format(params)?;
        Ok(Arc::new(Writer { path, format }))
    }
}

#[async_trait]
impl Node for Writer {
    async fn run(&self, _ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let input = inputs.single()?;
        let mut buf = Vec::new();
        match (&input.data, self.format.as_str()) {
            (Data::Table(t), "csv") => data::write_csv(t, &mut buf)?,
            (Data::Table(t), "tsv") => arrow_csv::WriterBuilder::new()
                .with_header(true)
                .with_delimiter(b'\t')
                .build(&mut buf)
                .write(t)?,
            (Data::Table(t), "jsonl" | "json") => data::write_jsonl(t, &mut buf)?,
            (Data::Json(Json::String(s)), _) => buf = s.clone().into_bytes(),
            (Data::Json(v), _) => buf = serde_json::to_vec_pretty(v).unwrap_or_default(),
            (Data::Empty, _) => {}
            (Data::Table(_), other) => {
                return Err(NodeError::msg(format!(
                    "cannot write a table as `{other}`; use csv, tsv or jsonl"
                )));
            }
        }
        if let Some(parent) = self.path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| NodeError::io(format!("cannot create {}", parent.display()), e))?;
        }
        // Write beside the target and rename, so readers never see half a file.
        let tmp = self.path.with_extension(format!(
            "{}.tmp",
            self.path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("out")
        ));
        tokio::fs::write(&tmp, &buf)
            .await
            .map_err(|e| NodeError::io(format!("cannot write {}", tmp.display()), e))?;
        tokio::fs::rename(&tmp, &self.path)
            .await
            .map_err(|e| NodeError::io(format!("cannot write {}", self.path.display()), e))?;
        Ok(Output::json(json!({
            "path": self.path.display().to_string(),
            "rows": input.data.rows(),
            "bytes": buf.len(),
        })))
    }
}
