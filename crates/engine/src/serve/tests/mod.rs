//! Scheduler tests on a hand-moved clock and an in-memory store: nothing waits for real time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{Datelike, TimeZone, Timelike, Weekday};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::*;
use crate::data::{Data, Output};
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    Params,
};
use crate::store::MemoryStore;

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

#[tokio::test]
async fn six_am_new_york_all_year_across_both_dst_changes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &workflow("0 6 * * *", "America/New_York", "", "core.noop"),
    );
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(dir.path(), store, utc(2026, 1, 1, 0, 0), NEVER).await;
    h.advance(utc(2026, 1, 1, 0, 0)).await;
    h.step(365).await;
    let fired = h.fired();
    assert_eq!(fired.len(), 365);
    for (t, catchup) in &fired {
        assert_eq!((t.hour(), t.minute()), (6, 0), "{t}");
        assert!(!catchup);
    }
    let utc_hour = |m: u32, d: u32| {
        fired
            .iter()
            .find(|(t, _)| t.month() == m && t.day() == d)
            .map(|(t, _)| t.with_timezone(&Utc).hour())
            .unwrap()
    };
    // EST (UTC-5) until 2 AM on Sunday 8 March, EDT (UTC-4) until 2 AM on Sunday 1 November.
    assert_eq!(utc_hour(3, 7), 11);
    assert_eq!(utc_hour(3, 8), 10);
    assert_eq!(utc_hour(10, 31), 10);
    assert_eq!(utc_hour(11, 1), 11);
    let days: HashSet<_> = fired.iter().map(|(t, _)| t.date_naive()).collect();
    assert_eq!(days.len(), 365, "one firing per day, none twice");
    let runs = h.store.runs().unwrap();
    assert_eq!(runs.len(), 365);
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    assert!(runs.iter().all(|r| r.trigger.fired_by == "schedule"));
    h.stop().await;
}

#[tokio::test]
async fn weekday_names_fire_on_weekdays_only() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &workflow("30 6 * * MON-FRI", "America/New_York", "", "core.noop"),
    );
    let store = Arc::new(MemoryStore::default());
    // Saturday 21 November 2026.
    let mut h = Harness::started(dir.path(), store, utc(2026, 11, 21, 0, 0), NEVER).await;
    h.advance(utc(2026, 11, 21, 0, 0)).await;
    h.step(10).await;
    let fired = h.fired();
    let days: Vec<(u32, Weekday)> = fired.iter().map(|(t, _)| (t.day(), t.weekday())).collect();
    assert_eq!(
        days,
        [
            (23, Weekday::Mon),
            (24, Weekday::Tue),
            (25, Weekday::Wed),
            (26, Weekday::Thu),
            (27, Weekday::Fri),
            (30, Weekday::Mon),
            (1, Weekday::Tue),
            (2, Weekday::Wed),
            (3, Weekday::Thu),
            (4, Weekday::Fri),
        ]
    );
    assert!(fired.iter().all(|(t, _)| (t.hour(), t.minute()) == (6, 30)));
    h.stop().await;
}

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

async fn catch_up_after_three_days(policy: &str) -> (Harness, Vec<DateTime<Utc>>) {
    let dir = tempfile::tempdir().unwrap().keep();
    write(
        &dir,
        &workflow(
            "0 6 * * *",
            "UTC",
            &format!(", catchup: {policy}"),
            "core.noop",
        ),
    );
    let store = fired_once_then_stopped(&dir).await;
    // Down from 1 March 09:00 to 4 March 12:00: 2, 3 and 4 March at 06:00 were missed.
    let mut h = Harness::started(&dir, store, utc(2026, 3, 4, 12, 0), NEVER).await;
    h.advance(utc(2026, 3, 4, 12, 0)).await;
    let fired = h
        .fired()
        .iter()
        .map(|(t, _)| t.with_timezone(&Utc))
        .collect();
    (h, fired)
}

