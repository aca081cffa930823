//! Money and plain-number parsing as POS exports write them.
//!
//! Accepted (with [`DecimalSeparator::Dot`]): `3`, `3.00`, `-3.00`, `+3`, `.5`, `1,234.56`,
//! `1 234.56` (space / no-break space groups), `1'234.56`, Indian `1,23,456.00`, `$3.00`,
//! `-$3.00`, `$-3.00`, `($3.00)` (accounting negative), `3.00-` (trailing minus), `US$3`,
//! `3.00 USD`, `USD 3.00`, `€3.50`, `3.50 €`, `−3.00` (Unicode minus).
//! With [`DecimalSeparator::Comma`] the roles of `.` and `,` swap: `1.234,56`, `€3,50`, `3,50 €`.
//!
//! Rejected with a reason: empty strings, anything without digits (`$`, `-`, `N/A`), stray
//! characters (`12,3x`), exponents (`1e3`), two decimal separators, digit groups that do not fit
//! the configured separator (`1,2` with `Dot` is an error, not 1.2: that is how a wrong
//! `decimal` setting shows up instead of silently multiplying amounts by 10 or 100), two signs,
//! two currencies.
//!
//! Currency: a 3-letter ISO code (any case) is returned uppercased; unambiguous symbols map to
//! their code (`€` EUR, `£` GBP, `₹` INR, `₩` KRW, `₺` TRY, `₪` ILS, `₱` PHP, `₦` NGN, `฿` THB,
//! `₫` VND, `₴` UAH, `₽` RUB, `US$` USD, `CA$`/`C$` CAD, `A$`/`AU$` AUD, `NZ$` NZD, `HK$` HKD,
//! `S$` SGD, `R$` BRL, `MX$` MXN). The bare `$` and `¥` are accepted but ambiguous (USD/CAD/AUD...,
//! JPY/CNY), so they yield no currency.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which character separates the integer and fractional parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DecimalSeparator {
    /// `1,234.56` (also accepts space and `'` as group separators).
    #[default]
    Dot,
    /// `1.234,56` (also accepts space and `'` as group separators).
    Comma,
}

impl DecimalSeparator {
    fn char(self) -> char {
        match self {
            DecimalSeparator::Dot => '.',
            DecimalSeparator::Comma => ',',
        }
    }
}

impl TryFrom<String> for DecimalSeparator {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.trim() {
            "." | "dot" | "point" => Ok(DecimalSeparator::Dot),
            "," | "comma" => Ok(DecimalSeparator::Comma),
            other => Err(format!(
                "decimal separator must be `.` or `,`, not `{other}`"
            )),
        }
    }
}

impl From<DecimalSeparator> for String {
    fn from(d: DecimalSeparator) -> String {
        d.char().to_string()
    }
}

/// A parsed amount and the currency it stated, if any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Money {
    /// The value in major units.
    pub value: f64,
    /// ISO 4217 code when the text stated an unambiguous one.
    pub currency: Option<Currency>,
}

/// A 3-letter ISO 4217 currency code (uppercase ASCII).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// From a 3-letter code in any case; `None` for anything else.
    pub fn from_code(code: &str) -> Option<Currency> {
        let b = code.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_alphabetic) {
            Some(Currency([
                b[0].to_ascii_uppercase(),
                b[1].to_ascii_uppercase(),
                b[2].to_ascii_uppercase(),
            ]))
        } else {
            None
        }
    }

    /// The code, e.g. `"EUR"`.
    pub fn as_str(&self) -> &str {
        // Always ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not an amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyError {
    /// The text (trimmed, shortened when very long).
    pub input: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a number ({})", self.input, self.reason)
    }
}

impl std::error::Error for MoneyError {}

fn err(input: &str, reason: impl Into<String>) -> MoneyError {
    let mut shown: String = input.chars().take(40).collect();
    if shown.len() < input.len() {
        shown.push('…');
    }
    MoneyError {
        input: shown,
        reason: reason.into(),
    }
}

