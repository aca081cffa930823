//! `max_bad_rows`: how many bad rows `on_bad_rows: skip` may skip before the file is taken to be
//! unusable (a wrong format or delimiter, a truncated or mangled export) and the read fails.
//!
//! Written as a count (`100`), or as a share of the data rows (`"5%"` or `0.05`). The default
//! allows 5% of the data rows but at least [`DEFAULT_MIN_COUNT`] rows, so a small file with a
//! handful of broken lines is still read, while an export that is mostly bad fails at once
//! instead of producing a near-empty table that fails (or misleads) further down.

use std::fmt;

use serde_json::Value as Json;

/// The default share of data rows that may be bad.
pub const DEFAULT_FRACTION: f64 = 0.05;

/// The default allows at least this many bad rows, whatever the share.
pub const DEFAULT_MIN_COUNT: u64 = 10;

/// The most bad rows a read may skip.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum MaxBadRows {
    /// At most this many.
    Count(u64),
    /// At most this share (0..=1) of the data rows.
    Fraction(f64),
    /// 5% of the data rows, but at least 10 rows.
    #[default]
    Default,
}

impl MaxBadRows {
    /// Reads the parameter: a non-negative integer, a fraction below 1, or a percentage string.
    pub fn from_json(value: &Json) -> Result<Self, String> {
        let wrong = || {
            format!(
                "`max_bad_rows` must be a count (`100`), a fraction (`0.05`) or a percentage \
                 (`\"5%\"`), got `{value}`"
            )
        };
        match value {
            Json::Number(n) => {
                if let Some(count) = n.as_u64() {
                    return Ok(MaxBadRows::Count(count));
                }
                match n.as_f64() {
                    Some(f) if (0.0..1.0).contains(&f) => Ok(MaxBadRows::Fraction(f)),
                    _ => Err(wrong()),
                }
            }
            Json::String(s) => {
                let s = s.trim();
                if let Some(percent) = s.strip_suffix('%') {
                    match percent.trim().parse::<f64>() {
                        Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxBadRows::Fraction(p / 100.0)),
                        _ => Err(wrong()),
                    }
                } else {
                    let n: serde_json::Number = s.parse().map_err(|_| wrong())?;
                    Self::from_json(&Json::Number(n)).map_err(|_| wrong())
                }
            }
            _ => Err(wrong()),
        }
    }

    /// The most bad rows allowed among `rows_read` data rows.
    pub fn limit(self, rows_read: u64) -> u64 {
        let share = |f: f64| (f * rows_read as f64).floor() as u64;
        match self {
            MaxBadRows::Count(n) => n,
            MaxBadRows::Fraction(f) => share(f),
            MaxBadRows::Default => share(DEFAULT_FRACTION).max(DEFAULT_MIN_COUNT),
        }
    }
}

impl fmt::Display for MaxBadRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxBadRows::Count(n) => write!(f, "{n}"),
            MaxBadRows::Fraction(share) => write!(f, "{}%", share * 100.0),
            MaxBadRows::Default => write!(
                f,
                "the default: {}% of the data rows, at least {DEFAULT_MIN_COUNT}",
                DEFAULT_FRACTION * 100.0
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_fractions_and_percentages() {
        assert_eq!(
            MaxBadRows::from_json(&json!(100)),
            Ok(MaxBadRows::Count(100))
        );
        assert_eq!(MaxBadRows::from_json(&json!(0)), Ok(MaxBadRows::Count(0)));
        assert_eq!(
            MaxBadRows::from_json(&json!(0.05)),
            Ok(MaxBadRows::Fraction(0.05))
        );
        assert_eq!(
            MaxBadRows::from_json(&json!("5%")),
            Ok(MaxBadRows::Fraction(0.05))
        );
        assert_eq!(
            MaxBadRows::from_json(&json!(" 100 % ")),
            Ok(MaxBadRows::Fraction(1.0))
        );
        assert_eq!(
            MaxBadRows::from_json(&json!("250")),
            Ok(MaxBadRows::Count(250))
        );
        for bad in [
            json!(-1),
            json!(1.5),
            json!("lots"),
            json!("150%"),
            json!("-5%"),
            json!(true),
        ] {
            let err = MaxBadRows::from_json(&bad).unwrap_err();
            assert!(
                err.contains("`max_bad_rows` must be a count"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn limits_round_down_and_the_default_has_a_floor() {
        assert_eq!(MaxBadRows::Count(3).limit(1_000_000), 3);
        assert_eq!(MaxBadRows::Fraction(0.05).limit(48_290), 2414);
        assert_eq!(MaxBadRows::Fraction(0.05).limit(19), 0);
        assert_eq!(MaxBadRows::Fraction(1.0).limit(7), 7);
        assert_eq!(MaxBadRows::Default.limit(48_290), 2414);
        assert_eq!(MaxBadRows::Default.limit(20), 10);
        assert_eq!(MaxBadRows::Default.limit(0), 10);
    }
}
