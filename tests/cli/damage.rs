//! Damaged state stores: bit flips, truncation and zero-filling of the database files, a deleted
//! database, a damaged output file. Each is either refused (exit 2, every file byte-for-byte as
//! it was) or read back intact (the same runs, statuses and outputs) — never silently older.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::support::{Output, Workspace};

/// Three nodes: `big` is kept in an output file, `mid` is large enough for a sled blob.
const WORKFLOW: &str = r#"
name: damage
nodes:
  - id: big
    kind: action
    type: core.shell
    with: { command: "sh record.sh && seq 1 60000" }
  - id: mid
    kind: action
    type: core.shell
    needs: [big]
    with: { command: "sh record.sh && seq 1 20000" }
  - id: small
    kind: action
    type: core.shell
    needs: [mid]
    with: { command: "sh record.sh && echo done" }
"#;

type Files = BTreeMap<PathBuf, Vec<u8>>;

/// A store with three finished runs, and its files.
fn finished_store() -> (Workspace, Files) {
    let ws = Workspace::with_workflow(WORKFLOW);
    for _ in 0..3 {
        ws.run().run();
    }
    let files = ws.snapshot(".flow");
    (ws, files)
}

/// Puts exactly `files` back as the store.
fn restore(ws: &Workspace, files: &Files) {
    let root = ws.state_dir();
    std::fs::remove_dir_all(&root).unwrap();
    for (path, bytes) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// What a user sees of the store: the runs with their statuses, and every node's output.
fn contents(ws: &Workspace) -> Result<String, Output> {
    let runs = ws.flow().args(["runs", "--json"]).any_exit().run();
    if runs.code != 0 {
        return Err(runs);
    }
    let mut text = runs.stdout.clone();
    for run in runs.json().as_array().unwrap() {
        let id = run["id"].as_str().unwrap();
        for node in ["big", "mid", "small"] {
            let out = ws
                .flow()
                .args(["runs", "output", id, node])
                .any_exit()
                .run();
            if out.code != 0 {
                return Err(out);
            }
            text.push_str(&out.stdout);
        }
    }
    Ok(text)
}

fn changed_files(before: &Files, after: &Files) -> Vec<PathBuf> {
    let mut changed: Vec<PathBuf> = before
        .iter()
        .filter(|(path, bytes)| after.get(*path) != Some(*bytes))
        .map(|(path, _)| path.clone())
        .collect();
    changed.extend(after.keys().filter(|p| !before.contains_key(*p)).cloned());
    changed
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Refused,
    Intact,
}

/// Applies `damage` to a pristine copy of the store; the store must then be refused with every
/// file untouched, or read back exactly as before.
fn trial(
    ws: &Workspace,
    pristine: &Files,
    expected: &str,
    what: &str,
    damage: impl FnOnce(),
) -> Outcome {
    restore(ws, pristine);
    damage();
    let damaged = ws.snapshot(".flow");
    match contents(ws) {
        Ok(text) => {
            assert!(
                text == expected,
                "{what}: the store opened but reads differently (silently rolled back?)"
            );
            ws.flow().args(["store", "check"]).run();
            Outcome::Intact
        }
        Err(out) => {
            assert_eq!(out.code, 2, "{what}: {out}");
            out.assert_stderr_contains(&ws.state_dir().display().to_string());
            out.assert_stderr_contains("flow has not changed");
            let check = ws.flow().args(["store", "check"]).expect_exit(1).run();
            check.assert_stdout_contains("damaged: ");
            let changed = changed_files(&damaged, &ws.snapshot(".flow"));
            assert!(
                changed.is_empty(),
                "{what}: refusing and checking the store changed {changed:?}\n{out}\n{check}"
            );
            Outcome::Refused
        }
    }
}

fn flip_bit(path: &std::path::Path, offset: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bit_flips_in_the_database_file_are_refused_untouched_or_read_intact() {
    let (ws, pristine) = finished_store();
    let expected = contents(&ws).expect("the store reads");
    let data = PathBuf::from("db/db");
    let len = pristine[&data].len();
    let mut outcomes = Vec::new();
    for i in 0..16 {
        let offset = (len * i / 16 + 37 * i + 11) % len;
        let path = ws.state_dir().join(&data);
        let what = format!("bit flip at byte {offset} of {len} in db/db");
        outcomes.push(trial(&ws, &pristine, &expected, &what, || {
            flip_bit(&path, offset, 0x10)
        }));
    }
    eprintln!(
        "16 bit flips: {} refused, {} read intact",
        outcomes.iter().filter(|o| **o == Outcome::Refused).count(),
        outcomes.iter().filter(|o| **o == Outcome::Intact).count()
    );
}

#[test]
fn a_damaged_blob_file_is_refused_untouched_or_read_intact() {
    let (ws, pristine) = finished_store();
    let expected = contents(&ws).expect("the store reads");
    let blobs: Vec<&PathBuf> = pristine
        .keys()
        .filter(|p| p.starts_with("db/blobs"))
        .collect();
    assert!(
        !blobs.is_empty(),
        "the store has blob files: {:?}",
        pristine.keys()
    );
    for blob in blobs {
        let path = ws.state_dir().join(blob);
        let len = pristine[blob].len();
        for how in ["truncated", "zero-filled", "bit-flipped"] {
            let what = format!("{} {how}", blob.display());
            let outcome = trial(&ws, &pristine, &expected, &what, || match how {
                "truncated" => {
                    std::fs::write(&path, &pristine[blob][..len / 2]).unwrap();
                }
                "zero-filled" => std::fs::write(&path, vec![0u8; len]).unwrap(),
                _ => flip_bit(&path, len / 2, 0x01),
            });
            eprintln!("{what}: {outcome:?}");
        }
    }
}

#[test]
fn a_deleted_database_is_refused_not_replaced_by_an_empty_store() {
    let (ws, _) = finished_store();
    std::fs::remove_dir_all(ws.state_dir().join("db")).unwrap();
    let before = ws.snapshot(".flow");
    for args in [vec!["runs"], vec!["run", crate::support::WORKFLOW]] {
        let out = ws.flow().args(args).expect_exit(2).run();
        out.assert_stderr_contains("has lost its database");
        out.assert_stderr_contains("flow has not created an empty one");
        assert_eq!(
            changed_files(&before, &ws.snapshot(".flow")),
            Vec::<PathBuf>::new()
        );
    }
    ws.flow()
        .args(["store", "check"])
        .expect_exit(1)
        .run()
        .assert_stdout_contains("has lost its database");
    assert_eq!(
        changed_files(&before, &ws.snapshot(".flow")),
        Vec::<PathBuf>::new()
    );
    assert!(!ws.state_dir().join("db").exists());
    assert_eq!(ws.counts()["big"], 3, "nothing ran against the lost store");
}

#[test]
fn a_flipped_bit_in_an_output_file_is_an_error_naming_the_file() {
    let ws = Workspace::with_workflow(WORKFLOW);
    let run = ws.run().run().run_id();
    let file = ws.state_dir().join(format!("outputs/{run}/big.out"));
    let good = ws.flow().args(["runs", "output", &run, "big"]).run().stdout;
    let len = std::fs::metadata(&file)
        .expect("big is kept in a file")
        .len() as usize;
    for offset in [0, len / 3, len - 1] {
        let pristine = std::fs::read(&file).unwrap();
        flip_bit(&file, offset, 0x04);
        let out = ws
            .flow()
            .args(["runs", "output", &run, "big"])
            .expect_exit(2)
            .run();
        out.assert_stderr_contains(&format!("{}", file.display()));
        out.assert_stderr_contains("is damaged");
        assert!(out.stdout.is_empty(), "no partial output\n{out}");
        let check = ws.flow().args(["store", "check"]).expect_exit(1).run();
        check.assert_stdout_contains(&format!("{} is damaged", file.display()));
        std::fs::write(&file, pristine).unwrap();
    }
    let again = ws.flow().args(["runs", "output", &run, "big"]).run().stdout;
    assert_eq!(again, good);
}

#[test]
fn store_check_passes_a_sound_store_and_changes_nothing() {
    let (ws, before) = finished_store();
    let out = ws.flow().args(["store", "check"]).run();
    out.assert_stdout_contains("3 runs, 9 node records, 9 outputs (3 in files)");
    out.assert_stdout_contains("is sound");
    assert_eq!(
        changed_files(&before, &ws.snapshot(".flow")),
        Vec::<PathBuf>::new()
    );
    // No store at all is not a damaged one.
    ws.flow()
        .args(["store", "check", "--state", "nowhere"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("no state store");
}

/// The rollback sled does on damage, made by hand: an older copy of the database put back
/// under a store that has saved more since.
#[test]
fn an_older_database_put_back_is_refused_untouched() {
    let ws = Workspace::with_workflow(WORKFLOW);
    ws.run().run();
    let old = ws.snapshot(".flow/db");
    ws.run().run();
    let db = ws.state_dir().join("db");
    std::fs::remove_dir_all(&db).unwrap();
    for (path, bytes) in &old {
        let path = db.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let before = ws.snapshot(".flow");
    for args in [
        vec!["runs"],
        vec!["resume", "last"],
        vec!["run", crate::support::WORKFLOW],
    ] {
        let out = ws.flow().args(args).expect_exit(2).run();
        out.assert_stderr_contains("has lost saved work");
        out.assert_stderr_contains("flow has not changed any file");
        assert_eq!(
            changed_files(&before, &ws.snapshot(".flow")),
            Vec::<PathBuf>::new()
        );
    }
    ws.flow()
        .args(["store", "check"])
        .expect_exit(1)
        .run()
        .assert_stdout_contains("has lost saved work");
    assert_eq!(
        ws.counts()["big"],
        2,
        "nothing ran against the older database"
    );
}
