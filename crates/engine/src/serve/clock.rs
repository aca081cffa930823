//! Time for the scheduler, injected so tests can move it by hand instead of waiting.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A sleep that may end early: callers re-read the time and sleep again.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Wall-clock time and waiting for it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Resolves at `deadline` or earlier.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_>;
}

/// The system clock. Sleeps are capped so a wall-clock jump (NTP step, a laptop waking up)
/// is noticed within [`SystemClock::MAX_SLEEP`] rather than after a long monotonic sleep.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    pub const MAX_SLEEP: Duration = Duration::from_secs(30);
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        let wait = (deadline - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(Self::MAX_SLEEP);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that only moves when told to ([`ManualClock::set`]); every move wakes sleepers.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: watch::Sender::new(start),
        }
    }

    /// Moves the clock to `time` (never backwards) and wakes every sleeper that is due.
    pub fn set(&self, time: DateTime<Utc>) {
        self.now.send_if_modified(|now| {
            let later = time > *now;
            if later {
                *now = time;
            }
            later
        });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        let mut rx = self.now.subscribe();
        // Any move wakes the sleeper (allowed: callers re-read the time), so a test that moves
        // the clock sees the scheduler look at the new time.
        Box::pin(async move {
            if *rx.borrow_and_update() < deadline {
                let _ = rx.changed().await;
            }
        })
    }
}
