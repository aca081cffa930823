//! The state store: a store in use by another process, and stores that cannot be opened. Flow
//! must say so clearly (naming the store, exit 2), never panic, and never change the files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Rng, WORKFLOW, Workspace, random_bytes, wait_until};

const SLOW: &str = r#"
name: slow
nodes:
  - id: slow
    kind: action
    type: core.shell
    with: { command: "sh record.sh && touch started && sleep 30" }
"#;

const QUICK: &str = r#"
name: quick
nodes:
  - id: quick
    kind: action
    type: core.shell
    with: { command: "sh record.sh && echo quick" }
"#;

fn assert_locked_message(out: &crate::support::Output, ws: &Workspace) {
    out.assert_stderr_contains(&ws.state_dir().display().to_string());
    out.assert_stderr_contains("is in use by another flow process");
}

#[test]
fn a_store_in_use_gives_a_clear_error_naming_it() {
    let ws = Workspace::with_workflow(SLOW);
    ws.write("quick.yaml", QUICK);
    let mut holder = ws
        .command(["run", WORKFLOW])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the long run");
    assert!(
        wait_until(Duration::from_secs(10), || ws.exists("started")),
        "the long run never started"
    );

    let out = ws.flow().args(["runs"]).expect_exit(2).run();
    assert_locked_message(&out, &ws);
    assert_locked_message(
        &ws.flow()
            .args(["runs", "show", "last", "--json"])
            .expect_exit(2)
            .run(),
        &ws,
    );
    assert_locked_message(&ws.resume("last").expect_exit(2).run(), &ws);
    assert_locked_message(
        &ws.flow().args(["run", "quick.yaml"]).expect_exit(2).run(),
        &ws,
    );
    assert!(
        ws.log().iter().all(|e| e.node != "quick"),
        "nothing may run against a locked store"
    );

    // The holder dies without cleaning up: the lock goes with it, and its run shows as
    // interrupted.
    holder.kill().expect("kill");
    holder.wait().expect("wait");
    let runs = ws.flow().args(["runs", "--json"]).run().json();
    assert_eq!(runs[0]["status"], "interrupted", "{runs:#}");
    ws.flow().args(["run", "quick.yaml"]).run();
}

fn assert_unreadable(out: &crate::support::Output, ws: &Workspace) {
    out.assert_stderr_contains(&ws.state_dir().display().to_string());
    out.assert_stderr_contains("cannot be opened");
}

/// Every file of `before` is still there with the same bytes, and no file was added to the
/// database directory (a lock file or a mark beside it is fine).
fn assert_files_unchanged(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    command: &str,
) {
    let changed: Vec<&PathBuf> = before
        .iter()
        .filter(|(path, bytes)| after.get(*path) != Some(*bytes))
        .map(|(path, _)| path)
        .collect();
    let added: Vec<&PathBuf> = after
        .keys()
        .filter(|path| !before.contains_key(*path) && path.starts_with("db"))
        .collect();
    assert!(
        changed.is_empty() && added.is_empty(),
        "`{command}` changed the store's files: changed or removed {changed:?}, added {added:?}"
    );
}

/// Every command that opens the store refuses it, and no file of it changes.
fn assert_refused_untouched(ws: &Workspace) {
    let before = ws.snapshot(".flow");
    assert!(!before.is_empty());
    for args in [
        vec!["runs"],
        vec!["runs", "--json"],
        vec!["runs", "show", "last"],
        vec!["resume", "last"],
        vec!["run", WORKFLOW],
    ] {
        let out = ws.flow().args(args).expect_exit(2).run();
        assert_unreadable(&out, ws);
        assert_files_unchanged(&before, &ws.snapshot(".flow"), &out.command);
    }
}

#[test]
fn random_bytes_over_the_database_file_are_refused_and_left_alone() {
    let ws = Workspace::with_workflow(QUICK);
    ws.run().run();
    let db = ws.path(".flow/db/db");
    let len = std::fs::metadata(&db).expect("a sled database file").len() as usize;
    assert!(len > 0);
    std::fs::write(&db, random_bytes(&mut Rng::new(7), len)).unwrap();
    assert_refused_untouched(&ws);
    assert_eq!(
        ws.counts()["quick"],
        1,
        "nothing ran against the damaged store"
    );
}

#[test]
fn a_garbage_store_directory_is_refused_and_left_alone() {
    let ws = Workspace::with_workflow(QUICK);
    let mut rng = Rng::new(11);
    ws.write(".flow/db/conf", random_bytes(&mut rng, 64));
    ws.write(".flow/db/db", random_bytes(&mut rng, 4096));
    assert_refused_untouched(&ws);
    assert!(ws.log().is_empty());
}

