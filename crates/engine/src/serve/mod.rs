//! `flow serve`: fires workflows on their scheduled triggers (every trigger whose configured
//! node reports a schedule, such as the `schedule` type).
//!
//! The server owns the state store while it runs. Per workflow file and scheduled trigger it
//! keeps a *watermark* in the store: the scheduled time of the last firing it dealt with (ran,
//! skipped, or dropped by the catch-up policy). A run's record and the watermark that covers it
//! are written in one flushed batch, so a crash at any moment leaves either both or neither: a
//! restart never fires a time twice, and finds every time it missed (`catchup` decides what to
//! do with those). Firings that come while the workflow's previous run is going are skipped
//! (and recorded) or queued, per `overlap`.
//!
//! Time comes from a [`Clock`], so tests move it by hand; progress is reported as
//! [`ServeEvent`]s, which the command line prints as log lines.

pub mod clock;
mod commands;
pub mod control;
mod events;
mod firing;
mod firing_log;
mod loading;
mod notify;
mod recovery;
pub mod retention;
mod run_queue;
#[cfg(test)]
mod tests;
pub(crate) mod trigger;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use clock::{Clock, ManualClock, SystemClock};
pub use control::{
    Catalog, ControlError, DELIVERIES, ServeHandle, ServedWorkflow, StartRequest, Started,
};
pub use events::{EventKind, ServeEvent, TriggerSummary};
pub use firing_log::{FiringRecord, firings, watermark};
pub use trigger::ScheduleTrigger;

use crate::compile::Workflow;
use crate::executor::{ExecError, RunOutcome, Shutdown};
use crate::node::Registry;
use crate::store::{LiveRuns, StateStore, StoreError};
use crate::webhook::WebhookTrigger;

/// Store namespace of the watermarks, keyed `WORKFLOW_PATH#TRIGGER`.
pub const WATERMARKS: &str = "schedule";
/// How often a server standing by checks whether it should fire the schedules, and a leading
/// one that it still should: the bound on a takeover after the leader dies.
pub const LEAD_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Store namespace of the firing log, keyed `WORKFLOW_PATH#TRIGGER@SCHEDULED_TIME`.
pub const FIRINGS: &str = "firings";

/// A firing this much later than its scheduled time counts as missed (the server was down,
/// or the machine asleep) and goes through the catch-up policy.
const GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// Missed firings are counted up to this many (an every-second schedule and a long outage);
/// the log then says "at least".
pub const MISSED_COUNT_LIMIT: usize = 1_000_000;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most nodes running at once within a run (a workflow's `concurrency` wins).
    pub concurrency: usize,
    /// How often workflow files (and directories) are checked for changes.
    pub reload_interval: Duration,
    /// `catchup: all` runs at most this many missed firings (the most recent ones).
    pub max_catchup: usize,
    /// Keep the newest N runs of each workflow; older finished runs are removed at start and
    /// after each run.
    pub keep_runs: Option<usize>,
    /// Keep runs younger than this; older finished runs are removed likewise.
    pub keep_for: Option<Duration>,
    /// The web UI's base URL (`http://HOST:PORT`): notifications link to `BASE/runs/RUN_ID`.
    pub ui_base: Option<String>,
    /// The state store's directory, for the resume command notifications show.
    pub state_dir: Option<PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            concurrency: 8,
            reload_interval: Duration::from_secs(2),
            max_catchup: 50,
            keep_runs: None,
            keep_for: None,
            ui_base: None,
            state_dir: None,
        }
    }
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{count} workflow file{} invalid", if *count == 1 { " is" } else { "s are" })]
    Invalid {
        count: usize,
        /// Each file's problems, one line each.
        errors: Vec<String>,
    },
    #[error("no workflow files to serve in {}", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoWorkflows(Vec<PathBuf>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A loaded workflow file.
struct Entry {
    wf: Arc<Workflow>,
    text: String,
    triggers: Vec<Scheduled>,
    webhooks: Vec<WebhookTrigger>,
}

impl Entry {
    /// The time zone firings of `trigger` are shown in (UTC for a trigger no longer there).
    fn timezone_of(&self, trigger: &str) -> Tz {
        self.triggers
            .iter()
            .find(|s| s.trigger.id == trigger)
            .map_or(Tz::UTC, |s| s.trigger.schedule.cron.timezone)
    }
}

