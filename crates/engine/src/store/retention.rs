//! Which runs a retention policy lets go.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{RunRecord, RunStatus};

/// How many runs to keep, and for how long. A run stays if any rule given keeps it; a run that
/// is executing right now always stays, and one that can still be resumed stays unless
/// `include_resumable`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest N runs of each workflow (by workflow name).
    pub keep: Option<usize>,
    /// Keep runs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Also remove failed and interrupted runs (which `flow resume` could continue).
    pub include_resumable: bool,
}

impl Retention {
    /// No rule given: nothing would ever be removed.
    pub fn is_empty(&self) -> bool {
        self.keep.is_none() && self.since.is_none()
    }

    /// The runs to remove, from `runs` newest first (as [`super::StateStore::runs`] gives them),
    /// oldest first.
    pub fn select<'a>(&self, runs: &'a [RunRecord], live: &HashSet<String>) -> Vec<&'a RunRecord> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for run in runs {
            let rank = seen.entry(run.workflow_name.as_str()).or_default();
            *rank += 1;
            let kept_by_count = self.keep.is_some_and(|n| *rank <= n);
            let kept_by_age = self.since.is_some_and(|since| run.created_at >= since);
            if kept_by_count || kept_by_age || live.contains(&run.id) {
                continue;
            }
            if is_resumable(run) && !self.include_resumable {
                continue;
            }
            out.push(run);
        }
        out.reverse();
        out
    }
}

/// `flow resume` can continue it: it did not succeed.
pub fn is_resumable(run: &RunRecord) -> bool {
    run.status != RunStatus::Succeeded
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn run(id: &str, workflow: &str, status: RunStatus, age_days: i64) -> RunRecord {
        let mut r = RunRecord::new_for_test(id);
        r.workflow_name = workflow.into();
        r.status = status;
        r.created_at = Utc::now() - TimeDelta::days(age_days);
        r
    }

    fn ids(runs: Vec<&RunRecord>) -> Vec<&str> {
        runs.into_iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn keep_counts_per_workflow_and_spares_resumable_and_live_runs() {
        use RunStatus::*;
        // Newest first.
        let runs = vec![
            run("a5", "a", Succeeded, 0),
            run("b2", "b", Succeeded, 1),
            run("a4", "a", Failed, 2),
            run("a3", "a", Succeeded, 3),
            run("a2", "a", Interrupted, 4),
            run("b1", "b", Succeeded, 5),
            run("a1", "a", Running, 6),
            run("a0", "a", Succeeded, 7),
        ];
        let keep2 = Retention {
            keep: Some(2),
            ..Default::default()
        };
        let none = HashSet::new();
        assert_eq!(ids(keep2.select(&runs, &none)), ["a0", "a3"]);
        let all = Retention {
            include_resumable: true,
            ..keep2.clone()
        };
        assert_eq!(ids(all.select(&runs, &none)), ["a0", "a1", "a2", "a3"]);
        let live: HashSet<String> = ["a1".to_string()].into();
        assert_eq!(ids(all.select(&runs, &live)), ["a0", "a2", "a3"]);
        assert!(Retention::default().select(&runs, &none).is_empty());
    }

    #[test]
    fn age_and_count_each_keep_what_they_cover() {
        use RunStatus::*;
        let runs = vec![
            run("r3", "w", Succeeded, 1),
            run("r2", "w", Succeeded, 10),
            run("r1", "w", Succeeded, 20),
            run("r0", "w", Succeeded, 30),
        ];
        let none = HashSet::new();
        let by_age = Retention {
            since: Some(Utc::now() - TimeDelta::days(15)),
            ..Default::default()
        };
        assert_eq!(ids(by_age.select(&runs, &none)), ["r0", "r1"]);
        // Kept if either rule keeps it.
        let both = Retention {
            keep: Some(3),
            ..by_age.clone()
        };
        assert_eq!(ids(both.select(&runs, &none)), ["r0"]);
        let keep0 = Retention {
            keep: Some(0),
            ..Default::default()
        };
        assert_eq!(ids(keep0.select(&runs, &none)), ["r0", "r1", "r2", "r3"]);
    }
}
