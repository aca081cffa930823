//! Finds runaway quotes in CSV text: a quoted field that stays open for more than
//! [`MAX_QUOTED_LINES`] line breaks or [`MAX_QUOTED_BYTES`] bytes, or up to the end of the file.
//!
//! RFC 4180 lets a quoted field hold line breaks, so a single stray `"` at the start of a field
//! makes a CSV reader take everything up to the next `"` (often the rest of the file) as one
//! value: the rows it swallows vanish as one "bad row". Real multi-line values (addresses,
//! notes) are a few lines long, so a quote still open past the limits is reported as an error
//! at the line where it opened.
//!
//! The tracker follows the quoting rules of the `csv` crate's default reader (the one
//! [`super::table`] uses): a `"` opens a quoted field only as a field's first byte, `""` inside
//! it is a literal quote, and a `"` elsewhere in an unquoted field is an ordinary character.

use super::model::{MAX_QUOTED_BYTES, MAX_QUOTED_LINES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the first byte of a field (or record).
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a `"` inside a quoted field: either `""` or the closing quote.
    QuoteInQuoted,
}

/// The quoted field being read: where it opened and how much it holds so far.
#[derive(Debug, Clone, Copy)]
struct Open {
    line: u64,
    breaks: u64,
    bytes: u64,
}

/// Fed every byte of the file in order; remembers the first runaway quote.
#[derive(Debug)]
pub(super) struct QuoteTracker {
    delimiter: u8,
    state: State,
    /// The 1-based line of the next byte.
    line: u64,
    open: Option<Open>,
    runaway: Option<(u64, bool)>,
    /// How many bytes of a leading UTF-8 byte order mark have been skipped (the `csv` crate
    /// skips it too, so a quote right after it opens a field).
    bom: usize,
}

const BOM: &[u8] = b"\xef\xbb\xbf";

impl QuoteTracker {
    pub(super) fn new(delimiter: u8) -> Self {
        QuoteTracker {
            delimiter,
            state: State::FieldStart,
            line: 1,
            open: None,
            runaway: None,
            bom: 0,
        }
    }

    /// A tracker for a part of a file that starts at a record on line `line`, after any byte
    /// order mark.
    pub(super) fn continuing(delimiter: u8, line: u64) -> Self {
        QuoteTracker {
            line,
            bom: BOM.len(),
            ..QuoteTracker::new(delimiter)
        }
    }

    /// The 1-based line of the next byte.
    pub(super) fn line(&self) -> u64 {
        self.line
    }

    /// Reads the next bytes up to and including the first line break outside a quoted field,
    /// and returns how many it read; `None` when `bytes` has no such line break (all are read).
    /// The next record starts right after it.
    pub(super) fn feed_to_record_end(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut at = 0;
        while at < bytes.len() && self.runaway.is_none() {
            if matches!(self.state, State::FieldStart | State::Unquoted) && self.bom >= BOM.len() {
                // Outside quotes the next line break ends the record, unless a quote comes first.
                let next = memchr::memchr2(b'\n', b'"', &bytes[at..]).map(|i| at + i);
                let Some(i) = next else {
                    self.feed(&bytes[at..]);
                    return None;
                };
                self.feed(&bytes[at..i]);
                at = i;
            }
            let b = bytes[at];
            self.step(b);
            at += 1;
            if b == b'\n' && self.state == State::FieldStart {
                return Some(at);
            }
        }
        None
    }

