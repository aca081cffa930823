//! POS deploy: fails midway, resume, each batch exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value as Json;

use super::{WF, node, profiles, workspace};
use crate::fake_pos::{FakePos, Reply};
use crate::shipped::{replace_once, shipped_yaml};
use crate::support::Workspace;

/// A POS endpoint whose `fail_nth` distinct idempotency key gets 500 until `healthy` is set;
/// other methods or paths get 404 and a request without a key 400.
fn failing_pos(fail_nth: usize) -> (FakePos, Arc<AtomicBool>) {
    let server = FakePos::start();
    let healthy = Arc::new(AtomicBool::new(false));
    let mut keys: Vec<String> = Vec::new();
    let heal = healthy.clone();
    server.set_rule(move |r| {
        if r.method != "POST" || r.path != "/updates" {
            return Reply::Status(404);
        }
        let Some(key) = r.key.as_deref() else {
            return Reply::Status(400);
        };
        let nth = match keys.iter().position(|k| k == key) {
            Some(i) => i + 1,
            None => {
                keys.push(key.to_string());
                keys.len()
            }
        };
        if nth == fail_nth && !heal.load(Ordering::SeqCst) {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    });
    (server, healthy)
}

/// `N` of an idempotency key `RUN/deploy/pos-batch-N` of run `run`.
fn batch_of(run: &str, key: &str) -> usize {
    key.strip_prefix(&format!("{run}/deploy/pos-batch-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected idempotency key {key:?} (run {run})"))
}

#[test]
fn pos_deploy_fails_midway_and_resume_sends_each_batch_exactly_once() {
    const TOKEN: &str = "test-pos-token-5f3a";
    const BATCH_SIZE: usize = 500;
    let (server, healthy) = failing_pos(3);
    let yaml = replace_once(
        &shipped_yaml(),
        "      pos_token_env: FLOW_POS_TOKEN\n",
        &format!(
            "      pos_token_env: FLOW_POS_TOKEN\n      batch_size: {BATCH_SIZE}\n      \
             pos_retries: 0\n      pos_timeout: 10s\n"
        ),
    );
    let ws = workspace(&yaml);

    // The third batch fails: the run fails at deploy, after the files were written.
    let first = ws
        .flow()
        .args(["run", WF])
        .param("pos_url", &server.url)
        .env("FLOW_POS_TOKEN", TOKEN)
        .expect_exit(1)
        .run();
    let id = first.run_id();
    let statuses = ws.statuses(&id);
    assert_eq!(statuses["deploy"], "failed", "{statuses:?}\n{first}");
    assert!(
        statuses
            .iter()
            .all(|(n, s)| n == "deploy" || s == "succeeded"),
        "{statuses:?}"
    );
    let dir = out_dir_of_failed(&ws);
    let profiles = profiles(&dir);
    let n_batches = profiles.len().div_ceil(BATCH_SIZE);
    assert!(n_batches >= 4, "{} customers", profiles.len());
    let show = ws.show(&id);
    let error = node(&show, "deploy")["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("batch 3 of {n_batches} failed")),
        "deploy error: {error:?}"
    );

    let before = server.requests();
    let keys_before: Vec<(usize, u16)> = before
        .iter()
        .map(|r| (batch_of(&id, r.key.as_deref().expect("key")), r.status()))
        .collect();
    assert_eq!(keys_before, [(1, 200), (2, 200), (3, 500)], "first run");

    // Healthy again: the resume runs only deploy and sends the batches not acknowledged yet.
    healthy.store(true, Ordering::SeqCst);
    let resumed = ws
        .flow()
        .args(["resume", "last"])
        .env("FLOW_POS_TOKEN", TOKEN)
        .run();
    assert_eq!(
        resumed
            .plan()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["deploy"],
        "{resumed}"
    );
    assert_eq!(ws.statuses(&id)["deploy"], "succeeded");

    let all = server.requests();
    let after = &all[before.len()..];
    let acked_before: BTreeSet<usize> = keys_before
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(n, _)| *n)
        .collect();
    for r in after {
        let n = batch_of(&id, r.key.as_deref().expect("key"));
        assert!(
            !acked_before.contains(&n),
            "batch {n} was sent again after being acknowledged"
        );
    }
    assert_eq!(
        after
            .iter()
            .map(|r| batch_of(&id, r.key.as_deref().unwrap()))
            .collect::<Vec<_>>(),
        (3..=n_batches).collect::<Vec<_>>(),
        "batches sent by the resumed run"
    );

    // Overall: every batch 1..=N acknowledged exactly once, with the token, and together they
    // carry every profile exactly once with its segment.
    let mut acked: BTreeMap<usize, usize> = BTreeMap::new();
    let mut delivered: BTreeMap<String, String> = BTreeMap::new();
    for r in &all {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/updates"));
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "Authorization of {:?}",
            r.key
        );
        if r.status() != 200 {
            continue;
        }
        let n = batch_of(&id, r.key.as_deref().unwrap());
        *acked.entry(n).or_insert(0) += 1;
        let body: Json = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("batch {n} is not JSON ({e})"));
        assert_eq!(body["run_id"], id.as_str(), "batch {n}");
        assert_eq!(body["batch"].as_u64(), Some(n as u64), "batch {n}");
        assert_eq!(
            body["batches"].as_u64(),
            Some(n_batches as u64),
            "batch {n}"
        );
        let batch = body["customers"].as_array().expect("customers");
        assert!(batch.len() <= BATCH_SIZE, "batch {n}: {}", batch.len());
        for c in batch {
            let cid = c["customer_id"].as_str().expect("customer_id").to_string();
            let segment = c["segment"].as_str().expect("segment").to_string();
            assert!(
                delivered.insert(cid.clone(), segment).is_none(),
                "{cid} delivered twice"
            );
        }
    }
    assert_eq!(
        acked,
        (1..=n_batches).map(|n| (n, 1)).collect::<BTreeMap<_, _>>(),
        "acknowledgements per batch"
    );
    let expected: BTreeMap<String, String> = profiles
        .iter()
        .map(|(id, p)| (id.clone(), p["segment"].clone()))
        .collect();
    assert_eq!(delivered, expected, "profiles delivered to the POS");

    // The deploy's own account: the resumed attempt sent the rest, skipping what was acked.
    let show = ws.show(&id);
    let meta = &node(&show, "deploy")["meta"];
    assert_eq!(
        meta["pos_batches"].as_u64(),
        Some(n_batches as u64),
        "{meta:#}"
    );
    assert_eq!(
        meta["pos_batches_already_sent"].as_u64(),
        Some(2),
        "{meta:#}"
    );
    assert_eq!(
        meta["pos_batches_sent"].as_u64(),
        Some(n_batches as u64 - 2),
        "{meta:#}"
    );
}

/// The single `out/<date>` directory (a failed deploy has no metadata to name it).
fn out_dir_of_failed(ws: &Workspace) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(ws.path("out"))
        .expect("out/ was written before the POS update")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}
