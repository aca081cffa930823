//! Files a node wrote into its output directory (`meta.out_dir`): listed on the run page and
//! served at `/runs/{id}/files/{node}/{*path}`, never outside that directory (no `..`, no
//! symlinks out). HTML is served sandboxed, so a report's scripts cannot act for the viewer.

use std::path::{Component, Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use flow_engine::store::{NodeRecord, StateStore};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, AppState};

/// Most files listed per node (a directory of thousands is summarised by its first ones).
const MAX_LISTED: usize = 200;
/// How deep the listing looks into subdirectories.
const MAX_DEPTH: usize = 4;

/// Characters kept as they are in a file URL's path segments.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// A file in a node's output directory.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FileEntry {
    pub node: String,
    /// The path inside the directory, `/`-separated.
    pub name: String,
    pub url: String,
    pub bytes: u64,
}

/// The output directory a node recorded.
fn out_dir(record: &NodeRecord) -> Option<PathBuf> {
    record
        .meta
        .get("out_dir")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
}

/// The files of every node that recorded an output directory.
pub(crate) fn node_files(run_id: &str, records: &[NodeRecord]) -> Vec<FileEntry> {
    let mut out = Vec::new();
    for record in records {
        let Some(dir) = out_dir(record) else { continue };
        let mut found = Vec::new();
        walk(&dir, &dir, 0, &mut found);
        // Shallow files first: a report beside thousands of per-customer files stays listed.
        found.sort_by(|a, b| {
            (a.0.matches('/').count(), &a.0).cmp(&(b.0.matches('/').count(), &b.0))
        });
        for (name, bytes) in found.into_iter().take(MAX_LISTED) {
            let url = format!(
                "/runs/{}/files/{}/{}",
                utf8_percent_encode(run_id, SEGMENT),
                utf8_percent_encode(&record.node_id, SEGMENT),
                name.split('/')
                    .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            );
            out.push(FileEntry {
                node: record.node_id.clone(),
                name,
                url,
                bytes,
            });
        }
    }
    out
}

fn walk(root: &FsPath, dir: &FsPath, depth: usize, found: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    // Files of this directory before those of its subdirectories.
    entries.sort_by_key(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false));
    for entry in entries {
        if found.len() >= MAX_LISTED * 50 {
            return;
        }
        // Symlinks are not followed: they could lead out of the directory.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() && depth < MAX_DEPTH {
            walk(root, &path, depth + 1, found);
        } else if kind.is_file()
            && let Ok(rel) = path.strip_prefix(root)
            && let Some(name) = rel.to_str()
        {
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            found.push((name.replace(std::path::MAIN_SEPARATOR, "/"), bytes));
        }
    }
}

#[utoipa::path(get, path = "/runs/{id}/files/{node}/{path}", tag = "runs",
    params(
        ("id" = String, Path, description = "The run id"),
        ("node" = String, Path, description = "The node that wrote the file"),
        ("path" = String, Path, description = "The file's path inside the node's output directory"),
    ),
    responses(
        (status = 200, description = "The file (HTML is sandboxed)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such run, node or file", body = ErrorBody)))]
pub(crate) async fn serve_file(
    State(state): State<AppState>,
    Path((id, node, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let missing =
        || ApiError::not_found(format!("no file `{path}` of node `{node}` in run `{id}`"));
    let rel = FsPath::new(&path);
    if path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(missing());
    }
    let store = state.store.clone();
    let (run_id, node_id) = (id.clone(), node.clone());
    let records = tokio::task::spawn_blocking(move || store.nodes(&run_id))
        .await
        .map_err(|_| ApiError::internal("internal", "reading the run failed"))??;
    let dir = records
        .iter()
        .find(|r| r.node_id == node_id)
        .and_then(out_dir)
        .ok_or_else(missing)?;
    let (Ok(root), Ok(file)) = (dir.canonicalize(), dir.join(rel).canonicalize()) else {
        return Err(missing());
    };
    if !file.starts_with(&root) || !file.is_file() {
        return Err(missing());
    }
    let bytes = tokio::fs::read(&file).await.map_err(|_| missing())?;
    let content_type = content_type(&file);
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The node's files are its own content, not this server's pages: sandboxed, so scripts in
    // them cannot run with this origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    Ok(response)
}

fn content_type(path: &FsPath) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("jsonl" | "ndjson") => "application/x-ndjson",
        Some("txt" | "log" | "md") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("pdf") => "application/pdf",
        Some("arrow" | "parquet") => "application/octet-stream",
        _ => "application/octet-stream",
    }
}
