//! Runs started, resumed and cancelled through a [`ServeHandle`] (the HTTP API's way in).

use super::*;
use crate::serve::control::{ControlError, StartRequest};

const YEARLY: &str = "0 0 1 1 *";

fn request(delivery: Option<&str>) -> StartRequest {
    StartRequest {
        workflow: "job".into(),
        params: Default::default(),
        fired_by: "api".into(),
        trigger: None,
        payload: Some(serde_json::json!({ "body": { "order": 7 } })),
        delivery: delivery.map(str::to_string),
    }
}

async fn run_status(h: &Harness, run_id: &str) -> RunStatus {
    h.store.run(run_id).unwrap().expect("recorded").status
}

async fn wait_status(h: &mut Harness, run_id: &str, want: RunStatus) {
    for _ in 0..400 {
        if run_status(h, run_id).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "run {run_id} never became {want:?}: {:?}; events {:#?}",
        run_status(h, run_id).await,
        h.seen
    );
}

#[tokio::test]
async fn a_started_run_is_recorded_then_runs_and_a_second_one_queues_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &workflow(YEARLY, "UTC", "", "test.gate"));
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(dir.path(), store, utc(2026, 3, 1, 5, 0), NEVER).await;
    let catalog = h.handle.catalog();
    assert_eq!(catalog.workflows.len(), 1);
    assert_eq!(catalog.workflows[0].key, "job");

    let first = h.handle.start(request(None)).await.unwrap();
    assert!(!first.queued && !first.duplicate);
    wait_status(&mut h, &first.run_id, RunStatus::Running).await;
    let record = h.store.run(&first.run_id).unwrap().unwrap();
    assert_eq!(record.trigger.fired_by, "api");
    assert_eq!(record.trigger.payload.unwrap()["body"]["order"], 7);

    let second = h.handle.start(request(None)).await.unwrap();
    assert!(second.queued);
    assert_eq!(run_status(&h, &second.run_id).await, RunStatus::Queued);
    assert_eq!(h.handle.catalog().workflows[0].queued, 1);

    h.gate.add_permits(2);
    wait_status(&mut h, &first.run_id, RunStatus::Succeeded).await;
    wait_status(&mut h, &second.run_id, RunStatus::Succeeded).await;
    h.stop().await;
}

#[tokio::test]
async fn a_repeated_delivery_starts_nothing_and_gets_the_first_run() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &workflow(YEARLY, "UTC", "", "core.noop"));
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(dir.path(), store, utc(2026, 3, 1, 5, 0), NEVER).await;
    let first = h.handle.start(request(Some("d-1"))).await.unwrap();
    let again = h.handle.start(request(Some("d-1"))).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.run_id, first.run_id);
    let other = h.handle.start(request(Some("d-2"))).await.unwrap();
    assert_ne!(other.run_id, first.run_id);
    wait_status(&mut h, &other.run_id, RunStatus::Succeeded).await;
    assert_eq!(h.store.runs().unwrap().len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn cancelling_stops_a_running_run_and_a_queued_one_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &workflow(YEARLY, "UTC", "", "test.gate"));
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(dir.path(), store, utc(2026, 3, 1, 5, 0), NEVER).await;
    let running = h.handle.start(request(None)).await.unwrap();
    wait_status(&mut h, &running.run_id, RunStatus::Running).await;
    let queued = h.handle.start(request(None)).await.unwrap();
    assert!(queued.queued);

    h.handle.cancel(&queued.run_id).await.unwrap();
    let record = h.store.run(&queued.run_id).unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);
    assert!(record.error.unwrap().contains("before it started"));

    h.handle.cancel(&running.run_id).await.unwrap();
    wait_status(&mut h, &running.run_id, RunStatus::Interrupted).await;
    // The record says why once the run has ended.
    for _ in 0..200 {
        if h.store
            .run(&running.run_id)
            .unwrap()
            .unwrap()
            .error
            .as_deref()
            == Some(super::super::commands::CANCELLED)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        h.store
            .run(&running.run_id)
            .unwrap()
            .unwrap()
            .error
            .as_deref(),
        Some(super::super::commands::CANCELLED)
    );
    let err = h.handle.cancel(&running.run_id).await.unwrap_err();
    assert!(
        matches!(&err, ControlError::Conflict(m) if m.contains("is not running (it is interrupted)")),
        "{err}"
    );

    // Resume it: the gate lets it through this time.
    h.gate.add_permits(1);
    let resumed = h.handle.resume(&running.run_id, None).await.unwrap();
    assert_eq!(resumed.run_id, running.run_id);
    wait_status(&mut h, &running.run_id, RunStatus::Succeeded).await;
    let err = h.handle.resume(&running.run_id, None).await.unwrap_err();
    assert!(
        matches!(&err, ControlError::Invalid(m) if m.contains("nothing to resume")),
        "{err}"
    );
    let err = h
        .handle
        .resume(&running.run_id, Some("nope".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::Invalid(_)), "{err}");
    h.gate.add_permits(1);
    h.handle
        .resume(&running.run_id, Some("work".into()))
        .await
        .unwrap();
    h.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &workflow(YEARLY, "UTC", "", "core.noop"));
    let store = Arc::new(MemoryStore::default());
    let h = Harness::started(dir.path(), store, utc(2026, 3, 1, 5, 0), NEVER).await;
    let mut unknown = request(None);
    unknown.workflow = "other".into();
    assert!(matches!(
        h.handle.start(unknown).await,
        Err(ControlError::UnknownWorkflow(_))
    ));
    let mut bad_param = request(None);
    bad_param
        .params
        .insert("limit".into(), serde_json::json!(3));
    let err = h.handle.start(bad_param).await.unwrap_err();
    assert!(err.to_string().contains("unknown param `limit`"), "{err}");
    let mut bad_trigger = request(None);
    bad_trigger.trigger = Some("hook".into());
    let err = h.handle.start(bad_trigger).await.unwrap_err();
    assert!(err.to_string().contains("unknown trigger `hook`"), "{err}");
    assert!(matches!(
        h.handle.resume("20990101-000000-000-0001", None).await,
        Err(ControlError::UnknownRun(_))
    ));
    assert!(h.store.runs().unwrap().is_empty(), "nothing was recorded");
    let handle = h.handle.clone();
    h.stop().await;
    assert!(matches!(
        handle.start(request(None)).await,
        Err(ControlError::Stopping)
    ));
}

#[tokio::test]
async fn runs_accepted_but_not_started_start_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &workflow(YEARLY, "UTC", "", "test.gate"));
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(dir.path(), store.clone(), utc(2026, 3, 1, 5, 0), NEVER).await;
    let running = h.handle.start(request(None)).await.unwrap();
    wait_status(&mut h, &running.run_id, RunStatus::Running).await;
    let queued = h.handle.start(request(None)).await.unwrap();
    let _ = h.stop.send(Shutdown::Drain);
    h.wait_for("the server to stop firing", |e| {
        matches!(e.kind, EventKind::Stopping { .. })
    })
    .await;
    h.gate.add_permits(1);
    h.stop().await;
    assert_eq!(
        store.run(&queued.run_id).unwrap().unwrap().status,
        RunStatus::Queued
    );

    let mut h = Harness::started(dir.path(), store, utc(2026, 3, 1, 6, 0), NEVER).await;
    h.gate.add_permits(1);
    wait_status(&mut h, &queued.run_id, RunStatus::Succeeded).await;
    h.stop().await;
}
