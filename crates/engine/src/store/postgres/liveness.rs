//! Which runs a process is executing, told to every process sharing the database.
//!
//! A process executing a run holds a session-level advisory lock on it, on a connection kept
//! for that alone. Any process reads the live runs from `pg_locks`; a process that dies or loses
//! its connection lets go of its locks at once, so its runs show as interrupted and can be
//! resumed elsewhere. Taking the lock is also what stops two processes from executing one run.
//!
//! When the connection breaks and comes back, the locks are taken again; a run whose lock
//! another process took in between is lost, and its next write fails rather than clash with the
//! process executing it now.
//!
//! A lock alone cannot stop a write that was on its way when the connection broke, so taking a
//! run also raises its epoch in `flow_run_owners` (a fencing token). Each write to a run checks,
//! in its own transaction, that the epoch is still the one this process took; a process that
//! took the run since has raised it, and the write fails.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::Client;

use super::pool::{Conn, Pool};
use super::{RETRY_FOR, pg_error};
use crate::store::StoreError;

/// The first key of the advisory locks on runs ("FLOW" in ASCII); the second is the run id's
/// `hashtext`.
pub(super) const RUN_LOCK_CLASS: i32 = 0x464C_4F57;

/// Locks for runs, taken by id.
pub(super) const TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1, hashtext($2))";
const UNLOCK: &str = "SELECT pg_advisory_unlock($1, hashtext($2))";
/// Raises a run's epoch once its lock is taken.
const BUMP: &str = "INSERT INTO flow_run_owners (run_id, epoch) VALUES ($1, 1)
    ON CONFLICT (run_id) DO UPDATE SET epoch = flow_run_owners.epoch + 1 RETURNING epoch";

/// The advisory lock of the process that fires schedules.
const LEAD: &str = "SELECT pg_try_advisory_lock($1, 0)";
/// The first key of the scheduler's lock ("FLOX").
const LEADER_CLASS: i32 = 0x464C_4F58;
/// The scheduler's row in `flow_run_owners` (run ids never start with `#`).
pub(super) const SCHEDULER: &str = "#scheduler";

/// The runs this process executes, with the epoch it took each at, and those it lost; and
/// whether it leads the schedules.
#[derive(Default)]
pub(super) struct Runs {
    held: HashMap<String, i64>,
    lost: HashSet<String>,
    /// Connections made so far; a lock taken on an older one is gone.
    generation: u64,
    /// The generation and epoch this process took the scheduler's lock at.
    leader: Option<(u64, i64)>,
}

impl Runs {
    pub(super) fn epoch(&self, run_id: &str) -> Option<i64> {
        match run_id {
            SCHEDULER => self.leader.map(|(_, epoch)| epoch),
            _ => self.held.get(run_id).copied(),
        }
    }
}

/// Takes the lock on a run and raises its epoch; `None` when another process holds it.
fn lock(client: &mut Client, run_id: &str) -> Result<Option<i64>, postgres::Error> {
    if !client
        .query_one(TRY_LOCK, &[&RUN_LOCK_CLASS, &run_id])?
        .get::<_, bool>(0)
    {
        return Ok(None);
    }
    Ok(Some(client.query_one(BUMP, &[&run_id])?.get(0)))
}

pub(super) struct Liveness {
    pool: Pool,
    runs: Arc<Mutex<Runs>>,
    location: String,
    stop: Option<Sender<()>>,
    keeper: Option<JoinHandle<()>>,
}

impl Liveness {
    pub(super) fn start(config: postgres::Config, location: String) -> Liveness {
        let runs = Arc::new(Mutex::new(Runs::default()));
        let relock = runs.clone();
        let conn = Conn::new(config).on_connect(move |client: &mut Client| {
            // A host that vanishes without closing its connection is noticed by the server
            // within about 25 s, which then lets go of its locks.
            let _ = client.batch_execute(
                "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3",
            );
            let mut runs = relock.lock().unwrap_or_else(|p| p.into_inner());
            runs.generation += 1;
            // The scheduler's lock is not taken back here: the next check finds it free or not.
            runs.leader = None;
            let held: Vec<String> = runs.held.keys().cloned().collect();
            for run_id in held {
                if let Ok(Some(epoch)) = lock(client, &run_id) {
                    runs.held.insert(run_id, epoch);
                } else {
                    tracing::error!(
                        run = %run_id,
                        "lost the lock on the run while the database connection was down; another process may be executing it, so this one stops writing to it"
                    );
                    runs.held.remove(&run_id);
                    runs.lost.insert(run_id);
                }
            }
        });
        let pool = Pool::start("flow-pg-live", vec![conn]);
        let mut liveness = Liveness {
            pool,
            runs,
            location,
            stop: None,
            keeper: None,
        };
        liveness.start_keeper();
        liveness
    }

