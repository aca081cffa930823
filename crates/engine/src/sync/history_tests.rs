use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde_json::json;

use super::*;
use crate::sync::{SyncError, status};

/// Order lines: (order, product, amount).
fn lines(rows: &[(&str, &str, f64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Utf8, false),
        Field::new("product_id", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap()
}

/// The table as sorted (order, product, amount) rows.
fn rows(batch: &RecordBatch) -> Vec<(String, String, f64)> {
    let o = batch.column(0).as_string::<i32>();
    let p = batch.column(1).as_string::<i32>();
    let a = batch.column(2).as_primitive::<Float64Type>();
    let mut out: Vec<_> = (0..batch.num_rows())
        .map(|i| (o.value(i).to_string(), p.value(i).to_string(), a.value(i)))
        .collect();
    out.sort_by(|x, y| x.partial_cmp(y).unwrap());
    out
}

fn owned(rows: &[(&str, &str, f64)]) -> Vec<(String, String, f64)> {
    let mut v: Vec<_> = rows
        .iter()
        .map(|r| (r.0.to_string(), r.1.to_string(), r.2))
        .collect();
    v.sort_by(|x, y| x.partial_cmp(y).unwrap());
    v
}

#[test]
fn a_changed_order_replaces_all_its_lines_and_a_removed_one_goes() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::open(dir.path()).unwrap();
    assert!(h.needs_full_load());
    let mut c = h.begin(false);
    c.upsert(
        "lines",
        "order_id",
        lines(&[
            ("o1", "a", 1.0),
            ("o1", "b", 2.0),
            ("o2", "a", 3.0),
            ("o3", "c", 4.0),
        ]),
    )
    .unwrap();
    let merged = c.commit(json!({"watermark": "t1"}), json!({})).unwrap();
    assert_eq!(merged["lines"].num_rows(), 4);
    assert_eq!(h.cursor(), Some(&json!({"watermark": "t1"})));

    // Day 2: o1 lost a line, o2 was cancelled, o4 is new.
    let mut c = h.begin(false);
    c.upsert(
        "lines",
        "order_id",
        lines(&[("o1", "a", 1.0), ("o4", "d", 5.0)]),
    )
    .unwrap();
    c.delete("lines", "order_id", ["o2".to_string()]).unwrap();
    let merged = c.commit(json!({"watermark": "t2"}), json!({})).unwrap();
    let want = owned(&[("o1", "a", 1.0), ("o3", "c", 4.0), ("o4", "d", 5.0)]);
    assert_eq!(rows(&merged["lines"]), want);
    drop(h);

    // The same after reopening, with the status counting orders.
    let h = History::open(dir.path()).unwrap();
    assert_eq!(rows(&h.table("lines").unwrap().unwrap()), want);
    let status = h.status();
    assert_eq!(status.tables["lines"].rows, 3);
    assert_eq!(status.tables["lines"].keys, 3);
    assert_eq!(status.syncs.len(), 2);
    assert_eq!(status.last().unwrap().deleted["lines"], 1);
    assert_eq!(status.last().unwrap().upserted["lines"], 2);
}

#[test]
fn within_a_commit_the_later_version_of_an_order_wins() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::open(dir.path()).unwrap();
    let mut c = h.begin(false);
    c.upsert(
        "lines",
        "order_id",
        lines(&[("o1", "a", 1.0), ("o1", "b", 1.0)]),
    )
    .unwrap();
    c.upsert("lines", "order_id", lines(&[("o2", "a", 2.0)]))
        .unwrap();
    // o1 fetched again on a later page after it changed: one line now.
    c.upsert("lines", "order_id", lines(&[("o1", "c", 9.0)]))
        .unwrap();
    // o2 deleted, then seen again: present.
    c.delete("lines", "order_id", ["o2".to_string()]).unwrap();
    c.upsert("lines", "order_id", lines(&[("o2", "z", 7.0)]))
        .unwrap();
    let merged = c.commit(json!(1), json!({})).unwrap();
    assert_eq!(
        rows(&merged["lines"]),
        owned(&[("o1", "c", 9.0), ("o2", "z", 7.0)])
    );
}

#[test]
fn a_commit_cut_short_leaves_the_old_history_and_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::open(dir.path()).unwrap();
    let mut c = h.begin(false);
    c.upsert("lines", "order_id", lines(&[("o1", "a", 1.0)]))
        .unwrap();
    c.commit(json!("t1"), json!({})).unwrap();
    drop(h);
    // What a crash between the segment write and the manifest rename leaves behind.
    std::fs::write(dir.path().join("seg-00000002-lines.arrow"), b"partial").unwrap();
    std::fs::write(dir.path().join("manifest.json.tmp"), b"{\"format\"").unwrap();
    let h = History::open(dir.path()).unwrap();
    assert_eq!(h.cursor(), Some(&json!("t1")));
    assert_eq!(
        rows(&h.table("lines").unwrap().unwrap()),
        owned(&[("o1", "a", 1.0)])
    );
    assert!(!dir.path().join("seg-00000002-lines.arrow").exists());
    assert!(!dir.path().join("manifest.json.tmp").exists());
}

