use chrono::{DateTime, Utc};

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn started(execution: u32) -> NodeEvent {
    NodeEvent::AttemptStarted {
        execution,
        at: at("2024-05-01T06:00:00Z"),
    }
}

fn ended(outcome: AttemptOutcome) -> NodeEvent {
    NodeEvent::AttemptEnded {
        outcome,
        at: at("2024-05-01T06:00:01Z"),
        error: None,
    }
}

fn running(id: &str, execution: u32) -> NodeRecord {
    let mut record = NodeRecord::new(id);
    record.execution = execution;
    record.apply(NodeEvent::Dispatched).unwrap();
    record
}

/// A node record as flow wrote it when attempt outcomes were free strings.
const OLD_RECORD: &str = concat!(
    r#"{"node_id":"load","status":"interrupted","attempts":["#,
    r#"{"number":1,"execution":1,"started_at":"2024-05-01T06:00:00Z","finished_at":"2024-05-01T06:00:05Z","outcome":"timed_out","error":"timed out after 5s"},"#,
    r#"{"number":2,"execution":1,"started_at":"2024-05-01T06:00:06Z","finished_at":"2024-05-01T06:00:07Z","outcome":"failed","error":"boom"},"#,
    r#"{"number":3,"execution":2,"started_at":"2024-05-01T07:00:00Z","outcome":"running"},"#,
    r#"{"number":4,"execution":2,"started_at":"2024-05-01T07:00:01Z","finished_at":"2024-05-01T07:00:02Z","outcome":"succeeded"},"#,
    r#"{"number":5,"execution":3,"started_at":"2024-05-01T08:00:00Z","finished_at":"2024-05-01T08:00:01Z","outcome":"interrupted","error":"cancelled by shutdown"}],"#,
    r#""started_at":"2024-05-01T08:00:00Z","finished_at":"2024-05-01T08:00:01Z","duration_ms":1000,"#,
    r#""error":"cancelled by shutdown","rows_in":3,"rows_out":0,"fingerprint":"f1","execution":3}"#
);

#[test]
fn a_record_written_with_string_outcomes_decodes_and_writes_the_same_bytes() {
    let record: NodeRecord = serde_json::from_str(OLD_RECORD).unwrap();
    assert_eq!(record.status, NodeStatus::Interrupted);
    let outcomes: Vec<AttemptOutcome> = record.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::TimedOut,
            AttemptOutcome::Failed,
            AttemptOutcome::Running,
            AttemptOutcome::Succeeded,
            AttemptOutcome::Interrupted,
        ]
    );
    assert_eq!(serde_json::to_string(&record).unwrap(), OLD_RECORD);
}

