//! `flow runs output`: a node's checkpointed output, as CSV or JSON on stdout.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use flow_engine::data::{self, Body, Data};
use flow_engine::plural::plural;
use flow_engine::store::{RunRecord, StateStore};

use super::args::OutputFormat;
use super::{Failure, Outcome};

pub(super) fn export_output(
    store: &dyn StateStore,
    run: &RunRecord,
    node: &str,
    format: OutputFormat,
    case: Option<&str>,
) -> Outcome {
    let bytes = store.output(&run.id, node)?.ok_or_else(|| {
        let known = store
            .nodes(&run.id)
            .map(|n| {
                n.into_iter()
                    .filter(|r| r.status == flow_engine::store::NodeStatus::Succeeded)
                    .map(|r| r.node_id)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        Failure::invalid(anyhow!(
            "run {} has no checkpointed output for node `{node}` (nodes with outputs: {})",
            run.id,
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let output = data::decode(&bytes).map_err(|e| Failure {
        code: 1,
        error: anyhow!(e),
    })?;
    let data = match (&output.body, case) {
        (Body::Data(d), None) => d.clone(),
        (Body::Data(_), Some(c)) => {
            return Err(Failure::invalid(anyhow!(
                "`{node}` is not a decision; it has no case `{c}`"
            )));
        }
        (Body::Cases(cases), Some(c)) => match cases.iter().find(|(name, _)| name == c) {
            Some((_, d)) => d.clone(),
            None => {
                return Err(Failure::invalid(anyhow!(
                    "decision `{node}` has no case `{c}` (cases: {})",
                    cases
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        },
        (Body::Cases(cases), None) => {
            return Err(Failure::invalid(anyhow!(
                "`{node}` is a decision; choose a case with --case ({})",
                cases
                    .iter()
                    .map(|(n, d)| format!("{n}: {}", plural(d.rows(), "row")))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    // Render first, then write: a reader that stops early (`| head`) is not an error.
    let mut buf: Vec<u8> = Vec::new();
    let rendered: anyhow::Result<()> = (|| {
        match (&data, format) {
            // CSV output is opened in spreadsheets: formula-like text cells are neutralised.
            (Data::Table(t), OutputFormat::Csv) => {
                flow_engine::spreadsheet::write_csv_for_spreadsheets(t, &mut buf)?
            }
            (Data::Table(t), OutputFormat::Json) => data::write_jsonl(t, &mut buf)?,
            (Data::Json(serde_json::Value::String(s)), OutputFormat::Csv) => writeln!(buf, "{s}")?,
            (Data::Json(v), _) => writeln!(buf, "{}", serde_json::to_string_pretty(v)?)?,
            (Data::Empty, _) => {}
        }
        Ok(())
    })();
    rendered.map_err(|e| Failure { code: 1, error: e })?;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(&buf).and_then(|()| stdout.flush());
    let written: anyhow::Result<()> = match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    };
    written.map_err(|e| Failure { code: 1, error: e })?;
    Ok(ExitCode::SUCCESS)
}
