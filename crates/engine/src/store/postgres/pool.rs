//! Connections to PostgreSQL on threads of their own.
//!
//! The store's methods are called from async tasks, where the blocking client (which runs a
//! small runtime of its own) must not block. Each connection lives on its own thread; a call
//! hands it a closure and waits for the answer. A connection that breaks (server restarted,
//! backend terminated) is opened again and the call retried until `retry_for` has passed. The
//! run's records are idempotent upserts or deletes, so doing one twice changes nothing; queueing
//! a task is a plain insert, so a retry after an answer lost on its way queues it twice.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

type Job = Box<dyn FnOnce(&mut Conn) + Send>;
type OnConnect = Box<dyn FnMut(&mut Client) + Send>;

/// One connection, opened on first use and again after it breaks.
pub(super) struct Conn {
    config: postgres::Config,
    client: Option<Client>,
    /// Called on every new connection before it is used (the liveness thread re-takes its
    /// advisory locks there).
    on_connect: Option<OnConnect>,
}

impl Conn {
    pub(super) fn new(config: postgres::Config) -> Self {
        Conn {
            config,
            client: None,
            on_connect: None,
        }
    }

    pub(super) fn on_connect(mut self, f: impl FnMut(&mut Client) + Send + 'static) -> Self {
        self.on_connect = Some(Box::new(f));
        self
    }

    pub(super) fn client(&mut self) -> Result<&mut Client, postgres::Error> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = self.config.connect(NoTls)?;
            if let Some(f) = self.on_connect.as_mut() {
                f(&mut client);
            }
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Runs `f` on the connection; when the connection is lost (not when the statement is
    /// refused), reconnects and runs it again until `retry_for` has passed.
    pub(super) fn run<R>(
        &mut self,
        retry_for: Duration,
        mut f: impl FnMut(&mut Client) -> Result<R, postgres::Error>,
    ) -> Result<R, postgres::Error> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let result = self.client().and_then(&mut f);
            match result {
                Err(e) if is_connection_lost(&e, self) && start.elapsed() < retry_for => {
                    tracing::warn!("lost the connection to the PostgreSQL store ({e}); retrying");
                    self.client = None;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }
}

/// A connection that could not be made, or one that broke, as opposed to a statement refused.
fn is_connection_lost(e: &postgres::Error, conn: &Conn) -> bool {
    use postgres::error::SqlState;
    if conn.client.as_ref().is_none_or(Client::is_closed) || e.is_closed() {
        return true;
    }
    match e.code() {
        // Shutdown, crash recovery, terminated backend, too many connections.
        Some(code) => {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code)
                || code.code().starts_with("08")
        }
        None => false,
    }
}

/// Threads each owning one connection, taking calls from one queue. Clones share the threads,
/// which end when the last clone goes.
#[derive(Clone)]
pub(super) struct Pool(Arc<Threads>);

struct Threads {
    jobs: Mutex<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    pub(super) fn start(name: &str, conns: Vec<Conn>) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = conns
            .into_iter()
            .enumerate()
            .map(|(i, conn)| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || serve(conn, &rx))
                    .expect("spawn a store thread")
            })
            .collect();
        Pool(Arc::new(Threads {
            jobs: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        }))
    }

    pub(super) fn handle(&self) -> Pool {
        self.clone()
    }

    /// Runs `f` on one of the connections and waits for its answer.
    pub(super) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx): (SyncSender<R>, Receiver<R>) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        let sender = self
            .0
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()?
            .clone();
        sender.send(job).ok()?;
        rx.recv().ok()
    }
}

fn serve(mut conn: Conn, rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job(&mut conn);
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        // Closing the queue ends the threads once they finish their calls; their connections
        // close with them (which lets go of their advisory locks).
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}
