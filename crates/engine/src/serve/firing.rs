//! What is due: firings on time, firings missed while the server was down (the `catchup`
//! policy), and firings that come while the previous run is going (the `overlap` policy).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{EventKind, GRACE, Job, MISSED_COUNT_LIMIT, Server};
use crate::schedule::{Catchup, CronSchedule, Overlap};

impl Server {
    /// The earliest next firing over all triggers.
    pub(super) fn next_firing(&self) -> Option<DateTime<Utc>> {
        self.entries
            .values()
            .flat_map(|e| &e.triggers)
            .filter_map(|s| s.trigger.schedule.cron.after(s.cursor).next())
            .map(|t| t.with_timezone(&Utc))
            .min()
    }

    /// Handles every firing due by `now`.
    pub(super) fn fire_due(&mut self, now: DateTime<Utc>) {
        let paths: Vec<PathBuf> = self.entries.keys().cloned().collect();
        for path in paths {
            let count = self.entries[&path].triggers.len();
            for t in 0..count {
                self.fire_trigger(&path, t, now);
            }
        }
    }

    pub(super) fn fire_trigger(&mut self, path: &Path, t: usize, now: DateTime<Utc>) {
        let entry = &self.entries[path];
        let s = &entry.triggers[t];
        let trigger = s.trigger.clone();
        let workflow = entry.wf.name.clone();
        // Due times, keeping only the most recent missed ones (as many as could ever run).
        let keep = self.opts.max_catchup.max(1);
        let mut missed: VecDeque<DateTime<Utc>> = VecDeque::new();
        let mut on_time: Vec<DateTime<Utc>> = Vec::new();
        let mut missed_count = 0usize;
        let mut first_missed = None;
        for time in trigger.schedule.cron.after(s.cursor) {
            let time = time.with_timezone(&Utc);
            if time > now {
                break;
            }
            if time < now - GRACE {
                missed_count += 1;
                first_missed.get_or_insert(time);
                missed.push_back(time);
                if missed.len() > keep {
                    missed.pop_front();
                }
                if missed_count >= MISSED_COUNT_LIMIT {
                    // Counted enough; the latest ones are found from a window before now.
                    missed = latest_missed(&trigger.schedule.cron, s.cursor, now, keep);
                    on_time = trigger
                        .schedule
                        .cron
                        .after(now - GRACE - chrono::TimeDelta::nanoseconds(1))
                        .map(|t| t.with_timezone(&Utc))
                        .take_while(|t| *t <= now)
                        .collect();
                    break;
                }
            } else {
                on_time.push(time);
            }
        }
        if missed_count == 0 && on_time.is_empty() {
            return;
        }
        let last_due = on_time
            .last()
            .or(missed.back())
            .copied()
            .expect("something due");
        self.entries.get_mut(path).expect("loaded").triggers[t].cursor = last_due;

        if let (Some(first), Some(&last)) = (first_missed, missed.back()) {
            let run: Vec<DateTime<Utc>> = match trigger.schedule.catchup {
                Catchup::None => Vec::new(),
                // An on-time firing stands for the missed ones.
                Catchup::Latest if on_time.is_empty() => vec![last],
                Catchup::Latest => Vec::new(),
                Catchup::All => missed.iter().copied().collect(),
            };
            let tz = trigger.schedule.cron.timezone;
            self.emit(EventKind::Missed {
                workflow: workflow.clone(),
                trigger: trigger.id.clone(),
                missed: missed_count,
                first: first.with_timezone(&tz),
                last: last.with_timezone(&tz),
                policy: trigger.schedule.catchup,
                will_run: run.len(),
            });
            if run.is_empty() {
                // Nothing runs for them: move the watermark past them for good.
                let reason = format!(
                    "{missed_count} firing(s) missed since {}; catchup: {}",
                    first.format("%Y-%m-%dT%H:%M:%SZ"),
                    trigger.schedule.catchup.as_str()
                );
                if let Err(e) = self.record(path, &trigger.id, last, None, "missed", Some(reason)) {
                    self.problem(format!("cannot record missed firings: {e}"));
                }
            }
            for time in run {
                self.submit(
                    path,
                    Job::Fire {
                        trigger: trigger.id.clone(),
                        scheduled_for: time,
                        catchup: true,
                    },
                );
            }
        }
        for time in on_time {
            let job = Job::Fire {
                trigger: trigger.id.clone(),
                scheduled_for: time,
                catchup: false,
            };
            // Behind queued catch-up runs, an on-time firing waits its turn too.
            let queued = self.queues.get(path).is_some_and(|q| !q.is_empty());
            match self.busy.get(path).cloned() {
                Some(running) if trigger.schedule.overlap == Overlap::Skip && !queued => {
                    self.emit(EventKind::Skipped {
                        workflow: workflow.clone(),
                        trigger: trigger.id.clone(),
                        scheduled_for: time.with_timezone(&trigger.schedule.cron.timezone),
                        running: running.clone(),
                    });
                    let reason = format!("run {running} was still running");
                    if let Err(e) =
                        self.record(path, &trigger.id, time, None, "skipped", Some(reason))
                    {
                        self.problem(format!("cannot record a skipped firing: {e}"));
                    }
                }
                _ => self.submit(path, job),
            }
        }
    }
}

/// The last `keep` firings after `cursor` that are more than [`GRACE`] before `now`, found by
/// widening a window back from now (there are too many to walk from the cursor).
pub(super) fn latest_missed(
    schedule: &CronSchedule,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
    keep: usize,
) -> VecDeque<DateTime<Utc>> {
    let end = now - GRACE;
    let mut span = chrono::TimeDelta::hours(1);
    loop {
        let from = (end - span).max(cursor);
        let found: Vec<DateTime<Utc>> = schedule
            .after(from)
            .map(|t| t.with_timezone(&Utc))
            .take_while(|t| *t < end)
            .collect();
        if found.len() >= keep || from == cursor {
            return found[found.len().saturating_sub(keep)..]
                .iter()
                .copied()
                .collect();
        }
        span = span * 2;
    }
}