    /// Checks the connection every second while runs are held, so that locks lost with it are
    /// taken again (or found lost) promptly.
    fn start_keeper(&mut self) {
        let (tx, rx) = mpsc::channel::<()>();
        let runs = self.runs.clone();
        let pool = self.pool.handle();
        self.stop = Some(tx);
        self.keeper = std::thread::Builder::new()
            .name("flow-pg-keeper".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(Duration::from_secs(1)) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    if runs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .held
                        .is_empty()
                    {
                        continue;
                    }
                    let _ = pool.call(|conn| conn.run(RETRY_FOR, |c| c.simple_query("SELECT 1")));
                }
            })
            .ok();
    }

    /// The connection the locks are held on, for other session-level locks (histories).
    pub(super) fn pool(&self) -> Pool {
        self.pool.handle()
    }

    /// The runs held, for writes to check their epochs against.
    pub(super) fn runs(&self) -> Arc<Mutex<Runs>> {
        self.runs.clone()
    }

    /// Takes the run for this process; false when another process executes it.
    pub(super) fn take(&self, run_id: &str) -> Result<bool, StoreError> {
        {
            let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
            if runs.held.contains_key(run_id) {
                return Ok(true);
            }
        }
        let id = run_id.to_string();
        let taken = self
            .pool
            .call(move |conn| {
                conn.run(RETRY_FOR, |c| {
                    let epoch = lock(c, &id)?;
                    if epoch.is_some() {
                        // Attempts a dead predecessor queued for this run are withdrawn: this
                        // execution queues its own (a worker running one finds its claim gone).
                        c.execute("DELETE FROM flow_tasks WHERE run_id = $1", &[&id])?;
                    }
                    Ok(epoch)
                })
            })
            .ok_or_else(|| self.closed())?
            .map_err(|e| pg_error(&self.location, e))?;
        if let Some(epoch) = taken {
            let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
            runs.lost.remove(run_id);
            runs.held.insert(run_id.to_string(), epoch);
        }
        Ok(taken.is_some())
    }

    /// Whether this process leads the schedules: it holds the scheduler's lock on a connection
    /// that still answers, or takes it now.
    pub(super) fn lead(&self) -> Result<bool, StoreError> {
        let runs = self.runs.clone();
        self.pool
            .call(move |conn| -> Result<bool, postgres::Error> {
                let client = conn.client()?;
                // Answering proves the connection, and so the lock, still stands.
                client.simple_query("SELECT 1")?;
                let (generation, leading) = {
                    let runs = runs.lock().unwrap_or_else(|p| p.into_inner());
                    (runs.generation, runs.leader)
                };
                if leading.is_some_and(|(g, _)| g == generation) {
                    return Ok(true);
                }
                if !client.query_one(LEAD, &[&LEADER_CLASS])?.get::<_, bool>(0) {
                    return Ok(false);
                }
                let epoch: i64 = client.query_one(BUMP, &[&SCHEDULER])?.get(0);
                runs.lock().unwrap_or_else(|p| p.into_inner()).leader = Some((generation, epoch));
                Ok(true)
            })
            .ok_or_else(|| self.closed())?
            .or_else(|e| {
                // A connection that failed holds nothing: not leading, and the next check
                // reconnects.
                tracing::warn!("cannot check the schedule lock: {e}");
                Ok(false)
            })
    }

    /// Lets go of a run this process no longer executes.
    pub(super) fn release(&self, run_id: &str) -> Result<(), StoreError> {
        let held = {
            let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
            runs.lost.remove(run_id);
            runs.held.remove(run_id).is_some()
        };
        if !held {
            return Ok(());
        }
        let id = run_id.to_string();
        let unlocked = self
            .pool
            .call(move |conn| {
                let client = conn.client()?;
                client
                    .query_one(UNLOCK, &[&RUN_LOCK_CLASS, &id])
                    .map(|_| ())
            })
            .ok_or_else(|| self.closed())?;
        // A connection that broke has let go of the lock with it; the next call reconnects.
        if let Err(e) = unlocked {
            tracing::debug!("unlocking run {run_id}: {e}");
        }
        Ok(())
    }

    pub(super) fn is_lost(&self, run_id: &str) -> bool {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lost
            .contains(run_id)
    }

    fn closed(&self) -> StoreError {
        StoreError::Io(format!("the PostgreSQL store {} is closing", self.location))
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}
