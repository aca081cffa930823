//! `flow runs prune`: removes old runs from the state store.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use serde_json::json;

use super::{Failure, Outcome, open_store};
use flow_engine::serve::retention;
use flow_engine::store::{Retention, SledStore, StateStore, StoreError, disk_usage, human_bytes};

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep the newest N runs of each workflow.
    #[arg(long, value_name = "N")]
    keep: Option<usize>,
    /// Remove runs older than this (`90d`, `12h`, `2weeks`).
    #[arg(long, value_name = "DURATION", value_parser = parse_age, conflicts_with = "before")]
    older_than: Option<std::time::Duration>,
    /// Remove runs created before this date (`2026-01-31`) or time (RFC 3339).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    before: Option<DateTime<Utc>>,
    /// Also remove failed and interrupted runs, which could still be resumed.
    #[arg(long)]
    include_resumable: bool,
    /// List what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write it like `30d`, `12h`, `2weeks`)"))
}

fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            "expected a date (2026-01-31) or an RFC 3339 time (2026-01-31T12:00:00Z)".into()
        })
}

pub fn prune(state: &Path, args: PruneArgs) -> Outcome {
    let policy = Retention {
        keep: args.keep,
        since: args
            .older_than
            .map(|age| retention::cutoff(Utc::now(), age))
            .or(args.before),
        include_resumable: args.include_resumable,
    };
    if policy.is_empty() {
        return Err(Failure::invalid(anyhow!(
            "say which runs to keep: --keep N (newest runs per workflow), --older-than DURATION or --before DATE"
        )));
    }
    // Opened here (rather than reached through flow serve), the database can be compacted.
    let postgres = super::postgres_url().is_some();
    let (store, direct): (Arc<dyn StateStore>, bool) = match postgres {
        // PostgreSQL gives the space of removed rows back itself (autovacuum).
        true => (open_store(state)?, false),
        false => match SledStore::open(state) {
            Ok(store) => (Arc::new(store), true),
            Err(StoreError::Locked { .. }) => (open_store(state)?, false),
            Err(e) => return Err(e.into()),
        },
    };
    let live: HashSet<String> = store.live_runs()?;
    // A PostgreSQL store's size is its tables'; a sled store's, its directory's.
    let usage = |store: &dyn StateStore| store.stored_bytes().unwrap_or_else(|| disk_usage(state));
    let before = usage(store.as_ref());
    let pruned = retention::prune(store.as_ref(), &policy, &live, args.dry_run)?;
    let spared = spared_resumable(store.as_ref(), &policy, &live)?;
    let location = store.location();
    let after_removal = usage(store.as_ref());
    drop(store);
    let compacted = if direct && !args.dry_run && !pruned.runs.is_empty() {
        match SledStore::compact(state) {
            Ok(_) => true,
            // Someone took the store between the two opens: the removal stands.
            Err(StoreError::Locked { .. }) => false,
            Err(e) => return Err(e.into()),
        }
    } else {
        false
    };
    let after = match postgres {
        true => after_removal,
        false => disk_usage(state),
    };
    if args.json {
        let out = json!({
            "dry_run": args.dry_run,
            "runs": pruned.runs.iter().map(|r| json!({
                "id": r.id,
                "workflow_name": r.workflow_name,
                "status": r.status.as_str(),
                "created_at": r.created_at,
            })).collect::<Vec<_>>(),
            "firings": pruned.firings,
            "entries": pruned.removed.entries,
            "bytes_removed": pruned.removed.bytes,
            "store_bytes_before": before,
            "store_bytes_after": after,
            "compacted": compacted,
            "resumable_kept": spared,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for r in &pruned.runs {
        println!(
            "{verb} run {} of `{}` ({}, {})",
            r.id,
            r.workflow_name,
            r.status.as_str(),
            r.created_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    let runs = match pruned.runs.len() {
        1 => "1 run".to_string(),
        n => format!("{n} runs"),
    };
    let firings = match pruned.firings {
        0 => String::new(),
        1 => " and 1 firing-log entry".into(),
        n => format!(" and {n} firing-log entries"),
    };
    if args.dry_run {
        println!("dry run: {verb} {runs}{firings}; nothing was changed");
    } else if pruned.runs.is_empty() && pruned.firings == 0 {
        println!(
            "nothing to remove; the store takes {} in {location}",
            human_bytes(after)
        );
    } else {
        println!(
            "{verb} {runs}{firings}: {} of records and outputs; the store now takes {} (was {}) in {location}{}",
            human_bytes(pruned.removed.bytes),
            human_bytes(after),
            human_bytes(before),
            match (compacted, direct) {
                (true, _) => ", its database compacted",
                (false, true) => "",
                (false, false) if postgres => "; PostgreSQL reuses the space of the removed rows",
                // The server holds the database open; it compacts when it next starts.
                (false, false) =>
                    "; flow serve compacts the database when it next starts with a retention",
            }
        );
    }
    if spared > 0 {
        println!(
            "kept {spared} failed or interrupted run{} that could still be resumed (--include-resumable removes {})",
            if spared == 1 { "" } else { "s" },
            if spared == 1 { "it" } else { "them" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Resumable runs the policy would have removed had they finished.
fn spared_resumable(
    store: &dyn StateStore,
    policy: &Retention,
    live: &HashSet<String>,
) -> Result<usize, Failure> {
    if policy.include_resumable {
        return Ok(0);
    }
    let all = Retention {
        include_resumable: true,
        ..policy.clone()
    };
    let runs = store.runs()?;
    let with = all.select(&runs, live).len();
    let without = policy.select(&runs, live).len();
    Ok(with - without)
}
