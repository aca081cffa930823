//! Size and nesting limits, checked on a workflow's text before any YAML parser sees it.
//!
//! Both YAML parsers recurse once per level of nesting (a file nested thousands of levels deep
//! overflows the stack), and their scanners do work per token in proportion to the flow nesting
//! depth (deep `[[[[...` is quadratic). So one linear scan bounds the size and the depth first.
//!
//! The scan is a conservative model of YAML's structure, not a parser: it tracks flow `[`/`{`
//! nesting and block indentation levels (each `- `, `? ` and key at a deeper column opens one),
//! skipping quoted, block and plain multi-line scalars and comments. Its count differs from the
//! parser's a little: a scalar at the start of a line counts as a level, and a sequence written at
//! its key's indentation shares the key's level (so the parser nests at most about twice the
//! count). The limit is far beyond any real workflow, so the difference never matters for a file
//! that is not built to hurt, and the parsers' depth stays bounded either way.

use std::fmt;

use crate::source::Pos;

/// The largest workflow file accepted.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// The deepest nesting accepted (block levels and flow brackets together).
pub const MAX_DEPTH: usize = 64;

/// A workflow text beyond a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    /// More than [`MAX_BYTES`]; `at` is where the limit is crossed.
    TooLarge { at: Pos },
    /// Nesting past [`MAX_DEPTH`]; `at` is the opening that goes one level too deep.
    TooDeep { at: Pos },
}

impl LimitError {
    /// Where in the file the limit is crossed.
    pub fn pos(&self) -> Pos {
        match self {
            LimitError::TooLarge { at } | LimitError::TooDeep { at } => *at,
        }
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::TooLarge { .. } => write!(
                f,
                "workflow file is larger than {} MiB; it is not parsed",
                MAX_BYTES / (1024 * 1024)
            ),
            LimitError::TooDeep { .. } => write!(
                f,
                "nested deeper than {MAX_DEPTH} levels; the file is not parsed further"
            ),
        }
    }
}

impl std::error::Error for LimitError {}

/// Checks `text` against [`MAX_BYTES`] and [`MAX_DEPTH`] in one pass, without parsing it.
pub fn check(text: &str) -> Result<(), LimitError> {
    if text.len() > MAX_BYTES {
        return Err(too_large(text.as_bytes()));
    }
    // A byte order mark is not content; it would shift the first line's columns.
    let mut offset = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut scan = Scan::default();
    for raw in text[offset..].split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Err(byte) = scan.line(line.as_bytes()) {
            return Err(LimitError::TooDeep {
                at: pos_of(text.as_bytes(), offset + byte),
            });
        }
        offset += raw.len() + 1;
    }
    Ok(())
}

/// The error for a file of more than [`MAX_BYTES`] (`bytes` holds at least the first
/// `MAX_BYTES + 1`), located where the limit is crossed.
pub fn too_large(bytes: &[u8]) -> LimitError {
    LimitError::TooLarge {
        at: pos_of(bytes, MAX_BYTES.min(bytes.len())),
    }
}

/// The 1-based line and column (in characters) of byte `offset`.
pub fn pos_of(bytes: &[u8], offset: usize) -> Pos {
    let before = &bytes[..offset];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    Pos {
        line: before.iter().filter(|&&b| b == b'\n').count() + 1,
        // Counts characters, not bytes: UTF-8 continuation bytes are 0b10xx_xxxx.
        col: before[line_start..]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count()
            + 1,
    }
}

/// What the scan carries from one line to the next.
#[derive(Default)]
struct Scan {
    /// Columns of the open block collections, innermost last.
    indents: Vec<usize>,
    /// Open flow collections (`[`, `{`).
    flow: usize,
    /// Inside a quoted scalar that continues on the next line (`'` or `"`).
    quote: Option<u8>,
    /// Inside a block scalar (`|`, `>`): lines indented more than this belong to it.
    block_scalar: Option<isize>,
    /// A plain scalar may continue on lines indented more than this.
    plain: Option<isize>,
    /// In flow context: the next token starts a node (a quote there opens a quoted scalar).
    flow_node_start: bool,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether the byte at `i` ends a token (whitespace or end of line).
fn ends_at(line: &[u8], i: usize) -> bool {
    line.get(i).is_none_or(|&b| is_blank(b))
}

impl Scan {
    /// The innermost block indentation, -1 at top level.
    fn top(&self) -> isize {
        self.indents.last().map_or(-1, |&c| c as isize)
    }

    /// Opens a block level at `col` if it is deeper than the current one.
    fn roll(&mut self, col: usize) -> Result<(), ()> {
        if col as isize > self.top() {
            self.indents.push(col);
            self.depth_ok()?;
        }
        Ok(())
    }

    fn depth_ok(&self) -> Result<(), ()> {
        if self.indents.len() + self.flow > MAX_DEPTH {
            Err(())
        } else {
            Ok(())
        }
    }

