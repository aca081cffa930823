//! Compaction: the space comes back, nothing is lost, and a kill at any step is recovered.

use super::*;
use crate::store::sled_store::copy_dir;
use crate::store::{
    NodeRecord, Removal, RunRecord, RunStatus, StateStore, Write, disk_usage, human_bytes,
};

/// A store a few short-lived processes wrote: each rewrote a large value (as deploy does with
/// its profile snapshot) and added a run with outputs; all runs but the last were removed.
fn used_store(dir: &Path) {
    for i in 0..8u32 {
        let store = SledStore::open(dir).unwrap();
        let id = format!("2026010{i}-000000-run{i}");
        let mut run = RunRecord::new_for_test(&id);
        run.status = RunStatus::Succeeded;
        let snapshot: Vec<u8> = (0..400_000u32).map(|b| (b % 251) as u8 ^ i as u8).collect();
        store
            .apply(vec![
                Write::Run(run),
                Write::Node {
                    run_id: id.clone(),
                    record: NodeRecord::new("mid"),
                    output: Some(vec![i as u8; 150_000]),
                },
                Write::Put {
                    namespace: "node-state/deploy".into(),
                    key: "profiles".into(),
                    value: snapshot,
                },
            ])
            .unwrap();
        store.flush().unwrap();
        if i > 0 {
            let previous = format!("2026010{}-000000-run{}", i - 1, i - 1);
            store
                .remove(&Removal {
                    run_ids: vec![previous],
                    keys: vec![],
                })
                .unwrap();
        }
    }
}

fn assert_live_data(dir: &Path) {
    let store = SledStore::open(dir).unwrap();
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, "20260107-000000-run7");
    assert_eq!(
        store.output(&runs[0].id, "mid").unwrap().unwrap(),
        vec![7u8; 150_000]
    );
    let snapshot = store.get("node-state/deploy", "profiles").unwrap().unwrap();
    assert_eq!(snapshot.len(), 400_000);
    assert_eq!(snapshot[1], 1 ^ 7);
}

#[test]
fn compaction_gives_back_what_sled_kept_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    used_store(dir.path());
    let db = dir.path().join("db");
    let before = disk_usage(&db);
    let compacted = SledStore::compact(dir.path()).unwrap();
    assert_eq!(compacted.before, before);
    assert_eq!(compacted.after, disk_usage(&db));
    // One live run and one snapshot remain: about a megabyte, not the history.
    assert!(
        compacted.after * 2 < compacted.before,
        "{} -> {}",
        human_bytes(compacted.before),
        human_bytes(compacted.after)
    );
    assert!(!dir.path().join(NEXT).exists() && !dir.path().join(OLD).exists());
    assert_live_data(dir.path());
    // The new database keeps working, and compacts again.
    SledStore::compact(dir.path()).unwrap();
    assert_live_data(dir.path());
}

#[test]
fn compaction_needs_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStore::open(dir.path()).unwrap();
    assert!(matches!(
        SledStore::compact(dir.path()),
        Err(StoreError::Locked { .. })
    ));
}

/// A store with the files a compaction killed at `step` leaves (the copy is a whole one).
fn killed_at(step: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    used_store(dir.path());
    let db = dir.path().join("db");
    let copy = dir.path().join("copy");
    copy_dir(&db, &copy).unwrap();
    match step {
        "copying" => {
            std::fs::rename(&copy, dir.path().join(format!("{SCRATCH_PREFIX}999"))).unwrap();
        }
        "before the swap" => std::fs::rename(&copy, dir.path().join(NEXT)).unwrap(),
        "between the renames" => {
            std::fs::rename(&copy, dir.path().join(NEXT)).unwrap();
            std::fs::rename(&db, dir.path().join(OLD)).unwrap();
        }
        "before removing the old database" => {
            std::fs::rename(&db, dir.path().join(OLD)).unwrap();
            std::fs::rename(&copy, &db).unwrap();
        }
        other => panic!("{other}"),
    }
    dir
}

#[test]
fn a_compaction_killed_at_any_step_is_finished_or_undone_on_the_next_open() {
    for step in [
        "copying",
        "before the swap",
        "between the renames",
        "before removing the old database",
    ] {
        let dir = killed_at(step);
        assert_live_data(dir.path());
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with("db.") && n != CLEAN_MARK && n != crate::store::high_water::FILE
            })
            .collect();
        assert!(left.is_empty(), "{step}: left {left:?}");
    }
}