#[tokio::test]
async fn catch_up_none_runs_nothing_missed() {
    let (mut h, fired) = catch_up_after_three_days("none").await;
    assert!(fired.is_empty());
    assert_eq!(
        h.count(|k| matches!(
            k,
            EventKind::Missed {
                missed: 3,
                will_run: 0,
                ..
            }
        )),
        1
    );
    let log = h.firing_log();
    assert_eq!(log.last().unwrap().outcome, "missed");
    // The next firing is on time, once.
    h.advance(utc(2026, 3, 5, 6, 0)).await;
    assert_eq!(h.fired().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn catch_up_latest_runs_the_most_recent_once() {
    let (mut h, fired) = catch_up_after_three_days("latest").await;
    assert_eq!(fired, [utc(2026, 3, 4, 6, 0)]);
    assert!(h.fired()[0].1, "marked as a catch-up");
    let runs = h.store.runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].trigger.scheduled_for, Some(utc(2026, 3, 4, 6, 0)));
    assert_eq!(runs[0].trigger.time, utc(2026, 3, 4, 12, 0));
    h.advance(utc(2026, 3, 5, 6, 0)).await;
    assert_eq!(h.fired().len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn catch_up_all_runs_each_missed_firing_in_order() {
    let (mut h, fired) = catch_up_after_three_days("all").await;
    assert_eq!(
        fired,
        [
            utc(2026, 3, 2, 6, 0),
            utc(2026, 3, 3, 6, 0),
            utc(2026, 3, 4, 6, 0)
        ]
    );
    assert_eq!(
        h.count(|k| matches!(
            k,
            EventKind::Missed {
                missed: 3,
                will_run: 3,
                ..
            }
        )),
        1
    );
    let runs = h.store.runs().unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    h.advance(utc(2026, 3, 5, 6, 0)).await;
    assert_eq!(h.fired().len(), 4);
    h.stop().await;
}

#[tokio::test]
async fn catch_up_all_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &workflow("0 * * * *", "UTC", ", catchup: all", "core.noop"),
    );
    let store = fired_once_then_stopped(dir.path()).await;
    // 3 days of hourly firings missed: 75; only the latest 50 run.
    let mut h = Harness::started(dir.path(), store, utc(2026, 3, 4, 12, 30), NEVER).await;
    h.advance(utc(2026, 3, 4, 12, 30)).await;
    assert_eq!(
        h.count(|k| matches!(
            k,
            EventKind::Missed {
                missed: 75,
                will_run: 50,
                ..
            }
        )),
        1
    );
    let fired = h.fired();
    assert_eq!(fired.len(), 50);
    assert_eq!(fired[49].0.with_timezone(&Utc), utc(2026, 3, 4, 12, 0));
    h.stop().await;
}

/// A gated every-minute workflow whose 06:00 run is still going at 06:01 and 06:02; `seen`
/// says what happened to those two firings (by their minute).
async fn firings_during_a_long_run(
    dir: &Path,
    extra: &str,
    seen: fn(&EventKind, u32) -> bool,
) -> Harness {
    write(dir, &workflow("* * * * *", "UTC", extra, "test.gate"));
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(dir, store, utc(2026, 3, 1, 5, 59), NEVER).await;
    h.clock.set(utc(2026, 3, 1, 6, 0));
    h.wait_for("the first run", |e| {
        matches!(e.kind, EventKind::RunStarted { .. })
    })
    .await;
    for minute in 1..=2 {
        h.clock.set(utc(2026, 3, 1, 6, minute));
        h.wait_for("the firing to be handled", |e| seen(&e.kind, minute))
            .await;
    }
    h
}

#[tokio::test]
async fn overlap_skip_records_firings_that_came_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = firings_during_a_long_run(dir.path(), "", |k, minute| {
        matches!(k, EventKind::Skipped { scheduled_for, .. } if scheduled_for.minute() == minute)
    })
    .await;
    h.gate.add_permits(1);
    h.wait_count("the run to end", 1, |k| {
        matches!(k, EventKind::RunFinished { .. })
    })
    .await;
    h.gate.add_permits(1);
    h.clock.set(utc(2026, 3, 1, 6, 3));
    h.wait_count("the next run to end", 2, |k| {
        matches!(k, EventKind::RunFinished { .. })
    })
    .await;
    let minutes: Vec<u32> = h.fired().iter().map(|(t, _)| t.minute()).collect();
    assert_eq!(minutes, [0, 3]);
    let log: Vec<(u32, String)> = h
        .firing_log()
        .iter()
        .map(|f| (f.scheduled_for.minute(), f.outcome.clone()))
        .collect();
    assert_eq!(
        log,
        [
            (0, "fired".to_string()),
            (1, "skipped".to_string()),
            (2, "skipped".to_string()),
            (3, "fired".to_string())
        ]
    );
    h.stop().await;
}

