//! The POS push under SIGKILL: every acknowledged batch is recorded durably before the next is
//! sent, so a resumed run sends again at most the one batch that was in flight at the kill, and
//! every batch arrives.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::fake_pos::{FakePos, Reply, Request};
use crate::shipped::{WF, out_dir, workspace, yaml_with_batches};
use crate::support::{Workspace, wait_until};

const TOKEN: &str = "pos-push-token";
const BATCH_SIZE: usize = 200;

/// `N` of an idempotency key `RUN/deploy/pos-batch-N`.
fn batch(r: &Request) -> usize {
    r.key
        .as_deref()
        .and_then(|k| k.rsplit_once("/pos-batch-"))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected idempotency key {:?}", r.key))
}

fn spawn_run(ws: &Workspace, url: &str) -> Child {
    ws.command(["run", WF, "--param", &format!("pos_url={url}")])
        .env("FLOW_POS_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn flow")
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL flow");
    child.wait().expect("wait for flow");
}

/// Resumes until the run succeeds and checks what the endpoint saw: every batch acknowledged,
/// none acknowledged twice except `may_repeat`, and a repeat carried the same body.
fn resume_and_check(ws: &Workspace, server: &FakePos, may_repeat: Option<usize>) {
    ws.flow()
        .args(["resume", "last"])
        .env("FLOW_POS_TOKEN", TOKEN)
        .run();
    assert_eq!(ws.statuses("last")["deploy"], "succeeded");
    let requests = server.requests();
    let mut acked: BTreeMap<usize, Vec<&Request>> = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| r.answered && r.reply == Reply::Status(200))
    {
        acked.entry(batch(r)).or_default().push(r);
    }
    let customers = std::fs::read_to_string(out_dir(ws).join("segments.csv"))
        .expect("segments.csv")
        .lines()
        .count()
        - 1;
    let total = customers.div_ceil(BATCH_SIZE);
    assert!(total >= 5, "{customers} customers");
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>(),
        "every batch is acknowledged"
    );
    for (n, copies) in &acked {
        if copies.len() > 1 {
            assert_eq!(
                Some(*n),
                may_repeat,
                "batch {n} was acknowledged {} times",
                copies.len()
            );
            assert!(
                copies
                    .iter()
                    .all(|c| c.body == copies[0].body && c.key == copies[0].key)
            );
        }
    }
}

#[test]
fn a_kill_while_a_batch_is_in_flight_resends_only_that_batch() {
    const K: usize = 3;
    let server = FakePos::start();
    // Batch K+1 is held unanswered: flow only sends it after recording batch K.
    server.set_rule(|r| {
        if batch(r) == K + 1 {
            Reply::Hold
        } else {
            Reply::Status(200)
        }
    });
    let ws = workspace(&yaml_with_batches(BATCH_SIZE));
    let child = spawn_run(&ws, &server.url);
    assert!(
        wait_until(Duration::from_secs(120), || server
            .requests()
            .iter()
            .any(|r| r.reply == Reply::Hold)),
        "batch {} never arrived",
        K + 1
    );
    kill(child);
    let before: Vec<usize> = server.requests().iter().map(batch).collect();
    assert_eq!(before, (1..=K + 1).collect::<Vec<_>>());

    server.set_rule(|_| Reply::Status(200));
    resume_and_check(&ws, &server, None);
    // The resume started at the batch in flight.
    let resent: Vec<usize> = server.requests()[K + 1..].iter().map(batch).collect();
    assert_eq!(resent.first(), Some(&(K + 1)), "{resent:?}");
}

#[test]
fn a_kill_just_after_an_acknowledgement_repeats_at_most_that_batch() {
    const K: usize = 2;
    let server = FakePos::start();
    // Batch K is acknowledged and the test kills flow at once, racing its ledger write; batch
    // K+1 is held so that the run cannot get further.
    server.set_rule(|r| {
        if batch(r) == K + 1 {
            Reply::Hold
        } else {
            Reply::Status(200)
        }
    });
    let ws = workspace(&yaml_with_batches(BATCH_SIZE));
    let child = spawn_run(&ws, &server.url);
    assert!(
        wait_until(Duration::from_secs(120), || server
            .requests()
            .iter()
            .any(|r| batch(r) == K && r.answered)),
        "batch {K} was never acknowledged"
    );
    kill(child);

    server.set_rule(|_| Reply::Status(200));
    resume_and_check(&ws, &server, Some(K));
}
