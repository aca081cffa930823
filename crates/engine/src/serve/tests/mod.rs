//! Scheduler tests on a hand-moved clock and an in-memory store: nothing waits for real time.
//! The harness is here; the tests are in one file per topic.

mod catchup;
mod control;
mod on_time;
mod overlap;
mod restart;
mod retention;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{Datelike, TimeZone, Timelike, Weekday};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::firing::latest_missed;
use super::*;
use crate::data::{Data, Output};
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    Params,
};
use crate::schedule::{Catchup, CronSchedule, Overlap};
use crate::store::{MemoryStore, RunStatus, Write};

/// `test.gate`: each run waits for one permit, so a test decides when runs end.
#[derive(Clone)]
struct Gate(Arc<Semaphore>);

impl NodeType for Gate {
    fn name(&self) -> &'static str {
        "test.gate"
    }
    fn summary(&self) -> &'static str {
        "waits for the test to let it through"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action]
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn configure(&self, _: &Params, _: &ConfigureCx<'_>) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(self.clone()))
    }
}

#[async_trait]
impl Node for Gate {
    async fn run(&self, _: NodeContext, _: Inputs) -> Result<Output, NodeError> {
        self.0.acquire().await.expect("open").forget();
        Ok(Output::data(Data::Empty))
    }
}

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

fn workflow(cron: &str, tz: &str, extra: &str, body: &str) -> String {
    format!(
        "name: job\nnodes:\n  - id: daily\n    kind: trigger\n    type: schedule\n    with: {{ cron: \"{cron}\", timezone: {tz}{extra} }}\n  - id: work\n    kind: action\n    type: {body}\n    needs: [daily]\n"
    )
}

/// A server on a temp workflow file, a manual clock and a shared in-memory store.
struct Harness {
    dir: PathBuf,
    clock: ManualClock,
    store: Arc<MemoryStore>,
    gate: Arc<Semaphore>,
    events: mpsc::UnboundedReceiver<ServeEvent>,
    stop: watch::Sender<Shutdown>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    seen: Vec<ServeEvent>,
    handle: ServeHandle,
}

impl Harness {
    fn start(dir: &Path, store: Arc<MemoryStore>, now: DateTime<Utc>, reload: Duration) -> Self {
        let opts = ServeOptions {
            concurrency: 4,
            reload_interval: reload,
            max_catchup: 50,
            ..Default::default()
        };
        Self::start_with(dir, store, now, opts)
    }

    fn start_with(
        dir: &Path,
        store: Arc<MemoryStore>,
        now: DateTime<Utc>,
        opts: ServeOptions,
    ) -> Self {
        let gate = Arc::new(Semaphore::new(0));
        let mut registry = crate::nodes::core_registry();
        registry.register(Gate(gate.clone()));
        registry.register(on_time::EveryHour);
        let clock = ManualClock::new(now);
        let (tx, events) = mpsc::unbounded_channel();
        let server = Server::new(
            vec![dir.join("wf.yaml")],
            registry,
            store.clone(),
            Arc::new(clock.clone()),
            LiveRuns::default(),
            tx,
            opts,
        )
        .expect("valid workflow");
        let (stop, stop_rx) = watch::channel(Shutdown::None);
        let handle = server.handle();
        let task = tokio::spawn(server.run(stop_rx));
        Harness {
            dir: dir.to_path_buf(),
            clock,
            store,
            gate,
            events,
            stop,
            task: Some(task),
            seen: Vec::new(),
            handle,
        }
    }

    /// [`Harness::start`], returning once the server has started up at `now`.
    async fn started(
        dir: &Path,
        store: Arc<MemoryStore>,
        now: DateTime<Utc>,
        reload: Duration,
    ) -> Self {
        let mut h = Self::start(dir, store, now, reload);
        h.wait_for("start-up", |e| matches!(e.kind, EventKind::Waiting { .. }))
            .await;
        h
    }