/// Symbols (and symbol-like prefixes) with the currency they denote; `None` = ambiguous.
const SYMBOLS: &[(&str, Option<&str>)] = &[
    ("US$", Some("USD")),
    ("CA$", Some("CAD")),
    ("AU$", Some("AUD")),
    ("NZ$", Some("NZD")),
    ("HK$", Some("HKD")),
    ("MX$", Some("MXN")),
    ("C$", Some("CAD")),
    ("A$", Some("AUD")),
    ("S$", Some("SGD")),
    ("R$", Some("BRL")),
    ("$", None),
    ("€", Some("EUR")),
    ("£", Some("GBP")),
    ("¥", None),
    ("₹", Some("INR")),
    ("₩", Some("KRW")),
    ("₺", Some("TRY")),
    ("₪", Some("ILS")),
    ("₱", Some("PHP")),
    ("₦", Some("NGN")),
    ("฿", Some("THB")),
    ("₫", Some("VND")),
    ("₴", Some("UAH")),
    ("₽", Some("RUB")),
];

/// Result of peeling one currency token: (bytes consumed, currency).
fn currency_prefix(s: &str) -> Option<(usize, Option<Currency>)> {
    for (sym, code) in SYMBOLS {
        if s.starts_with(sym) {
            return Some((sym.len(), code.and_then(Currency::from_code)));
        }
    }
    let b = s.as_bytes();
    if b.len() >= 3 && b[..3].iter().all(u8::is_ascii_alphabetic) {
        let next = b.get(3).copied();
        if next.is_none_or(|c| !c.is_ascii_alphabetic()) {
            return Some((3, Currency::from_code(&s[..3])));
        }
    }
    None
}

fn currency_suffix(s: &str) -> Option<(usize, Option<Currency>)> {
    for (sym, code) in SYMBOLS {
        if s.ends_with(sym) {
            return Some((sym.len(), code.and_then(Currency::from_code)));
        }
    }
    let b = s.as_bytes();
    let n = b.len();
    if n >= 3 && b[n - 3..].iter().all(u8::is_ascii_alphabetic) {
        let prev = if n > 3 { Some(b[n - 4]) } else { None };
        if prev.is_none_or(|c| !c.is_ascii_alphabetic()) {
            return Some((3, Currency::from_code(&s[n - 3..])));
        }
    }
    None
}

fn is_minus(c: char) -> bool {
    c == '-' || c == '\u{2212}'
}

/// Parses an amount with an optional currency (see the module docs for the accepted forms).
pub fn parse_money(input: &str, decimal: DecimalSeparator) -> Result<Money, MoneyError> {
    parse_impl(input, decimal, true)
}

/// Parses a plain number (quantities, stock): like [`parse_money`] but a currency is an error.
pub fn parse_number(input: &str, decimal: DecimalSeparator) -> Result<f64, MoneyError> {
    parse_impl(input, decimal, false).map(|m| m.value)
}

fn parse_impl(
    input: &str,
    decimal: DecimalSeparator,
    allow_currency: bool,
) -> Result<Money, MoneyError> {
    if let Some(value) = plain_decimal(input, decimal.char() as u8) {
        return Ok(Money {
            value,
            currency: None,
        });
    }
    let original = input.trim();
    if original.is_empty() {
        return Err(err(original, "empty"));
    }
    let mut s = original;
    let mut negative = false;
    let mut signs = 0;
    let mut currency: Option<Option<Currency>> = None;

    if s.starts_with('(') && s.ends_with(')') && s.len() >= 2 {
        negative = true;
        signs += 1;
        s = s[1..s.len() - 1].trim();
    }
    // Prefix: any order of one sign and one currency, with optional spaces.
    loop {
        if let Some(c) = s.chars().next() {
            if is_minus(c) || c == '+' {
                signs += 1;
                negative ^= is_minus(c);
                s = s[c.len_utf8()..].trim_start();
                continue;
            }
            if !c.is_ascii_digit()
                && c != decimal.char()
                && let Some((len, cur)) = currency_prefix(s)
            {
                if currency.is_some() {
                    return Err(err(original, "two currencies"));
                }
                currency = Some(cur);
                s = s[len..].trim_start();
                continue;
            }
        }
        break;
    }
    // Suffix: a trailing minus and/or a currency.
    loop {
        if let Some(c) = s.chars().next_back() {
            if is_minus(c) {
                signs += 1;
                negative ^= true;
                s = s[..s.len() - c.len_utf8()].trim_end();
                continue;
            }
            if !c.is_ascii_digit()
                && c != decimal.char()
                && let Some((len, cur)) = currency_suffix(s)
            {
                if currency.is_some() {
                    return Err(err(original, "two currencies"));
                }
                currency = Some(cur);
                s = s[..s.len() - len].trim_end();
                continue;
            }
        }
        break;
    }
    if signs > 1 {
        return Err(err(original, "more than one sign"));
    }
    let value = parse_body(s, decimal).map_err(|reason| err(original, reason))?;
    if currency.is_some() && !allow_currency {
        return Err(err(original, "a currency is not allowed here"));
    }
    let value = if negative { -value } else { value };
    Ok(Money {
        value,
        currency: currency.flatten(),
    })
}

