//! Date and time parsing: an explicit strftime format, or auto-detection.
//!
//! [`DateFormat::Auto`] accepts, without configuration:
//! - ISO 8601 dates `2024-03-01` (also `2024/03/01`, `2024-3-1`) and compact `20240301`;
//! - ISO 8601 date-times with `T` or a space, optional seconds and fraction, and an optional
//!   offset: `2024-03-01 10:15:00 -0500` (Shopify), `2024-03-01T10:15:00-05:00` (Shopify
//!   Admin JSON), `2024-03-01T15:15:00Z`, `2024-03-01T10:15:00.123+0100`, `... UTC`;
//! - US month-first dates `3/1/2024`, `03/01/24` (two-digit years: 00-68 are 20xx, 69-99 19xx,
//!   as strftime `%y`), optionally followed by a time like `10:15`, `10:15:30` or `10:15 AM`.
//!
//! Day-first dates (`01/03/2024` = 1 March, `01.03.2024`, `01-03-2024`) are read only with
//! [`DateFormat::AutoDayFirst`] (or a strftime format): a slash date whose first number is over
//! 12 is an error under `Auto` (with a hint) rather than being silently swapped, because mixing
//! both readings in one file would be worse than failing.
//!
//! [`DateFormat::Strftime`] uses chrono's syntax (`%d.%m.%Y %H:%M`, `%Y-%m-%dT%H:%M:%S%z`, ...);
//! a format without time fields gives midnight; `%z` fills the offset.
//!
//! Square exports put the date, time and time zone in three columns:
//! [`DateParser::parse_parts`] combines them. Zone *names* such as `Eastern Time (US & Canada)`
//! cannot be resolved without a time zone database, so they leave the offset unknown (the local
//! time is what matters for daily analyses); fixed zones (`UTC`, `GMT`, `UTC-05:00`, `+01:00`)
//! give the offset.

use std::fmt;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

/// How dates are written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DateFormat {
    /// ISO 8601 (with or without time and offset) and US `m/d/Y` (see the module docs).
    #[default]
    Auto,
    /// ISO 8601 and day-first `d/m/Y`, `d.m.Y`, `d-m-Y`.
    AutoDayFirst,
    /// A chrono strftime pattern.
    Strftime(String),
}

impl TryFrom<String> for DateFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.trim() {
            "" | "auto" => Ok(DateFormat::Auto),
            "auto_day_first" | "day_first" => Ok(DateFormat::AutoDayFirst),
            other if other.contains('%') => {
                let format = DateFormat::Strftime(other.to_string());
                DateParser::new(&format)?;
                Ok(format)
            }
            other => Err(format!(
                "date format `{other}` is neither `auto`, `auto_day_first` nor a strftime \
                 pattern (like `%d/%m/%Y %H:%M`)"
            )),
        }
    }
}

impl From<DateFormat> for String {
    fn from(d: DateFormat) -> String {
        match d {
            DateFormat::Auto => "auto".into(),
            DateFormat::AutoDayFirst => "auto_day_first".into(),
            DateFormat::Strftime(s) => s,
        }
    }
}

/// A parsed point in time: the local wall-clock time and, when stated, its UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Wall-clock time as written.
    pub local: NaiveDateTime,
    /// Seconds east of UTC, when the text stated an offset.
    pub offset_secs: Option<i32>,
}

/// Why a text is not a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateError {
    /// The text.
    pub input: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for DateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a valid date ({})", self.input, self.reason)
    }
}

impl std::error::Error for DateError {}

fn derr(input: &str, reason: impl Into<String>) -> DateError {
    let shown: String = input.chars().take(60).collect();
    DateError {
        input: shown,
        reason: reason.into(),
    }
}

/// A compiled [`DateFormat`].
#[derive(Debug, Clone)]
pub struct DateParser {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Auto {
        day_first: bool,
    },
    Strftime {
        pattern: String,
        items: Vec<Item<'static>>,
    },
}