    /// Takes the next event (waiting in real time, bounded).
    async fn recv_one(&mut self, what: &str) {
        let event = tokio::time::timeout(Duration::from_secs(20), self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; saw {:#?}", self.seen))
            .unwrap_or_else(|| panic!("the server stopped while waiting for {what}"));
        self.seen.push(event);
    }

    /// The first event matching `pred`, waiting for it if need be; its index in `seen`.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&ServeEvent) -> bool) -> usize {
        loop {
            if let Some(i) = self.seen.iter().position(&pred) {
                return i;
            }
            self.recv_one(what).await;
        }
    }

    /// Waits until `n` events match `pred`.
    async fn wait_count(&mut self, what: &str, n: usize, pred: impl Fn(&EventKind) -> bool) {
        while self.count(&pred) < n {
            self.recv_one(what).await;
        }
    }

    /// Runs started minus runs ended, up to event `i`.
    fn in_flight_at(&self, i: usize) -> usize {
        let (mut started, mut ended) = (0, 0);
        for e in &self.seen[..=i] {
            match e.kind {
                EventKind::RunStarted { .. } => started += 1,
                EventKind::RunFinished { .. } => ended += 1,
                _ => {}
            }
        }
        started - ended
    }

    /// Moves the clock to `t` and waits until the server has handled everything due by then
    /// and every run it started has ended.
    async fn advance(&mut self, t: DateTime<Utc>) {
        self.clock.set(t);
        // The clock may not have moved: the last idle report then already covers `t`.
        let mut from = self
            .seen
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::Waiting { .. }))
            .unwrap_or(0);
        loop {
            let i = loop {
                let found = self.seen[from..]
                    .iter()
                    .position(|e| e.at >= t && matches!(e.kind, EventKind::Waiting { .. }));
                if let Some(k) = found {
                    break from + k;
                }
                self.recv_one("the server to catch up").await;
            };
            if self.in_flight_at(i) == 0 {
                return;
            }
            // It waits again once the runs have ended.
            from = i + 1;
        }
    }

    /// Moves to the next time the server wakes for, `n` times.
    async fn step(&mut self, n: usize) {
        for _ in 0..n {
            let until = self
                .seen
                .iter()
                .rev()
                .find_map(|e| match e.kind {
                    EventKind::Waiting { until } => Some(until),
                    _ => None,
                })
                .expect("the server waits");
            self.advance(until).await;
        }
    }

    fn fired(&self) -> Vec<(DateTime<Tz>, bool)> {
        self.seen
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Fired {
                    scheduled_for,
                    catchup,
                    ..
                } => Some((*scheduled_for, *catchup)),
                _ => None,
            })
            .collect()
    }

    fn count(&self, pred: impl Fn(&EventKind) -> bool) -> usize {
        let pred = &pred;
        self.seen.iter().filter(|e| pred(&e.kind)).count()
    }

    async fn stop(mut self) -> Vec<ServeEvent> {
        let _ = self.stop.send(Shutdown::Drain);
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("stops")
            .expect("no panic")
            .expect("no error");
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        self.seen
    }

    fn firing_log(&self) -> Vec<FiringRecord> {
        let path = std::path::absolute(self.dir.join("wf.yaml")).unwrap();
        firings(self.store.as_ref(), &path, "daily").unwrap()
    }
}

fn write(dir: &Path, text: &str) {
    std::fs::write(dir.join("wf.yaml"), text).unwrap();
}

const NEVER: Duration = Duration::from_secs(400 * 24 * 3600);

/// Runs a server that fires at 06:00 on 1 March, then stops; returns its store.
async fn fired_once_then_stopped(dir: &Path) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(dir, store.clone(), utc(2026, 3, 1, 5, 0), NEVER).await;
    h.advance(utc(2026, 3, 1, 6, 0)).await;
    assert_eq!(h.fired().len(), 1);
    h.advance(utc(2026, 3, 1, 9, 0)).await;
    h.stop().await;
    store
}