#[test]
fn an_unknown_attempt_outcome_is_a_decoding_error_naming_the_value() {
    let text = OLD_RECORD.replace(r#""outcome":"failed""#, r#""outcome":"exploded""#);
    let err = serde_json::from_str::<NodeRecord>(&text).unwrap_err();
    assert!(err.to_string().contains("`exploded`"), "{err}");
}

#[test]
fn a_rerun_ends_attempts_a_dead_execution_left_running() {
    let mut record: NodeRecord = serde_json::from_str(OLD_RECORD).unwrap();
    record.warnings.push("old".into());
    record.apply(NodeEvent::Rerun).unwrap();
    assert_eq!(record.status, NodeStatus::Pending);
    assert_eq!(record.error, None);
    assert!(record.warnings.is_empty());
    let third = &record.attempts[2];
    assert_eq!(third.outcome, AttemptOutcome::Interrupted);
    assert_eq!(
        third.error.as_deref(),
        Some("the run stopped during this attempt")
    );
    // Attempts that had ended keep their outcome and error.
    assert_eq!(record.attempts[1].error.as_deref(), Some("boom"));
}

#[test]
fn attempts_are_numbered_and_the_node_succeeds_with_its_last_attempt() {
    let mut record = running("a", 1);
    record.apply(started(1)).unwrap();
    record.apply(ended(AttemptOutcome::Failed)).unwrap();
    assert_eq!(record.status, NodeStatus::Running);
    record.apply(started(1)).unwrap();
    record.apply(ended(AttemptOutcome::Succeeded)).unwrap();
    record.apply(NodeEvent::Succeeded).unwrap();
    assert_eq!(record.status, NodeStatus::Succeeded);
    let numbers: Vec<u32> = record.attempts.iter().map(|a| a.number).collect();
    assert_eq!(numbers, [1, 2]);
}

#[test]
fn a_node_failing_after_an_interrupted_attempt_of_this_execution_is_interrupted() {
    let mut record = running("a", 1);
    record.apply(started(1)).unwrap();
    record.apply(ended(AttemptOutcome::Interrupted)).unwrap();
    record
        .apply(NodeEvent::Failed {
            error: "cancelled by shutdown".into(),
        })
        .unwrap();
    assert_eq!(record.status, NodeStatus::Interrupted);

    // An interrupted attempt of an earlier execution does not make a new failure one.
    record.apply(NodeEvent::Rerun).unwrap();
    record.execution = 2;
    record.apply(NodeEvent::Dispatched).unwrap();
    record
        .apply(NodeEvent::Failed {
            error: "cannot load the output of `x`".into(),
        })
        .unwrap();
    assert_eq!(record.status, NodeStatus::Failed);
}

#[test]
fn an_abandoned_node_ends_its_running_attempt_the_same_way() {
    for (interrupted, status, outcome) in [
        (true, NodeStatus::Interrupted, AttemptOutcome::Interrupted),
        (false, NodeStatus::Failed, AttemptOutcome::Failed),
    ] {
        let mut record = running("a", 1);
        record.apply(started(1)).unwrap();
        record
            .apply(NodeEvent::Abandoned {
                interrupted,
                error: "gone".into(),
                at: at("2024-05-01T06:00:09Z"),
            })
            .unwrap();
        assert_eq!(record.status, status);
        let last = record.attempts.last().unwrap();
        assert_eq!(last.outcome, outcome);
        assert_eq!(last.error.as_deref(), Some("gone"));
        assert_eq!(last.finished_at, Some(at("2024-05-01T06:00:09Z")));
    }
}

#[test]
fn a_lost_checkpoint_fails_a_node_that_had_succeeded() {
    let mut record = running("a", 1);
    record.apply(started(1)).unwrap();
    record.apply(ended(AttemptOutcome::Succeeded)).unwrap();
    record.apply(NodeEvent::Succeeded).unwrap();
    record
        .apply(NodeEvent::CheckpointFailed {
            error: "disk full".into(),
        })
        .unwrap();
    assert_eq!(record.status, NodeStatus::Failed);
    assert_eq!(record.error.as_deref(), Some("disk full"));
}

#[test]
fn a_transition_the_state_does_not_allow_is_refused_and_changes_nothing() {
    let mut record = running("load", 1);
    record.apply(started(1)).unwrap();
    record.apply(ended(AttemptOutcome::Succeeded)).unwrap();
    record.apply(NodeEvent::Succeeded).unwrap();
    let before = serde_json::to_string(&record).unwrap();

    let err = record.apply(ended(AttemptOutcome::Failed)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node `load` is `succeeded`, so it cannot end an attempt as `failed`"
    );
    let err = record
        .apply(NodeEvent::Skipped { reason: "x".into() })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node `load` is `succeeded`, so it cannot be skipped"
    );
    assert_eq!(serde_json::to_string(&record).unwrap(), before);

    // Within a running node: no second attempt while one runs, no success after a failure.
    let mut record = running("b", 1);
    record.apply(started(1)).unwrap();
    assert!(record.apply(started(1)).is_err());
    assert!(record.apply(NodeEvent::Succeeded).is_err());
    record.apply(ended(AttemptOutcome::Failed)).unwrap();
    assert!(record.apply(NodeEvent::Succeeded).is_err());
    assert!(record.apply(ended(AttemptOutcome::Failed)).is_err());
    assert_eq!(record.attempts.len(), 1);
}
