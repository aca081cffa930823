//! `flow serve` (log lines for the scheduler's events) and `flow schedule` (next fire times).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, watch};

use super::{Failure, Outcome, load, runtime};
use flow_engine::executor::Shutdown;
use flow_engine::node::Registry;
use flow_engine::plural::plural;
use flow_engine::serve::{
    self, EventKind, ServeError, ServeEvent, ServeOptions, Server, SystemClock, TriggerSummary,
};
use flow_engine::store::{
    LiveRuns, RemoteStore, RunStatus, SledStore, StateStore, StoreError, StoreServer, WatchedStore,
};

/// What `flow serve` keeps of finished runs (applied at start and after each run).
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// Keep the newest N runs of each workflow; older finished runs are removed.
    #[arg(long, value_name = "N")]
    pub keep_runs: Option<usize>,
    /// Keep runs younger than this (`90d`, `12h`); older finished runs are removed.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub keep_for: Option<Duration>,
}

pub struct ServeCommand<'a> {
    pub state: &'a Path,
    pub sources: Vec<PathBuf>,
    /// Where the HTTP API and web UI listen, if anywhere.
    pub http: Option<std::net::SocketAddr>,
    /// Access tokens for the HTTP server, one per line.
    pub http_token_file: Option<PathBuf>,
    /// Run the nodes on `flow worker` processes.
    pub workers: bool,
    pub opts: ServeOptions,
}

/// The HTTP server's tokens: from the file and `FLOW_HTTP_TOKEN`. Listening beyond loopback
/// without any is refused, so the API is never open to the network by accident.
fn http_tokens(
    addr: std::net::SocketAddr,
    file: Option<&Path>,
) -> Result<flow_web::Tokens, Failure> {
    let env = std::env::var("FLOW_HTTP_TOKEN").ok();
    let tokens = flow_web::Tokens::load(file, env.as_deref())
        .map_err(|e| Failure::invalid(anyhow!("--http-token-file: {e}")))?;
    if !addr.ip().is_loopback() && tokens.is_empty() {
        return Err(Failure::invalid(anyhow!(
            "--http {addr} listens beyond this machine, so it needs access tokens: give --http-token-file FILE (one token per line, at least {} characters) or set FLOW_HTTP_TOKEN; or listen on 127.0.0.1",
            flow_web::auth::MIN_TOKEN_LEN
        )));
    }
    Ok(tokens)
}

/// `127.0.0.1:8080`, `[::1]:8080`, or a port alone for 127.0.0.1.
pub fn parse_http_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.trim_start_matches(':').parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|_| {
        format!("`{text}` is not an address to listen on; give HOST:PORT such as 127.0.0.1:8080, or a port")
    })
}

