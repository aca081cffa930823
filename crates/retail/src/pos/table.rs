//! A delimited-text reader shared by the CSV formats: RFC 4180 CSV through the `csv` crate for
//! single-byte delimiters, and a small tokenizer for whitespace-separated files.
//!
//! - The first record is the header. Header names are trimmed and a UTF-8 BOM is dropped.
//!   Column lookup is exact first, then case-insensitive when that is unambiguous.
//! - Blank records (every field empty or spaces) are skipped and not counted.
//! - A record whose field count differs from the header's is a bad row (a shifted row would
//!   otherwise put values in the wrong columns).
//! - A record that is not valid UTF-8 is a bad row; an I/O error stops the parse.
//! - Whitespace mode: fields are separated by runs of spaces and tabs; a field may be quoted
//!   with `"` to contain spaces (`""` is a literal quote); lines are physical lines.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use csv::StringRecord;
use serde::{Deserialize, Serialize};

use super::columns::Columns;
use super::model::{BadRow, ParseReport, PosError};
use super::runaway_quote::QuoteTracker;

/// Field separator of a delimited file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Delimiter {
    /// `,`
    #[default]
    Comma,
    /// `;` (common where `,` is the decimal separator)
    Semicolon,
    /// tab
    Tab,
    /// `|`
    Pipe,
    /// Runs of spaces and tabs.
    Whitespace,
}

impl Delimiter {
    pub(super) fn byte(self) -> Option<u8> {
        match self {
            Delimiter::Comma => Some(b','),
            Delimiter::Semicolon => Some(b';'),
            Delimiter::Tab => Some(b'\t'),
            Delimiter::Pipe => Some(b'|'),
            Delimiter::Whitespace => None,
        }
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delimiter::Comma => ",",
            Delimiter::Semicolon => ";",
            Delimiter::Tab => "\\t",
            Delimiter::Pipe => "|",
            Delimiter::Whitespace => "whitespace",
        })
    }
}

impl TryFrom<String> for Delimiter {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "," | "comma" => Delimiter::Comma,
            ";" | "semicolon" => Delimiter::Semicolon,
            "\t" | "\\t" | "tab" => Delimiter::Tab,
            "|" | "pipe" => Delimiter::Pipe,
            "whitespace" | " " | "space" => Delimiter::Whitespace,
            other => {
                return Err(format!(
                    "delimiter `{other}` is not one of `,` `;` `\\t` `|` `whitespace`"
                ));
            }
        })
    }
}

impl From<Delimiter> for String {
    fn from(d: Delimiter) -> String {
        match d {
            Delimiter::Tab => "tab".into(),
            other => other.to_string(),
        }
    }
}

/// Remembers where the line terminators are, so records get exact line numbers: the `csv`
/// crate's own `Position::line` skips blank lines and miscounts CRLF files, and its byte
/// position may point at the terminators before a record rather than at its first byte.
struct LineCounter<R> {
    inner: R,
    offset: u64,
    /// Offsets of `\r` / `\n` bytes not yet passed, with whether each is a `\n`.
    terminators: VecDeque<(u64, bool)>,
    newlines_before: u64,
    quotes: QuoteTracker,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        // A reader claiming more bytes than the buffer holds is broken; do not index past it.
        let filled = buf.get(..n).unwrap_or(&[]);
        for i in memchr::memchr2_iter(b'\n', b'\r', filled) {
            self.terminators
                .push_back((self.offset + i as u64, filled[i] == b'\n'));
        }
        self.quotes.feed(filled);
        if n == 0 && !buf.is_empty() {
            self.quotes.end();
        }
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R> LineCounter<R> {
    /// The 1-based line of the record whose reported byte position is `pos`.
    fn line_at(&mut self, pos: u64) -> u64 {
        while let Some(&(off, nl)) = self.terminators.front() {
            if off >= pos {
                break;
            }
            self.newlines_before += u64::from(nl);
            self.terminators.pop_front();
        }
        // Skip the terminators between the reported position and the record's first byte.
        let mut at = pos;
        while let Some(&(off, nl)) = self.terminators.front() {
            if off != at {
                break;
            }
            self.newlines_before += u64::from(nl);
            self.terminators.pop_front();
            at += 1;
        }
        self.newlines_before + 1
    }
}

enum Source<R: Read> {
    Csv(csv::Reader<LineCounter<R>>),
    Whitespace {
        reader: BufReader<R>,
        line: u64,
        buf: Vec<u8>,
    },
}

/// Reads a header and then data rows.
pub(super) struct TableReader<R: Read> {
    source: Source<R>,
    header: Vec<String>,
    delimiter: Delimiter,
    record: StringRecord,
    line: u64,
}

/// One data row; fields are trimmed on access.
pub(super) struct Row<'a> {
    pub line: u64,
    record: &'a StringRecord,
}