/// `digits` or `digits<separator>digits`, with no sign, space, group or currency: how most
/// exports write amounts. Read as an integer divided by a power of ten, which is exact and
/// correctly rounded (as `str::parse` is, so the bits are the same) while the integer is at
/// most 2^53; `None` for anything else, which the full parser reads.
#[inline]
fn plain_decimal(s: &str, separator: u8) -> Option<f64> {
    const POW10: [f64; 19] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18,
    ];
    let b = s.as_bytes();
    // Up to 18 digits: the integer fits a u64 before the 2^53 check.
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut integer: u64 = 0;
    let mut decimals = None;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_digit() {
            integer = integer * 10 + u64::from(c - b'0');
        } else if c == separator && decimals.is_none() && i > 0 && i + 1 < b.len() {
            decimals = Some(b.len() - i - 1);
        } else {
            return None;
        }
    }
    if integer > 1 << 53 {
        return None;
    }
    Some(integer as f64 / POW10[decimals.unwrap_or(0)])
}

fn is_group_space(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{2009}' | '\u{202f}')
}

/// Parses digits with group separators and at most one decimal separator.
fn parse_body(s: &str, decimal: DecimalSeparator) -> Result<f64, String> {
    let dec = decimal.char();
    let group_chars: &[char] = match decimal {
        DecimalSeparator::Dot => &[','],
        DecimalSeparator::Comma => &['.'],
    };
    let mut buf = [0u8; 64];
    let mut len = 0usize;
    let mut push = |b: u8| -> Result<(), String> {
        if len >= buf.len() {
            return Err("too many digits".into());
        }
        buf[len] = b;
        len += 1;
        Ok(())
    };
    let mut group_sep: Option<char> = None;
    // Lengths of the digit groups of the integer part (at most 64 digits, so 65 groups).
    let mut groups = [0usize; 66];
    let mut n_groups = 0usize;
    let mut current = 0usize;
    let mut seen_decimal = false;
    let mut digits = 0usize;
    for c in s.chars() {
        if c.is_ascii_digit() {
            push(c as u8)?;
            current += 1;
            digits += 1;
        } else if c == dec {
            if seen_decimal {
                return Err(format!("two decimal separators `{dec}`"));
            }
            seen_decimal = true;
            groups[n_groups] = current;
            n_groups += 1;
            current = 0;
            push(b'.')?;
        } else if group_chars.contains(&c) || c == '\'' || is_group_space(c) {
            if seen_decimal {
                return Err(format!("`{c}` after the decimal separator `{dec}`"));
            }
            if let Some(g) = group_sep
                && g != c
                && !(is_group_space(g) && is_group_space(c))
            {
                return Err("mixed digit group separators".into());
            }
            group_sep = Some(c);
            if n_groups + 1 >= groups.len() {
                return Err("too many digit groups".into());
            }
            groups[n_groups] = current;
            n_groups += 1;
            current = 0;
        } else {
            return Err(format!("unexpected `{c}`"));
        }
    }
    if digits == 0 {
        return Err("no digits".into());
    }
    if !seen_decimal {
        groups[n_groups] = current;
        n_groups += 1;
    }
    if let Some(sep) = group_sep {
        let ok = valid_grouping(&groups[..n_groups]);
        if !ok {
            let other = match decimal {
                DecimalSeparator::Dot => ',',
                DecimalSeparator::Comma => '.',
            };
            let hint = if sep == other {
                format!("; is the decimal separator `{other}`?")
            } else {
                String::new()
            };
            return Err(format!(
                "digit groups do not fit the group separator `{sep}`{hint}"
            ));
        }
    }
    let text = std::str::from_utf8(&buf[..len]).map_err(|e| e.to_string())?;
    text.parse::<f64>().map_err(|e| e.to_string())
}

