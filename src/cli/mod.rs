//! The `flow` command line: argument parsing, output formatting and exit codes.
//!
//! Exit codes: 0 success, 1 the run failed or was interrupted (the resume command is printed),
//! 2 invalid input or usage (including a state store that cannot be used).

mod console;
mod forced_exit;
mod graph;
mod log_filter;
mod progress;
mod prune;
mod report;
mod schema;
mod serve;
mod store_check;

use std::collections::HashMap;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

use flow_engine::compile::{self, LoadError, Workflow};
use flow_engine::data::{self, Body, Data};
use flow_engine::executor::{self, ExecOptions, Shutdown};
use flow_engine::node::Registry;
use flow_engine::plural::plural;
use flow_engine::runs::{self, PlanError};
use flow_engine::store::{RemoteStore, RunRecord, RunStatus, SledStore, StateStore, StoreError};

#[derive(Debug, Parser)]
#[command(
    name = "flow",
    version,
    about = "Run YAML workflows with durable checkpoints and resume."
)]
struct Cli {
    /// State store directory.
    #[arg(long, global = true, env = "FLOW_STATE", default_value = ".flow")]
    state: PathBuf,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a workflow and run it, firing its triggers by hand.
    Run(RunArgs),
    /// Continue a failed or interrupted run from its checkpoints.
    Resume(ResumeArgs),
    /// Check a workflow and report every error with its line.
    Validate {
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print the workflow graph.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: GraphFormat,
    },
    /// List runs (newest first), or inspect one.
    Runs(RunsArgs),
    /// List the registered node types and their parameters.
    Nodes {
        #[arg(long)]
        json: bool,
    },
    /// Fire workflows on their schedule triggers until stopped (Ctrl-C or SIGTERM).
    ///
    /// Other flow commands (`flow runs`, `flow run`, `flow resume`) keep working beside it:
    /// they reach the state store through the server.
    Serve(ServeArgs),
    /// Print the next fire times of a workflow's schedule triggers, in their time zone and UTC.
    Schedule {
        file: PathBuf,
        /// How many fire times to print per trigger.
        #[arg(long, short = 'n', default_value_t = 5)]
        count: usize,
    },
    /// Print the JSON Schema of the workflow format.
    Schema,
    /// Write a deterministic retail sample: transactions, catalog and customers CSVs.
    SampleData(SampleArgs),
    /// Maintain the state store.
    #[command(subcommand)]
    Store(store_check::StoreCommand),
}

#[derive(Debug, Args)]
struct SampleArgs {
    /// Number of customers.
    #[arg(long, default_value_t = 5000)]
    customers: u64,
    /// Number of products in the catalog.
    #[arg(long, default_value_t = 500)]
    products: u32,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Days of history, ending on --end.
    #[arg(long, default_value_t = 730)]
    days: u32,
    /// Last day of the history (YYYY-MM-DD).
    #[arg(long, default_value = "2026-10-31")]
    end: chrono::NaiveDate,
    /// About this many transaction lines (default: what the customers' purchase rates give).
    #[arg(long)]
    lines: Option<u64>,
    /// Malformed rows to include (to exercise bad-row handling).
    #[arg(long, default_value_t = 6)]
    malformed_rows: u32,
    /// Output directory.
    #[arg(long, short, default_value = "sample-data")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    file: PathBuf,
    /// Override a workflow param: NAME=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Fire only this trigger (repeatable; default: all triggers).
    #[arg(long = "trigger", value_name = "ID")]
    triggers: Vec<String>,
    /// Most nodes running at once (the workflow's `concurrency` wins).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Workflow files, or directories of them (`*.yaml`, `*.yml`; new files are picked up).
    #[arg(required = true, value_name = "FILE|DIR")]
    sources: Vec<PathBuf>,
    /// Most nodes running at once within a run (a workflow's `concurrency` wins).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// `catchup: all` runs at most this many missed firings per trigger (the latest ones).
    #[arg(long, default_value_t = 50)]
    max_catchup: usize,
    /// How often workflow files are checked for changes.
    #[arg(long, default_value = "2s", value_parser = serve::parse_interval)]
    reload_interval: std::time::Duration,
    #[command(flatten)]
    retention: serve::RetentionArgs,
}