#[tokio::test]
async fn overlap_queue_runs_firings_one_after_another() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = firings_during_a_long_run(dir.path(), ", overlap: queue", |k, minute| {
        matches!(k, EventKind::Queued { scheduled_for, .. } if scheduled_for.minute() == minute)
    })
    .await;
    assert_eq!(h.fired().len(), 1, "queued firings wait for the run");
    for ended in 1..=3 {
        h.gate.add_permits(1);
        h.wait_count("a run to end", ended, |k| {
            matches!(
                k,
                EventKind::RunFinished {
                    status: RunStatus::Succeeded,
                    ..
                }
            )
        })
        .await;
    }
    let minutes: Vec<u32> = h.fired().iter().map(|(t, _)| t.minute()).collect();
    assert_eq!(minutes, [0, 1, 2]);
    let runs = h.store.runs().unwrap();
    assert_eq!(runs.len(), 3);
    h.stop().await;
}

#[tokio::test]
async fn restart_between_two_firings_fires_each_once() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &workflow("0 6 * * *", "UTC", "", "core.noop"));
    let store = fired_once_then_stopped(dir.path()).await;
    // Restarted before the next firing: nothing to catch up, the next one fires once.
    let mut h = Harness::started(dir.path(), store.clone(), utc(2026, 3, 1, 18, 0), NEVER).await;
    h.advance(utc(2026, 3, 1, 18, 0)).await;
    assert!(h.fired().is_empty());
    assert_eq!(h.count(|k| matches!(k, EventKind::Missed { .. })), 0);
    h.advance(utc(2026, 3, 2, 6, 0)).await;
    assert_eq!(h.fired().len(), 1);
    h.advance(utc(2026, 3, 2, 6, 30)).await;
    h.stop().await;
    // Restarted within the grace minute of a firing it was down for: fired once, on time.
    let mut h = Harness::started(dir.path(), store.clone(), utc(2026, 3, 3, 6, 0), NEVER).await;
    h.advance(utc(2026, 3, 3, 6, 0)).await;
    assert_eq!(h.fired().len(), 1);
    assert!(!h.fired()[0].1);
    h.stop().await;
    let mut days: Vec<u32> = store
        .runs()
        .unwrap()
        .iter()
        .map(|r| r.trigger.scheduled_for.unwrap().day())
        .collect();
    days.sort();
    assert_eq!(days, [1, 2, 3]);
}

#[tokio::test]
async fn invalid_reload_keeps_the_old_schedule() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &workflow("0 6 * * *", "UTC", "", "core.noop"));
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(
        dir.path(),
        store,
        utc(2026, 3, 1, 5, 0),
        Duration::from_secs(60),
    )
    .await;
    h.advance(utc(2026, 3, 1, 5, 0)).await;
    write(dir.path(), &workflow("0 61 * * *", "UTC", "", "core.noop"));
    h.advance(utc(2026, 3, 1, 5, 1)).await;
    let i = h
        .wait_for("the reload error", |e| {
            matches!(e.kind, EventKind::ReloadFailed { .. })
        })
        .await;
    let EventKind::ReloadFailed {
        errors,
        kept_previous,
        ..
    } = &h.seen[i].kind
    else {
        unreachable!()
    };
    assert!(kept_previous);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("wf.yaml:6:") && e.contains("cron")),
        "{errors:?}"
    );
    // Reported once, not at every check.
    h.advance(utc(2026, 3, 1, 5, 10)).await;
    assert_eq!(h.count(|k| matches!(k, EventKind::ReloadFailed { .. })), 1);
    h.advance(utc(2026, 3, 1, 6, 0)).await;
    assert_eq!(h.fired().len(), 1, "the old schedule still fires");
    // A valid change takes over.
    write(dir.path(), &workflow("0 7 * * *", "UTC", "", "core.noop"));
    h.advance(utc(2026, 3, 1, 6, 1)).await;
    assert_eq!(
        h.count(|k| matches!(k, EventKind::Loaded { reloaded: true, .. })),
        1
    );
    h.advance(utc(2026, 3, 1, 7, 0)).await;
    let fired = h.fired();
    assert_eq!(fired.len(), 2);
    assert_eq!(fired[1].0.hour(), 7);
    h.stop().await;
}

