//! Wake-ups from the database: a thread that `LISTEN`s on a channel and counts the
//! notifications, so waiters check at once instead of at their next poll.
//!
//! The count only ever says "look now"; the waiters keep polling (more slowly) as well, so a
//! notification lost with a broken connection delays them, it does not strand them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::watch;

use super::pool::Conn;

/// Counts the notifications on one channel while it lives.
pub struct Listener {
    count: watch::Receiver<u64>,
    stop: Arc<AtomicBool>,
}

impl Listener {
    pub(super) fn start(config: postgres::Config, channel: &'static str) -> Listener {
        let (tx, count) = watch::channel(0u64);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let listen = format!("LISTEN {channel}");
        let _ = std::thread::Builder::new()
            .name(format!("flow-pg-{channel}"))
            .spawn(move || {
                let mut conn = Conn::new(config);
                while !stopping.load(Ordering::Relaxed) && !tx.is_closed() {
                    let client = match conn.client() {
                        Ok(client) => client,
                        Err(_) => {
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    };
                    if client.batch_execute(&listen).is_err() {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    // Waiters may have missed something while this was not listening.
                    tx.send_modify(|n| *n += 1);
                    loop {
                        // A fresh wait each time: a timed-out iterator stays at its end.
                        let mut notifications = client.notifications();
                        match notifications
                            .timeout_iter(Duration::from_millis(500))
                            .next()
                        {
                            Ok(Some(_)) => tx.send_modify(|n| *n += 1),
                            Ok(None) => {
                                if stopping.load(Ordering::Relaxed) || tx.is_closed() {
                                    return;
                                }
                            }
                            // The connection broke: listen again on a new one.
                            Err(_) => break,
                        }
                    }
                }
            });
        Listener { count, stop }
    }

    /// A receiver that changes with every notification.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.count.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
