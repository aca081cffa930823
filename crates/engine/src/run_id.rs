//! Run ids and the order of runs: `YYYYMMDD-HHMMSS-mmm-NNNN`, the creation time (UTC) to the
//! millisecond and a sequence number. Ids made by one store sort in the order they were made, so
//! the newest run is the greatest id, even for runs made in the same millisecond or after the
//! clock went back.
//!
//! Stores made before this format hold ids `YYYYMMDD-HHMMSS-XXXX` (a random hex suffix); they
//! still resolve, and [`newest_first`] places them by their creation time.

use std::cmp::Reverse;
use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use crate::store::RunRecord;

/// `chrono` format of an id's time part.
const TIME_FORMAT: &str = "%Y%m%d-%H%M%S-%3f";
/// Length of the time part, `YYYYMMDD-HHMMSS-mmm`.
const TIME_LEN: usize = 19;
/// The greatest sequence number within one millisecond (four digits keep ids sortable as text).
const MAX_SEQ: u32 = 9999;

/// The greatest id this process has made: ids stay increasing across the runs one process makes
/// (`flow serve` firing two triggers at once) even without a newer one in the store yet.
static LAST: Mutex<Option<String>> = Mutex::new(None);

/// A new run id for a run created at `now`, greater than `newest` (the newest run id in the
/// store, if any) and than every id this process made before.
pub fn new_run_id(now: DateTime<Utc>, newest: Option<&str>) -> String {
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let id = next_id(now, [newest, last.as_deref()].into_iter().flatten());
    *last = Some(id.clone());
    id
}

/// The id for `now` that is greater than every id in `before` (ids in the older format are
/// ignored: they never share a millisecond with a new one in practice, and order by time).
fn next_id<'a>(now: DateTime<Utc>, before: impl IntoIterator<Item = &'a str>) -> String {
    let floor = before.into_iter().filter_map(parse).max();
    // Truncated to the millisecond, as the id shows it.
    let mut time = now.naive_utc();
    time = time
        - Duration::nanoseconds(i64::from(
            time.and_utc().timestamp_subsec_nanos() % 1_000_000,
        ));
    let mut seq = 1;
    if let Some((floor_time, floor_seq)) = floor
        && time <= floor_time
    {
        // Same millisecond as the newest id, or the clock went back: count on from it.
        (time, seq) = if floor_seq < MAX_SEQ {
            (floor_time, floor_seq + 1)
        } else {
            (floor_time + Duration::milliseconds(1), 1)
        };
    }
    format!("{}-{seq:04}", time.format(TIME_FORMAT))
}

/// Whether `id` is in the current format (sortable by creation as text).
pub(crate) fn is_current(id: &str) -> bool {
    parse(id).is_some()
}

/// The time and sequence of an id in the current format; `None` for an older id.
fn parse(id: &str) -> Option<(NaiveDateTime, u32)> {
    let (time, seq) = (id.get(..TIME_LEN)?, id.get(TIME_LEN..)?);
    let seq = seq.strip_prefix('-')?;
    if seq.len() != 4 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let time = NaiveDateTime::parse_from_str(time, TIME_FORMAT).ok()?;
    Some((time, seq.parse().ok()?))
}

/// Where a run stands in creation order: its id's time and sequence, or for an id in the older
/// format (no milliseconds, a random suffix) its recorded creation time with sequence 0.
fn creation_key(run: &RunRecord) -> (NaiveDateTime, u32, DateTime<Utc>) {
    creation_order(&run.id, run.created_at)
}

/// A run's place in creation order from its id and creation time (greater is newer; ties are
/// broken by the id): what [`newest_first`] sorts by, for indexes kept in that order.
pub fn creation_order(id: &str, created_at: DateTime<Utc>) -> (NaiveDateTime, u32, DateTime<Utc>) {
    match parse(id) {
        Some((time, seq)) => (time, seq, created_at),
        None => (created_at.naive_utc(), 0, created_at),
    }
}

/// Sorts runs newest first by creation (see [`creation_key`]); ties keep the reverse id order.
pub fn newest_first(runs: &mut [RunRecord]) {
    runs.sort_by(|a, b| {
        (Reverse(creation_key(a)), Reverse(&a.id)).cmp(&(Reverse(creation_key(b)), Reverse(&b.id)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_795_000_000_000 + ms).unwrap()
    }

    #[test]
    fn ids_made_in_one_millisecond_count_up_and_sort_as_text() {
        let first = next_id(at(0), ["20990101-000000-000-0001"]);
        // A store newer than the clock: ids continue after it.
        assert_eq!(first, "20990101-000000-000-0002");
        let mut ids = vec![first];
        for _ in 0..20 {
            let next = next_id(at(0), ids.iter().map(String::as_str));
            ids.push(next);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
        assert_eq!(ids[20], "20990101-000000-000-0022");
    }

    #[test]
    fn the_sequence_rolls_into_the_next_millisecond() {
        let id = next_id(at(0), ["20990101-000000-000-9999", "20261122-060000-abcd"]);
        assert_eq!(id, "20990101-000000-001-0001");
    }

    #[test]
    fn a_fresh_id_shows_the_time_to_the_millisecond() {
        let t = Utc.with_ymd_and_hms(2999, 1, 2, 3, 4, 5).unwrap() + Duration::milliseconds(678);
        let first = next_id(t, []);
        assert_eq!(first, "29990102-030405-678-0001");
        assert_eq!(next_id(t, [first.as_str()]), "29990102-030405-678-0002");
        // An older id in the same second does not matter; a new one a millisecond earlier neither.
        assert_eq!(
            next_id(t, ["29990102-030405-ffff", "29990102-030405-677-0042"]),
            "29990102-030405-678-0001"
        );
    }

    fn run(id: &str, created_ms: i64) -> RunRecord {
        let mut r: RunRecord = serde_json::from_value(serde_json::json!({
            "id": id, "workflow_name": "w", "workflow_path": "w.yaml", "workflow_fingerprint": "f",
            "node_fingerprints": {}, "params": {},
            "trigger": { "fired_by": "manual", "triggers": [], "time": at(0) },
            "status": "succeeded", "created_at": at(0), "updated_at": at(0), "executions": 1
        }))
        .expect("run record");
        r.created_at = at(created_ms);
        r
    }

    #[test]
    fn newest_first_orders_by_creation_across_id_formats() {
        // Old ids in one second sort by their random suffix as text; by creation here.
        let mut runs = vec![
            run("20261118-185320-0fff", 500),
            run("20261118-185320-a000", 100),
            run(&next_id(at(900), []), 900),
            run(&next_id(at(900), [next_id(at(900), []).as_str()]), 900),
            run("20261118-185320-5555", 700),
        ];
        newest_first(&mut runs);
        let order: Vec<i64> = runs
            .iter()
            .map(|r| r.created_at.timestamp_subsec_millis() as i64)
            .collect();
        assert_eq!(order, [900, 900, 700, 500, 100]);
        assert!(runs[0].id.ends_with("-0002"), "{}", runs[0].id);
    }

    #[test]
    fn old_ids_parse_as_none() {
        assert_eq!(parse("20261122-060000-abcd"), None);
        assert_eq!(parse("20261122-060000-1234"), None);
        assert_eq!(parse("20261122-060000-123-12"), None);
        assert!(parse("20261122-060000-123-0012").is_some());
    }
}
