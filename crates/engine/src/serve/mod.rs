//! `flow serve`: fires workflows on their `schedule` triggers.
//!
//! The server owns the state store while it runs. Per workflow file and schedule trigger it
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
pub mod retention;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use clock::{Clock, ManualClock, SystemClock};

use crate::compile::{self, Workflow};
use crate::executor::{self, ExecError, ExecOptions, RunOutcome, Shutdown};
use crate::node::Registry;
use crate::runs;
use crate::schedule::{Catchup, CronSchedule, Overlap};
use crate::store::{LiveRuns, Retention, RunRecord, RunStatus, StateStore, StoreError, Write};

/// Store namespace of the watermarks, keyed `WORKFLOW_PATH#TRIGGER`.
pub const WATERMARKS: &str = "schedule";
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
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            concurrency: 8,
            reload_interval: Duration::from_secs(2),
            max_catchup: 50,
            keep_runs: None,
            keep_for: None,
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

/// Something the server did, for its log.
#[derive(Debug, Clone)]
pub struct ServeEvent {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
}

/// A trigger as it is scheduled.
#[derive(Debug, Clone)]
pub struct TriggerSummary {
    pub id: String,
    pub expression: String,
    pub timezone: Tz,
    pub next: Option<DateTime<Tz>>,
}

#[derive(Debug, Clone)]
pub enum EventKind {
    Loaded {
        workflow: String,
        path: PathBuf,
        triggers: Vec<TriggerSummary>,
        reloaded: bool,
    },
    /// A changed file is invalid; the previous definition stays in force.
    ReloadFailed {
        path: PathBuf,
        errors: Vec<String>,
        kept_previous: bool,
    },
    Removed {
        path: PathBuf,
    },
    Missed {
        workflow: String,
        trigger: String,
        /// How many were missed (counted up to a limit).
        missed: usize,
        first: DateTime<Tz>,
        last: DateTime<Tz>,
        policy: Catchup,
        will_run: usize,
    },
    Fired {
        workflow: String,
        trigger: String,
        scheduled_for: DateTime<Tz>,
        run_id: String,
        catchup: bool,
    },
    Skipped {
        workflow: String,
        trigger: String,
        scheduled_for: DateTime<Tz>,
        running: String,
    },
    Queued {
        workflow: String,
        trigger: String,
        scheduled_for: DateTime<Tz>,
        behind: String,
    },
    RunStarted {
        workflow: String,
        run_id: String,
        resumed: bool,
    },
    RunFinished {
        workflow: String,
        run_id: String,
        status: RunStatus,
        duration: Duration,
        error: Option<String>,
    },
    /// A run left `running` or `interrupted` (a crash, or a stop mid-run).
    FoundInterrupted {
        workflow: String,
        run_id: String,
        resuming: bool,
    },
    /// Retention removed old runs (and their firing-log entries).
    Pruned {
        runs: usize,
        firings: usize,
        bytes: u64,
    },
    /// A store or planning problem that did not stop the server.
    Problem {
        message: String,
    },
    Stopping {
        running: usize,
    },
    /// A second stop request: running nodes are cancelled (and recorded as interrupted).
    Cancelling {
        running: usize,
    },
    /// Idle until `until` (or until a run ends); every firing due by `at` has been handled.
    Waiting {
        until: DateTime<Utc>,
    },
}

/// A `schedule` trigger of a workflow, with its policies.
#[derive(Debug, Clone)]
pub struct ScheduleTrigger {
    pub id: String,
    pub schedule: CronSchedule,
    pub catchup: Catchup,
    pub overlap: Overlap,
    pub resume_interrupted: bool,
}

