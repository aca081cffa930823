//! `flow store check` verifies the whole sled store without changing it; `flow store migrate`
//! copies it into a PostgreSQL store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;

use super::{Failure, Outcome};
use flow_engine::plural::plural;
use flow_engine::store::{
    MigrateError, PgStore, SledStore, check_store, human_bytes, is_postgres_url,
};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Verify the store: its database (from a scratch copy), the high-water mark, every run and
    /// node record, and every output file against its checksum. Exit 0 when sound, 1 when
    /// damaged.
    Check,
    /// Copy a single-machine store (sled) into a PostgreSQL store: every run with its node
    /// records and outputs, the effect ledger, node state, schedule watermarks and firing log.
    /// The source is only read. The target must be empty or hold only runs of this source (a
    /// migration interrupted and run again).
    Migrate {
        /// The sled store to copy (default: --state).
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// The PostgreSQL store to fill (default: --store or FLOW_STORE).
        #[arg(long, value_name = "URL")]
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
            let from = from.unwrap_or_else(|| state.to_path_buf());
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

fn migrate(from: &Path, to: &str) -> Outcome {
    if !is_postgres_url(to) {
        return Err(Failure::invalid(anyhow!(
            "--to takes a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE"
        )));
    }
    if !from.join("db").exists() {
        return Err(Failure::invalid(anyhow!(
            "{} holds no state store to migrate (no db/ in it)",
            from.display()
        )));
    }
    // Opened directly: a store in use by flow serve or a run is refused with the usual message.
    let source = SledStore::open(from)?;
    let target = PgStore::open(to, None)?;
    eprintln!(
        "migrating {} into {}",
        from.display(),
        flow_engine::store::StateStore::location(&target)
    );
    let done = flow_engine::store::migrate(&source, &target, |run_id, so_far| {
        tracing::info!(run = run_id, runs = so_far.runs, "copied");
    })
    .map_err(|e| match e {
        MigrateError::Store(e) => Failure::from(e),
        other => Failure::invalid(anyhow!(other)),
    })?;
    println!(
        "migrated {}, {}, {} ({}) and {} of keyed state into {}",
        plural(done.runs as u64, "run"),
        plural(done.nodes as u64, "node record"),
        plural(done.outputs as u64, "output"),
        human_bytes(done.output_bytes),
        flow_engine::plural::plural_of(done.entries as u64, "entry", "entries"),
        flow_engine::store::StateStore::location(&target)
    );
    println!(
        "files node types keep beside the store (synced POS histories) stay in {}: keep passing --state {} on this host, or copy the directory to the hosts that run those nodes",
        from.display(),
        from.display()
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
