//! Cron expressions as people write them, translated for the `cron` crate.
//!
//! Accepted: the 5-field crontab form (`min hour dom month dow`, Sunday = 0 or 7, names like
//! `MON-FRI`) and the 6-field form with seconds in front. The `cron` crate numbers weekdays 1-7
//! with Sunday = 1, so the weekday field is rewritten as explicit day names before parsing.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A parsed schedule in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    pub expression: String,
    pub timezone: Tz,
    schedule: cron::Schedule,
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl CronSchedule {
    /// Parses `expression` (5 or 6 fields) in the IANA time zone `timezone`.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, String> {
        let tz = parse_timezone(timezone)?;
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "cron expression `{expression}` has {n} fields; use 5 (min hour day month weekday) or 6 (sec min hour day month weekday)"
                ));
            }
        };
        let weekdays = translate_weekdays(rest[4])
            .map_err(|e| format!("cron expression `{expression}`: weekday field: {e}"))?;
        let translated = format!(
            "{seconds} {} {} {} {} {weekdays}",
            rest[0], rest[1], rest[2], rest[3]
        );
        let schedule = cron::Schedule::from_str(&translated).map_err(|e| {
            // The crate's message quotes the translated expression with a caret; keep the reason.
            let text = e.to_string();
            let reason = text.lines().last().unwrap_or_default().trim().to_string();
            format!("invalid cron expression `{expression}`: {reason}")
        })?;
        if schedule.upcoming(Utc).next().is_none() {
            return Err(format!("cron expression `{expression}` never fires"));
        }
        Ok(CronSchedule {
            expression: expression.to_string(),
            timezone: tz,
            schedule,
        })
    }

    /// Fire times strictly after `after`.
    ///
    /// A wall-clock time that happens twice (01:30 on the night clocks go back) fires once, at
    /// its first occurrence; a time that does not happen (02:30 on the night clocks go forward)
    /// does not fire that day.
    pub fn after(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Tz>> + '_ {
        let tz = self.timezone;
        self.schedule
            .after_owned(after.with_timezone(&tz))
            .filter(move |t| match tz.from_local_datetime(&t.naive_local()) {
                chrono::LocalResult::Ambiguous(first, _) => first == *t,
                _ => true,
            })
    }
}

/// When a trigger fires on its own, and what `flow serve` does with firings it missed or that
/// come while the previous run is going. A configured trigger reports it through
/// [`crate::node::Node::schedule`].
#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: CronSchedule,
    pub catchup: Catchup,
    pub overlap: Overlap,
    /// On start, `flow serve` resumes runs of this trigger left interrupted by a crash.
    pub resume_interrupted: bool,
}

/// What `flow serve` does with firings it missed while it was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catchup {
    /// Skip them all.
    None,
    /// Run once, for the most recent one.
    Latest,
    /// Run each of them, oldest first, one after another (up to a bound).
    All,
}

/// What `flow serve` does when a firing comes while the workflow's previous run is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Record the firing as skipped.
    Skip,
    /// Run it after the current run.
    Queue,
}

impl Catchup {
    pub const NAMES: &[&str] = &["none", "latest", "all"];

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Catchup::None),
            "latest" => Ok(Catchup::Latest),
            "all" => Ok(Catchup::All),
            _ => Err(format!(
                "`catchup` must be one of {}, got `{s}`",
                Self::NAMES.join(", ")
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Catchup::None => "none",
            Catchup::Latest => "latest",
            Catchup::All => "all",
        }
    }
}

impl Overlap {
    pub const NAMES: &[&str] = &["skip", "queue"];

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Overlap::Skip),
            "queue" => Ok(Overlap::Queue),
            _ => Err(format!(
                "`overlap` must be one of {}, got `{s}`",
                Self::NAMES.join(", ")
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
        }
    }
}

/// Parses an IANA time zone name such as `Europe/London`.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone `{name}`; use an IANA name such as UTC, Europe/London or America/New_York")
    })
}

/// Rewrites a crontab weekday field (0-7, Sunday = 0 or 7, names, ranges, steps, lists) as
/// day names, which mean the same in every cron dialect.
fn translate_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: usize = s.parse().map_err(|_| format!("bad step `{s}`"))?;
                if step == 0 {
                    return Err("a step of 0".into());
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (start, end) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (day(a)?, day_end(b)?)
        } else {
            let d = day(range)?;
            // `5/2` means from Friday every second day to the end of the week.
            (d, if part.contains('/') { 6 } else { d })
        };
        if start > end {
            return Err(format!("range `{range}` runs backwards"));
        }
        for d in (start..=end).step_by(step) {
            days[d % 7] = true;
        }
    }
    let names: Vec<&str> = (0..7).filter(|&d| days[d]).map(|d| DAY_NAMES[d]).collect();
    if names.len() == 7 {
        Ok("*".into())
    } else {
        Ok(names.join(","))
    }
}