impl DateParser {
    /// Compiles a format; an invalid strftime pattern is an error.
    pub fn new(format: &DateFormat) -> Result<Self, String> {
        let kind = match format {
            DateFormat::Auto => Kind::Auto { day_first: false },
            DateFormat::AutoDayFirst => Kind::Auto { day_first: true },
            DateFormat::Strftime(pattern) => {
                let items = StrftimeItems::new(pattern)
                    .parse_to_owned()
                    .map_err(|e| format!("invalid date format `{pattern}`: {e}"))?;
                Kind::Strftime {
                    pattern: pattern.clone(),
                    items,
                }
            }
        };
        Ok(DateParser { kind })
    }

    /// Parses a date or date-time.
    pub fn parse(&self, input: &str) -> Result<Timestamp, DateError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(derr(s, "empty"));
        }
        match &self.kind {
            Kind::Auto { day_first } => parse_auto(s, *day_first),
            Kind::Strftime { pattern, items } => parse_strftime(s, pattern, items),
        }
    }

    /// Combines a date column, a time column and a time zone column (Square's layout). The
    /// date is parsed with this format (a time in it is ignored), the time as `HH:MM[:SS[.f]]`
    /// with optional AM/PM (empty = midnight), the zone with [`parse_zone`].
    pub fn parse_parts(&self, date: &str, time: &str, zone: &str) -> Result<Timestamp, DateError> {
        let day = self.parse(date)?.local.date();
        let t = time.trim();
        let time = if t.is_empty() {
            NaiveTime::MIN
        } else {
            let mut cur = Cursor::new(t);
            let parsed = parse_time(&mut cur).map_err(|r| derr(t, r))?;
            cur.skip_spaces();
            if !cur.done() {
                return Err(derr(t, "unexpected text after the time"));
            }
            parsed
        };
        Ok(Timestamp {
            local: day.and_time(time),
            offset_secs: parse_zone(zone),
        })
    }
}