struct Scheduled {
    trigger: ScheduleTrigger,
    /// Every firing at or before this has been looked at.
    cursor: DateTime<Utc>,
}

/// Work waiting for a workflow's current run to end.
#[derive(Debug, Clone)]
enum Job {
    Fire {
        trigger: String,
        scheduled_for: DateTime<Utc>,
        catchup: bool,
    },
    /// A run recorded `queued` by a request.
    Start { run_id: String },
    Resume {
        run_id: String,
        /// Re-run this node and everything downstream of it too.
        from: Option<String>,
    },
}

/// A finished run task: workflow file, run id, how long it took, the outcome.
type RunResult = (PathBuf, String, Duration, Result<RunOutcome, ExecError>);

/// The scheduler. Build it with [`Server::new`], then [`Server::run`] it.
pub struct Server {
    registry: Registry,
    store: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    live: LiveRuns,
    events: mpsc::UnboundedSender<ServeEvent>,
    opts: ServeOptions,
    /// Files and directories as given.
    sources: Vec<PathBuf>,
    entries: BTreeMap<PathBuf, Entry>,
    /// Invalid contents already reported, so a poll does not report them again.
    rejected: HashMap<PathBuf, Vec<u8>>,
    /// The problems of files whose current contents are invalid.
    invalid: HashMap<PathBuf, Vec<String>>,
    /// Workflow file -> the run in progress.
    busy: HashMap<PathBuf, String>,
    queues: HashMap<PathBuf, VecDeque<Job>>,
    tasks: JoinSet<RunResult>,
    /// How far the server's own stop has gone; runs started from now on begin there.
    stopping: Shutdown,
    /// Per run this server executes: its stop request.
    cancels: HashMap<String, watch::Sender<Shutdown>>,
    /// Runs cancelled by a request, noted in their record when they end.
    cancelled: HashSet<String>,
    commands: mpsc::Receiver<control::Command>,
    handle: ServeHandle,
    catalog: watch::Sender<Arc<Catalog>>,
    /// Whether this server fires the schedules (always, unless it shares its store with other
    /// servers: see [`StateStore::lead_schedules`]).
    leading: bool,
    /// Where the runs' nodes run when not in this process (`flow worker` processes).
    remote: Option<Arc<dyn crate::executor::Remote>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads every workflow in `sources` (files, or directories of `.yaml`/`.yml` files). Any
    /// invalid file stops the start, with all of its errors.
    pub fn new(
        sources: Vec<PathBuf>,
        registry: Registry,
        store: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
        live: LiveRuns,
        events: mpsc::UnboundedSender<ServeEvent>,
        opts: ServeOptions,
    ) -> Result<Self, ServeError> {
        let (commands_tx, commands) = mpsc::channel(64);
        let (catalog, catalog_rx) = watch::channel(Arc::new(Catalog::default()));
        let mut server = Server {
            registry,
            store,
            clock,
            live,
            events,
            opts,
            sources,
            entries: BTreeMap::new(),
            rejected: HashMap::new(),
            invalid: HashMap::new(),
            busy: HashMap::new(),
            queues: HashMap::new(),
            tasks: JoinSet::new(),
            stopping: Shutdown::None,
            cancels: HashMap::new(),
            cancelled: HashSet::new(),
            commands,
            handle: ServeHandle {
                commands: commands_tx,
                catalog: catalog_rx,
            },
            catalog,
            leading: false,
            remote: None,
        };
        let files = server.list_files();
        if files.is_empty() {
            return Err(ServeError::NoWorkflows(server.sources.clone()));
        }
        let mut errors = Vec::new();
        let mut invalid = 0;
        for path in files {
            match server.load(&path) {
                Ok(entry) => {
                    server.entries.insert(path, entry);
                }
                Err(lines) => {
                    invalid += 1;
                    errors.extend(lines);
                }
            }
        }
        if invalid > 0 {
            return Err(ServeError::Invalid {
                count: invalid,
                errors,
            });
        }
        server.publish();
        Ok(server)
    }

