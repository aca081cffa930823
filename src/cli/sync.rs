//! `flow sync status` and `flow sync reset`: the synced histories of a workflow's source nodes
//! (POS API connectors), read from their manifests beside the state store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{Value as Json, json};

use super::store_access::{open_postgres_store, postgres_url};
use super::{Failure, Outcome};
use flow_engine::store::StateStore;
use flow_engine::sync::{DirPlaces, Place, Places, Status, request_reset, status, workflow_key};
use flow_retail::connectors::source::HISTORY;

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Per source node of the workflow: the last sync, what the history holds, the cursor.
    Status {
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Start over: the next run of each named source node (all when none is named) loads
    /// everything from the POS and replaces its history. The rows stay until then.
    Reset {
        file: PathBuf,
        /// Source node ids.
        nodes: Vec<String>,
    },
}

pub fn run(state: &Path, command: SyncCommand) -> Outcome {
    match command {
        SyncCommand::Status { file, json } => show(state, &file, json),
        SyncCommand::Reset { file, nodes } => reset(state, &file, &nodes),
    }
}

/// Where the store keeps its histories: the directories beside a local store (read without
/// opening it, so this works while `flow serve` holds it), or the PostgreSQL store's tables.
fn places(state: &Path) -> Result<Arc<dyn Places>, Failure> {
    if postgres_url().is_some() {
        let store: Arc<dyn StateStore> = open_postgres_store()?;
        return store
            .histories()
            .ok_or_else(|| Failure::invalid(anyhow!("this store keeps no synced histories")));
    }
    Ok(Arc::new(DirPlaces::new(state.join("nodes"))))
}

/// A source node's id and where its history is.
type NodeHistory = (String, Box<dyn Place>);

/// The source nodes of `file` that hold a history.
fn histories(state: &Path, file: &Path) -> Result<Vec<NodeHistory>, Failure> {
    if !file.exists() {
        return Err(Failure::invalid(anyhow!(
            "{}: no such workflow file",
            file.display()
        )));
    }
    let places = places(state)?;
    let prefix = format!("{}/", workflow_key(file));
    let mut out = Vec::new();
    for name in places.names(&prefix).map_err(Failure::invalid)? {
        let Some((node, purpose)) = name[prefix.len()..].split_once('/') else {
            continue;
        };
        if purpose == HISTORY {
            out.push((node.to_string(), places.place(&name)));
        }
    }
    Ok(out)
}

fn show(state: &Path, file: &Path, as_json: bool) -> Outcome {
    let mut rows = Vec::new();
    for (node, place) in histories(state, file)? {
        let st = status(&*place)
            .map_err(Failure::invalid)?
            .expect("listed histories have a manifest");
        rows.push((node, st));
    }
    if as_json {
        let list: Vec<Json> = rows
            .iter()
            .map(|(node, st)| json!({ "node": node, "status": st }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list).expect("json"));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!(
            "{} has no synced history in {} yet (a source node keeps one after its first run)",
            file.display(),
            postgres_url()
                .map(flow_engine::store::redact_url)
                .unwrap_or_else(|| state.display().to_string())
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (node, st) in &rows {
        print_status(node, st);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(node: &str, st: &Status) {
    println!("{node}");
    match st.last() {
        Some(last) => println!(
            "  last sync   {} ({}{})",
            last.at.format("%Y-%m-%d %H:%M:%S UTC"),
            if last.full {
                "full load"
            } else {
                "changes only"
            },
            last.summary
                .get("requests")
                .and_then(Json::as_u64)
                .map(|r| format!(", {r} requests"))
                .unwrap_or_default()
        ),
        None => println!("  last sync   never"),
    }
    if let Some(last) = st.last() {
        let n = |m: &std::collections::BTreeMap<String, u64>| m.get("lines").copied().unwrap_or(0);
        println!(
            "  fetched     {} orders new or changed, {} removed",
            n(&last.upserted),
            n(&last.deleted)
        );
    }
    for (table, t) in &st.tables {
        let what = match table.as_str() {
            "lines" => format!("{} orders ({} lines)", t.keys, t.rows),
            other => format!("{} {other}", t.keys),
        };
        println!("  holds       {what}");
    }
    let cursor = match &st.cursor {
        Some(c) => c.to_string(),
        None => "none".into(),
    };
    println!("  cursor      {cursor}");
    if st.reset_requested {
        println!("  reset       asked: the next run loads everything");
    }
    println!("  history     {}", st.location);
}

fn reset(state: &Path, file: &Path, nodes: &[String]) -> Outcome {
    let all = histories(state, file)?;
    for node in nodes {
        if !all.iter().any(|(n, _)| n == node) {
            let known: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Failure::invalid(anyhow!(
                "node `{node}` of {} has no synced history (histories: {})",
                file.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let mut count = 0;
    for (node, place) in all
        .into_iter()
        .filter(|(n, _)| nodes.is_empty() || nodes.contains(n))
    {
        if request_reset(place).map_err(Failure::invalid)? {
            println!("{node}: the next run loads everything and replaces the history");
            count += 1;
        }
    }
    if count == 0 {
        println!("{} has no synced history to reset", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