/// The offset of a fixed time zone: `Z`, `UTC`, `GMT`, `UTC+01:00`, `GMT-5`, `+0530`, `-05:00`.
/// Zone names (`America/New_York`, `Eastern Time (US & Canada)`) and empty give `None`.
pub fn parse_zone(zone: &str) -> Option<i32> {
    let z = zone.trim();
    let mut cur = Cursor::new(z);
    let off = parse_offset(&mut cur).ok().flatten()?;
    cur.done().then_some(off)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor {
            b: s.as_bytes(),
            i: 0,
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
    /// Reads 1..=max digits; returns (value, count).
    fn digits(&mut self, max: usize) -> Option<(u32, usize)> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(c) if c.is_ascii_digit() => {
                    v = v * 10 + u32::from(c - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        let n = self.i - start;
        (n > 0).then_some((v, n))
    }
    fn eat_word_ci(&mut self, w: &str) -> bool {
        let end = self.i + w.len();
        if end <= self.b.len() && self.b[self.i..end].eq_ignore_ascii_case(w.as_bytes()) {
            self.i = end;
            true
        } else {
            false
        }
    }
}

fn make_date(y: i32, m: u32, d: u32) -> Result<NaiveDate, String> {
    if !(1..=12).contains(&m) {
        return Err(format!("month {m} is not 1-12"));
    }
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| format!("day {d} does not exist in {y}-{m:02}"))
}

fn parse_auto(s: &str, day_first: bool) -> Result<Timestamp, DateError> {
    let mut cur = Cursor::new(s);
    let Some((a, na)) = cur.digits(8) else {
        return Err(derr(s, "expected a date like 2024-03-01 or 3/1/2024"));
    };
    let date = if na == 8 && cur.done() {
        // Compact 20240301.
        make_date((a / 10000) as i32, (a / 100) % 100, a % 100).map_err(|r| derr(s, r))?
    } else if na == 4 {
        let sep = cur.peek().filter(|c| matches!(c, b'-' | b'/'));
        let Some(sep) = sep else {
            return Err(derr(s, "expected `-` or `/` after the year"));
        };
        cur.i += 1;
        let (m, _) = cur.digits(2).ok_or_else(|| derr(s, "expected a month"))?;
        if !cur.eat(sep) {
            return Err(derr(s, "expected a day after the month"));
        }
        let (d, _) = cur.digits(2).ok_or_else(|| derr(s, "expected a day"))?;
        make_date(a as i32, m, d).map_err(|r| derr(s, r))?
    } else if na <= 2 {
        let sep = cur.peek().filter(|c| matches!(c, b'/' | b'.' | b'-'));
        let Some(sep) = sep else {
            return Err(derr(s, "expected a date like 2024-03-01 or 3/1/2024"));
        };
        if !day_first && sep != b'/' {
            return Err(derr(
                s,
                "looks like a day-first date; set the date format to `auto_day_first` or a \
                 strftime pattern",
            ));
        }
        cur.i += 1;
        let (b, _) = cur
            .digits(2)
            .ok_or_else(|| derr(s, "expected a second date part"))?;
        if !cur.eat(sep) {
            return Err(derr(s, "expected a year"));
        }
        let (y, ny) = cur.digits(4).ok_or_else(|| derr(s, "expected a year"))?;
        let year = match ny {
            4 => y as i32,
            2 => {
                if y < 69 {
                    2000 + y as i32
                } else {
                    1900 + y as i32
                }
            }
            _ => return Err(derr(s, "the year must have 2 or 4 digits")),
        };
        let (m, d) = if day_first { (b, a) } else { (a, b) };
        if !day_first && a > 12 && b <= 12 {
            return Err(derr(
                s,
                "month over 12: this looks like a day-first date; set the date format to \
                 `auto_day_first` or a strftime pattern",
            ));
        }
        make_date(year, m, d).map_err(|r| derr(s, r))?
    } else {
        return Err(derr(s, "expected a date like 2024-03-01 or 3/1/2024"));
    };

    if cur.done() {
        return Ok(Timestamp {
            local: date.and_time(NaiveTime::MIN),
            offset_secs: None,
        });
    }
    // Date/time separator.
    match cur.peek() {
        Some(b'T') | Some(b't') => cur.i += 1,
        Some(b',') => {
            cur.i += 1;
            cur.skip_spaces();
        }
        Some(b' ') => cur.skip_spaces(),
        _ => return Err(derr(s, "unexpected text after the date")),
    }
    let time = parse_time(&mut cur).map_err(|r| derr(s, r))?;
    let offset = parse_offset(&mut cur).map_err(|r| derr(s, r))?;
    cur.skip_spaces();
    if !cur.done() {
        return Err(derr(s, "unexpected text after the time"));
    }
    Ok(Timestamp {
        local: date.and_time(time),
        offset_secs: offset,
    })
}

/// `H:MM[:SS[.fff]][ ]?[AM|PM]`.
fn parse_time(cur: &mut Cursor) -> Result<NaiveTime, String> {
    let (h, _) = cur.digits(2).ok_or("expected a time like 10:15:00")?;
    if !cur.eat(b':') {
        return Err("expected `:` in the time".into());
    }
    let (mi, nm) = cur.digits(2).ok_or("expected minutes")?;
    if nm != 2 {
        return Err("minutes must have 2 digits".into());
    }
    let mut sec = 0;
    let mut nanos = 0;
    if cur.eat(b':') {
        let (s, ns) = cur.digits(2).ok_or("expected seconds")?;
        if ns != 2 {
            return Err("seconds must have 2 digits".into());
        }
        sec = s;
        if cur.eat(b'.') || cur.eat(b',') {
            let start = cur.i;
            let mut scale = 100_000_000u32;
            while let Some(c) = cur.peek().filter(u8::is_ascii_digit) {
                nanos += u32::from(c - b'0') * scale;
                scale /= 10;
                cur.i += 1;
            }
            if cur.i == start {
                return Err("expected fraction digits".into());
            }
        }
    }
    // AM/PM.
    let save = cur.i;
    cur.skip_spaces();
    let mut hour = h;
    if cur.eat_word_ci("am") || cur.eat_word_ci("a.m.") {
        if !(1..=12).contains(&h) {
            return Err(format!("hour {h} is not 1-12 with AM"));
        }
        hour = h % 12;
    } else if cur.eat_word_ci("pm") || cur.eat_word_ci("p.m.") {
        if !(1..=12).contains(&h) {
            return Err(format!("hour {h} is not 1-12 with PM"));
        }
        hour = h % 12 + 12;
    } else {
        cur.i = save;
    }
    if hour > 23 {
        return Err(format!("hour {hour} is not 0-23"));
    }
    if mi > 59 {
        return Err(format!("minute {mi} is not 0-59"));
    }
    if sec > 59 {
        return Err(format!("second {sec} is not 0-59"));
    }
    NaiveTime::from_hms_nano_opt(hour, mi, sec, nanos).ok_or_else(|| "invalid time".into())
}

/// Optional offset: `Z`, `[+-]HH[:MM]`, `[+-]HHMM`, `UTC`/`GMT` optionally followed by an
/// offset. Leading spaces allowed. `Ok(None)` when there is none.
fn parse_offset(cur: &mut Cursor) -> Result<Option<i32>, String> {
    let save = cur.i;
    cur.skip_spaces();
    if cur.done() {
        cur.i = save;
        return Ok(None);
    }
    if cur.eat(b'Z') || cur.eat(b'z') {
        return Ok(Some(0));
    }
    let named = cur.eat_word_ci("utc") || cur.eat_word_ci("gmt");
    let sign = match cur.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => {
            if named {
                return Ok(Some(0));
            }
            cur.i = save;
            return Ok(None);
        }
    };
    cur.i += 1;
    let (h, nh) = cur.digits(2).ok_or("expected offset hours")?;
    let mut m = 0;
    if nh == 2 {
        let colon = cur.eat(b':');
        match cur.digits(2) {
            Some((v, 2)) => m = v,
            Some(_) => return Err("offset minutes must have 2 digits".into()),
            None if colon => return Err("expected offset minutes".into()),
            None => {}
        }
    } else if !named {
        return Err("offset hours must have 2 digits".into());
    }
    if h > 23 || m > 59 {
        return Err(format!("offset {h:02}:{m:02} out of range"));
    }
    Ok(Some(sign * (h as i32 * 3600 + m as i32 * 60)))
}

