//! Firing on time: cron schedules in a time zone, from any trigger type that reports one.

use super::*;
use crate::schedule::Schedule;

/// `test.every_hour`: a trigger type from outside the core node types. It has no parameters;
/// its configured node reports a fixed schedule (on the hour, UTC, catch-up `none`).
pub(super) struct EveryHour;

struct EveryHourNode(Schedule);

impl NodeType for EveryHour {
    fn name(&self) -> &'static str {
        "test.every_hour"
    }
    fn summary(&self) -> &'static str {
        "fires on the hour"
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Trigger]
    }
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn configure(&self, _: &Params, _: &ConfigureCx<'_>) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(EveryHourNode(Schedule {
            cron: CronSchedule::parse("0 * * * *", "UTC").expect("valid"),
            catchup: Catchup::None,
            overlap: Overlap::Skip,
            resume_interrupted: false,
        })))
    }
}

#[async_trait]
impl Node for EveryHourNode {
    fn schedule(&self) -> Option<&Schedule> {
        Some(&self.0)
    }
    async fn run(&self, _: NodeContext, _: Inputs) -> Result<Output, NodeError> {
        Ok(Output::data(Data::Empty))
    }
}

#[tokio::test]
async fn six_am_new_york_all_year_across_both_dst_changes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &workflow("0 6 * * *", "America/New_York", "", "core.noop"),
    );
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(dir.path(), store, utc(2026, 1, 1, 0, 0), NEVER).await;
    h.advance(utc(2026, 1, 1, 0, 0)).await;
    h.step(365).await;
    let fired = h.fired();
    assert_eq!(fired.len(), 365);
    for (t, catchup) in &fired {
        assert_eq!((t.hour(), t.minute()), (6, 0), "{t}");
        assert!(!catchup);
    }
    let utc_hour = |m: u32, d: u32| {
        fired
            .iter()
            .find(|(t, _)| t.month() == m && t.day() == d)
            .map(|(t, _)| t.with_timezone(&Utc).hour())
            .unwrap()
    };
    // EST (UTC-5) until 2 AM on Sunday 8 March, EDT (UTC-4) until 2 AM on Sunday 1 November.
    assert_eq!(utc_hour(3, 7), 11);
    assert_eq!(utc_hour(3, 8), 10);
    assert_eq!(utc_hour(10, 31), 10);
    assert_eq!(utc_hour(11, 1), 11);
    let days: HashSet<_> = fired.iter().map(|(t, _)| t.date_naive()).collect();
    assert_eq!(days.len(), 365, "one firing per day, none twice");
    let runs = h.store.runs().unwrap();
    assert_eq!(runs.len(), 365);
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    assert!(runs.iter().all(|r| r.trigger.fired_by == "schedule"));
    h.stop().await;
}

#[tokio::test]
async fn weekday_names_fire_on_weekdays_only() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &workflow("30 6 * * MON-FRI", "America/New_York", "", "core.noop"),
    );
    let store = Arc::new(MemoryStore::default());
    // Saturday 21 November 2026.
    let mut h = Harness::started(dir.path(), store, utc(2026, 11, 21, 0, 0), NEVER).await;
    h.advance(utc(2026, 11, 21, 0, 0)).await;
    h.step(10).await;
    let fired = h.fired();
    let days: Vec<(u32, Weekday)> = fired.iter().map(|(t, _)| (t.day(), t.weekday())).collect();
    assert_eq!(
        days,
        [
            (23, Weekday::Mon),
            (24, Weekday::Tue),
            (25, Weekday::Wed),
            (26, Weekday::Thu),
            (27, Weekday::Fri),
            (30, Weekday::Mon),
            (1, Weekday::Tue),
            (2, Weekday::Wed),
            (3, Weekday::Thu),
            (4, Weekday::Fri),
        ]
    );
    assert!(fired.iter().all(|(t, _)| (t.hour(), t.minute()) == (6, 30)));
    h.stop().await;
}

#[tokio::test]
async fn a_trigger_of_any_type_that_reports_a_schedule_is_fired() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "name: job\nnodes:\n  - id: hourly\n    kind: trigger\n    type: test.every_hour\n  - id: by_hand\n    kind: trigger\n    type: manual\n  - id: work\n    kind: action\n    type: core.noop\n    needs: [hourly, by_hand]\n    trigger_rule: none_failed_min_one_success\n",
    );
    let store = Arc::new(MemoryStore::default());
    let mut h = Harness::started(dir.path(), store.clone(), utc(2026, 3, 1, 5, 30), NEVER).await;
    let loaded: Vec<String> = h
        .seen
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Loaded { triggers, .. } => {
                Some(triggers.iter().map(|t| t.id.clone()).collect())
            }
            _ => None,
        })
        .expect("loaded");
    assert_eq!(
        loaded,
        ["hourly"],
        "only the trigger with a schedule is served"
    );
    h.advance(utc(2026, 3, 1, 5, 30)).await;
    h.step(2).await;
    let fired: Vec<DateTime<Utc>> = h
        .fired()
        .iter()
        .map(|(t, _)| t.with_timezone(&Utc))
        .collect();
    assert_eq!(fired, [utc(2026, 3, 1, 6, 0), utc(2026, 3, 1, 7, 0)]);
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.trigger.triggers == ["hourly"]));
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    h.stop().await;
}