    /// Reads the next bytes of the file.
    pub(super) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.runaway.is_none() {
            // Outside quotes only a `"` does more than count lines: jump to the next one.
            if self.bom >= BOM.len() && matches!(self.state, State::FieldStart | State::Unquoted) {
                let upto = memchr::memchr(b'"', bytes).unwrap_or(bytes.len());
                if let Some(&last) = bytes[..upto].last() {
                    self.line += memchr::memchr_iter(b'\n', &bytes[..upto]).count() as u64;
                    self.state = if last == self.delimiter || last == b'\n' || last == b'\r' {
                        State::FieldStart
                    } else {
                        State::Unquoted
                    };
                    bytes = &bytes[upto..];
                    continue;
                }
            }
            self.step(bytes[0]);
            bytes = &bytes[1..];
        }
    }

    /// Reads one byte.
    fn step(&mut self, b: u8) {
        if self.bom < BOM.len() {
            if BOM[self.bom] == b && self.line == 1 && self.state == State::FieldStart {
                self.bom += 1;
                return;
            }
            self.bom = BOM.len();
        }
        let newline = b == b'\n';
        let terminator = newline || b == b'\r';
        self.state = match self.state {
            State::FieldStart | State::Unquoted if b == self.delimiter || terminator => {
                State::FieldStart
            }
            State::FieldStart if b == b'"' => {
                self.open = Some(Open {
                    line: self.line,
                    breaks: 0,
                    bytes: 0,
                });
                State::Quoted
            }
            State::FieldStart | State::Unquoted => State::Unquoted,
            State::Quoted if b == b'"' => State::QuoteInQuoted,
            State::Quoted => {
                if let Some(open) = &mut self.open {
                    open.bytes += 1;
                    open.breaks += u64::from(newline);
                    if open.breaks > MAX_QUOTED_LINES || open.bytes > MAX_QUOTED_BYTES {
                        self.runaway = Some((open.line, false));
                        return;
                    }
                }
                State::Quoted
            }
            State::QuoteInQuoted if b == b'"' => State::Quoted,
            State::QuoteInQuoted => {
                self.open = None;
                if b == self.delimiter || terminator {
                    State::FieldStart
                } else {
                    State::Unquoted
                }
            }
        };
        self.line += u64::from(newline);
    }

    /// The file has ended: a quote still open runs to its end.
    pub(super) fn end(&mut self) {
        if self.runaway.is_none()
            && self.state == State::Quoted
            && let Some(open) = self.open
        {
            self.runaway = Some((open.line, true));
        }
    }

    /// The first runaway quote: the line where it opened, and whether it reached the end of the
    /// file (else it passed a limit).
    pub(super) fn runaway(&self) -> Option<(u64, bool)> {
        self.runaway
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(text: &str) -> Option<(u64, bool)> {
        let mut t = QuoteTracker::new(b',');
        // Odd-sized chunks: the state carries across reads.
        for chunk in text.as_bytes().chunks(3) {
            t.feed(chunk);
        }
        t.end();
        t.runaway()
    }

    #[test]
    fn closed_quotes_escaped_quotes_and_short_multiline_fields_are_fine() {
        assert_eq!(track("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n"), None);
        assert_eq!(track("a,b\n1,\"two\nlines\"\n2,z"), None);
        // A quote inside an unquoted field is an ordinary character.
        assert_eq!(track("a,b\n5\" pipe,1\nx,y\n"), None);
        // `"ab"c` closes the quote; the rest is unquoted.
        assert_eq!(track("a,b\n\"ab\"c,1\n"), None);
        // A quote right after a byte order mark opens a field, as in the `csv` crate.
        assert_eq!(track("\u{feff}\"a\nb\",c\n1,2\n"), None);
        assert_eq!(track("\u{feff}\"a,b\n1,2\n"), Some((1, true)));
        let fifty = "l\n".repeat(50);
        assert_eq!(track(&format!("a,b\n1,\"{fifty}\"\n2,3\n")), None);
    }

    #[test]
    fn an_unclosed_quote_at_the_end_is_a_runaway_from_its_line() {
        assert_eq!(track("a,b\n1,2\n3,\"4\n5,6\n"), Some((3, true)));
        assert_eq!(track("a,b\r\n1,2\r\n\"3,4"), Some((3, true)));
        // A quote closed by the file's last byte is closed.
        assert_eq!(track("a,b\n1,\"2\n3\""), None);
    }

    #[test]
    fn a_quote_open_past_the_limits_is_a_runaway() {
        let lines = MAX_QUOTED_LINES as usize;
        let mut text = String::from("a,b\n1,2\n");
        text.push_str("\"x,1\n");
        for i in 0..lines + 5 {
            text.push_str(&format!("{i},y\n"));
        }
        text.push_str("end\",2\n");
        assert_eq!(track(&text), Some((3, false)));
        // Exactly at the line limit is still fine.
        let ok = format!("a,b\n\"{}\",1\n", "\n".repeat(lines));
        assert_eq!(track(&ok), None);
        let over = format!("a,b\n\"{}\",1\n", "\n".repeat(lines + 1));
        assert_eq!(track(&over), Some((2, false)));
        // A long value without line breaks.
        let long = "x".repeat(MAX_QUOTED_BYTES as usize + 1);
        assert_eq!(track(&format!("a,b\n1,\"{long}\"\n")), Some((2, false)));
        let fits = "x".repeat(MAX_QUOTED_BYTES as usize);
        assert_eq!(track(&format!("a,b\n1,\"{fits}\"\n")), None);
    }

    #[test]
    fn skipping_to_the_next_quote_agrees_with_reading_byte_by_byte() {
        // Random text over the bytes that matter, fed in random pieces, against `step` alone.
        let alphabet = b"ab,;\"\"\n\r \xef\xbb\xbf";
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for case in 0..2_000 {
            let len = next(400) as usize;
            let mut text: Vec<u8> = (0..len)
                .map(|_| alphabet[next(alphabet.len() as u64) as usize])
                .collect();
            if case % 3 == 0 {
                // Long unquoted runs and a byte order mark, as in real files.
                text.splice(0..0, b"\xef\xbb\xbf\"x".iter().copied());
                text.extend(b"\n1,2,3\n".repeat(next(200) as usize));
            }
            let delimiter = if case % 2 == 0 { b',' } else { b';' };
            let mut bytewise = QuoteTracker::new(delimiter);
            for &b in &text {
                if bytewise.runaway.is_none() {
                    bytewise.step(b);
                }
            }
            bytewise.end();
            let mut fast = QuoteTracker::new(delimiter);
            let mut rest = text.as_slice();
            while !rest.is_empty() {
                let n = (next(64) as usize + 1).min(rest.len());
                fast.feed(&rest[..n]);
                rest = &rest[n..];
            }
            fast.end();
            assert_eq!(fast.runaway(), bytewise.runaway(), "case {case}: {text:?}");
            if fast.runaway().is_none() {
                assert_eq!(
                    (fast.line, fast.state),
                    (bytewise.line, bytewise.state),
                    "case {case}: {text:?}"
                );
            }
        }
    }

    #[test]
    fn the_delimiter_is_respected() {
        let mut t = QuoteTracker::new(b';');
        t.feed(b"a;b\n1,\"x;2\n");
        t.end();
        // With `;` the quote is inside the field `1,"x`: not a quoted field.
        assert_eq!(t.runaway(), None);
        let mut t = QuoteTracker::new(b';');
        t.feed(b"a;b\n1;\"x\n");
        t.end();
        assert_eq!(t.runaway(), Some((2, true)));
    }
}