impl Row<'_> {
    /// The trimmed field at `idx` ("" when absent).
    pub fn get(&self, idx: usize) -> &str {
        self.record.get(idx).map(trim).unwrap_or("")
    }

    /// The trimmed field when the column is mapped and the value is not empty.
    pub fn opt(&self, idx: Option<usize>) -> Option<&str> {
        let v = self.get(idx?);
        (!v.is_empty()).then_some(v)
    }
}

enum Next {
    Record(u64),
    Bad(BadRow),
    Eof,
}

impl<R: Read> TableReader<R> {
    /// Opens a reader and reads the header. An empty input is a [`PosError::Empty`].
    pub fn new(reader: R, delimiter: Delimiter) -> Result<Self, PosError> {
        let source = match delimiter.byte() {
            Some(b) => csv_source(reader, b, 0, QuoteTracker::new(b)),
            None => Source::Whitespace {
                reader: BufReader::new(reader),
                line: 0,
                buf: Vec::new(),
            },
        };
        let mut table = TableReader {
            source,
            header: Vec::new(),
            delimiter,
            record: StringRecord::new(),
            line: 0,
        };
        loop {
            match table.read_raw()? {
                Next::Eof => return Err(PosError::Empty),
                Next::Bad(bad) => {
                    return Err(PosError::Header(format!("the header is unreadable: {bad}")));
                }
                Next::Record(_) if is_blank(&table.record) => continue,
                Next::Record(_) => break,
            }
        }
        table.header = table
            .record
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    h
                };
                h.trim().to_string()
            })
            .collect();
        Ok(table)
    }

    /// A reader of a part of a file that starts at a record on line `first_line`, after the
    /// header (`header`, as [`TableReader::new`] read it). Only for single-byte delimiters.
    pub fn continuing(
        reader: R,
        delimiter: Delimiter,
        header: Vec<String>,
        first_line: u64,
    ) -> Self {
        let b = delimiter.byte().unwrap_or(b',');
        let newlines_before = first_line.saturating_sub(1);
        TableReader {
            source: csv_source(
                reader,
                b,
                newlines_before,
                QuoteTracker::continuing(b, first_line),
            ),
            header,
            delimiter,
            record: StringRecord::new(),
            line: first_line.saturating_sub(1),
        }
    }

    /// The byte offset of the first record after the header (for single-byte delimiters).
    pub fn data_start(&self) -> Option<u64> {
        match &self.source {
            Source::Csv(reader) => Some(reader.position().byte()),
            Source::Whitespace { .. } => None,
        }
    }

    /// The header names.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Index of a column: exact match first, then a unique case-insensitive match.
    pub fn find(&self, name: &str) -> Result<Option<usize>, PosError> {
        let exact: Vec<usize> = positions(&self.header, |h| h == name);
        let found = if exact.is_empty() {
            positions(&self.header, |h| h.eq_ignore_ascii_case(name))
        } else {
            exact
        };
        match found.as_slice() {
            [] => Ok(None),
            [i] => Ok(Some(*i)),
            many => Err(PosError::Header(format!(
                "column `{name}` appears {} times in the header (columns {})",
                many.len(),
                many.iter()
                    .map(|i| (i + 1).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// A lookup of the columns a format needs, reporting every missing one at once.
    pub fn columns(&self) -> Columns<'_, R> {
        Columns::new(self)
    }

    /// A guess at why the header does not have a column (a wrong delimiter), or "".
    pub fn delimiter_hint(&self) -> String {
        if self.header.len() == 1 {
            let h = &self.header[0];
            for (c, name) in [(',', ","), (';', ";"), ('\t', "\\t"), ('|', "|")] {
                if h.contains(c) && self.delimiter.byte() != Some(c as u8) {
                    return format!(
                        "is the delimiter `{name}`? it is set to `{}`",
                        self.delimiter
                    );
                }
            }
        }
        String::new()
    }

    /// The next data row, or `None` at the end. Bad rows (UTF-8, field count) are recorded in
    /// `report` and skipped; `rows_read` counts every non-blank data row.
    pub fn next_row(&mut self, report: &mut ParseReport) -> Result<Option<Row<'_>>, PosError> {
        loop {
            match self.read_raw()? {
                Next::Eof => return Ok(None),
                Next::Bad(bad) => {
                    report.rows_read += 1;
                    report.push_bad(bad);
                }
                Next::Record(line) => {
                    if is_blank(&self.record) {
                        continue;
                    }
                    report.rows_read += 1;
                    let n = self.record.len();
                    if n != self.header.len() {
                        report.push_bad(BadRow::new(
                            line,
                            format!(
                                "the row has {n} field{} but the header has {}",
                                if n == 1 { "" } else { "s" },
                                self.header.len()
                            ),
                        ));
                        continue;
                    }
                    self.line = line;
                    return Ok(Some(Row {
                        line,
                        record: &self.record,
                    }));
                }
            }
        }
    }

    fn read_raw(&mut self) -> Result<Next, PosError> {
        match &mut self.source {
            Source::Csv(reader) => {
                let read = reader.read_record(&mut self.record);
                // The reader reads ahead: a runaway quote is found before the rows it swallowed
                // are handed out, and fails the parse rather than making them one bad row.
                if let Some((line, to_end)) = reader.get_ref().quotes.runaway() {
                    return Err(PosError::RunawayQuote { line, to_end });
                }
                match read {
                    Ok(false) => Ok(Next::Eof),
                    Ok(true) => {
                        let pos = self.record.position().map(csv::Position::byte);
                        let line = pos.map_or(self.line + 1, |p| reader.get_mut().line_at(p));
                        Ok(Next::Record(line))
                    }
                    Err(e) => {
                        let pos = e.position().map(csv::Position::byte);
                        let line = pos.map_or(self.line + 1, |p| reader.get_mut().line_at(p));
                        match e.into_kind() {
                            csv::ErrorKind::Io(io) => Err(PosError::io(None, &io)),
                            csv::ErrorKind::Utf8 { .. } => {
                                self.line = line;
                                Ok(Next::Bad(BadRow::new(line, "the row is not valid UTF-8")))
                            }
                            other => {
                                self.line = line;
                                Ok(Next::Bad(BadRow::new(
                                    line,
                                    format!("unreadable row: {other:?}"),
                                )))
                            }
                        }
                    }
                }
            }
            Source::Whitespace { reader, line, buf } => {
                buf.clear();
                let n = reader
                    .read_until(b'\n', buf)
                    .map_err(|e| PosError::io(None, &e))?;
                if n == 0 {
                    return Ok(Next::Eof);
                }
                *line += 1;
                let Ok(text) = std::str::from_utf8(buf) else {
                    return Ok(Next::Bad(BadRow::new(*line, "the row is not valid UTF-8")));
                };
                match split_whitespace_fields(text, &mut self.record) {
                    Ok(()) => Ok(Next::Record(*line)),
                    Err(reason) => Ok(Next::Bad(BadRow::new(*line, reason))),
                }
            }
        }
    }
}

/// A `csv` reader of records separated by `delimiter`, counting lines from `newlines_before`.
fn csv_source<R: Read>(
    reader: R,
    delimiter: u8,
    newlines_before: u64,
    quotes: QuoteTracker,
) -> Source<R> {
    Source::Csv(
        csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(LineCounter {
                inner: reader,
                offset: 0,
                terminators: VecDeque::new(),
                newlines_before,
                quotes,
            }),
    )
}

fn positions(header: &[String], pred: impl Fn(&str) -> bool) -> Vec<usize> {
    header
        .iter()
        .enumerate()
        .filter(|(_, h)| pred(h))
        .map(|(i, _)| i)
        .collect()
}

fn is_blank(record: &StringRecord) -> bool {
    record.iter().all(|f| trim(f).is_empty())
}

/// `s.trim()`, without its scan for Unicode whitespace when both ends are visible ASCII, as
/// nearly every field's are.
#[inline]
fn trim(s: &str) -> &str {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => s,
        (None, _) => s,
        _ => s.trim(),
    }
}

/// Splits a line on runs of spaces/tabs, honouring `"..."` quoting.
fn split_whitespace_fields(line: &str, record: &mut StringRecord) -> Result<(), String> {
    record.clear();
    let line = line.trim_end_matches(['\n', '\r']);
    let mut chars = line.char_indices().peekable();
    let mut field = String::new();
    loop {
        while chars.peek().is_some_and(|&(_, c)| c == ' ' || c == '\t') {
            chars.next();
        }
        let Some(&(_, first)) = chars.peek() else {
            break;
        };
        field.clear();
        if first == '"' {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                if c == '"' {
                    if chars.peek().is_some_and(|&(_, n)| n == '"') {
                        chars.next();
                        field.push('"');
                    } else {
                        closed = true;
                        break;
                    }
                } else {
                    field.push(c);
                }
            }
            if !closed {
                return Err("unterminated quoted field".into());
            }
            if chars.peek().is_some_and(|&(_, c)| c != ' ' && c != '\t') {
                return Err("text right after a closing quote".into());
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c == ' ' || c == '\t' {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        record.push_field(&field);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_field_is_trimmed_as_str_trim_trims_it() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\r",
            "ab",
            "a b",
            "\u{a0}x",
            "x\u{2003}",
            "é",
            " é ",
            "\u{3000}",
            "1,5",
            "\"q\"",
        ] {
            assert_eq!(super::trim(s), s.trim(), "{s:?}");
        }
    }

    use super::*;

    fn rows(text: &str, d: Delimiter) -> (Vec<(u64, Vec<String>)>, ParseReport) {
        let mut table = TableReader::new(text.as_bytes(), d).unwrap();
        let mut report = ParseReport::default();
        let mut out = Vec::new();
        while let Some(row) = table.next_row(&mut report).unwrap() {
            let n = row.record.len();
            out.push((row.line, (0..n).map(|i| row.get(i).to_string()).collect()));
        }
        (out, report)
    }

    #[test]
    fn csv_lines_are_physical_lines_with_quoted_newlines() {
        let text = "a,b\n1,\"x\ny\"\n\n2,z\n";
        let (out, report) = rows(text, Delimiter::Comma);
        assert_eq!(out[0], (2, vec!["1".to_string(), "x\ny".to_string()]));
        assert_eq!(out[1], (5, vec!["2".to_string(), "z".to_string()]));
        assert_eq!(report.rows_read, 2);
    }

    #[test]
    fn line_numbers_with_crlf_blank_lines_and_bom() {
        let text = "\u{feff}a,b\r\n\r\n1,\"x\r\ny\"\r\n\r\n\r\n2,z\r\n3,w";
        let (out, _) = rows(text, Delimiter::Comma);
        let lines: Vec<u64> = out.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![3, 7, 8]);
        let text = "a,b\n\n\n1,2\n \n2,3\n";
        let (out, _) = rows(text, Delimiter::Comma);
        let lines: Vec<u64> = out.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![4, 6]);
    }

    #[test]
    fn line_numbers_survive_small_reads() {
        // A reader returning one byte at a time exercises the counter across buffer refills.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match (self.0.split_first(), buf.first_mut()) {
                    (Some((&b, rest)), Some(slot)) => {
                        *slot = b;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let text = "a,b\r\n\r\n1,\"x\ny\"\n2,z\n";
        let mut table = TableReader::new(OneByte(text.as_bytes()), Delimiter::Comma).unwrap();
        let mut report = ParseReport::default();
        let mut lines = Vec::new();
        while let Some(row) = table.next_row(&mut report).unwrap() {
            lines.push(row.line);
        }
        assert_eq!(lines, vec![3, 5]);
    }

    #[test]
    fn field_count_mismatch_and_bad_utf8_are_bad_rows() {
        let mut text = b"a,b\n1,2\n1,2,3\n4\n".to_vec();
        text.extend_from_slice(b"\xff\xfe,2\n5,6\n");
        let mut table = TableReader::new(&text[..], Delimiter::Comma).unwrap();
        let mut report = ParseReport::default();
        let mut lines = Vec::new();
        while let Some(row) = table.next_row(&mut report).unwrap() {
            lines.push(row.line);
        }
        assert_eq!(lines, vec![2, 6]);
        assert_eq!(report.rows_read, 5);
        let reasons: Vec<String> = report.bad_rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "line 3: the row has 3 fields but the header has 2",
                "line 4: the row has 1 field but the header has 2",
                "line 5: the row is not valid UTF-8",
            ]
        );
    }

    #[test]
    fn header_bom_trim_and_lookup() {
        let text = "\u{feff} Customer ID , amount\nc1,2\n";
        let table = TableReader::new(text.as_bytes(), Delimiter::Comma).unwrap();
        assert_eq!(table.header(), ["Customer ID", "amount"]);
        assert_eq!(table.find("customer id").unwrap(), Some(0));
        assert_eq!(table.find("Amount").unwrap(), Some(1));
        assert_eq!(table.find("nope").unwrap(), None);
        let mut columns = table.columns();
        columns.require("order_id", "order");
        let err = columns.finish().unwrap_err().to_string();
        assert_eq!(
            err,
            "column `order_id` (for order) is not in the header; the header has 2 columns: \
             `Customer ID`, `amount`"
        );
    }

    #[test]
    fn ambiguous_and_duplicate_columns_are_errors() {
        let table = TableReader::new("a,A,b,b\n".as_bytes(), Delimiter::Comma).unwrap();
        assert_eq!(table.find("a").unwrap(), Some(0));
        assert!(
            table
                .find("B")
                .unwrap_err()
                .to_string()
                .contains("appears 2 times")
        );
    }

    #[test]
    fn wrong_delimiter_hint() {
        let table = TableReader::new("a;b;c\n1;2;3\n".as_bytes(), Delimiter::Comma).unwrap();
        let mut columns = table.columns();
        columns.require("b", "amount");
        let err = columns.finish().unwrap_err().to_string();
        assert!(
            err.ends_with("(is the delimiter `;`? it is set to `,`)"),
            "{err}"
        );
    }

    #[test]
    fn empty_input_is_a_header_error() {
        for text in ["", "\n\n", " , \n"] {
            let err = TableReader::new(text.as_bytes(), Delimiter::Comma)
                .err()
                .unwrap();
            assert!(err.to_string().contains("empty"), "{text:?}: {err}");
        }
        assert!(TableReader::new("".as_bytes(), Delimiter::Whitespace).is_err());
    }

    #[test]
    fn whitespace_mode_splits_runs_and_quotes() {
        let text =
            "id  name\tqty\n1   \"Blue Mug\"\t2\n\n  2 plain   3  \r\n3 \"say \"\"hi\"\"\" 1\n";
        let (out, report) = rows(text, Delimiter::Whitespace);
        assert_eq!(out[0], (2, vec!["1".into(), "Blue Mug".into(), "2".into()]));
        assert_eq!(out[1], (4, vec!["2".into(), "plain".into(), "3".into()]));
        assert_eq!(
            out[2],
            (5, vec!["3".into(), "say \"hi\"".into(), "1".into()])
        );
        assert_eq!(report.bad_row_count, 0);
    }

    #[test]
    fn whitespace_mode_bad_rows() {
        let text = "a b\n\"open 1\nx\"y 2\n1 2 3\n";
        let (out, report) = rows(text, Delimiter::Whitespace);
        // A quote inside an unquoted field is a literal character.
        assert_eq!(out, vec![(3, vec!["x\"y".to_string(), "2".to_string()])]);
        let reasons: Vec<String> = report.bad_rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            vec![
                "line 2: unterminated quoted field",
                "line 4: the row has 3 fields but the header has 2",
            ]
        );
    }

    #[test]
    fn delimiter_names() {
        for (s, d) in [
            ("\";\"", Delimiter::Semicolon),
            ("\"tab\"", Delimiter::Tab),
            ("\"\\t\"", Delimiter::Tab),
            ("\"|\"", Delimiter::Pipe),
            ("\"whitespace\"", Delimiter::Whitespace),
        ] {
            assert_eq!(serde_json::from_str::<Delimiter>(s).unwrap(), d, "{s}");
        }
        assert!(serde_json::from_str::<Delimiter>("\"::\"").is_err());
    }
}
