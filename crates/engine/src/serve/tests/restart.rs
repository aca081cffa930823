//! Restarts, reloads of changed workflow files, and runs a crash left unfinished.

use super::*;

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
