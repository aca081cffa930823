use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde_json::json;

use super::*;
use crate::sync::{DirPlace, Place, Places, SyncError, status};

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

fn a_changed_order_replaces_all_its_lines_and_a_removed_one_goes(p: &dyn Fn() -> Box<dyn Place>) {
    let mut h = History::open_at(p()).unwrap();
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
    let h = History::open_at(p()).unwrap();
    assert_eq!(rows(&h.table("lines").unwrap().unwrap()), want);
    let status = h.status();
    assert_eq!(status.tables["lines"].rows, 3);
    assert_eq!(status.tables["lines"].keys, 3);
    assert_eq!(status.syncs.len(), 2);
    assert_eq!(status.last().unwrap().deleted["lines"], 1);
    assert_eq!(status.last().unwrap().upserted["lines"], 2);
}

fn within_a_commit_the_later_version_of_an_order_wins(p: &dyn Fn() -> Box<dyn Place>) {
    let mut h = History::open_at(p()).unwrap();
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

fn a_commit_cut_short_leaves_the_old_history_and_cursor(p: &dyn Fn() -> Box<dyn Place>) {
    let mut h = History::open_at(p()).unwrap();
    let mut c = h.begin(false);
    c.upsert("lines", "order_id", lines(&[("o1", "a", 1.0)]))
        .unwrap();
    c.commit(json!("t1"), json!({})).unwrap();
    drop(h);
    // What a crash between the segment write and the manifest's replacement leaves behind.
    p().write_segment("seg-00000002-lines.arrow", b"partial")
        .unwrap();
    let h = History::open_at(p()).unwrap();
    assert_eq!(h.cursor(), Some(&json!("t1")));
    assert_eq!(
        rows(&h.table("lines").unwrap().unwrap()),
        owned(&[("o1", "a", 1.0)])
    );
    assert!(!p().segments().unwrap().contains("seg-00000002-lines.arrow"));
}

fn one_writer_at_a_time(p: &dyn Fn() -> Box<dyn Place>) {
    let _h = History::open_at(p()).unwrap();
    let err = History::open_at(p()).unwrap_err();
    assert!(matches!(err, SyncError::Busy { .. }), "{err}");
    assert!(matches!(request_reset(p()), Ok(false)));
}

fn a_reset_drops_the_cursor_and_the_next_sync_replaces_everything(p: &dyn Fn() -> Box<dyn Place>) {
    let mut h = History::open_at(p()).unwrap();
    let mut c = h.begin(false);
    c.upsert(
        "lines",
        "order_id",
        lines(&[("o1", "a", 1.0), ("o2", "a", 1.0)]),
    )
    .unwrap();
    c.commit(json!("t1"), json!({})).unwrap();
    drop(h);
    assert!(request_reset(p()).unwrap());
    let st = status(&*p()).unwrap().unwrap();
    assert!(st.reset_requested);
    assert_eq!(st.tables["lines"].rows, 2, "rows stay until the full load");

    let mut h = History::open_at(p()).unwrap();
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

fn rows_of_another_shape_are_refused_unless_the_sync_is_full(p: &dyn Fn() -> Box<dyn Place>) {
    let mut h = History::open_at(p()).unwrap();
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
fn many_days_of_changes_match_a_model(p: &dyn Fn() -> Box<dyn Place>) {
    let mut model: BTreeMap<String, Vec<(String, String, f64)>> = BTreeMap::new();
    let mut seed = 42u64;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for day in 0..30 {
        let mut h = History::open_at(p()).unwrap();
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
        let h = History::open_at(p()).unwrap();
        assert_eq!(rows(&h.table("lines").unwrap().unwrap()), want, "day {day}");
        assert_eq!(h.status().tables["lines"].keys, model.len() as u64);
    }
    // Compactions removed the files they replaced.
    let segments = p().segments().unwrap().len();
    assert!(segments <= 9, "{segments} segments");
}

/// Every history behaviour, each on a fresh history of `places` under `prefix`: the contract
/// each kind of place must keep.
pub(crate) fn contract(places: &dyn Places, prefix: &str) {
    let at = |test: &str| {
        let name = format!("{prefix}/{test}/sync");
        move || places.place(&name)
    };
    a_changed_order_replaces_all_its_lines_and_a_removed_one_goes(&at(
        "a_changed_order_replaces_all_its_lines_and_a_removed_one_goes",
    ));
    within_a_commit_the_later_version_of_an_order_wins(&at(
        "within_a_commit_the_later_version_of_an_order_wins",
    ));
    a_commit_cut_short_leaves_the_old_history_and_cursor(&at(
        "a_commit_cut_short_leaves_the_old_history_and_cursor",
    ));
    one_writer_at_a_time(&at("one_writer_at_a_time"));
    a_reset_drops_the_cursor_and_the_next_sync_replaces_everything(&at(
        "a_reset_drops_the_cursor_and_the_next_sync_replaces_everything",
    ));
    rows_of_another_shape_are_refused_unless_the_sync_is_full(&at(
        "rows_of_another_shape_are_refused_unless_the_sync_is_full",
    ));
    many_days_of_changes_match_a_model(&at("many_days_of_changes_match_a_model"));
}

#[test]
fn a_changed_order_replaces_all_its_lines_and_a_removed_one_goes_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    a_changed_order_replaces_all_its_lines_and_a_removed_one_goes(&|| {
        Box::new(DirPlace::new(dir.path()))
    });
}

#[test]
fn within_a_commit_the_later_version_of_an_order_wins_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    within_a_commit_the_later_version_of_an_order_wins(&|| Box::new(DirPlace::new(dir.path())));
}

#[test]
fn a_commit_cut_short_leaves_the_old_history_and_cursor_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    a_commit_cut_short_leaves_the_old_history_and_cursor(&|| Box::new(DirPlace::new(dir.path())));
}

#[test]
fn one_writer_at_a_time_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    one_writer_at_a_time(&|| Box::new(DirPlace::new(dir.path())));
}

#[test]
fn a_reset_drops_the_cursor_and_the_next_sync_replaces_everything_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    a_reset_drops_the_cursor_and_the_next_sync_replaces_everything(&|| {
        Box::new(DirPlace::new(dir.path()))
    });
}

#[test]
fn rows_of_another_shape_are_refused_unless_the_sync_is_full_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    rows_of_another_shape_are_refused_unless_the_sync_is_full(&|| {
        Box::new(DirPlace::new(dir.path()))
    });
}

#[test]
fn many_days_of_changes_match_a_model_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    many_days_of_changes_match_a_model(&|| Box::new(DirPlace::new(dir.path())));
}

#[test]
fn a_manifest_half_written_by_a_crash_is_removed_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let place = || Box::new(DirPlace::new(dir.path())) as Box<dyn Place>;
    let mut h = History::open_at(place()).unwrap();
    let mut c = h.begin(false);
    c.upsert("lines", "order_id", lines(&[("o1", "a", 1.0)]))
        .unwrap();
    c.commit(json!("t1"), json!({})).unwrap();
    drop(h);
    std::fs::write(dir.path().join("manifest.json.tmp"), b"{\"format\"").unwrap();
    let h = History::open_at(place()).unwrap();
    assert_eq!(h.cursor(), Some(&json!("t1")));
    assert!(!dir.path().join("manifest.json.tmp").exists());
}
