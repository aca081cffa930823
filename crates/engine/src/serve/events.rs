//! What the server reports as it works; the command line prints these as log lines.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::schedule::Catchup;
use crate::store::RunStatus;

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
        /// Webhook triggers, as the paths they answer on (`/hooks/KEY/TRIGGER`).
        webhooks: Vec<String>,
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
    /// This server fires the schedules now (it took over from another sharing the store, or
    /// was the first).
    Leading,
    /// Another server sharing the store fires the schedules; this one stands by, checking
    /// every [`LEAD_CHECK`](super::LEAD_CHECK).
    StandingBy,
    /// Idle until `until` (or until a run ends); every firing due by `at` has been handled.
    Waiting {
        until: DateTime<Utc>,
    },
}