impl ScheduleTrigger {
    /// The workflow's schedule triggers. Parameters are read as written (they were validated
    /// when the workflow compiled); a templated value is reported here.
    pub fn all(wf: &Workflow) -> Result<Vec<ScheduleTrigger>, String> {
        let mut out = Vec::new();
        for node in wf.triggers().filter(|n| n.type_name == "schedule") {
            let text = |name: &str, default: &str| -> Result<String, String> {
                match node.with.get(name) {
                    None => Ok(default.to_string()),
                    Some(serde_json::Value::String(s)) if !s.contains("{{") => Ok(s.clone()),
                    Some(other) => Err(format!(
                        "node `{}`: `{name}` must be written literally for flow serve, got {other}",
                        node.id
                    )),
                }
            };
            let schedule = CronSchedule::parse(&text("cron", "")?, &text("timezone", "UTC")?)
                .map_err(|e| format!("node `{}`: {e}", node.id))?;
            let resume_interrupted = match node.with.get("resume_interrupted") {
                None => false,
                Some(serde_json::Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(format!(
                        "node `{}`: `resume_interrupted` must be true or false, got {other}",
                        node.id
                    ));
                }
            };
            out.push(ScheduleTrigger {
                id: node.id.clone(),
                catchup: Catchup::parse(&text("catchup", "latest")?)?,
                overlap: Overlap::parse(&text("overlap", "skip")?)?,
                resume_interrupted,
                schedule,
            });
        }
        Ok(out)
    }
}

/// The watermark record.
#[derive(Debug, Serialize, Deserialize)]
struct Watermark {
    /// Every firing scheduled at or before this was dealt with.
    last: DateTime<Utc>,
}

/// One entry of the firing log.
#[derive(Debug, Serialize, Deserialize)]
pub struct FiringRecord {
    pub workflow_path: String,
    pub trigger: String,
    pub scheduled_for: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// `fired`, `skipped` or `missed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn watermark_key(path: &Path, trigger: &str) -> String {
    format!("{}#{trigger}", path.display())
}

/// Reads a trigger's watermark.
pub fn watermark(
    store: &dyn StateStore,
    path: &Path,
    trigger: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    store
        .get(WATERMARKS, &watermark_key(path, trigger))?
        .map(|bytes| {
            serde_json::from_slice::<Watermark>(&bytes)
                .map(|w| w.last)
                .map_err(|e| StoreError::Corrupt {
                    what: format!("the schedule watermark of {}", watermark_key(path, trigger)),
                    reason: e.to_string(),
                })
        })
        .transpose()
}