fn parse_strftime(s: &str, pattern: &str, items: &[Item<'static>]) -> Result<Timestamp, DateError> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, s, items.iter())
        .map_err(|e| derr(s, format!("does not match `{pattern}`: {e}")))?;
    let offset = parsed.offset();
    if let Some(ts) = parsed.timestamp() {
        let utc = chrono::DateTime::from_timestamp(ts, 0)
            .ok_or_else(|| derr(s, "timestamp out of range"))?
            .naive_utc();
        let local = utc
            .checked_add_signed(chrono::Duration::seconds(i64::from(offset.unwrap_or(0))))
            .ok_or_else(|| derr(s, "timestamp out of range"))?;
        return Ok(Timestamp {
            local,
            offset_secs: offset,
        });
    }
    let date = parsed
        .to_naive_date()
        .map_err(|e| derr(s, format!("`{pattern}`: {e}")))?;
    let has_time = parsed.hour_div_12().is_some() || parsed.hour_mod_12().is_some();
    let time = if has_time {
        parsed
            .to_naive_time()
            .map_err(|e| derr(s, format!("`{pattern}`: {e}")))?
    } else {
        NaiveTime::MIN
    };
    Ok(Timestamp {
        local: date.and_time(time),
        offset_secs: offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    fn auto(s: &str) -> Timestamp {
        DateParser::new(&DateFormat::Auto)
            .unwrap()
            .parse(s)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn auto_err(s: &str) -> String {
        DateParser::new(&DateFormat::Auto)
            .unwrap()
            .parse(s)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn iso_with_offsets() {
        let t = auto("2024-03-01 10:15:00 -0500");
        assert_eq!(t.local, dt("2024-03-01 10:15:00"));
        assert_eq!(t.offset_secs, Some(-5 * 3600));
        assert_eq!(auto("2024-03-01T10:15:00-05:00").offset_secs, Some(-18000));
        assert_eq!(auto("2024-03-01T15:15:00Z").offset_secs, Some(0));
        assert_eq!(auto("2024-03-01T10:15:00+0530").offset_secs, Some(19800));
        assert_eq!(auto("2024-03-01 10:15:00 UTC").offset_secs, Some(0));
        let t = auto("2024-03-01T10:15:00.250+01:00");
        assert_eq!(t.local, dt("2024-03-01 10:15:00.25"));
        assert_eq!(t.offset_secs, Some(3600));
    }

    #[test]
    fn iso_dates_and_naive_times() {
        assert_eq!(auto("2024-03-01").local, dt("2024-03-01 00:00:00"));
        assert_eq!(auto("2024/3/1").local, dt("2024-03-01 00:00:00"));
        assert_eq!(auto("20240301").local, dt("2024-03-01 00:00:00"));
        let t = auto("2024-03-01 10:15");
        assert_eq!(t.local, dt("2024-03-01 10:15:00"));
        assert_eq!(t.offset_secs, None);
    }

    #[test]
    fn us_month_first() {
        assert_eq!(auto("3/1/2024").local, dt("2024-03-01 00:00:00"));
        assert_eq!(auto("03/01/24").local, dt("2024-03-01 00:00:00"));
        assert_eq!(auto("12/31/99").local, dt("1999-12-31 00:00:00"));
        assert_eq!(auto("3/1/2024 1:05 PM").local, dt("2024-03-01 13:05:00"));
        assert_eq!(
            auto("3/1/2024, 12:05:09 am").local,
            dt("2024-03-01 00:05:09")
        );
        assert_eq!(auto("3/1/2024 12:00 PM").local, dt("2024-03-01 12:00:00"));
    }

    #[test]
    fn day_first_only_when_configured() {
        assert!(auto_err("25/12/2024").contains("day-first"));
        assert!(auto_err("01.03.2024").contains("day-first"));
        let p = DateParser::new(&DateFormat::AutoDayFirst).unwrap();
        assert_eq!(
            p.parse("01/03/2024").unwrap().local,
            dt("2024-03-01 00:00:00")
        );
        assert_eq!(
            p.parse("25.12.2024 18:30").unwrap().local,
            dt("2024-12-25 18:30:00")
        );
        assert_eq!(
            p.parse("2024-12-25").unwrap().local,
            dt("2024-12-25 00:00:00")
        );
        // Auto reads the same text month-first.
        assert_eq!(auto("01/03/2024").local, dt("2024-01-03 00:00:00"));
    }

    #[test]
    fn invalid_dates_are_errors() {
        let cases = [
            ("2024-02-30", "day 30 does not exist in 2024-02"),
            ("2024-13-01", "month 13"),
            ("2023-02-29", "day 29"),
            ("not-a-date", "expected a date"),
            ("2024-03-01 25:00", "hour 25"),
            ("2024-03-01 10:61", "minute 61"),
            ("2024-03-01 10:15:00 +2500", "offset 25:00"),
            ("2024-03-01 10:15:00 EST", "unexpected text"),
            ("2024-03-01x", "unexpected text after the date"),
            ("3/1/2024 13:00 PM", "hour 13"),
            ("3/1/202", "2 or 4 digits"),
            ("", "empty"),
        ];
        for (input, needle) in cases {
            let e = DateParser::new(&DateFormat::Auto).unwrap().parse(input);
            match e {
                Ok(t) => panic!("{input:?} parsed as {t:?}"),
                Err(e) => assert!(e.to_string().contains(needle), "{input:?}: {e}"),
            }
        }
    }

    #[test]
    fn strftime_formats() {
        let p = DateParser::new(&DateFormat::Strftime("%d.%m.%Y %H:%M".into())).unwrap();
        assert_eq!(
            p.parse("01.03.2024 09:30").unwrap().local,
            dt("2024-03-01 09:30:00")
        );
        assert!(
            p.parse("2024-03-01")
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        let p = DateParser::new(&DateFormat::Strftime("%d/%m/%Y".into())).unwrap();
        assert_eq!(
            p.parse("13/03/2024").unwrap().local,
            dt("2024-03-13 00:00:00")
        );
        let p = DateParser::new(&DateFormat::Strftime("%Y-%m-%d %H:%M:%S %z".into())).unwrap();
        let t = p.parse("2024-03-01 10:15:00 -0500").unwrap();
        assert_eq!(
            (t.local, t.offset_secs),
            (dt("2024-03-01 10:15:00"), Some(-18000))
        );
        let p = DateParser::new(&DateFormat::Strftime("%s".into())).unwrap();
        assert_eq!(
            p.parse("1709288100").unwrap().local,
            dt("2024-03-01 10:15:00")
        );
        let p = DateParser::new(&DateFormat::Strftime("%b %d, %Y %I:%M %p".into())).unwrap();
        assert_eq!(
            p.parse("Mar 01, 2024 01:05 PM").unwrap().local,
            dt("2024-03-01 13:05:00")
        );
    }

    #[test]
    fn invalid_strftime_pattern_is_a_config_error() {
        assert!(DateParser::new(&DateFormat::Strftime("%Y-%Q".into())).is_err());
        let e = serde_json::from_str::<DateFormat>("\"%Y-%Q\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid date format"), "{e}");
        let e = serde_json::from_str::<DateFormat>("\"yyyy-mm-dd\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("strftime"), "{e}");
        let f: DateFormat = serde_json::from_str("\"auto_day_first\"").unwrap();
        assert_eq!(f, DateFormat::AutoDayFirst);
        let f: DateFormat = serde_json::from_str("\"%d/%m/%Y\"").unwrap();
        assert_eq!(f, DateFormat::Strftime("%d/%m/%Y".into()));
    }

    #[test]
    fn square_parts() {
        let p = DateParser::new(&DateFormat::Auto).unwrap();
        let t = p
            .parse_parts("2024-03-01", "14:32:10", "Eastern Time (US & Canada)")
            .unwrap();
        assert_eq!((t.local, t.offset_secs), (dt("2024-03-01 14:32:10"), None));
        let t = p.parse_parts("03/01/2024", "2:32 PM", "UTC-05:00").unwrap();
        assert_eq!(
            (t.local, t.offset_secs),
            (dt("2024-03-01 14:32:00"), Some(-18000))
        );
        assert_eq!(
            p.parse_parts("2024-03-01", "", "").unwrap().local,
            dt("2024-03-01 00:00:00")
        );
        assert!(p.parse_parts("2024-03-01", "14h32", "").is_err());
        assert!(p.parse_parts("2024-03-01", "14:32 xyz", "").is_err());
    }

    #[test]
    fn zones() {
        assert_eq!(parse_zone("UTC"), Some(0));
        assert_eq!(parse_zone("GMT+1"), Some(3600));
        assert_eq!(parse_zone("UTC-05:00"), Some(-18000));
        assert_eq!(parse_zone("+0530"), Some(19800));
        assert_eq!(parse_zone("Z"), Some(0));
        assert_eq!(parse_zone("America/New_York"), None);
        assert_eq!(parse_zone("Pacific Time (US & Canada)"), None);
        assert_eq!(parse_zone(""), None);
    }
}