#[derive(Debug, Args)]
struct ResumeArgs {
    /// The run id (a unique prefix is enough; `last` is the newest run).
    run_id: String,
    /// Re-run this node and everything downstream, even if it succeeded.
    #[arg(long, value_name = "NODE")]
    from: Option<String>,
    /// Set a workflow param for the rest of the run: NAME=VALUE (repeatable). Nodes that use a
    /// changed param run again, with what follows them.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    params: Vec<String>,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct RunsArgs {
    #[command(subcommand)]
    command: Option<RunsCommand>,
    #[arg(long)]
    json: bool,
    /// Show at most this many runs.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Per-node status, attempts, duration, rows and errors of a run.
    Show {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Export a node's checkpointed output.
    Output {
        run_id: String,
        node: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: OutputFormat,
        /// For a decision: the case to export.
        #[arg(long)]
        case: Option<String>,
    },
    /// Remove old runs with their outputs; failed and interrupted runs stay unless asked.
    Prune(prune::PruneArgs),
    /// The space the state store takes on disk: database and output files.
    Size {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Csv,
    Json,
}

/// An error with its exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    fn invalid(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            error: error.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::invalid(e)
    }
}

impl From<PlanError> for Failure {
    fn from(e: PlanError) -> Self {
        Failure::invalid(e)
    }
}

type Outcome = Result<ExitCode, Failure>;

/// Runs the `flow` command line with the node types in `registry`.
pub fn main_with(registry: Registry) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_tracing(cli.verbose);
    // Panics inside nodes are caught and reported as node failures; keep the default hook's
    // backtrace out of the user's terminal unless they asked for detail.
    if cli.verbose < 2 {
        std::panic::set_hook(Box::new(|info| tracing::debug!("panic: {info}")));
    }
    match run_command(cli, &registry) {
        Ok(code) => code,
        Err(Failure { code, error }) => {
            eprintln!("error: {}", format_error(&error));
            ExitCode::from(code)
        }
    }
}

fn format_error(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(&format!(": {cause}"));
        }
    }
    text
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "flow=info",
        _ => "flow=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use tracing_subscriber::layer::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Log lines go through the console, like the progress lines: one format, above the live view.
    // The HTTP client's wire logs are dropped at every level (they quote tokens).
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            console::ConsoleLayer::new()
                .with_filter(tracing_subscriber::filter::filter_fn(log_filter::allowed)),
        )
        .try_init();
}

