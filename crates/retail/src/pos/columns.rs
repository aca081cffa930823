//! Looking up the columns a format needs in a header, collecting every missing one so that a
//! file is reported once with all its problems rather than one column per run.

use std::io::Read;

use super::model::{MissingColumn, PosError};
use super::table::TableReader;

/// Column lookups against one header. Each lookup returns at once; [`Columns::finish`] then
/// reports all the missing columns together (or the first ambiguous one). An index returned for
/// a missing column is a placeholder that must not be used unless `finish` succeeded.
pub(super) struct Columns<'t, R: Read> {
    table: &'t TableReader<R>,
    missing: Vec<MissingColumn>,
    ambiguous: Option<PosError>,
}

impl<'t, R: Read> Columns<'t, R> {
    pub(super) fn new(table: &'t TableReader<R>) -> Self {
        Columns {
            table,
            missing: Vec::new(),
            ambiguous: None,
        }
    }

    /// The index of a column when the header has it.
    pub(super) fn find(&mut self, name: &str) -> Option<usize> {
        match self.table.find(name) {
            Ok(found) => found,
            Err(e) => {
                self.ambiguous.get_or_insert(e);
                None
            }
        }
    }

    /// The index of a column that must exist; `role` says what it is for.
    pub(super) fn require(&mut self, name: &str, role: &str) -> usize {
        match self.table.find(name) {
            Ok(Some(i)) => i,
            Ok(None) => {
                self.missing(name, role);
                usize::MAX
            }
            Err(e) => {
                self.ambiguous.get_or_insert(e);
                usize::MAX
            }
        }
    }

    /// A column that must exist when configured, and is used when present otherwise.
    pub(super) fn optional(
        &mut self,
        configured: Option<&str>,
        default: &str,
        role: &str,
    ) -> Option<usize> {
        match configured {
            Some(name) => Some(self.require(name, role)),
            None => self.find(default),
        }
    }

    /// Records a missing column found by the caller's own rule.
    pub(super) fn missing(&mut self, column: &str, role: &str) {
        self.missing.push(MissingColumn {
            column: column.to_string(),
            role: role.to_string(),
        });
    }

    /// Every missing column in one error, or the first ambiguous one.
    pub(super) fn finish(self) -> Result<(), PosError> {
        if let Some(e) = self.ambiguous {
            return Err(e);
        }
        if self.missing.is_empty() {
            return Ok(());
        }
        Err(PosError::MissingColumns {
            missing: self.missing,
            header: self.table.header().to_vec(),
            hint: self.table.delimiter_hint(),
        })
    }
}