#[test]
fn a_truncated_database_file_is_refused_and_left_alone() {
    let ws = Workspace::with_workflow(QUICK);
    ws.run().run();
    let db = ws.path(".flow/db/db");
    let bytes = std::fs::read(&db).unwrap();
    // Keep the first bytes (a valid segment header) and replace the rest with garbage.
    let mut damaged = bytes[..64.min(bytes.len())].to_vec();
    damaged.extend(random_bytes(
        &mut Rng::new(3),
        bytes.len().saturating_sub(64),
    ));
    std::fs::write(&db, damaged).unwrap();
    let before = ws.snapshot(".flow");
    let out = ws.flow().args(["runs", "--json"]).any_exit().run();
    if out.code == 0 {
        // sled may recover a prefix of the log; then the run must still be listed intact.
        let runs = out.json();
        assert_eq!(
            runs.as_array().map(Vec::len),
            Some(1),
            "a damaged store silently lost its run\n{out}"
        );
    } else {
        assert_eq!(out.code, 2, "{out}");
        assert_unreadable(&out, &ws);
        assert_files_unchanged(&before, &ws.snapshot(".flow"), &out.command);
    }
}

#[test]
fn a_store_written_by_a_newer_flow_is_refused() {
    let ws = Workspace::with_workflow(QUICK);
    ws.run().run();
    {
        let db = sled::open(ws.path(".flow/db")).expect("open with sled");
        db.insert("meta/format", "99").unwrap();
        db.flush().unwrap();
    }
    let out = ws.flow().args(["runs"]).expect_exit(2).run();
    out.assert_stderr_contains("was written by a newer flow (format 99");
    out.assert_stderr_contains(&ws.state_dir().display().to_string());
    ws.run().expect_exit(2).run();
    let db = sled::open(ws.path(".flow/db")).expect("open with sled");
    assert_eq!(
        db.get("meta/format").unwrap().as_deref(),
        Some(&b"99"[..]),
        "the marker was changed"
    );
    assert_eq!(db.scan_prefix("run/").count(), 1, "the run was lost");
}

#[test]
fn a_sled_database_that_is_not_a_flow_store_is_refused() {
    let ws = Workspace::with_workflow(QUICK);
    {
        let db = sled::open(ws.path(".flow/db")).expect("create with sled");
        db.insert("someone/else", "data").unwrap();
        db.flush().unwrap();
    }
    let out = ws.flow().args(["runs"]).expect_exit(2).run();
    out.assert_stderr_contains("not a flow state store");
    let db = sled::open(ws.path(".flow/db")).expect("open with sled");
    assert_eq!(
        db.len(),
        1,
        "flow must not write into a store that is not its own"
    );
}

#[test]
fn sigkill_while_the_store_is_being_created_leaves_a_usable_store() {
    // Kill `flow run` at 0, 1, 2, ... ms: early kills land before, during and after the store
    // is created. Whatever was left must open as a store (or not exist yet).
    let mut created = 0;
    for delay_ms in 0..30u64 {
        let ws = Workspace::with_workflow(QUICK);
        let mut child = ws
            .command(["run", WORKFLOW])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn flow run");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().expect("wait");
        if ws.state_dir().exists() {
            created += 1;
        }
        let out = ws.flow().args(["runs", "--json"]).any_exit().run();
        assert_eq!(
            out.code, 0,
            "killed after {delay_ms}ms: the store is unusable\n{out}"
        );
        ws.run().run();
    }
    assert!(
        created > 0,
        "no kill landed after the store directory was created"
    );
}

#[test]
fn an_unfinished_sled_snapshot_left_by_a_kill_does_not_make_the_store_unusable() {
    // sled writes a snapshot to `snap.N.generating` and renames it when complete; a process
    // killed in between leaves a partial file behind (what a SIGKILL at exit can do).
    let ws = Workspace::with_workflow(QUICK);
    let id = ws.run().run().run_id();
    ws.write(
        ".flow/db/snap.FFFFFFFFFFFFFFF0.generating",
        random_bytes(&mut Rng::new(5), 7),
    );
    let runs = ws.flow().args(["runs", "--json"]).run().json();
    assert_eq!(runs[0]["id"], id.as_str(), "{runs:#}");
    ws.run().run();
    assert_eq!(ws.counts()["quick"], 2);
}
