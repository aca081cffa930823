//! `flow worker`: runs nodes of runs started with `--workers`, from the PostgreSQL store's
//! queue, until SIGTERM (drain) or a second SIGTERM (hand back).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use chrono::Utc;
use clap::Args;
use tokio::sync::watch;

use flow_engine::executor::Shutdown;
use flow_engine::node::Registry;
use flow_engine::store::StateStore;
use flow_engine::worker::{self, WorkerEvent, WorkerOptions};

use super::serve::{log_line, parse_interval};
use super::{Failure, Outcome};

#[derive(Debug, Args)]
pub(super) struct WorkerArgs {
    /// Nodes run at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long a node stays claimed by this worker without a renewal (renewed every third of
    /// it). After a crash, another worker takes the node once this has passed.
    #[arg(long, default_value = "30s", value_parser = parse_interval)]
    lease: Duration,
    /// The name this worker claims nodes under (default: HOST-PID).
    #[arg(long)]
    name: Option<String>,
    /// What this worker offers (comma-separated, e.g. `pos,bigmem`): it takes the nodes whose
    /// `labels` are all among these, and nodes without labels.
    #[arg(long, value_delimiter = ',', value_name = "LABEL,...")]
    labels: Vec<String>,
}

pub(super) fn worker(args: WorkerArgs, registry: &Registry) -> Outcome {
    super::postgres_url().ok_or_else(|| {
        Failure::invalid(anyhow!(
            "flow worker takes nodes from a PostgreSQL store: give it with --store postgres://... or FLOW_STORE"
        ))
    })?;
    if let Some(bad) = args.labels.iter().find(|l| {
        l.is_empty()
            || !l
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err(Failure::invalid(anyhow!(
            "--labels: `{bad}` is not a label (letters, digits, `_` and `-`)"
        )));
    }
    if args.lease < Duration::from_secs(1) {
        return Err(Failure::invalid(anyhow!("--lease must be at least 1s")));
    }
    let store = super::store_access::open_postgres_store()?;
    let name = args.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        format!("{host}-{}", std::process::id())
    });
    let rt = super::run::runtime()?;
    let signals = {
        let _runtime = rt.enter();
        super::run::Signals::install()?
    };
    log_line(
        Utc::now(),
        &format!(
            "worker {name} takes nodes from {} ({} at once, lease {}s{})",
            store.location(),
            args.concurrency,
            args.lease.as_secs(),
            match args.labels.is_empty() {
                true => String::new(),
                false => format!(", labels {}", args.labels.join(",")),
            }
        ),
    );
    let opts = WorkerOptions {
        concurrency: args.concurrency,
        lease: args.lease,
        poll: Duration::from_millis(500),
        name,
        labels: args.labels,
    };
    let registry = registry.clone();
    let stats = rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(Shutdown::None);
        let signals = tokio::spawn(signals.forward(stop_tx, false));
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        let logger = tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                log_line(Utc::now(), &describe(&event));
            }
        });
        let result = worker::run(store, registry, opts, stop_rx, Some(events_tx)).await;
        signals.abort();
        let _ = logger.await;
        result
    });
    let stats = stats.map_err(|e| Failure {
        code: 1,
        error: anyhow!(e),
    })?;
    log_line(
        Utc::now(),
        &format!(
            "stopped: {} succeeded, {} failed, {} handed back or lost",
            stats.succeeded, stats.failed, stats.abandoned
        ),
    );
    Ok(ExitCode::SUCCESS)
}

fn describe(event: &WorkerEvent) -> String {
    match event {
        WorkerEvent::Claimed { run_id, node_id } => format!("run {run_id}: node {node_id} taken"),
        WorkerEvent::Finished {
            run_id,
            node_id,
            ok: true,
            ..
        } => format!("run {run_id}: node {node_id} done"),
        WorkerEvent::Finished {
            run_id,
            node_id,
            error,
            ..
        } => format!(
            "run {run_id}: node {node_id} failed: {}",
            error.as_deref().unwrap_or_default()
        ),
        WorkerEvent::Abandoned {
            run_id,
            node_id,
            why,
        } => format!("run {run_id}: node {node_id} left: {why}"),
    }
}