pub fn serve(mut cmd: ServeCommand<'_>, registry: &Registry) -> Outcome {
    super::console::set_stamp(super::console::Stamp::Utc);
    let tokens = match cmd.http {
        Some(addr) => http_tokens(addr, cmd.http_token_file.as_deref())?,
        None => flow_web::Tokens::default(),
    };
    // Bound first: a taken port fails the start before anything else, and the address (a port
    // chosen by the system, too) goes into notification links.
    let http = match cmd.http {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| {
                    Failure::invalid(anyhow!(
                        "cannot listen for HTTP on {addr}: {e}; choose another address with --http"
                    ))
                })?;
            if let Ok(bound) = listener.local_addr() {
                cmd.opts.ui_base = Some(format!("http://{bound}"));
            }
            Some(listener)
        }
        None => None,
    };
    let retention = cmd.opts.keep_runs.is_some() || cmd.opts.keep_for.is_some();
    let postgres = super::postgres_url();
    if retention && postgres.is_none() && cmd.state.join("db").exists() {
        // What the runs retention removed while serving last left in the database comes back
        // now, before the store is shared. A store in use is left for `open_when_free`.
        match SledStore::compact(cmd.state) {
            Ok(c) => log_line(
                Utc::now(),
                &format!(
                    "compacted the state store's database: {} -> {}",
                    flow_engine::store::human_bytes(c.before),
                    flow_engine::store::human_bytes(c.after)
                ),
            ),
            Err(StoreError::Locked { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (opened, remote): (Arc<dyn StateStore>, _) = match postgres {
        // Other processes share a PostgreSQL store directly.
        Some(_) => super::run::open_for_run(cmd.state, cmd.workers)?,
        None if cmd.workers => return Err(super::run::workers_need_postgres()),
        None => (Arc::new(open_when_free(cmd.state)?), None),
    };
    // Every write, the server's and its socket clients', is announced to the HTTP server's
    // event streams.
    let watched = Arc::new(WatchedStore::new(opened));
    let store: Arc<dyn StateStore> = watched.clone();
    let live = LiveRuns::default();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let server = Server::new(
        cmd.sources,
        registry.clone(),
        store.clone(),
        Arc::new(SystemClock),
        live.clone(),
        events_tx,
        cmd.opts,
    )
    .map_err(|e| match e {
        ServeError::Invalid { count, errors } => {
            for line in &errors {
                eprintln!("{line}");
            }
            Failure::invalid(anyhow!(ServeError::Invalid { count, errors }))
        }
        other => Failure::invalid(other),
    })?;
    let server = match remote {
        Some(remote) => server.with_remote(remote),
        None => server,
    };
    let handle = server.handle();
    let rt = runtime()?;
    // Handlers first: a SIGTERM from the moment other commands can reach us drains cleanly.
    let signals = {
        let _runtime = rt.enter();
        super::Signals::install()?
    };
    let web_live = live.clone();
    let socket = match postgres {
        Some(_) => {
            log_line(
                Utc::now(),
                &format!("serving with the PostgreSQL store {}", store.location()),
            );
            None
        }
        None => {
            let socket = StoreServer::start(cmd.state, store.clone(), live)?;
            log_line(
                Utc::now(),
                &format!(
                    "serving with the state store {}; `flow runs` and `flow run` reach it through {}",
                    cmd.state.display(),
                    socket.socket().display()
                ),
            );
            Some(socket)
        }
    };
    let result = rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(Shutdown::None);
        let signals = tokio::spawn(signals.forward(stop_tx, false));
        let logger = tokio::spawn(log_events(events_rx));
        let (web_stop, web_stopped) = watch::channel(false);
        let listener = http.map(tokio::net::TcpListener::from_std).transpose();
        let listener = listener.unwrap_or_else(|e| {
            log_line(Utc::now(), &format!("cannot serve HTTP: {e}"));
            None
        });
        let web = listener.map(|listener| {
            let addr = listener.local_addr().ok();
            if let Some(addr) = addr {
                log_line(
                    Utc::now(),
                    &format!("HTTP API and web UI on http://{addr}/"),
                );
            }
            let state = flow_web::AppState::new(
                handle,
                watched,
                flow_web::WebOptions {
                    bind: addr.unwrap_or(([127, 0, 0, 1], 0).into()),
                    state_dir: cmd.state.to_path_buf(),
                    tokens,
                },
                web_stopped.clone(),
                web_live,
            );
            let mut stopped = web_stopped;
            tokio::spawn(flow_web::serve(listener, state, async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        });
        let result = server.run(stop_rx).await;
        let _ = web_stop.send(true);
        if let Some(web) = web {
            // Requests in progress get a moment to finish; open event streams end at once.
            match tokio::time::timeout(Duration::from_secs(5), web).await {
                Ok(Ok(Err(e))) => log_line(Utc::now(), &format!("the HTTP server failed: {e}")),
                Ok(_) => {}
                Err(_) => log_line(
                    Utc::now(),
                    "the HTTP server did not stop in 5 s; leaving it",
                ),
            }
        }
        signals.abort();
        let _ = logger.await;
        result
    });
    drop(socket);
    result.map_err(|e| Failure {
        code: 1,
        error: anyhow!(e),
    })?;
    log_line(Utc::now(), "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Opens the store for serving. Another server is an error; a `flow run` or `flow runs` holding
/// it is waited for (a server started by systemd should not fail because someone was looking).
fn open_when_free(state: &Path) -> Result<SledStore, Failure> {
    let mut said = false;
    loop {
        match SledStore::open(state) {
            Ok(store) => return Ok(store),
            Err(StoreError::Locked { path }) => {
                if matches!(RemoteStore::connect(state), Ok(Some(_))) {
                    return Err(Failure::invalid(anyhow!(
                        "another `flow serve` is already serving the state store {}; stop it first (one server per store)",
                        path.display()
                    )));
                }
                if !said {
                    log_line(
                        Utc::now(),
                        &format!(
                            "the state store {} is in use by another flow command; waiting for it to finish",
                            path.display()
                        ),
                    );
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn log_events(mut events: mpsc::UnboundedReceiver<ServeEvent>) {
    while let Some(event) = events.recv().await {
        if let Some(text) = describe(&event.kind) {
            log_line(event.at, &text);
        }
    }
}

pub(super) fn log_line(at: DateTime<Utc>, text: &str) {
    eprintln!("{} {text}", at.format("%Y-%m-%dT%H:%M:%SZ"));
}

fn local(t: &DateTime<Tz>) -> String {
    t.format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

fn triggers_text(triggers: &[TriggerSummary]) -> String {
    if triggers.is_empty() {
        return "no schedule trigger; nothing to fire".into();
    }
    triggers
        .iter()
        .map(|t| {
            format!(
                "trigger `{}` \"{}\" {}, next {}",
                t.id,
                t.expression,
                t.timezone,
                t.next.as_ref().map_or("never".into(), local)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The log line for an event (`None` for those that are only for tests and tools).
fn describe(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Loaded {
            workflow,
            path,
            triggers,
            webhooks,
            reloaded,
        } => {
            let mut text = format!(
                "{} `{workflow}` ({}): ",
                if *reloaded { "reloaded" } else { "loaded" },
                path.display(),
            );
            if triggers.is_empty() && !webhooks.is_empty() {
                text.push_str("no schedule trigger");
            } else {
                text.push_str(&triggers_text(triggers));
            }
            for hook in webhooks {
                text.push_str(&format!("; webhook POST {hook} (with --http)"));
            }
            text
        }
        EventKind::ReloadFailed {
            path,
            errors,
            kept_previous,
        } => {
            let mut text = format!(
                "{} changed but is invalid; {}:",
                path.display(),
                if *kept_previous {
                    "keeping the previous definition"
                } else {
                    "not loading it"
                }
            );
            for e in errors {
                text.push_str("\n  ");
                text.push_str(e);
            }
            text
        }
        EventKind::Removed { path } => {
            format!("{} is gone; it is no longer scheduled", path.display())
        }
        EventKind::Missed {
            workflow,
            trigger,
            missed,
            first,
            last,
            policy,
            will_run,
        } => format!(
            "`{workflow}` trigger `{trigger}` missed {}{} while flow serve was not running ({} .. {}); catchup: {} runs {}",
            if *missed >= flow_engine::serve::MISSED_COUNT_LIMIT {
                "at least "
            } else {
                ""
            },
            plural(*missed as u64, "firing"),
            local(first),
            local(last),
            policy.as_str(),
            will_run
        ),
        EventKind::Fired {
            workflow,
            trigger,
            scheduled_for,
            run_id,
            catchup,
        } => format!(
            "fired `{workflow}` trigger `{trigger}` for {}{} -> run {run_id}",
            local(scheduled_for),
            if *catchup { " (catch-up)" } else { "" }
        ),
        EventKind::Skipped {
            workflow,
            trigger,
            scheduled_for,
            running,
        } => format!(
            "skipped `{workflow}` trigger `{trigger}` for {}: run {running} is still running (overlap: skip)",
            local(scheduled_for)
        ),
        EventKind::Queued {
            workflow,
            trigger,
            scheduled_for,
            behind,
        } => format!(
            "queued `{workflow}` trigger `{trigger}` for {}: it runs after run {behind}",
            local(scheduled_for)
        ),
        EventKind::RunStarted {
            workflow,
            run_id,
            resumed,
        } => format!(
            "run {run_id} of `{workflow}` {}",
            if *resumed { "resumed" } else { "started" }
        ),
        EventKind::RunFinished {
            workflow,
            run_id,
            status,
            duration,
            error,
        } => {
            let mut text = format!(
                "run {run_id} of `{workflow}` {} in {:.1}s",
                status.as_str(),
                duration.as_secs_f64()
            );
            match status {
                RunStatus::Succeeded => {}
                RunStatus::Failed => {
                    if let Some(e) = error {
                        text.push_str(&format!(": {}", e.lines().next().unwrap_or_default()));
                    }
                    text.push_str(&format!("; fix the cause, then: flow resume {run_id}"));
                }
                _ => text.push_str(&format!("; resume it with: flow resume {run_id}")),
            }
            text
        }
        EventKind::FoundInterrupted {
            workflow,
            run_id,
            resuming,
        } => {
            if *resuming {
                format!("run {run_id} of `{workflow}` was left unfinished; resuming it")
            } else {
                format!(
                    "run {run_id} of `{workflow}` was left unfinished; resume it with `flow resume {run_id}` (or set resume_interrupted: true on its trigger)"
                )
            }
        }
        EventKind::Pruned {
            runs,
            firings,
            bytes,
        } => format!(
            "retention removed {} and {firings} firing-log {} ({} of records and outputs)",
            plural(*runs as u64, "old run"),
            if *firings == 1 { "entry" } else { "entries" },
            flow_engine::store::human_bytes(*bytes)
        ),
        EventKind::Problem { message } => format!("error: {message}"),
        EventKind::Stopping { running } => {
            if *running == 0 {
                "stopping: nothing is running".to_string()
            } else {
                format!(
                    "stopping: no more firings; waiting for {} to checkpoint (press Ctrl-C again to cancel)",
                    plural(*running as u64, "run")
                )
            }
        }
        EventKind::Cancelling { running } => {
            format!(
                "cancelling {}; they can be resumed",
                plural(*running as u64, "run")
            )
        }
        EventKind::Leading => "this server fires the schedules now".to_string(),
        EventKind::StandingBy => format!(
            "standing by: another flow serve sharing the store fires the schedules (checking every {}s)",
            flow_engine::serve::LEAD_CHECK.as_secs()
        ),
        EventKind::Waiting { .. } => return None,
    })
}

/// `flow schedule FILE --count N`: the next fire times, then what `flow serve` recorded for the
/// trigger when the state store has it.
pub fn schedule(state: &Path, file: &Path, count: usize, registry: &Registry) -> Outcome {
    // Compile errors print like `flow validate`'s.
    let wf = load(file, registry)?;
    let triggers = serve::ScheduleTrigger::all(&wf)
        .map_err(|e| Failure::invalid(anyhow!("{}: {e}", file.display())))?;
    if triggers.is_empty() {
        eprintln!(
            "{}: `{}` has no schedule trigger; `flow serve` would never fire it",
            file.display(),
            wf.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    for t in &triggers {
        println!(
            "trigger `{}`: \"{}\" in {} (catchup: {}, overlap: {})",
            t.id,
            t.schedule.cron.expression,
            t.schedule.cron.timezone,
            t.schedule.catchup.as_str(),
            t.schedule.overlap.as_str()
        );
        for time in t.schedule.cron.after(now).take(count) {
            println!(
                "{}  {}",
                time.format("%a %Y-%m-%d %H:%M:%S %Z"),
                time.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
    }
    // Recent firings go to stderr, so stdout stays one fire time a line.
    if super::postgres_url().is_some() || state.join("db").exists() {
        let store = super::open_store(state)?;
        let path = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        for t in &triggers {
            let log = serve::firings(store.as_ref(), &path, &t.id)?;
            if log.is_empty() {
                continue;
            }
            eprintln!("recent firings of `{}` (flow serve):", t.id);
            for f in log.iter().rev().take(RECENT_FIRINGS).rev() {
                let when = f.scheduled_for.with_timezone(&t.schedule.cron.timezone);
                let what = match (&f.run_id, &f.reason) {
                    (Some(run), _) => format!("{} -> run {run}", f.outcome),
                    (None, Some(reason)) => format!("{}: {reason}", f.outcome),
                    (None, None) => f.outcome.clone(),
                };
                eprintln!("  {}  {what}", local(&when));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many recorded firings `flow schedule` shows per trigger.
const RECENT_FIRINGS: usize = 10;

/// Polling interval for workflow file changes, as a CLI value.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}