fn day(s: &str) -> Result<usize, String> {
    let upper = s.to_ascii_uppercase();
    if let Some(i) = DAY_NAMES.iter().position(|n| *n == upper) {
        return Ok(i);
    }
    match s.parse::<usize>() {
        Ok(n) if n <= 7 => Ok(n),
        _ => Err(format!(
            "`{s}` is not a weekday (0-7 with Sunday = 0 or 7, or SUN-SAT)"
        )),
    }
}

/// A range end: `SUN` at the end of a range means 7 (`FRI-SUN`).
fn day_end(s: &str) -> Result<usize, String> {
    let d = day(s)?;
    Ok(if d == 0 { 7 } else { d })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn weekday_translation() {
        assert_eq!(translate_weekdays("1-5").unwrap(), "MON,TUE,WED,THU,FRI");
        assert_eq!(
            translate_weekdays("MON-FRI").unwrap(),
            "MON,TUE,WED,THU,FRI"
        );
        assert_eq!(translate_weekdays("0").unwrap(), "SUN");
        assert_eq!(translate_weekdays("7").unwrap(), "SUN");
        assert_eq!(translate_weekdays("FRI-SUN").unwrap(), "SUN,FRI,SAT");
        assert_eq!(translate_weekdays("*/2").unwrap(), "SUN,TUE,THU,SAT");
        assert_eq!(translate_weekdays("0-7").unwrap(), "*");
        assert!(translate_weekdays("8").is_err());
        assert!(translate_weekdays("FRI-MON").is_err());
    }

    #[test]
    fn six_am_new_york_across_dst() {
        let s = CronSchedule::parse("0 6 * * *", "America/New_York").unwrap();
        let start = Utc.with_ymd_and_hms(2026, 3, 7, 12, 0, 0).unwrap();
        let fires: Vec<String> = s
            .after(start)
            .take(2)
            .map(|t| t.with_timezone(&Utc).to_rfc3339())
            .collect();
        // EST (UTC-5) on March 8 at 06:00 is after the 02:00 switch: EDT, UTC-4.
        assert_eq!(
            fires,
            ["2026-03-08T10:00:00+00:00", "2026-03-09T10:00:00+00:00"]
        );
    }

    #[test]
    fn repeated_and_skipped_wall_clock_times() {
        let at = |expr: &str, y, m, d| -> Vec<String> {
            let s = CronSchedule::parse(expr, "America/New_York").unwrap();
            let start = Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
            s.after(start).take(3).map(|t| t.to_rfc3339()).collect()
        };
        // 1 November 2026: 01:30 happens in EDT, then again in EST; it fires once.
        assert_eq!(
            at("30 1 * * *", 2026, 10, 31),
            [
                "2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00",
                "2026-11-03T01:30:00-05:00"
            ]
        );
        // Started between the two 01:30s, it does not fire the second one either.
        let s = CronSchedule::parse("30 1 * * *", "America/New_York").unwrap();
        let between = Utc.with_ymd_and_hms(2026, 11, 1, 5, 45, 0).unwrap();
        assert_eq!(
            s.after(between).next().unwrap().to_rfc3339(),
            "2026-11-02T01:30:00-05:00"
        );
        // 8 March 2026: 02:30 does not happen.
        assert_eq!(
            at("30 2 * * *", 2026, 3, 6),
            [
                "2026-03-07T02:30:00-05:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00"
            ]
        );
    }

    #[test]
    fn weekday_names_fire_on_the_right_days() {
        let s = CronSchedule::parse("30 9 * * MON-FRI", "UTC").unwrap();
        // 2026-11-21 is a Saturday.
        let start = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
        let next = s.after(start).next().unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-23T09:30:00+00:00");
        // Sunday = 0 in crontab.
        let sunday = CronSchedule::parse("0 0 * * 0", "UTC").unwrap();
        assert_eq!(
            sunday.after(start).next().unwrap().to_rfc3339(),
            "2026-11-22T00:00:00+00:00"
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(
            CronSchedule::parse("0 6 * *", "UTC")
                .unwrap_err()
                .contains("4 fields")
        );
        assert!(CronSchedule::parse("0 25 * * *", "UTC").is_err());
        assert!(
            CronSchedule::parse("0 6 * * *", "Mars/Olympus")
                .unwrap_err()
                .contains("time zone")
        );
    }
}