    /// Scans one line (without its line break); `Err` holds the byte offset in the line where
    /// the nesting goes too deep.
    fn line(&mut self, line: &[u8]) -> Result<(), usize> {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let blank = line[indent..].iter().all(|&b| is_blank(b));

        if let Some(parent) = self.block_scalar {
            if blank || indent as isize > parent {
                return Ok(());
            }
            self.block_scalar = None;
        }
        if let Some(parent) = self.plain {
            if blank {
                return Ok(());
            }
            if indent as isize > parent && self.flow == 0 {
                return Ok(());
            }
            self.plain = None;
        }

        let mut i = 0;
        // Whether the line (from `i`) starts a node in block context.
        let mut start = self.flow == 0;
        if let Some(q) = self.quote {
            match close_quote(line, 0, q) {
                Some(end) => {
                    self.quote = None;
                    i = end;
                    start = false;
                }
                None => return Ok(()),
            }
        } else if self.flow == 0 {
            if blank || line[indent] == b'#' || (indent == 0 && line[0] == b'%') {
                return Ok(());
            }
            if indent == 0 && (line.starts_with(b"---") || line.starts_with(b"...")) {
                if ends_at(line, 3) {
                    self.indents.clear();
                    i = 3;
                }
            } else {
                while self.top() > indent as isize {
                    self.indents.pop();
                }
                i = indent;
            }
        }
        self.rest(line, i, start)
    }

    /// Scans a line from byte `i` on, outside any quoted scalar; `start` says whether a block
    /// node starts at `i`.
    fn rest(&mut self, line: &[u8], mut i: usize, start: bool) -> Result<(), usize> {
        // Block context: whether a node starts here, and whether it may open a level (not
        // after `key: `, where a value starts).
        let mut node_start = start;
        let mut may_roll = start;
        let mut plain = false;
        while i < line.len() {
            let c = line[i];
            if is_blank(c) {
                i += 1;
                continue;
            }
            if c == b'#' && (i == 0 || is_blank(line[i - 1])) {
                // A comment ends a plain scalar: a deeper next line is not its continuation.
                plain = false;
                break;
            }
            if self.flow > 0 {
                match c {
                    b'[' | b'{' => {
                        self.flow += 1;
                        self.depth_ok().map_err(|()| i)?;
                        self.flow_node_start = true;
                    }
                    b']' | b'}' => {
                        self.flow -= 1;
                        self.flow_node_start = false;
                        if self.flow == 0 {
                            node_start = false;
                            may_roll = false;
                        }
                    }
                    b',' | b':' | b'?' => self.flow_node_start = true,
                    b'\'' | b'"' if self.flow_node_start => {
                        match close_quote(line, i + 1, c) {
                            Some(end) => i = end - 1,
                            None => {
                                self.quote = Some(c);
                                return Ok(());
                            }
                        }
                        self.flow_node_start = false;
                    }
                    _ => self.flow_node_start = false,
                }
                i += 1;
                continue;
            }
            if node_start {
                match c {
                    b'-' | b'?' if may_roll && ends_at(line, i + 1) => {
                        self.roll(i).map_err(|()| i)?;
                        i += 1;
                        continue;
                    }
                    b'[' | b'{' => {
                        self.flow = 1;
                        self.depth_ok().map_err(|()| i)?;
                        self.flow_node_start = true;
                        plain = false;
                        i += 1;
                        continue;
                    }
                    b'\'' | b'"' => {
                        if may_roll {
                            self.roll(i).map_err(|()| i)?;
                        }
                        match close_quote(line, i + 1, c) {
                            Some(end) => i = end,
                            None => {
                                self.quote = Some(c);
                                return Ok(());
                            }
                        }
                        node_start = false;
                        plain = false;
                        continue;
                    }
                    b'|' | b'>' => {
                        self.block_scalar = Some(self.top());
                        return Ok(());
                    }
                    b'&' | b'!' => {
                        // An anchor or tag comes before the node it names.
                        while i < line.len() && !is_blank(line[i]) {
                            i += 1;
                        }
                        continue;
                    }
                    _ => {
                        if may_roll {
                            self.roll(i).map_err(|()| i)?;
                        }
                        node_start = false;
                    }
                }
            }
            // Inside a plain scalar or key: only `: ` (a value follows) matters.
            if c == b':' && ends_at(line, i + 1) {
                node_start = true;
                may_roll = false;
                plain = false;
            } else {
                plain = true;
            }
            i += 1;
        }
        if plain && self.flow == 0 {
            self.plain = Some(self.top());
        }
        Ok(())
    }
}

/// The byte after the quote closing a scalar opened by `q` just before `from`, if it closes on
/// this line. `''` inside single quotes and `\x` inside double quotes are escapes.
fn close_quote(line: &[u8], from: usize, q: u8) -> Option<usize> {
    let mut i = from;
    while i < line.len() {
        let c = line[i];
        if q == b'"' && c == b'\\' {
            i += 2;
            continue;
        }
        if c == q {
            if q == b'\'' && line.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