    /// Runs the nodes of every run this server starts on `remote` (`flow serve --workers`).
    pub fn with_remote(mut self, remote: Arc<dyn crate::executor::Remote>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// A handle to steer the server from other tasks once it runs.
    pub fn handle(&self) -> ServeHandle {
        self.handle.clone()
    }

    /// Serves until `shutdown` asks to stop: then fires nothing more, passes the request on to
    /// the runs in progress and returns when they have stopped.
    pub async fn run(mut self, mut shutdown: watch::Receiver<Shutdown>) -> Result<(), ServeError> {
        let now = self.clock.now();
        let paths: Vec<PathBuf> = self.entries.keys().cloned().collect();
        self.leading = self.store.lead_schedules()?;
        for path in &paths {
            self.init_cursors(path, now)?;
            self.announce(path, false);
        }
        if !self.leading {
            self.emit(EventKind::StandingBy);
        }
        self.recover_interrupted()?;
        self.apply_retention();
        let mut next_poll = now + self.opts.reload_interval;
        let mut next_lead_check = now;
        loop {
            if *shutdown.borrow() != Shutdown::None {
                break;
            }
            let now = self.clock.now();
            if now >= next_poll {
                self.reload(now);
                next_poll = now + self.opts.reload_interval;
            }
            if now >= next_lead_check {
                self.check_lead(now);
                next_lead_check = now + LEAD_CHECK;
            }
            let wake = if self.leading {
                self.fire_due(now);
                self.next_firing().map_or(next_poll, |t| t.min(next_poll))
            } else {
                next_poll
            };
            // Only a store shared with other servers can change hands.
            let wake = match self.store.is_shared() {
                true => wake.min(next_lead_check),
                false => wake,
            };
            self.emit(EventKind::Waiting { until: wake });
            let clock = self.clock.clone();
            tokio::select! {
                _ = clock.sleep_until(wake) => {}
                Some(done) = self.tasks.join_next() => self.run_ended(done),
                Some(command) = self.commands.recv() => self.command(command),
                _ = changed(&mut shutdown) => {}
            }
        }
        // Requests from now on are told the server is stopping.
        self.commands.close();
        self.emit(EventKind::Stopping {
            running: self.tasks.len(),
        });
        self.queues.clear();
        self.stop_runs(*shutdown.borrow());
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(done) = self.tasks.join_next() => self.run_ended(done),
                _ = changed(&mut shutdown) => {
                    let level = *shutdown.borrow();
                    if level == Shutdown::Cancel {
                        self.emit(EventKind::Cancelling { running: self.tasks.len() });
                    }
                    self.stop_runs(level);
                }
            }
        }
        Ok(())
    }

    /// Passes the server's stop request on to every run it executes.
    fn stop_runs(&mut self, level: Shutdown) {
        self.stopping = self.stopping.max(level);
        for stop in self.cancels.values() {
            stop.send_if_modified(|current| {
                let raise = *current < level;
                if raise {
                    *current = level;
                }
                raise
            });
        }
    }

    /// Takes over the schedules when the leading server has gone, or stands by when another
    /// has taken them. A server taking over reads the watermarks afresh: the one before it
    /// moved them on.
    fn check_lead(&mut self, now: DateTime<Utc>) {
        let leading = match self.store.lead_schedules() {
            Ok(leading) => leading,
            Err(e) => {
                self.problem(format!("cannot tell whether this server leads: {e}"));
                false
            }
        };
        if leading && !self.leading {
            let paths: Vec<PathBuf> = self.entries.keys().cloned().collect();
            self.leading = true;
            for path in &paths {
                if let Err(e) = self.init_cursors(path, now) {
                    self.problem(format!("cannot read the schedule watermarks: {e}"));
                    self.leading = false;
                    return;
                }
            }
            self.emit(EventKind::Leading);
        } else if !leading && self.leading {
            self.leading = false;
            self.emit(EventKind::StandingBy);
        }
    }

    fn emit(&self, kind: EventKind) {
        let _ = self.events.send(ServeEvent {
            at: self.clock.now(),
            kind,
        });
    }

    fn problem(&self, message: String) {
        self.emit(EventKind::Problem { message });
    }
}

/// Resolves when the value changes; never, once the sender is gone.
async fn changed(rx: &mut watch::Receiver<Shutdown>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
