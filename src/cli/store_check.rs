//! `flow store check` verifies the whole sled store without changing it; `flow store migrate`
//! copies it into a PostgreSQL store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;

use super::{Failure, Outcome};
use flow_engine::plural::plural;
use flow_engine::store::{
    Endpoint, MigrateError, PgStore, SledStore, StateStore, check_store, human_bytes,
    is_postgres_url,
};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Verify the store: its database (from a scratch copy), the high-water mark, every run and
    /// node record, and every output file against its checksum. Exit 0 when sound, 1 when
    /// damaged.
    Check,
    /// Copy a history between stores: a single machine's (a --state directory) into a
    /// PostgreSQL store, or back. Every run with its node records and outputs, the effect
    /// ledger, node state, schedule watermarks and firing log. The source is only read. The
    /// target must be empty or hold only runs of this source (a migration interrupted and run
    /// again).
    Migrate {
        /// The store to copy: a directory or a postgres:// URL (default: --state).
        #[arg(long, value_name = "DIR|URL")]
        from: Option<String>,
        /// The store to fill: a postgres:// URL or a directory (default: --store or
        /// FLOW_STORE).
        #[arg(long, value_name = "URL|DIR")]
        to: Option<String>,
    },
}

pub fn run(state: &Path, command: StoreCommand) -> Outcome {
    match command {
        StoreCommand::Check => match super::postgres_url() {
            Some(url) => Err(Failure::invalid(anyhow!(
                "flow store check verifies a sled store directory; the PostgreSQL store {} is kept consistent by PostgreSQL (check it with its own tools)",
                flow_engine::store::redact_url(url)
            ))),
            None => check(state),
        },
        StoreCommand::Migrate { from, to } => {
            let from = from.unwrap_or_else(|| state.display().to_string());
            let to = to
                .or_else(|| super::postgres_url().map(str::to_string))
                .ok_or_else(|| {
                    Failure::invalid(anyhow!(
                        "say where to: --to postgres://USER@HOST:PORT/DATABASE (or set FLOW_STORE)"
                    ))
                })?;
            migrate(&from, &to)
        }
    }
}

/// Opens one end of a migration: a PostgreSQL URL, or a sled store directory (which the
/// source must already hold).
fn endpoint(spec: &str, source: bool) -> Result<Endpoint, Failure> {
    if is_postgres_url(spec) {
        return Ok(Endpoint::Postgres(Box::new(PgStore::open(spec)?)));
    }
    if spec.contains("://") {
        return Err(Failure::invalid(anyhow!(
            "`{}` is neither a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE) nor a directory",
            flow_engine::store::redact_url(spec)
        )));
    }
    let dir = PathBuf::from(spec);
    if source && !dir.join("db").exists() {
        return Err(Failure::invalid(anyhow!(
            "{} holds no state store to migrate (no db/ in it)",
            dir.display()
        )));
    }
    // Opened directly: a store in use by flow serve or a run is refused with the usual message.
    Ok(Endpoint::Sled(SledStore::open(&dir)?))
}

fn migrate(from: &str, to: &str) -> Outcome {
    if from == to {
        return Err(Failure::invalid(anyhow!(
            "--from and --to name the same store"
        )));
    }
    let source = endpoint(from, true)?;
    let target = endpoint(to, false)?;
    let location = |e: &Endpoint| match e {
        Endpoint::Sled(s) => s.location(),
        Endpoint::Postgres(p) => p.location(),
    };
    eprintln!("migrating {} into {}", location(&source), location(&target));
    let done = flow_engine::store::migrate(&source, &target, |run_id, so_far| {
        tracing::info!(run = run_id, runs = so_far.runs, "copied");
    })
    .map_err(|e| match e {
        MigrateError::Store(e) => Failure::from(e),
        other => Failure::invalid(anyhow!(other)),
    })?;
    println!(
        "migrated {}, {}, {} ({}), {} of keyed state and {} into {}",
        plural(done.runs as u64, "run"),
        plural(done.nodes as u64, "node record"),
        plural(done.outputs as u64, "output"),
        human_bytes(done.output_bytes),
        flow_engine::plural::plural_of(done.entries as u64, "entry", "entries"),
        flow_engine::plural::plural_of(done.histories as u64, "synced history", "synced histories"),
        location(&target)
    );
    Ok(ExitCode::SUCCESS)
}

fn check(state: &Path) -> Outcome {
    let report = check_store(state).map_err(Failure::from)?;
    println!("checking the state store {}", state.display());
    if report.problems.is_empty() || report.runs + report.nodes > 0 {
        println!(
            "  {}, {}, {} ({} in files)",
            plural(report.runs as u64, "run"),
            plural(report.nodes as u64, "node record"),
            plural(report.outputs as u64, "output"),
            report.output_files
        );
        println!(
            "  {} committed write batches; high-water mark {}",
            report.commits,
            report
                .high_water
                .map_or_else(|| "not recorded yet".to_string(), |n| n.to_string())
        );
    }
    for problem in &report.problems {
        println!("  damaged: {problem}");
    }
    if report.is_sound() {
        println!("the state store {} is sound", state.display());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "the state store {} is damaged: {}",
            state.display(),
            plural(report.problems.len() as u64, "problem")
        );
        Ok(ExitCode::from(1))
    }
}