#[tokio::test]
async fn interrupted_runs_are_reported_and_resumed_when_asked() {
    for resume in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!(", resume_interrupted: {resume}");
        write(
            dir.path(),
            &workflow("0 6 * * *", "UTC", &extra, "test.gate"),
        );
        let store = Arc::new(MemoryStore::default());
        let mut h = Harness::started(dir.path(), store.clone(), utc(2026, 3, 1, 5, 0), NEVER).await;
        h.clock.set(utc(2026, 3, 1, 6, 0));
        h.wait_for("the run", |e| {
            matches!(e.kind, EventKind::RunStarted { .. })
        })
        .await;
        // A crash: the server and its run vanish mid-run.
        h.task.take().unwrap().abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let run = store.runs().unwrap().remove(0);
        assert_eq!(run.status, RunStatus::Running);

        let mut h = Harness::started(dir.path(), store.clone(), utc(2026, 3, 1, 7, 0), NEVER).await;
        h.wait_for("the report", |e| {
            matches!(&e.kind, EventKind::FoundInterrupted { run_id, resuming, .. }
                if *run_id == run.id && *resuming == resume)
        })
        .await;
        if resume {
            h.gate.add_permits(1);
            h.wait_for("the resumed run to end", |e| {
                matches!(&e.kind, EventKind::RunFinished { run_id, status: RunStatus::Succeeded, .. }
                    if *run_id == run.id)
            })
            .await;
            assert_eq!(store.run(&run.id).unwrap().unwrap().executions, 2);
        } else {
            h.advance(utc(2026, 3, 1, 7, 0)).await;
            assert_eq!(
                store.run(&run.id).unwrap().unwrap().status,
                RunStatus::Interrupted
            );
        }
        assert!(h.fired().is_empty(), "06:00 was fired before the crash");
        h.stop().await;
    }
}

#[test]
fn latest_missed_finds_the_most_recent_firings_without_walking_them_all() {
    let every_second = CronSchedule::parse("* * * * * *", "UTC").unwrap();
    let now = utc(2026, 3, 13, 12, 0);
    let latest = latest_missed(&every_second, utc(2026, 3, 1, 0, 0), now, 3);
    let end = now - GRACE;
    let seconds = |n| end - chrono::TimeDelta::seconds(n);
    assert_eq!(Vec::from(latest), [seconds(3), seconds(2), seconds(1)]);
    // Fewer than asked for since the cursor: all of them.
    let daily = CronSchedule::parse("0 6 * * *", "UTC").unwrap();
    let latest = latest_missed(&daily, utc(2026, 3, 11, 7, 0), now, 50);
    assert_eq!(
        Vec::from(latest),
        [utc(2026, 3, 12, 6, 0), utc(2026, 3, 13, 6, 0)]
    );
}

/// Starts a server with retention options and waits until it is up.
async fn started_with_retention(
    dir: &Path,
    store: Arc<MemoryStore>,
    now: DateTime<Utc>,
    keep_runs: Option<usize>,
    keep_for: Option<Duration>,
) -> Harness {
    let opts = ServeOptions {
        concurrency: 4,
        reload_interval: NEVER,
        max_catchup: 50,
        keep_runs,
        keep_for,
    };
    let mut h = Harness::start_with(dir, store, now, opts);
    h.wait_for("start-up", |e| matches!(e.kind, EventKind::Waiting { .. }))
        .await;
    h
}

fn scheduled_days(store: &MemoryStore) -> Vec<u32> {
    let mut days: Vec<u32> = store
        .runs()
        .unwrap()
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .map(|r| r.trigger.scheduled_for.unwrap().day())
        .collect();
    days.sort();
    days
}

