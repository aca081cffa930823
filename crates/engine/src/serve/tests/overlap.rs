//! Firings that come while the workflow's previous run is going: `overlap: skip` or `queue`.

use super::*;

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
