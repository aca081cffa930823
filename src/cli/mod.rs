//! The `flow` command line: argument parsing, output formatting and exit codes.
//!
//! Exit codes: 0 success, 1 the run failed or was interrupted (the resume command is printed),
//! 2 invalid input or usage (including a state store that cannot be used).

mod args;
mod console;
mod export;
mod failure;
mod forced_exit;
mod graph;
mod log_filter;
mod progress;
mod prune;
mod report;
mod run;
mod sample;
mod schema;
mod serve;
mod store_access;
mod store_check;
mod sync;
mod worker;

use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Parser;

use flow_engine::compile::{self, LoadError, Workflow};
use flow_engine::node::Registry;
use flow_engine::plural::plural;

use args::{Cli, Command, GraphFormat, RunsArgs, RunsCommand};
use failure::Failure;
use failure::{Outcome, format_error};
use run::{Signals, runtime};
use store_access::{find_run, open_store, open_store_to_read, postgres_url, select_store};

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

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "flow=info",
        _ => "flow=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Records of the `log` crate (the HTTP client's, per request and body chunk) below every
    // level some layer keeps are dropped where they are made, not after formatting.
    let keep = filter
        .max_level_hint()
        .map_or(log::LevelFilter::Trace, |hint| {
            match hint.max(tracing_subscriber::filter::LevelFilter::INFO) {
                h if h == tracing_subscriber::filter::LevelFilter::INFO => log::LevelFilter::Info,
                h if h == tracing_subscriber::filter::LevelFilter::DEBUG => log::LevelFilter::Debug,
                _ => log::LevelFilter::Trace,
            }
        });
    use tracing_subscriber::layer::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Log lines go through the console, like the progress lines: one format, above the live view.
    // The HTTP client's wire logs are dropped at every level (they quote tokens).
    // Each node's own log (what it logs at info and above) is kept with the run, whatever the
    // console shows.
    let _ = tracing_subscriber::registry()
        .with(
            console::ConsoleLayer::new()
                .with_filter(filter)
                .with_filter(tracing_subscriber::filter::filter_fn(log_filter::allowed)),
        )
        .with(
            flow_engine::node_log::NodeLogLayer
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .try_init();
    log::set_max_level(keep);
}

fn run_command(cli: Cli, registry: &Registry) -> Outcome {
    if let Some(file) = &cli.secrets {
        flow_engine::secret::set_secrets_file(file.clone());
    }
    select_store(cli.store.as_deref())?;
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
        Command::SampleData(args) => sample::sample_data(args),
        Command::Store(command) => store_check::run(&cli.state, command),
        Command::Sync(command) => sync::run(&cli.state, command),
        Command::Serve(args) => serve::serve(
            serve::ServeCommand {
                state: &cli.state,
                sources: args.sources,
                http: args.http,
                http_token_file: args.http_token_file,
                workers: args.workers,
                opts: flow_engine::serve::ServeOptions {
                    concurrency: args.concurrency,
                    reload_interval: args.reload_interval,
                    max_catchup: args.max_catchup,
                    keep_runs: args.retention.keep_runs,
                    keep_for: args.retention.keep_for,
                    ui_base: None,
                    state_dir: Some(cli.state.clone()),
                },
            },
            registry,
        ),
        Command::Schedule { file, count } => serve::schedule(&cli.state, &file, count, registry),
        Command::Run(args) => run::run(&cli.state, args, registry),
        Command::Worker(args) => worker::worker(args, registry),
        Command::Resume(args) => run::resume(&cli.state, args, registry),
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
                    export::export_output(store.as_ref(), &run, &node, format, case.as_deref())
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
