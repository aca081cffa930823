//! Tables and JSON for `flow runs`, `flow runs show`, `flow nodes` and the run summary.

use std::process::ExitCode;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::json;

use super::{Failure, Outcome};
use flow_engine::executor::RunOutcome;
use flow_engine::node::Registry;
use flow_engine::store::{NodeRecord, NodeStatus, RunRecord, RunStatus, StateStore};

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(header.to_vec());
    t
}

/// A run recorded as `running` that no process is executing (see
/// [`StateStore::live_runs`]) was interrupted: killed, or the machine stopped.
fn shown_status(run: &RunRecord, live: bool) -> &'static str {
    match run.status {
        RunStatus::Running if !live => "interrupted",
        s => s.as_str(),
    }
}

fn shown_node_status(node: &NodeRecord, live: bool) -> &'static str {
    match node.status {
        NodeStatus::Running if !live => "interrupted",
        s => s.as_str(),
    }
}

fn duration(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
    }
}

fn truncate(s: &str, n: usize) -> String {
    let first = s.lines().next().unwrap_or_default();
    if first.chars().count() > n || s.lines().count() > 1 {
        format!("{}…", first.chars().take(n).collect::<String>())
    } else {
        first.to_string()
    }
}

pub fn runs(store: &dyn StateStore, state: &std::path::Path, json: bool, limit: usize) -> Outcome {
    let runs = store.runs()?;
    let live = store.live_runs()?;
    if json {
        let items: Vec<_> = runs
            .iter()
            .take(limit)
            .map(|r| {
                let mut v = serde_json::to_value(r).expect("json");
                v["status"] = json!(shown_status(r, live.contains(&r.id)));
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items).expect("json"));
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs yet in {}", store.location());
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "run", "workflow", "status", "fired by", "started", "duration",
    ]);
    for r in runs.iter().take(limit) {
        t.add_row(vec![
            r.id.clone(),
            r.workflow_name.clone(),
            shown_status(r, live.contains(&r.id)).to_string(),
            r.trigger.fired_by.clone(),
            r.created_at
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            format!("{:.1}s", r.duration_secs()),
        ]);
    }
    println!("{t}");
    if runs.len() > limit {
        println!(
            "({} not shown; --limit N shows more)",
            flow_engine::plural::plural((runs.len() - limit) as u64, "older run")
        );
    }
    println!(
        "store: {} in {} run{} ({}; `flow runs prune` removes old runs)",
        flow_engine::store::human_bytes(
            store
                .stored_bytes()
                .unwrap_or_else(|| flow_engine::store::disk_usage(state))
        ),
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        match store.stored_bytes() {
            Some(_) => store.location(),
            None => state.display().to_string(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `flow runs size`: the store's space on disk, database and output files apart.
pub fn size(store: &dyn StateStore, state: &std::path::Path, json: bool) -> Outcome {
    let runs = store.runs()?.len();
    if let Some(total) = store.stored_bytes() {
        // A database server's store: its tables hold records and outputs alike.
        if json {
            let out = json!({ "location": store.location(), "runs": runs, "bytes": total });
            println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        } else {
            println!(
                "store: {} in {runs} run{} ({})",
                flow_engine::store::human_bytes(total),
                if runs == 1 { "" } else { "s" },
                store.location()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let total = flow_engine::store::disk_usage(state);
    let outputs = flow_engine::store::disk_usage(&state.join("outputs"));
    let database = flow_engine::store::disk_usage(&state.join("db"));
    if json {
        let out = json!({
            "path": state,
            "runs": runs,
            "bytes": total,
            "database_bytes": database,
            "output_file_bytes": outputs,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        use flow_engine::store::human_bytes;
        println!(
            "store: {} in {runs} run{} ({}): database {}, output files {}",
            human_bytes(total),
            if runs == 1 { "" } else { "s" },
            state.display(),
            human_bytes(database),
            human_bytes(outputs)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Node records in workflow order when the file still loads, else by start time.
fn ordered_nodes(
    store: &dyn StateStore,
    run: &RunRecord,
    registry: &Registry,
) -> Result<Vec<NodeRecord>, Failure> {
    let mut nodes = store.nodes(&run.id)?;
    let order: Option<Vec<String>> =
        flow_engine::compile::load(std::path::Path::new(&run.workflow_path), registry)
            .ok()
            .map(|wf| wf.order.iter().map(|&i| wf.nodes[i].id.clone()).collect());
    match order {
        Some(order) => nodes.sort_by_key(|n| {
            order
                .iter()
                .position(|id| *id == n.node_id)
                .unwrap_or(usize::MAX)
        }),
        None => nodes.sort_by_key(|n| n.started_at),
    }
    Ok(nodes)
}

pub fn show(store: &dyn StateStore, run: &RunRecord, registry: &Registry, json: bool) -> Outcome {
    let nodes = ordered_nodes(store, run, registry)?;
    let live = store.live_runs()?.contains(&run.id);
    if json {
        let mut run_json = serde_json::to_value(run).expect("json");
        run_json["status"] = json!(shown_status(run, live));
        let nodes_json: Vec<_> = nodes
            .iter()
            .map(|n| {
                let mut v = serde_json::to_value(n).expect("json");
                v["status"] = json!(shown_node_status(n, live));
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "run": run_json, "nodes": nodes_json }))
                .expect("json")
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("run       {}", run.id);
    println!("workflow  {} ({})", run.workflow_name, run.workflow_path);
    println!("status    {}", shown_status(run, live));
    println!(
        "trigger   {} via {} at {}",
        run.trigger.triggers.join(", "),
        run.trigger.fired_by,
        run.trigger.time.to_rfc3339()
    );
    if let Some(scheduled) = run.trigger.scheduled_for {
        println!("scheduled {}", scheduled.to_rfc3339());
    }
    println!("started   {}", run.created_at.to_rfc3339());
    println!(
        "duration  {:.1}s over {}",
        run.duration_secs(),
        flow_engine::plural::plural(run.executions, "execution")
    );
    if !run.params.is_empty() {
        // A URL param (a POS endpoint) may carry credentials.
        let params: Vec<String> = run
            .params
            .iter()
            .map(|(k, v)| flow_engine::redact::urls_in(&format!("{k}={v}")))
            .collect();
        println!("params    {}", params.join(" "));
    }
    if let Some(e) = &run.error {
        println!("error     {}", truncate(e, 100));
    }
    println!("{}", node_table(&nodes, Some(live)));
    for n in &nodes {
        if let Some(cases) = &n.case_rows {
            let parts: Vec<String> = cases
                .iter()
                .map(|(c, rows)| format!("{c}: {rows}"))
                .collect();
            println!("{} cases: {}", n.node_id, parts.join(", "));
        }
        if !n.meta.is_empty() {
            println!(
                "{} {}",
                n.node_id,
                serde_json::Value::Object(n.meta.clone())
            );
        }
        for w in &n.warnings {
            println!("{} warning: {w}", n.node_id);
        }
        if let Some(e) = &n.error
            && e.lines().count() > 1
        {
            println!("{} error:\n{e}", n.node_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `live`: whether the nodes' run is being executed right now (`None`: show as recorded).
fn node_table(nodes: &[NodeRecord], live: Option<bool>) -> Table {
    let mut t = table(&[
        "node",
        "status",
        "attempts",
        "duration",
        "rows in",
        "rows out",
        "error / reason",
    ]);
    for n in nodes {
        let status = match live {
            Some(live) => shown_node_status(n, live),
            None => n.status.as_str(),
        };
        let note = n.error.as_deref().or(n.reason.as_deref()).unwrap_or("");
        t.add_row(vec![
            n.node_id.clone(),
            status.to_string(),
            n.attempts.len().to_string(),
            duration(n.duration_ms),
            n.rows_in.to_string(),
            n.rows_out.to_string(),
            truncate(note, 60),
        ]);
    }
    t
}

/// The table printed when a run ends.
pub fn summary(outcome: &RunOutcome) {
    let run = &outcome.run;
    println!("{}", node_table(&outcome.nodes, None));
    for n in &outcome.nodes {
        for w in &n.warnings {
            println!("warning: node `{}`: {w}", n.node_id);
        }
    }
    println!(
        "run {} {} in {:.1}s",
        run.id,
        run.status.as_str(),
        run.duration_secs()
    );
}

pub fn nodes(registry: &Registry, json: bool) {
    if json {
        let items: Vec<_> = registry
            .iter()
            .map(|t| {
                json!({
                    "type": t.name(),
                    "summary": t.summary(),
                    "kinds": t.kinds().iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                    "params": t.params(),
                    "inputs": t.inputs().iter().map(|i| json!({
                        "role": i.role,
                        "kind": i.kind.as_ref().map(|k| k.name()),
                        "required": i.required,
                        "many": i.many,
                        "doc": i.doc,
                    })).collect::<Vec<_>>(),
                    "output": t.output_kind().map(|k| k.name()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items).expect("json"));
        return;
    }
    for t in registry.iter() {
        let kinds: Vec<&str> = t.kinds().iter().map(|k| k.as_str()).collect();
        println!("{}  ({})\n    {}", t.name(), kinds.join(", "), t.summary());
        for p in t.params() {
            let req = if p.required {
                "required".to_string()
            } else {
                p.default
                    .map(|d| format!("default {d}"))
                    .unwrap_or("optional".into())
            };
            println!(
                "    {:<14} {:<9} {:<16} {}",
                p.name,
                p.ty.as_str(),
                req,
                p.doc
            );
        }
        for input in t.inputs() {
            println!("    input {input}: {}", input.doc);
        }
        if let Some(kind) = t.output_kind() {
            println!("    output: {}", kind.describe());
        }
        println!();
    }
}
