//! The command line's arguments: commands, their options and value types (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{prune, serve, store_check, sync};

#[derive(Debug, Parser)]
#[command(
    name = "flow",
    version,
    about = "Run YAML workflows with durable checkpoints and resume."
)]
pub(super) struct Cli {
    /// State store directory.
    #[arg(long, global = true, env = "FLOW_STATE", default_value = ".flow")]
    pub(super) state: PathBuf,
    /// A PostgreSQL database as the state store, shared by flow processes on many hosts
    /// (postgres://USER[:PASSWORD]@HOST:PORT/DATABASE); --state then only holds local files.
    #[arg(long, global = true, env = "FLOW_STORE", value_name = "URL")]
    pub(super) store: Option<String>,
    /// File of NAME=value credentials, readable only by its owner; the environment wins.
    #[arg(long, global = true, env = "FLOW_SECRETS_FILE", value_name = "FILE")]
    pub(super) secrets: Option<PathBuf>,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(super) verbose: u8,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
    /// Run nodes of any run on a PostgreSQL store (`flow run --workers`) until stopped.
    ///
    /// SIGTERM stops claiming and lets the nodes running finish; a second one hands them back.
    Worker(super::worker::WorkerArgs),
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
    /// The synced histories of a workflow's POS API sources: status, or start over.
    #[command(subcommand)]
    Sync(sync::SyncCommand),
}

#[derive(Debug, Args)]
pub(super) struct SampleArgs {
    /// Number of customers.
    #[arg(long, default_value_t = 5000)]
    pub(super) customers: u64,
    /// Number of products in the catalog.
    #[arg(long, default_value_t = 500)]
    pub(super) products: u32,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 42)]
    pub(super) seed: u64,
    /// Days of history, ending on --end.
    #[arg(long, default_value_t = 730)]
    pub(super) days: u32,
    /// Last day of the history (YYYY-MM-DD).
    #[arg(long, default_value = "2026-10-31")]
    pub(super) end: chrono::NaiveDate,
    /// About this many transaction lines (default: what the customers' purchase rates give).
    #[arg(long)]
    pub(super) lines: Option<u64>,
    /// Malformed rows to include (to exercise bad-row handling).
    #[arg(long, default_value_t = 6)]
    pub(super) malformed_rows: u32,
    /// Simulate a campaign with a known effect: KEY:DATE:UPLIFT[:HOLDOUT[:WINDOW]], e.g.
    /// campaign_vip:2026-09-01:0.05:0.1:14. Customers acquired by DATE and not in KEY's control
    /// group (share HOLDOUT, default 0.1) make one extra order with probability UPLIFT in the
    /// WINDOW days (default 14) after DATE. Repeatable.
    #[arg(long = "campaign", value_name = "KEY:DATE:UPLIFT[:HOLDOUT[:WINDOW]]")]
    pub(super) campaigns: Vec<flow_retail::pos::generate::SimulatedCampaign>,
    /// Output directory.
    #[arg(long, short, default_value = "sample-data")]
    pub(super) out: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    pub(super) file: PathBuf,
    /// Override a workflow param: NAME=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub(super) params: Vec<String>,
    /// Fire only this trigger (repeatable; default: all triggers).
    #[arg(long = "trigger", value_name = "ID")]
    pub(super) triggers: Vec<String>,
    /// Most nodes running at once (the workflow's `concurrency` wins).
    #[arg(long, default_value_t = 8)]
    pub(super) concurrency: usize,
    /// Run the nodes on `flow worker` processes sharing the PostgreSQL store (--store), not in
    /// this process.
    #[arg(long)]
    pub(super) workers: bool,
}

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Workflow files, or directories of them (`*.yaml`, `*.yml`; new files are picked up).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub(super) sources: Vec<PathBuf>,
    /// Most nodes running at once within a run (a workflow's `concurrency` wins).
    #[arg(long, default_value_t = 8)]
    pub(super) concurrency: usize,
    /// `catchup: all` runs at most this many missed firings per trigger (the latest ones).
    #[arg(long, default_value_t = 50)]
    pub(super) max_catchup: usize,
    /// Run the nodes of the runs this server starts on `flow worker` processes sharing the
    /// PostgreSQL store (--store), not in this process.
    #[arg(long)]
    pub(super) workers: bool,
    /// How often workflow files are checked for changes.
    #[arg(long, default_value = "2s", value_parser = serve::parse_interval)]
    pub(super) reload_interval: std::time::Duration,
    #[command(flatten)]
    pub(super) retention: serve::RetentionArgs,
    /// Serve the HTTP API, the web UI and webhook triggers on this address (`127.0.0.1:8080`,
    /// or a port alone for 127.0.0.1). Off unless given.
    #[arg(long, env = "FLOW_HTTP", value_name = "ADDR", value_parser = serve::parse_http_addr)]
    pub(super) http: Option<std::net::SocketAddr>,
    /// Access tokens for the HTTP API and web UI, one per line (required to listen on an
    /// address other than loopback; the environment variable FLOW_HTTP_TOKEN adds one more).
    #[arg(long, env = "FLOW_HTTP_TOKEN_FILE", value_name = "FILE")]
    pub(super) http_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct ResumeArgs {
    /// The run id (a unique prefix is enough; `last` is the newest run).
    pub(super) run_id: String,
    /// Re-run this node and everything downstream, even if it succeeded.
    #[arg(long, value_name = "NODE")]
    pub(super) from: Option<String>,
    /// Set a workflow param for the rest of the run: NAME=VALUE (repeatable). Nodes that use a
    /// changed param run again, with what follows them.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub(super) params: Vec<String>,
    #[arg(long, default_value_t = 8)]
    pub(super) concurrency: usize,
    /// Run the nodes on `flow worker` processes sharing the PostgreSQL store (--store).
    #[arg(long)]
    pub(super) workers: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct RunsArgs {
    #[command(subcommand)]
    pub(super) command: Option<RunsCommand>,
    #[arg(long)]
    pub(super) json: bool,
    /// Show at most this many runs.
    #[arg(long, default_value_t = 20)]
    pub(super) limit: usize,
}

#[derive(Debug, Subcommand)]
pub(super) enum RunsCommand {
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
pub(super) enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum OutputFormat {
    Csv,
    Json,
}