#[tokio::test]
async fn retention_removes_old_runs_at_start_and_after_each_run() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &workflow("0 6 * * *", "UTC", "", "core.noop"));
    let store = Arc::new(MemoryStore::default());
    // Five daily runs without retention.
    let mut h = Harness::started(dir.path(), store.clone(), utc(2026, 3, 1, 5, 0), NEVER).await;
    for day in 1..=5 {
        h.advance(utc(2026, 3, day, 6, 0)).await;
    }
    h.stop().await;
    assert_eq!(scheduled_days(&store), [1, 2, 3, 4, 5]);
    // A failed run of the same workflow could still be resumed: retention leaves it.
    let mut failed = store.runs().unwrap().pop().unwrap();
    failed.id = "20260201-060000-fail".into();
    failed.status = RunStatus::Failed;
    failed.created_at = utc(2026, 2, 1, 6, 0);
    store.apply(vec![Write::Run(failed)]).unwrap();

    // Keep 2: applied at start...
    let mut h = started_with_retention(
        dir.path(),
        store.clone(),
        utc(2026, 3, 5, 7, 0),
        Some(2),
        None,
    )
    .await;
    h.wait_for("retention at start", |e| {
        matches!(
            e.kind,
            EventKind::Pruned {
                runs: 3,
                firings: 3,
                ..
            }
        )
    })
    .await;
    assert_eq!(scheduled_days(&store), [4, 5]);
    // ...and after each run.
    h.advance(utc(2026, 3, 6, 6, 0)).await;
    h.advance(utc(2026, 3, 7, 6, 0)).await;
    h.wait_count("retention after runs", 3, |k| {
        matches!(k, EventKind::Pruned { .. })
    })
    .await;
    assert_eq!(scheduled_days(&store), [6, 7]);
    assert!(store.run("20260201-060000-fail").unwrap().is_some());
    // The firing log keeps the entries of the runs kept; the watermark stays.
    let logged: Vec<u32> = h
        .firing_log()
        .iter()
        .map(|f| f.scheduled_for.day())
        .collect();
    assert_eq!(logged, [6, 7]);
    h.stop().await;

    // Keep for 30 hours: restarted days later, the older runs go and the catch-up run stays.
    let mut h = started_with_retention(
        dir.path(),
        store.clone(),
        utc(2026, 3, 10, 7, 0),
        None,
        Some(Duration::from_secs(30 * 3600)),
    )
    .await;
    h.advance(utc(2026, 3, 10, 7, 0)).await;
    h.wait_for("retention at restart", |e| {
        matches!(e.kind, EventKind::Pruned { runs: 2, .. })
    })
    .await;
    assert_eq!(scheduled_days(&store), [10]);
    assert!(store.run("20260201-060000-fail").unwrap().is_some());
    assert_eq!(
        h.fired().len(),
        1,
        "the watermark survived: only the catch-up fired"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_reload_to_invalid_utf8_is_reported_once_and_the_old_schedule_kept() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &workflow("0 6 * * *", "UTC", "", "core.noop"));
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(
        dir.path(),
        store,
        utc(2026, 3, 1, 5, 0),
        Duration::from_secs(60),
    )
    .await;
    h.advance(utc(2026, 3, 1, 5, 0)).await;
    // The same workflow with one byte that is not UTF-8 in its second line.
    let mut bytes = workflow("0 6 * * *", "UTC", "", "core.noop").into_bytes();
    let second_line = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.insert(second_line + 2, 0xFF);
    std::fs::write(dir.path().join("wf.yaml"), &bytes).unwrap();
    h.advance(utc(2026, 3, 1, 5, 1)).await;
    let i = h
        .wait_for("the reload error", |e| {
            matches!(e.kind, EventKind::ReloadFailed { .. })
        })
        .await;
    let EventKind::ReloadFailed {
        errors,
        kept_previous,
        path,
    } = &h.seen[i].kind
    else {
        unreachable!()
    };
    assert!(kept_previous);
    assert!(path.ends_with("wf.yaml"), "{path:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("wf.yaml:2:3: not valid UTF-8 (byte 0xFF)")),
        "{errors:?}"
    );
    h.advance(utc(2026, 3, 1, 5, 10)).await;
    assert_eq!(h.count(|k| matches!(k, EventKind::ReloadFailed { .. })), 1);
    h.advance(utc(2026, 3, 1, 6, 0)).await;
    assert_eq!(h.fired().len(), 1, "the old schedule still fires");
    h.stop().await;
}
