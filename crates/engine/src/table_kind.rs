//! Table kinds and input roles: what a node type says about the tables it takes and makes.
//!
//! A [`TableKind`] is a named Arrow schema: the columns (names and types) every table of that
//! kind has. Tables may carry more columns than their kind declares. A node type lists its
//! inputs as [`InputSpec`]s (one per role, such as `customers` or `catalog`) and may name the
//! kind of table it produces; the compiler gives every input of a node one role, and checks the
//! columns a role needs along the graph.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Schema, SchemaRef};

/// A named table schema shared by the nodes that produce and consume it.
#[derive(Debug, Clone)]
pub struct TableKind {
    name: &'static str,
    doc: &'static str,
    schema: SchemaRef,
}

impl TableKind {
    /// A kind whose tables have (at least) the columns of `schema`.
    pub fn new(name: &'static str, doc: &'static str, schema: impl Into<SchemaRef>) -> Self {
        TableKind {
            name,
            doc,
            schema: schema.into(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn doc(&self) -> &'static str {
        self.doc
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// `name (col type, ...)`, for messages and `flow nodes`.
    pub fn describe(&self) -> String {
        let cols: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        format!("{} ({})", self.name, cols.join(", "))
    }

    /// Checks a schema another node declares: every column of this kind, with the same type
    /// (text types count as one).
    pub fn check_declared(&self, found: &Schema) -> Result<(), ColumnMismatch> {
        self.check(found, same_type)
    }

    /// Checks a table that arrives without a declared kind (read from a file, say): every
    /// column of this kind, in a type its values can be read as (see [`readable_as`]).
    pub fn check_arrived(&self, found: &Schema) -> Result<(), ColumnMismatch> {
        self.check(found, readable_as)
    }

    fn check(
        &self,
        found: &Schema,
        fits: fn(&DataType, &DataType) -> bool,
    ) -> Result<(), ColumnMismatch> {
        for want in self.schema.fields() {
            match found.field_with_name(want.name()) {
                Err(_) => {
                    return Err(ColumnMismatch::Missing {
                        column: want.name().clone(),
                        expected: want.data_type().clone(),
                        present: found.fields().iter().map(|f| f.name().clone()).collect(),
                    });
                }
                Ok(have) if !fits(have.data_type(), want.data_type()) => {
                    return Err(ColumnMismatch::WrongType {
                        column: want.name().clone(),
                        expected: want.data_type().clone(),
                        found: have.data_type().clone(),
                    });
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }
}

/// Why a table does not have the columns of a kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ColumnMismatch {
    #[error("has no `{column}` column ({expected} expected); its columns are: {}", list(.present))]
    Missing {
        column: String,
        expected: DataType,
        present: Vec<String>,
    },
    #[error("column `{column}` is {found}; expected {expected}")]
    WrongType {
        column: String,
        expected: DataType,
        found: DataType,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

/// Text in any of Arrow's encodings: the three string types, or a dictionary of one of them
/// (repeated values such as product names stored once).
fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

/// The same type; Arrow's text types (dictionary-encoded text too) count as one.
fn same_type(found: &DataType, expected: &DataType) -> bool {
    found == expected || (is_text(found) && is_text(expected))
}

/// Whether values of type `found` can be read as `expected` without losing their meaning: the
/// same type; an all-null column; text for any scalar (parsed value by value, so a bad value is
/// reported with its row by the node); numbers and booleans as text (ids read from a file as
/// integers); any number as a floating-point number; dates and timestamps as a date. Nested and
/// binary types never fit a scalar column.
pub fn readable_as(found: &DataType, expected: &DataType) -> bool {
    if same_type(found, expected) || found == &DataType::Null {
        return true;
    }
    let scalar =
        |t: &DataType| t.is_numeric() || is_text(t) || is_date(t) || t == &DataType::Boolean;
    match expected {
        _ if is_text(found) => scalar(expected),
        e if is_text(e) => found.is_numeric() || found == &DataType::Boolean,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => found.is_numeric(),
        e if is_date(e) => is_date(found),
        e if e.is_integer() => found.is_integer(),
        _ => false,
    }
}

fn is_date(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
    )
}

/// Checks the table of an input whose upstream does not declare its kind against the kind of
/// its role; the error names the input, the role, the column and both types.
pub fn check_input(kind: &TableKind, input: &crate::node::Input) -> Result<(), String> {
    let Some(table) = input.data.as_table() else {
        return Ok(());
    };
    kind.check_arrived(&table.schema()).map_err(|mismatch| {
        format!(
            "input `{}` (role `{}`, {} expected) {mismatch}",
            input.name(),
            input.role.as_deref().unwrap_or("-"),
            kind.name()
        )
    })
}

/// How the engine hands one input to its node, worked out when the workflow compiles.
#[derive(Debug, Clone, Default)]
pub struct InputPlan {
    /// The kind the table is checked against when it arrives, for a role filled by a node
    /// that does not declare the kind of table it produces.
    pub check: Option<TableKind>,
    /// The only columns the node reads (see [`InputSpec::only_columns`]); `None`: every
    /// column.
    pub columns: Option<Arc<[String]>>,
}

impl InputPlan {
    /// The input as its node receives it: only the columns it reads, checked.
    pub fn receive(&self, mut input: crate::node::Input) -> Result<crate::node::Input, String> {
        if let Some(columns) = &self.columns {
            input.data = crate::data::project(input.data, columns);
        }
        if let Some(kind) = &self.check {
            check_input(kind, &input)?;
        }
        Ok(input)
    }
}

/// One input role of a node type: which table it takes and how many.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// The name written as `as:` under `needs`, such as `customers`.
    pub role: &'static str,
    /// The kind of table the role takes; `None` takes any table and checks nothing.
    pub kind: Option<TableKind>,
    /// The node cannot run without an input in this role.
    pub required: bool,
    /// More than one input may fill the role (their tables are read together).
    pub many: bool,
    /// The role gives context (see [`InputSpec::context`]): it does not count toward the
    /// node's trigger rule.
    pub context: bool,
    /// The node reads only these columns besides those `kind` declares (see
    /// [`InputSpec::only_columns`]); `None`: it reads every column.
    pub only_columns: Option<&'static [&'static str]>,
    /// One line for `flow nodes` and the docs.
    pub doc: &'static str,
}

impl InputSpec {
    /// A role that takes exactly one table of `kind`.
    pub fn one(role: &'static str, kind: TableKind, doc: &'static str) -> Self {
        InputSpec {
            role,
            kind: Some(kind),
            required: true,
            many: false,
            context: false,
            only_columns: None,
            doc,
        }
    }

    /// A role that takes any number of tables of `kind`, at least one.
    pub fn many(role: &'static str, kind: TableKind, doc: &'static str) -> Self {
        InputSpec {
            many: true,
            ..Self::one(role, kind, doc)
        }
    }

    /// The same role, but the node also runs without it.
    pub fn optional(self) -> Self {
        InputSpec {
            required: false,
            ..self
        }
    }

    /// The same role, optional, as context: the node reads it when it is there, but it does
    /// not decide whether the node runs. A join of branches that also reads, say, the whole
    /// transactions table is still skipped when every branch was skipped; a failed context
    /// input still stops the node.
    pub fn context(self) -> Self {
        InputSpec {
            context: true,
            required: false,
            ..self
        }
    }

    /// The same role, but the node reads only the columns its kind declares and `extra` (the
    /// optional columns it uses when they are there): the engine hands it the table with just
    /// those columns, and a table read back from its checkpoint is decoded for them alone. For
    /// a role that needs a few columns of a wide, long table (the purchases a report measures)
    /// or only the input's metadata; the columns it leaves are not kept in memory for it.
    pub fn only_columns(self, extra: &'static [&'static str]) -> Self {
        InputSpec {
            only_columns: Some(extra),
            ..self
        }
    }

    /// [`InputSpec::only_columns`] with no columns besides the kind's.
    pub fn declared_columns_only(self) -> Self {
        self.only_columns(&[])
    }

    /// A role that takes one table of any kind.
    pub fn any(role: &'static str, doc: &'static str) -> Self {
        InputSpec {
            role,
            kind: None,
            required: true,
            many: false,
            context: false,
            only_columns: None,
            doc,
        }
    }

    /// The kind's name, or `any table`.
    pub fn kind_name(&self) -> &'static str {
        self.kind.as_ref().map_or("any table", TableKind::name)
    }
}

impl fmt::Display for InputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({}", self.role, self.kind_name())?;
        match (self.required, self.many) {
            (true, true) => f.write_str(", one or more")?,
            (false, true) => f.write_str(", any number")?,
            (false, false) => f.write_str(", optional")?,
            (true, false) => {}
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Field;
    use std::sync::Arc;

    fn kind() -> TableKind {
        TableKind::new(
            "people",
            "test",
            Schema::new(vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("born", DataType::Date32, true),
                Field::new("weight", DataType::Float64, true),
            ]),
        )
    }

    fn schema(cols: &[(&str, DataType)]) -> Schema {
        Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn extra_columns_are_allowed_and_missing_ones_are_named() {
        let ok = schema(&[
            ("id", DataType::Utf8View),
            ("extra", DataType::Boolean),
            ("born", DataType::Date32),
            ("weight", DataType::Float64),
        ]);
        assert_eq!(kind().check_declared(&ok), Ok(()));
        let missing = schema(&[("id", DataType::Utf8), ("weight", DataType::Float64)]);
        let err = kind().check_declared(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "has no `born` column (Date32 expected); its columns are: id, weight"
        );
    }

    #[test]
    fn declared_schemas_need_the_same_types_but_arriving_tables_may_be_read_as_them() {
        // A CSV read with inferred types: integer ids, text dates, integer weights.
        let read = schema(&[
            ("id", DataType::Int64),
            ("born", DataType::Utf8),
            ("weight", DataType::Int64),
        ]);
        assert_eq!(kind().check_arrived(&read), Ok(()));
        assert_eq!(
            kind().check_declared(&read).unwrap_err().to_string(),
            "column `id` is Int64; expected Utf8"
        );
        let wrong = schema(&[
            ("id", DataType::Utf8),
            ("born", DataType::Boolean),
            ("weight", DataType::Float64),
        ]);
        assert_eq!(
            kind().check_arrived(&wrong).unwrap_err(),
            ColumnMismatch::WrongType {
                column: "born".into(),
                expected: DataType::Date32,
                found: DataType::Boolean
            }
        );
        let nested = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        assert!(!readable_as(&nested, &DataType::Utf8));
        assert!(!readable_as(&DataType::Float64, &DataType::Int64));
        assert!(readable_as(&DataType::Null, &DataType::Date32));
    }

    #[test]
    fn dictionary_encoded_text_is_text_and_other_dictionaries_are_not() {
        let dict =
            |values: DataType| DataType::Dictionary(Box::new(DataType::Int32), Box::new(values));
        let encoded = schema(&[
            ("id", dict(DataType::Utf8)),
            ("born", DataType::Date32),
            ("weight", DataType::Float64),
        ]);
        assert_eq!(kind().check_declared(&encoded), Ok(()));
        assert_eq!(kind().check_arrived(&encoded), Ok(()));
        assert!(readable_as(&dict(DataType::LargeUtf8), &DataType::Utf8));
        assert!(readable_as(&DataType::Utf8, &dict(DataType::Utf8)));
        let numbers = schema(&[
            ("id", dict(DataType::Float64)),
            ("born", DataType::Date32),
            ("weight", DataType::Float64),
        ]);
        assert!(kind().check_declared(&numbers).is_err());
    }
}