/// Western grouping (1-3 digits, then groups of 3) or Indian (1-2 digits, groups of 2, then a
/// final group of 3).
fn valid_grouping(groups: &[usize]) -> bool {
    let Some((&first, rest)) = groups.split_first() else {
        return false;
    };
    if rest.is_empty() || !(1..=3).contains(&first) {
        return false;
    }
    if rest.iter().all(|&g| g == 3) {
        return true;
    }
    let Some((&last, middle)) = rest.split_last() else {
        return false;
    };
    last == 3 && first <= 2 && middle.iter().all(|&g| g == 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DecimalSeparator::{Comma, Dot};

    fn val(s: &str, d: DecimalSeparator) -> f64 {
        match parse_money(s, d) {
            Ok(m) => m.value,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn cur(s: &str, d: DecimalSeparator) -> Option<String> {
        parse_money(s, d).unwrap().currency.map(|c| c.to_string())
    }

    #[test]
    fn plain_decimals_read_fast_have_the_bits_of_str_parse() {
        // A small LCG: digits, separators and lengths of every kind, the same on every run.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        let mut fast = 0;
        for _ in 0..200_000 {
            let len = 1 + next(20) as usize;
            let mut s: String = (0..len)
                .map(|_| char::from(b'0' + next(10) as u8))
                .collect();
            if next(4) > 0 {
                let at = next(len as u64 + 1) as usize;
                s.insert(at, '.');
            }
            for d in [DecimalSeparator::Dot, DecimalSeparator::Comma] {
                let text = match d {
                    DecimalSeparator::Dot => s.clone(),
                    DecimalSeparator::Comma => s.replace('.', ","),
                };
                let Some(value) = plain_decimal(&text, d.char() as u8) else {
                    continue;
                };
                fast += 1;
                let expected: f64 = s.parse().unwrap();
                assert_eq!(value.to_bits(), expected.to_bits(), "{text:?}");
                assert_eq!(parse_body(&text, d).unwrap().to_bits(), value.to_bits());
            }
        }
        assert!(fast > 100_000, "only {fast} strings took the fast path");
        // Edges: 2^53 is read fast, one more is left to the full parser, as are forms that
        // are not plain.
        assert_eq!(
            plain_decimal("9007199254740992", b'.'),
            Some(9_007_199_254_740_992.0)
        );
        assert_eq!(plain_decimal("9007199254740993", b'.'), None);
        for other in [
            "", ".5", "5.", "1.2.3", "-1", "+1", " 1", "1,234", "$5", "1e5",
        ] {
            assert_eq!(plain_decimal(other, b'.'), None, "{other:?}");
        }
    }

    #[test]
    fn dollar_forms() {
        assert_eq!(val("$3.00", Dot), 3.0);
        assert_eq!(val("-$3.00", Dot), -3.0);
        assert_eq!(val("$-3.00", Dot), -3.0);
        assert_eq!(val("($3.00)", Dot), -3.0);
        assert_eq!(val("(3.00)", Dot), -3.0);
        assert_eq!(val("3.00-", Dot), -3.0);
        assert_eq!(val("−3.00", Dot), -3.0);
        assert_eq!(val("+3", Dot), 3.0);
        assert_eq!(val(" $1,234.56 ", Dot), 1234.56);
        assert_eq!(cur("$3.00", Dot), None);
        assert_eq!(cur("US$3.00", Dot), Some("USD".into()));
    }

    #[test]
    fn plain_and_grouped_numbers() {
        assert_eq!(val("3", Dot), 3.0);
        assert_eq!(val("0.5", Dot), 0.5);
        assert_eq!(val(".5", Dot), 0.5);
        assert_eq!(val("5.", Dot), 5.0);
        assert_eq!(val("1,234.56", Dot), 1234.56);
        assert_eq!(val("1,234,567", Dot), 1_234_567.0);
        assert_eq!(val("1 234.56", Dot), 1234.56);
        assert_eq!(val("1\u{a0}234.56", Dot), 1234.56);
        assert_eq!(val("1'234.56", Dot), 1234.56);
        assert_eq!(val("1,23,456.78", Dot), 123_456.78);
        assert_eq!(val("007", Dot), 7.0);
    }

    #[test]
    fn comma_decimal_forms() {
        assert_eq!(val("1.234,56", Comma), 1234.56);
        assert_eq!(val("3,50", Comma), 3.5);
        assert_eq!(val("€3,50", Comma), 3.5);
        assert_eq!(val("3,50 €", Comma), 3.5);
        assert_eq!(val("-1 234,5", Comma), -1234.5);
        assert_eq!(val("1.234", Comma), 1234.0);
        assert_eq!(val("1.234", Dot), 1.234);
        assert_eq!(cur("3,50 €", Comma), Some("EUR".into()));
    }

    #[test]
    fn currency_codes_prefix_and_suffix() {
        assert_eq!(val("3.00 USD", Dot), 3.0);
        assert_eq!(cur("3.00 USD", Dot), Some("USD".into()));
        assert_eq!(cur("usd 3.00", Dot), Some("USD".into()));
        assert_eq!(cur("-3.00 eur", Dot), Some("EUR".into()));
        assert_eq!(val("-3.00 eur", Dot), -3.0);
        assert_eq!(cur("£12", Dot), Some("GBP".into()));
        assert_eq!(cur("CA$12", Dot), Some("CAD".into()));
        assert_eq!(cur("¥1200", Dot), None);
        assert_eq!(val("¥1,200", Dot), 1200.0);
    }

    #[test]
    fn garbage_is_rejected_with_reason() {
        let e = parse_money("12,3x", Dot).unwrap_err();
        assert_eq!(e.to_string(), "`12,3x` is not a number (unexpected `x`)");
        let cases = [
            ("", "empty"),
            ("$", "no digits"),
            ("-", "no digits"),
            ("N/A", "unexpected"),
            ("1e3", "unexpected `e`"),
            ("1.2.3", "two decimal separators"),
            ("1,2", "is the decimal separator `,`?"),
            ("1.234,56", "`,` after the decimal separator"),
            ("--3", "more than one sign"),
            ("-(3)", "unexpected"),
            ("$3 USD", "two currencies"),
            ("1,2345", "digit groups"),
            ("1, 234", "mixed digit group separators"),
            ("12abc34", "unexpected"),
            ("NaN", "no digits"),
            ("inf", "no digits"),
        ];
        for (input, needle) in cases {
            match parse_money(input, Dot) {
                Ok(m) => panic!("{input:?} parsed as {m:?}"),
                Err(e) => assert!(e.to_string().contains(needle), "{input:?}: {e}"),
            }
        }
        assert!(parse_money("1,5", Dot).is_err());
        assert_eq!(val("1,5", Comma), 1.5);
        let long = "9".repeat(100);
        assert!(
            parse_money(&long, Dot)
                .unwrap_err()
                .to_string()
                .contains("too many digits")
        );
    }

    #[test]
    fn numbers_reject_currency() {
        assert_eq!(parse_number("2", Dot), Ok(2.0));
        assert_eq!(parse_number("1,5", Comma), Ok(1.5));
        assert_eq!(parse_number("-1.0", Dot), Ok(-1.0));
        assert!(
            parse_number("$2", Dot)
                .unwrap_err()
                .reason
                .contains("currency")
        );
        assert!(parse_number("two", Dot).is_err());
    }

    #[test]
    fn decimal_separator_deserializes_from_symbol_or_word() {
        let d: DecimalSeparator = serde_json::from_str("\",\"").unwrap();
        assert_eq!(d, Comma);
        let d: DecimalSeparator = serde_json::from_str("\"dot\"").unwrap();
        assert_eq!(d, Dot);
        assert!(serde_json::from_str::<DecimalSeparator>("\";\"").is_err());
        assert_eq!(serde_json::to_string(&Comma).unwrap(), "\",\"");
    }
}
