//! Removing old runs at start and after each run (`--keep-runs`, `--keep-for`).

use super::*;

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
        ..Default::default()
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