#[test]
fn one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _h = History::open(dir.path()).unwrap();
    let err = History::open(dir.path()).unwrap_err();
    assert!(matches!(err, SyncError::Busy { .. }), "{err}");
    assert!(matches!(request_reset(dir.path()), Ok(false)));
}

#[test]
fn a_reset_drops_the_cursor_and_the_next_sync_replaces_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::open(dir.path()).unwrap();
    let mut c = h.begin(false);
    c.upsert(
        "lines",
        "order_id",
        lines(&[("o1", "a", 1.0), ("o2", "a", 1.0)]),
    )
    .unwrap();
    c.commit(json!("t1"), json!({})).unwrap();
    drop(h);
    assert!(request_reset(dir.path()).unwrap());
    let st = status(dir.path()).unwrap().unwrap();
    assert!(st.reset_requested);
    assert_eq!(st.tables["lines"].rows, 2, "rows stay until the full load");

    let mut h = History::open(dir.path()).unwrap();
    assert!(h.needs_full_load());
    let mut c = h.begin(false);
    assert!(c.is_full());
    c.upsert("lines", "order_id", lines(&[("o2", "b", 3.0)]))
        .unwrap();
    let merged = c.commit(json!("t9"), json!({})).unwrap();
    assert_eq!(rows(&merged["lines"]), owned(&[("o2", "b", 3.0)]));
    assert_eq!(h.cursor(), Some(&json!("t9")));
    assert!(!h.status().reset_requested);
}

#[test]
fn rows_of_another_shape_are_refused_unless_the_sync_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::open(dir.path()).unwrap();
    let mut c = h.begin(false);
    c.upsert("lines", "order_id", lines(&[("o1", "a", 1.0)]))
        .unwrap();
    c.commit(json!(1), json!({})).unwrap();
    let other = RecordBatch::try_from_iter(vec![(
        "order_id",
        Arc::new(StringArray::from(vec!["o9"])) as _,
    )])
    .unwrap();
    let mut c = h.begin(false);
    let err = c.upsert("lines", "order_id", other.clone()).unwrap_err();
    assert!(err.to_string().contains("a full sync replaces it"), "{err}");
    let err = c
        .upsert("lines", "product_id", lines(&[("o1", "a", 1.0)]))
        .unwrap_err();
    assert!(err.to_string().contains("keyed by `order_id`"), "{err}");
    drop(c);
    let mut c = h.begin(true);
    c.upsert("lines", "order_id", other).unwrap();
    let merged = c.commit(json!(2), json!({})).unwrap();
    assert_eq!(merged["lines"].num_columns(), 1);
}

/// Random days of changes against a model: after every commit, and after reopening, the
/// history holds exactly the model's current lines, however the segments were compacted.
#[test]
fn many_days_of_changes_match_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut model: BTreeMap<String, Vec<(String, String, f64)>> = BTreeMap::new();
    let mut seed = 42u64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for day in 0..30 {
        let mut h = History::open(dir.path()).unwrap();
        let mut c = h.begin(false);
        for _ in 0..(1 + next(3)) {
            let mut batch = Vec::new();
            let mut changed: BTreeMap<String, Vec<(String, String, f64)>> = BTreeMap::new();
            for _ in 0..next(20) {
                let order = format!("o{}", next(60));
                let lines_n = next(3) + 1;
                let ls: Vec<_> = (0..lines_n)
                    .map(|l| (order.clone(), format!("p{l}"), (day * 100 + l) as f64))
                    .collect();
                changed.insert(order, ls);
            }
            for ls in changed.values() {
                batch.extend(ls.iter().cloned());
            }
            let refs: Vec<(&str, &str, f64)> = batch
                .iter()
                .map(|(o, p, a)| (o.as_str(), p.as_str(), *a))
                .collect();
            c.upsert("lines", "order_id", lines(&refs)).unwrap();
            model.extend(changed);
            if next(2) == 0 {
                let gone = format!("o{}", next(60));
                c.delete("lines", "order_id", [gone.clone()]).unwrap();
                model.remove(&gone);
            }
        }
        let merged = c.commit(json!(day), json!({})).unwrap();
        let mut want: Vec<_> = model.values().flatten().cloned().collect();
        want.sort_by(|x, y| x.partial_cmp(y).unwrap());
        assert_eq!(rows(&merged["lines"]), want, "day {day}");
        assert!(h.status().tables["lines"].segments <= 9);
        drop(h);
        let h = History::open(dir.path()).unwrap();
        assert_eq!(rows(&h.table("lines").unwrap().unwrap()), want, "day {day}");
        assert_eq!(h.status().tables["lines"].keys, model.len() as u64);
    }
    // Compactions removed the files they replaced.
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("seg-")
        })
        .count();
    assert!(segments <= 9, "{segments} segment files");
}
