//! Firings missed while the server was down, and what `catchup` does with them.

use super::*;

async fn catch_up_after_three_days(policy: &str) -> (Harness, Vec<DateTime<Utc>>) {
    let dir = tempfile::tempdir().unwrap().keep();
    write(
        &dir,
        &workflow(
            "0 6 * * *",
            "UTC",
            &format!(", catchup: {policy}"),
            "core.noop",
        ),
    );
    let store = fired_once_then_stopped(&dir).await;
    // Down from 1 March 09:00 to 4 March 12:00: 2, 3 and 4 March at 06:00 were missed.
    let mut h = Harness::started(&dir, store, utc(2026, 3, 4, 12, 0), NEVER).await;
    h.advance(utc(2026, 3, 4, 12, 0)).await;
    let fired = h
        .fired()
        .iter()
        .map(|(t, _)| t.with_timezone(&Utc))
        .collect();
    (h, fired)
}

#[tokio::test]
async fn catch_up_none_runs_nothing_missed() {
    let (mut h, fired) = catch_up_after_three_days("none").await;
    assert!(fired.is_empty());
    assert_eq!(
        h.count(|k| matches!(
            k,
            EventKind::Missed {
                missed: 3,
                will_run: 0,
                ..
            }
        )),
        1
    );
    let log = h.firing_log();
    assert_eq!(log.last().unwrap().outcome, "missed");
    // The next firing is on time, once.
    h.advance(utc(2026, 3, 5, 6, 0)).await;
    assert_eq!(h.fired().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn catch_up_latest_runs_the_most_recent_once() {
    let (mut h, fired) = catch_up_after_three_days("latest").await;
    assert_eq!(fired, [utc(2026, 3, 4, 6, 0)]);
    assert!(h.fired()[0].1, "marked as a catch-up");
    let runs = h.store.runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].trigger.scheduled_for, Some(utc(2026, 3, 4, 6, 0)));
    assert_eq!(runs[0].trigger.time, utc(2026, 3, 4, 12, 0));
    h.advance(utc(2026, 3, 5, 6, 0)).await;
    assert_eq!(h.fired().len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn catch_up_all_runs_each_missed_firing_in_order() {
    let (mut h, fired) = catch_up_after_three_days("all").await;
    assert_eq!(
        fired,
        [
            utc(2026, 3, 2, 6, 0),
            utc(2026, 3, 3, 6, 0),
            utc(2026, 3, 4, 6, 0)
        ]
    );
    assert_eq!(
        h.count(|k| matches!(
            k,
            EventKind::Missed {
                missed: 3,
                will_run: 3,
                ..
            }
        )),
        1
    );
    let runs = h.store.runs().unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    h.advance(utc(2026, 3, 5, 6, 0)).await;
    assert_eq!(h.fired().len(), 4);
    h.stop().await;
}

#[tokio::test]
async fn catch_up_all_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &workflow("0 * * * *", "UTC", ", catchup: all", "core.noop"),
    );
    let store = fired_once_then_stopped(dir.path()).await;
    // 3 days of hourly firings missed: 75; only the latest 50 run.
    let mut h = Harness::started(dir.path(), store, utc(2026, 3, 4, 12, 30), NEVER).await;
    h.advance(utc(2026, 3, 4, 12, 30)).await;
    assert_eq!(
        h.count(|k| matches!(
            k,
            EventKind::Missed {
                missed: 75,
                will_run: 50,
                ..
            }
        )),
        1
    );
    let fired = h.fired();
    assert_eq!(fired.len(), 50);
    assert_eq!(fired[49].0.with_timezone(&Utc), utc(2026, 3, 4, 12, 0));
    h.stop().await;
}

#[test]
fn latest_missed_finds_the_most_recent_firings_without_walking_them_all() {
    let every_second = CronSchedule::parse("* * * * * *", "UTC").unwrap();
    let now = utc(2026, 3, 13, 12, 0);
    let latest = latest_missed(&every_second, utc(2026, 3, 1, 0, 0), now, 3);
    let end = now - GRACE;
    let seconds = |n| end - chrono::TimeDelta::seconds(n);
    assert_eq!(Vec::from(latest), [seconds(3), seconds(2), seconds(1)]);
    // Fewer than asked for since the cursor: all of them.
    let daily = CronSchedule::parse("0 6 * * *", "UTC").unwrap();
    let latest = latest_missed(&daily, utc(2026, 3, 11, 7, 0), now, 50);
    assert_eq!(
        Vec::from(latest),
        [utc(2026, 3, 12, 6, 0), utc(2026, 3, 13, 6, 0)]
    );
}