fn run_command(cli: Cli, registry: &Registry) -> Outcome {
    match cli.command {
        Command::Validate { file, json } => validate(&file, json, registry),
        Command::Graph { file, format } => {
            let wf = load(&file, registry)?;
            let text = match format {
                GraphFormat::Mermaid => graph::mermaid(&wf),
                GraphFormat::Dot => graph::dot(&wf),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Nodes { json } => {
            report::nodes(registry, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&schema::workflow_schema(registry)).expect("schema")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::SampleData(args) => sample_data(args),
        Command::Store(command) => store_check::run(&cli.state, command),
        Command::Serve(args) => serve::serve(
            serve::ServeCommand {
                state: &cli.state,
                sources: args.sources,
                opts: flow_engine::serve::ServeOptions {
                    concurrency: args.concurrency,
                    reload_interval: args.reload_interval,
                    max_catchup: args.max_catchup,
                    keep_runs: args.retention.keep_runs,
                    keep_for: args.retention.keep_for,
                },
            },
            registry,
        ),
        Command::Schedule { file, count } => serve::schedule(&cli.state, &file, count, registry),
        Command::Run(args) => run(&cli.state, args, registry),
        Command::Resume(args) => resume(&cli.state, args, registry),
        Command::Runs(RunsArgs {
            command: Some(RunsCommand::Prune(args)),
            ..
        }) => prune::prune(&cli.state, args),
        Command::Runs(args) => {
            let store = open_store_to_read(&cli.state)?;
            match args.command {
                None => report::runs(store.as_ref(), &cli.state, args.json, args.limit),
                Some(RunsCommand::Show { run_id, json }) => {
                    let run = find_run(store.as_ref(), &run_id)?;
                    report::show(store.as_ref(), &run, registry, json)
                }
                Some(RunsCommand::Output {
                    run_id,
                    node,
                    format,
                    case,
                }) => {
                    let run = find_run(store.as_ref(), &run_id)?;
                    export_output(store.as_ref(), &run, &node, format, case.as_deref())
                }
                Some(RunsCommand::Size { json }) => report::size(store.as_ref(), &cli.state, json),
                Some(RunsCommand::Prune(_)) => unreachable!("handled above"),
            }
        }
    }
}

pub(super) fn load(file: &Path, registry: &Registry) -> Result<Workflow, Failure> {
    compile::load(file, registry).map_err(|e| match e {
        LoadError::Invalid(diags) => {
            // One line per problem, `FILE:LINE:COL: message`, as compilers print them.
            for d in &diags {
                eprintln!("{d}");
            }
            let n = diags.len();
            Failure::invalid(anyhow!(
                "{} is invalid: {n} error{}",
                file.display(),
                if n == 1 { "" } else { "s" }
            ))
        }
        io => Failure::invalid(io),
    })
}

fn validate(file: &Path, json: bool, registry: &Registry) -> Outcome {
    let result = compile::load(file, registry);
    if json {
        let (valid, errors) = match &result {
            Ok(_) => (true, Vec::new()),
            Err(LoadError::Invalid(diags)) => (false, diags.clone()),
            Err(e @ LoadError::Io { .. }) => (
                false,
                vec![compile::Diagnostic {
                    severity: compile::Severity::Error,
                    file: file.to_path_buf(),
                    line: None,
                    column: None,
                    node: None,
                    message: e.to_string(),
                }],
            ),
        };
        let mut out = serde_json::json!({ "file": file, "valid": valid, "errors": errors });
        if let Ok(wf) = &result {
            out["warnings"] = serde_json::json!(wf.warnings);
            out["nodes"] = serde_json::json!(graph::summary_json(wf));
        }
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        return Ok(if valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        });
    }
    let wf = load(file, registry)?;
    for w in &wf.warnings {
        eprintln!("{w}");
    }
    println!(
        "{}: valid workflow `{}` ({}, {}){}",
        file.display(),
        wf.name,
        plural(wf.nodes.len() as u64, "node"),
        plural(wf.triggers().count() as u64, "trigger"),
        match wf.warnings.len() {
            0 => String::new(),
            n => format!(", {}", plural(n as u64, "warning")),
        }
    );
    print!("{}", graph::trigger_rules(&wf));
    Ok(ExitCode::SUCCESS)
}

/// Opens the state store; while `flow serve` holds it, reaches it through the server.
///
/// A lock held by no server gets a short grace period before the store counts as in use: a flow
/// process that was just killed can leave a child between fork and exec that shares its open
/// files (and so its lock) for a moment, and a command that is finishing lets go within it.
pub(super) fn open_store(dir: &Path) -> Result<Arc<dyn StateStore>, Failure> {
    open_store_with(dir, SledStore::open)
}

/// Opens the state store for a command that only reads it: on a full disk, where opening the
/// store itself needs to write, it is read from a copy on another disk.
pub(super) fn open_store_to_read(dir: &Path) -> Result<Arc<dyn StateStore>, Failure> {
    open_store_with(dir, |dir| match SledStore::open(dir) {
        Err(StoreError::NoSpace { .. }) => {
            let store = SledStore::open_copy(dir)?;
            // Shown at every log level: the reader should know why the disk needs attention.
            eprintln!(
                "the disk of the state store {} is full: read it from a copy in {} (free space on that disk before the next run)",
                dir.display(),
                std::env::temp_dir().display()
            );
            Ok(store)
        }
        other => other,
    })
}

fn open_store_with(
    dir: &Path,
    open: impl Fn(&Path) -> Result<SledStore, StoreError>,
) -> Result<Arc<dyn StateStore>, Failure> {
    const GRACE: std::time::Duration = std::time::Duration::from_millis(500);
    let start = std::time::Instant::now();
    loop {
        match open(dir) {
            Ok(store) => return Ok(Arc::new(store)),
            Err(StoreError::Locked { path }) => match RemoteStore::connect(dir)? {
                Some(remote) => {
                    tracing::info!(
                        "the state store is held by flow serve; using it through the server"
                    );
                    return Ok(Arc::new(remote));
                }
                None if start.elapsed() < GRACE => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                None => return Err(StoreError::Locked { path }.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

/// Finds a run by id, unique prefix, or `last`.
fn find_run(store: &dyn StateStore, id: &str) -> Result<RunRecord, Failure> {
    if let Some(run) = store.run(id)? {
        return Ok(run);
    }
    let runs = store.runs()?;
    if id == "last" {
        return runs
            .into_iter()
            .next()
            .ok_or_else(|| Failure::invalid(anyhow!("there are no runs yet")));
    }
    let matches: Vec<RunRecord> = runs.into_iter().filter(|r| r.id.starts_with(id)).collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => Err(Failure::invalid(anyhow!(
            "no run `{id}` in {} (`flow runs` lists them; a run removed by `flow runs prune` or flow serve's retention is gone for good)",
            store.location()
        ))),
        n => Err(Failure::invalid(anyhow!(
            "`{id}` matches {n} runs ({}); give more of the id",
            matches
                .iter()
                .take(5)
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Builds a multi-threaded runtime for a run.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: 1,
            error: anyhow!("cannot start the async runtime: {e}"),
        })
}

fn run(state: &Path, args: RunArgs, registry: &Registry) -> Outcome {
    let wf = Arc::new(load(&args.file, registry)?);
    let params = runs::parse_params(&wf, &args.params)?;
    let store = open_store(state)?;
    let newest = store.runs()?.into_iter().next().map(|r| r.id);
    let mut record = runs::new_run(
        &wf,
        params.values,
        "manual",
        &args.triggers,
        Utc::now(),
        None,
        newest.as_deref(),
    )?;
    record.param_overrides = Some(params.overrides);
    eprintln!(
        "run {} of `{}` ({})",
        record.id,
        wf.name,
        plural(wf.nodes.len() as u64, "node")
    );
    for w in &wf.warnings {
        eprintln!("{w}");
    }
    execute(
        wf,
        store,
        record,
        HashMap::new(),
        Default::default(),
        args.concurrency,
    )
}

fn resume(state: &Path, args: ResumeArgs, registry: &Registry) -> Outcome {
    let store = open_store(state)?;
    let mut record = find_run(store.as_ref(), &args.run_id)?;
    if store.live_runs()?.contains(&record.id) {
        return Err(Failure::invalid(anyhow!(
            "run {} is running right now (in flow serve or another flow command); wait for it to end",
            record.id
        )));
    }
    let path = PathBuf::from(&record.workflow_path);
    if !path.exists() {
        return Err(Failure::invalid(anyhow!(
            "run {} used the workflow {}, which no longer exists",
            record.id,
            path.display()
        )));
    }
    let wf = Arc::new(load(&path, registry)?);
    let previous = store.nodes(&record.id)?;
    let plan = runs::plan_resume(&wf, &record, &previous, args.from.as_deref(), &args.params)?;
    eprintln!("resuming run {} of `{}`", record.id, wf.name);
    if plan.workflow_changed {
        eprintln!("  the workflow changed since this run");
    }
    for change in &plan.changed_params {
        eprintln!("  {change}");
    }
    plan.apply_params(&mut record);
    for id in &plan.removed {
        eprintln!(
            "  node `{id}` is no longer in the workflow (removed or renamed); its checkpoint is kept but not used"
        );
    }
    if !plan.reused.is_empty() {
        eprintln!(
            "  reusing {} finished node{} from checkpoints",
            plan.reused.len(),
            if plan.reused.len() == 1 { "" } else { "s" }
        );
    }
    for rerun in &plan.reruns {
        eprintln!("  will run `{}`: {}", rerun.node, rerun.reason);
    }
    record.executions += 1;
    let previous: HashMap<String, _> = previous
        .into_iter()
        .map(|r| (r.node_id.clone(), r))
        .collect();
    execute(wf, store, record, previous, plan.reuse, args.concurrency)
}

fn execute(
    wf: Arc<Workflow>,
    store: Arc<dyn StateStore>,
    record: RunRecord,
    previous: HashMap<String, flow_engine::store::NodeRecord>,
    reuse: std::collections::HashSet<usize>,
    concurrency: usize,
) -> Outcome {
    let rt = runtime()?;
    let run_id = record.id.clone();
    let tty = std::io::stderr().is_terminal();
    let signals = {
        let _runtime = rt.enter();
        Signals::install()?
    };
    let outcome = rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(Shutdown::None);
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let signals = tokio::spawn(signals.forward(stop_tx, true));
        let display = tokio::spawn(progress::display(events_rx, wf.clone(), tty));
        let opts = ExecOptions {
            concurrency,
            shutdown: stop_rx,
            events: Some(events_tx),
        };
        let result = executor::execute(wf.clone(), store, record, previous, reuse, opts).await;
        signals.abort();
        let _ = display.await;
        result
    });
    let outcome = outcome.map_err(|e| Failure {
        code: 1,
        error: anyhow!(e),
    })?;
    report::summary(&outcome);
    let _ = std::io::stdout().flush();
    match outcome.run.status {
        RunStatus::Succeeded => Ok(ExitCode::SUCCESS),
        RunStatus::Failed => {
            eprintln!(
                "run {run_id} failed. Fix the cause, then resume it with:\n  flow resume {run_id}"
            );
            Ok(ExitCode::from(1))
        }
        RunStatus::Interrupted | RunStatus::Running => {
            eprintln!("run {run_id} was interrupted. Resume it with:\n  flow resume {run_id}");
            Ok(ExitCode::from(1))
        }
    }
}

/// SIGINT and SIGTERM handlers, installed before anything that a signal should stop cleanly.
pub(super) struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must be called inside the runtime.
    pub(super) fn install() -> Result<Self, Failure> {
        use tokio::signal::unix::{SignalKind, signal};
        let failed = |e: std::io::Error| Failure {
            code: 1,
            error: anyhow!("cannot install signal handlers: {e}"),
        };
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(failed)?,
            terminate: signal(SignalKind::terminate()).map_err(failed)?,
        })
    }

    /// First Ctrl-C or SIGTERM: start nothing new and let running nodes finish. Second: cancel
    /// them, and exit anyway if that has not ended the process in time; a third exits at once.
    /// `announce`: say so (the server logs it itself).
    pub(super) async fn forward(mut self, stop: watch::Sender<Shutdown>, announce: bool) {
        for level in [Shutdown::Drain, Shutdown::Cancel] {
            let signal = self.next().await;
            match level {
                _ if !announce => {}
                Shutdown::Drain => eprintln!(
                    "stopping: no new nodes will start; waiting for running nodes to finish (press Ctrl-C again to cancel them)"
                ),
                _ => eprintln!("cancelling running nodes"),
            }
            let _ = stop.send(level);
            if level == Shutdown::Cancel {
                forced_exit::after_grace(forced_exit::code(signal));
            }
        }
        let signal = self.next().await;
        forced_exit::now(forced_exit::code(signal), "stopped a third time");
    }

    /// Waits for SIGINT or SIGTERM; returns its number.
    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => 2,
            _ = self.terminate.recv() => 15,
        }
    }
}

fn export_output(
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

fn sample_data(args: SampleArgs) -> Outcome {
    use flow_retail::pos::generate::{self, GenerateOptions};
    let start = args.end - chrono::Duration::days(i64::from(args.days.max(1)) - 1);
    let opts = GenerateOptions {
        customers: args.customers,
        products: args.products,
        start_date: start,
        days: args.days,
        seed: args.seed,
        malformed_rows: args.malformed_rows,
        target_lines: args.lines,
    };
    let invalid = |e: std::io::Error| Failure::invalid(anyhow!("cannot write the sample: {e}"));
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))
        .map_err(Failure::invalid)?;
    let create = |name: &str| -> Result<std::io::BufWriter<std::fs::File>, Failure> {
        let path = args.out.join(name);
        std::fs::File::create(&path)
            .map(std::io::BufWriter::new)
            .with_context(|| format!("cannot create {}", path.display()))
            .map_err(Failure::invalid)
    };
    let stats =
        generate::write_transactions(&opts, create("transactions.csv")?).map_err(invalid)?;
    generate::write_catalog(&opts, create("catalog.csv")?).map_err(invalid)?;
    generate::write_customers(&opts, create("customers.csv")?).map_err(invalid)?;
    eprintln!(
        "wrote {} ({}, {}, {}, {}) to {} \
         (transactions.csv, catalog.csv, customers.csv), {} to {}",
        plural(stats.lines, "transaction line"),
        plural(stats.orders, "order"),
        plural(stats.customers, "customer"),
        plural(args.products, "product"),
        plural(args.malformed_rows, "malformed row"),
        args.out.display(),
        start,
        args.end
    );
    Ok(ExitCode::SUCCESS)
}