/// The firing log of a trigger, oldest first.
pub fn firings(
    store: &dyn StateStore,
    path: &Path,
    trigger: &str,
) -> Result<Vec<FiringRecord>, StoreError> {
    let prefix = format!("{}@", watermark_key(path, trigger));
    store
        .scan(FIRINGS, &prefix)?
        .into_iter()
        .map(|(key, bytes)| {
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                what: format!("the firing record {key}"),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// A loaded workflow file.
struct Entry {
    wf: Arc<Workflow>,
    text: String,
    triggers: Vec<Scheduled>,
}

impl Entry {
    /// The time zone firings of `trigger` are shown in (UTC for a trigger no longer there).
    fn timezone_of(&self, trigger: &str) -> Tz {
        self.triggers
            .iter()
            .find(|s| s.trigger.id == trigger)
            .map_or(Tz::UTC, |s| s.trigger.schedule.timezone)
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
    Resume {
        run_id: String,
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
    /// Workflow file -> the run in progress.
    busy: HashMap<PathBuf, String>,
    queues: HashMap<PathBuf, VecDeque<Job>>,
    tasks: JoinSet<RunResult>,
    run_stop: watch::Sender<Shutdown>,
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
            busy: HashMap::new(),
            queues: HashMap::new(),
            tasks: JoinSet::new(),
            run_stop: watch::Sender::new(Shutdown::None),
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
        Ok(server)
    }

    /// Serves until `shutdown` asks to stop: then fires nothing more, passes the request on to
    /// the runs in progress and returns when they have stopped.
    pub async fn run(mut self, mut shutdown: watch::Receiver<Shutdown>) -> Result<(), ServeError> {
        let now = self.clock.now();
        let paths: Vec<PathBuf> = self.entries.keys().cloned().collect();
        for path in &paths {
            self.init_cursors(path, now)?;
            self.announce(path, false);
        }
        self.recover_interrupted()?;
        self.apply_retention();
        let mut next_poll = now + self.opts.reload_interval;
        loop {
            if *shutdown.borrow() != Shutdown::None {
                break;
            }
            let now = self.clock.now();
            if now >= next_poll {
                self.reload(now);
                next_poll = now + self.opts.reload_interval;
            }
            self.fire_due(now);
            let wake = self.next_firing().map_or(next_poll, |t| t.min(next_poll));
            self.emit(EventKind::Waiting { until: wake });
            let clock = self.clock.clone();
            tokio::select! {
                _ = clock.sleep_until(wake) => {}
                Some(done) = self.tasks.join_next() => self.run_ended(done),
                _ = changed(&mut shutdown) => {}
            }
        }
        self.emit(EventKind::Stopping {
            running: self.tasks.len(),
        });
        self.queues.clear();
        let _ = self.run_stop.send(*shutdown.borrow());
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(done) = self.tasks.join_next() => self.run_ended(done),
                _ = changed(&mut shutdown) => {
                    let level = *shutdown.borrow();
                    if level == Shutdown::Cancel {
                        self.emit(EventKind::Cancelling { running: self.tasks.len() });
                    }
                    let _ = self.run_stop.send(level);
                }
            }
        }
        Ok(())
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

    /// Workflow files named by the sources, sorted.
    fn list_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for source in &self.sources {
            if source.is_dir() {
                let Ok(entries) = std::fs::read_dir(source) else {
                    continue;
                };
                let mut found: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_file()
                            && matches!(
                                p.extension().and_then(|e| e.to_str()),
                                Some("yaml" | "yml")
                            )
                    })
                    .collect();
                found.sort();
                files.extend(found);
            } else {
                files.push(source.clone());
            }
        }
        files
            .into_iter()
            .map(|p| std::path::absolute(&p).unwrap_or(p))
            .collect()
    }

    /// Compiles a file; its problems as lines on failure.
    fn load(&self, path: &Path) -> Result<Entry, Vec<String>> {
        let bytes = compile::read_bytes(path)
            .map_err(|e| vec![format!("{}: cannot read it: {e}", path.display())])?;
        self.load_bytes(path, bytes)
    }

    /// Compiles a file's contents as read; not UTF-8 is one of its problems.
    fn load_bytes(&self, path: &Path, bytes: Vec<u8>) -> Result<Entry, Vec<String>> {
        let text = compile::decode(path, bytes).map_err(|d| vec![d.to_string()])?;
        let wf = compile::compile(&text, path, &self.registry).map_err(|diags| {
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<String>>()
        })?;
        let triggers =
            ScheduleTrigger::all(&wf).map_err(|e| vec![format!("{}: {e}", path.display())])?;
        Ok(Entry {
            wf: Arc::new(wf),
            text,
            triggers: triggers
                .into_iter()
                .map(|trigger| Scheduled {
                    trigger,
                    cursor: DateTime::<Utc>::MIN_UTC,
                })
                .collect(),
        })
    }

    /// Sets each trigger's cursor from its stored watermark; a trigger seen for the first
    /// time starts now (and says so in the store, so a later restart knows what it missed).
    fn init_cursors(&mut self, path: &Path, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut fresh = Vec::new();
        let entry = self.entries.get_mut(path).expect("loaded");
        for s in &mut entry.triggers {
            match watermark(self.store.as_ref(), path, &s.trigger.id)? {
                Some(last) => s.cursor = last,
                None => {
                    s.cursor = now;
                    fresh.push(watermark_write(path, &s.trigger.id, now));
                }
            }
        }
        if !fresh.is_empty() {
            self.store.apply(fresh)?;
            self.store.flush()?;
        }
        Ok(())
    }

    fn announce(&self, path: &Path, reloaded: bool) {
        let entry = &self.entries[path];
        let now = self.clock.now();
        self.emit(EventKind::Loaded {
            workflow: entry.wf.name.clone(),
            path: path.to_path_buf(),
            triggers: entry
                .triggers
                .iter()
                .map(|s| TriggerSummary {
                    id: s.trigger.id.clone(),
                    expression: s.trigger.schedule.expression.clone(),
                    timezone: s.trigger.schedule.timezone,
                    next: s.trigger.schedule.after(now.max(s.cursor)).next(),
                })
                .collect(),
            reloaded,
        });
    }

    /// Reports runs of the served workflows that a crash (or a stop) left unfinished, and
    /// resumes those whose trigger says `resume_interrupted: true`.
    fn recover_interrupted(&mut self) -> Result<(), StoreError> {
        let live = self.store.live_runs()?;
        let mut runs = self.store.runs()?;
        // Oldest first, so a workflow's runs resume in the order they were fired.
        runs.reverse();
        for mut run in runs {
            if run.trigger.fired_by != "schedule"
                || !matches!(run.status, RunStatus::Running | RunStatus::Interrupted)
                || live.contains(&run.id)
            {
                continue;
            }
            let path = PathBuf::from(&run.workflow_path);
            let Some(entry) = self.entries.get(&path) else {
                continue;
            };
            let resuming = entry.triggers.iter().any(|s| {
                s.trigger.resume_interrupted && run.trigger.triggers.contains(&s.trigger.id)
            });
            self.emit(EventKind::FoundInterrupted {
                workflow: entry.wf.name.clone(),
                run_id: run.id.clone(),
                resuming,
            });
            if resuming {
                self.submit(&path, Job::Resume { run_id: run.id });
            } else if run.status == RunStatus::Running {
                // Nobody is running it: record what it is.
                run.status = RunStatus::Interrupted;
                run.updated_at = self.clock.now();
                self.store.apply(vec![Write::Run(run)])?;
                self.store.flush()?;
            }
        }
        Ok(())
    }

    /// The earliest next firing over all triggers.
    fn next_firing(&self) -> Option<DateTime<Utc>> {
        self.entries
            .values()
            .flat_map(|e| &e.triggers)
            .filter_map(|s| s.trigger.schedule.after(s.cursor).next())
            .map(|t| t.with_timezone(&Utc))
            .min()
    }

    /// Handles every firing due by `now`.
    fn fire_due(&mut self, now: DateTime<Utc>) {
        let paths: Vec<PathBuf> = self.entries.keys().cloned().collect();
        for path in paths {
            let count = self.entries[&path].triggers.len();
            for t in 0..count {
                self.fire_trigger(&path, t, now);
            }
        }
    }

    fn fire_trigger(&mut self, path: &Path, t: usize, now: DateTime<Utc>) {
        let entry = &self.entries[path];
        let s = &entry.triggers[t];
        let trigger = s.trigger.clone();
        let workflow = entry.wf.name.clone();
        // Due times, keeping only the most recent missed ones (as many as could ever run).
        let keep = self.opts.max_catchup.max(1);
        let mut missed: VecDeque<DateTime<Utc>> = VecDeque::new();
        let mut on_time: Vec<DateTime<Utc>> = Vec::new();
        let mut missed_count = 0usize;
        let mut first_missed = None;
        for time in trigger.schedule.after(s.cursor) {
            let time = time.with_timezone(&Utc);
            if time > now {
                break;
            }
            if time < now - GRACE {
                missed_count += 1;
                first_missed.get_or_insert(time);
                missed.push_back(time);
                if missed.len() > keep {
                    missed.pop_front();
                }
                if missed_count >= MISSED_COUNT_LIMIT {
                    // Counted enough; the latest ones are found from a window before now.
                    missed = latest_missed(&trigger.schedule, s.cursor, now, keep);
                    on_time = trigger
                        .schedule
                        .after(now - GRACE - chrono::TimeDelta::nanoseconds(1))
                        .map(|t| t.with_timezone(&Utc))
                        .take_while(|t| *t <= now)
                        .collect();
                    break;
                }
            } else {
                on_time.push(time);
            }
        }
        if missed_count == 0 && on_time.is_empty() {
            return;
        }
        let last_due = on_time
            .last()
            .or(missed.back())
            .copied()
            .expect("something due");
        self.entries.get_mut(path).expect("loaded").triggers[t].cursor = last_due;

        if let (Some(first), Some(&last)) = (first_missed, missed.back()) {
            let run: Vec<DateTime<Utc>> = match trigger.catchup {
                Catchup::None => Vec::new(),
                // An on-time firing stands for the missed ones.
                Catchup::Latest if on_time.is_empty() => vec![last],
                Catchup::Latest => Vec::new(),
                Catchup::All => missed.iter().copied().collect(),
            };
            let tz = trigger.schedule.timezone;
            self.emit(EventKind::Missed {
                workflow: workflow.clone(),
                trigger: trigger.id.clone(),
                missed: missed_count,
                first: first.with_timezone(&tz),
                last: last.with_timezone(&tz),
                policy: trigger.catchup,
                will_run: run.len(),
            });
            if run.is_empty() {
                // Nothing runs for them: move the watermark past them for good.
                let reason = format!(
                    "{missed_count} firing(s) missed since {}; catchup: {}",
                    first.format("%Y-%m-%dT%H:%M:%SZ"),
                    trigger.catchup.as_str()
                );
                if let Err(e) = self.record(path, &trigger.id, last, None, "missed", Some(reason)) {
                    self.problem(format!("cannot record missed firings: {e}"));
                }
            }
            for time in run {
                self.submit(
                    path,
                    Job::Fire {
                        trigger: trigger.id.clone(),
                        scheduled_for: time,
                        catchup: true,
                    },
                );
            }
        }
        for time in on_time {
            let job = Job::Fire {
                trigger: trigger.id.clone(),
                scheduled_for: time,
                catchup: false,
            };
            // Behind queued catch-up runs, an on-time firing waits its turn too.
            let queued = self.queues.get(path).is_some_and(|q| !q.is_empty());
            match self.busy.get(path).cloned() {
                Some(running) if trigger.overlap == Overlap::Skip && !queued => {
                    self.emit(EventKind::Skipped {
                        workflow: workflow.clone(),
                        trigger: trigger.id.clone(),
                        scheduled_for: time.with_timezone(&trigger.schedule.timezone),
                        running: running.clone(),
                    });
                    let reason = format!("run {running} was still running");
                    if let Err(e) =
                        self.record(path, &trigger.id, time, None, "skipped", Some(reason))
                    {
                        self.problem(format!("cannot record a skipped firing: {e}"));
                    }
                }
                _ => self.submit(path, job),
            }
        }
    }

    /// Starts `job` now if the workflow is idle, otherwise queues it.
    fn submit(&mut self, path: &Path, job: Job) {
        let queue = self.queues.entry(path.to_path_buf()).or_default();
        if let Some(running) = self.busy.get(path) {
            if let Job::Fire {
                trigger,
                scheduled_for,
                ..
            } = &job
            {
                let entry = &self.entries[path];
                let tz = entry.timezone_of(trigger);
                let event = EventKind::Queued {
                    workflow: entry.wf.name.clone(),
                    trigger: trigger.clone(),
                    scheduled_for: scheduled_for.with_timezone(&tz),
                    behind: running.clone(),
                };
                queue.push_back(job);
                self.emit(event);
            } else {
                queue.push_back(job);
            }
            return;
        }
        if let Err(e) = self.start(path, job) {
            self.problem(e);
        }
    }

    /// Starts the next queued job of an idle workflow.
    fn start_queued(&mut self, path: &Path) {
        while !self.busy.contains_key(path) {
            let Some(job) = self.queues.get_mut(path).and_then(VecDeque::pop_front) else {
                return;
            };
            if let Err(e) = self.start(path, job) {
                self.problem(e);
            }
        }
    }

    /// Writes a firing to the log and moves the trigger's watermark to it, unless an earlier
    /// firing of the trigger is still queued (a restart must still find that one).
    fn record(
        &self,
        path: &Path,
        trigger: &str,
        scheduled_for: DateTime<Utc>,
        run: Option<RunRecord>,
        outcome: &str,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let record = FiringRecord {
            workflow_path: path.display().to_string(),
            trigger: trigger.to_string(),
            scheduled_for,
            at: now,
            outcome: outcome.to_string(),
            run_id: run.as_ref().map(|r| r.id.clone()),
            reason,
        };
        let mut writes = Vec::new();
        if let Some(run) = run {
            writes.push(Write::Run(run));
        }
        writes.push(Write::Put {
            namespace: FIRINGS.into(),
            key: format!(
                "{}@{}",
                watermark_key(path, trigger),
                scheduled_for.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            value: serde_json::to_vec(&record).unwrap_or_default(),
        });
        let earlier_queued = self.queues.get(path).is_some_and(|q| {
            q.iter().any(|job| {
                matches!(job, Job::Fire { trigger: t, scheduled_for: s, .. }
                    if t == trigger && *s < scheduled_for)
            })
        });
        if !earlier_queued {
            writes.push(watermark_write(path, trigger, scheduled_for));
        }
        self.store.apply(writes)?;
        self.store.flush()
    }

    fn start(&mut self, path: &Path, job: Job) -> Result<(), String> {
        let Some(entry) = self.entries.get(path) else {
            return Ok(());
        };
        let wf = entry.wf.clone();
        let now = self.clock.now();
        let (record, previous, reuse, resumed) = match job {
            Job::Fire {
                trigger,
                scheduled_for,
                catchup,
            } => {
                let newest = self
                    .store
                    .runs()
                    .map_err(|e| format!("{}: cannot fire `{trigger}`: {e}", wf.name))?
                    .into_iter()
                    .next()
                    .map(|r| r.id);
                let record = runs::new_run(
                    &wf,
                    wf.params.clone(),
                    "schedule",
                    std::slice::from_ref(&trigger),
                    now,
                    Some(scheduled_for),
                    newest.as_deref(),
                )
                .map_err(|e| format!("{}: cannot fire `{trigger}`: {e}", wf.name))?;
                // The run record and the watermark that covers it land together.
                self.record(
                    path,
                    &trigger,
                    scheduled_for,
                    Some(record.clone()),
                    "fired",
                    None,
                )
                .map_err(|e| format!("{}: cannot record firing `{trigger}`: {e}", wf.name))?;
                let tz = entry.timezone_of(&trigger);
                self.emit(EventKind::Fired {
                    workflow: wf.name.clone(),
                    trigger,
                    scheduled_for: scheduled_for.with_timezone(&tz),
                    run_id: record.id.clone(),
                    catchup,
                });
                (record, HashMap::new(), HashSet::new(), false)
            }
            Job::Resume { run_id } => {
                let store = self.store.as_ref();
                let cannot = |e: String| format!("cannot resume run {run_id}: {e}");
                let mut record = store
                    .run(&run_id)
                    .map_err(|e| cannot(e.to_string()))?
                    .ok_or_else(|| cannot("it is no longer in the store".into()))?;
                let nodes = store.nodes(&run_id).map_err(|e| cannot(e.to_string()))?;
                let plan = runs::plan_resume(&wf, &record, &nodes, None, &[])
                    .map_err(|e| cannot(e.to_string()))?;
                plan.apply_params(&mut record);
                record.executions += 1;
                let previous = nodes.into_iter().map(|r| (r.node_id.clone(), r)).collect();
                (record, previous, plan.reuse, true)
            }
        };
        let run_id = record.id.clone();
        self.busy.insert(path.to_path_buf(), run_id.clone());
        self.live.start(&run_id);
        self.emit(EventKind::RunStarted {
            workflow: wf.name.clone(),
            run_id: run_id.clone(),
            resumed,
        });
        let opts = ExecOptions {
            concurrency: wf.concurrency.unwrap_or(self.opts.concurrency),
            shutdown: self.run_stop.subscribe(),
            events: None,
        };
        let store = self.store.clone();
        let path = path.to_path_buf();
        self.tasks.spawn(async move {
            let started = std::time::Instant::now();
            let result = executor::execute(wf, store, record, previous, reuse, opts).await;
            (path, run_id, started.elapsed(), result)
        });
        Ok(())
    }

    fn run_ended(&mut self, done: Result<RunResult, tokio::task::JoinError>) {
        let (path, run_id, duration, result) = match done {
            Ok(done) => done,
            Err(e) => {
                // The executor catches node panics; this is a bug in flow itself.
                self.problem(format!("a run task failed: {e}"));
                return;
            }
        };
        self.busy.remove(&path);
        self.live.finish(&run_id);
        let workflow = self
            .entries
            .get(&path)
            .map_or_else(|| path.display().to_string(), |e| e.wf.name.clone());
        let (status, error) = match result {
            Ok(outcome) => (outcome.run.status, outcome.run.error),
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        self.emit(EventKind::RunFinished {
            workflow,
            run_id,
            status,
            duration,
            error,
        });
        self.apply_retention();
        self.start_queued(&path);
    }

    /// Removes the runs the retention options let go. Runs in progress, and runs queued to
    /// resume, stay; so do failed and interrupted runs (`flow runs prune --include-resumable`
    /// removes those).
    fn apply_retention(&self) {
        let policy = Retention {
            keep: self.opts.keep_runs,
            since: self
                .opts
                .keep_for
                .map(|d| retention::cutoff(self.clock.now(), d)),
            include_resumable: false,
        };
        if policy.is_empty() {
            return;
        }
        let mut live = self.live.ids();
        live.extend(self.busy.values().cloned());
        live.extend(self.queues.values().flatten().filter_map(|job| match job {
            Job::Resume { run_id } => Some(run_id.clone()),
            Job::Fire { .. } => None,
        }));
        match retention::prune(self.store.as_ref(), &policy, &live, false) {
            Ok(pruned) if pruned.runs.is_empty() && pruned.firings == 0 => {}
            Ok(pruned) => self.emit(EventKind::Pruned {
                runs: pruned.runs.len(),
                firings: pruned.firings,
                bytes: pruned.removed.bytes,
            }),
            Err(e) => self.problem(format!("cannot remove old runs: {e}")),
        }
    }

    /// Picks up changed, new and removed workflow files. An invalid change is reported once
    /// and the previous definition stays in force.
    fn reload(&mut self, now: DateTime<Utc>) {
        let files = self.list_files();
        let present: HashSet<&PathBuf> = files.iter().collect();
        let gone: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| !present.contains(p) || !p.exists())
            .cloned()
            .collect();
        for path in gone {
            self.entries.remove(&path);
            self.queues.remove(&path);
            self.emit(EventKind::Removed { path });
        }
        for path in files {
            // Bytes, not text: a file changed to invalid UTF-8 is a change to report.
            let Ok(bytes) = compile::read_bytes(&path) else {
                continue;
            };
            let unchanged = self
                .entries
                .get(&path)
                .is_some_and(|e| e.text.as_bytes() == bytes)
                || self.rejected.get(&path) == Some(&bytes);
            if unchanged {
                continue;
            }
            match self.load_bytes(&path, bytes.clone()) {
                Err(errors) => {
                    self.rejected.insert(path.clone(), bytes);
                    self.emit(EventKind::ReloadFailed {
                        kept_previous: self.entries.contains_key(&path),
                        path,
                        errors,
                    });
                }
                Ok(mut entry) => {
                    self.rejected.remove(&path);
                    let reloaded = self.entries.contains_key(&path);
                    // A trigger whose schedule did not change keeps its place; a new or
                    // changed one starts from now (a reload is not an outage).
                    let mut fresh = Vec::new();
                    for s in &mut entry.triggers {
                        let old = self.entries.get(&path).and_then(|e| {
                            e.triggers.iter().find(|o| {
                                o.trigger.id == s.trigger.id
                                    && o.trigger.schedule.expression
                                        == s.trigger.schedule.expression
                                    && o.trigger.schedule.timezone == s.trigger.schedule.timezone
                            })
                        });
                        s.cursor = match old {
                            Some(o) => o.cursor,
                            None if reloaded => {
                                fresh.push(watermark_write(&path, &s.trigger.id, now));
                                now
                            }
                            None => DateTime::<Utc>::MIN_UTC,
                        };
                    }
                    let first_load = !reloaded;
                    self.entries.insert(path.clone(), entry);
                    let stored = if first_load {
                        // A file that appeared: its stored watermarks (if any) apply.
                        self.init_cursors(&path, now)
                    } else if fresh.is_empty() {
                        Ok(())
                    } else {
                        self.store.apply(fresh).and_then(|()| self.store.flush())
                    };
                    if let Err(e) = stored {
                        self.problem(format!("{}: {e}", path.display()));
                    }
                    self.announce(&path, reloaded);
                }
            }
        }
    }
}

/// The last `keep` firings after `cursor` that are more than [`GRACE`] before `now`, found by
/// widening a window back from now (there are too many to walk from the cursor).
fn latest_missed(
    schedule: &CronSchedule,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
    keep: usize,
) -> VecDeque<DateTime<Utc>> {
    let end = now - GRACE;
    let mut span = chrono::TimeDelta::hours(1);
    loop {
        let from = (end - span).max(cursor);
        let found: Vec<DateTime<Utc>> = schedule
            .after(from)
            .map(|t| t.with_timezone(&Utc))
            .take_while(|t| *t < end)
            .collect();
        if found.len() >= keep || from == cursor {
            return found[found.len().saturating_sub(keep)..]
                .iter()
                .copied()
                .collect();
        }
        span = span * 2;
    }
}

fn watermark_write(path: &Path, trigger: &str, last: DateTime<Utc>) -> Write {
    Write::Put {
        namespace: WATERMARKS.into(),
        key: watermark_key(path, trigger),
        value: serde_json::to_vec(&Watermark { last }).unwrap_or_default(),
    }
}

/// Resolves when the value changes; never, once the sender is gone.
async fn changed(rx: &mut watch::Receiver<Shutdown>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
