//! CSV for people: files a marketer opens in Excel, LibreOffice Calc or Google Sheets.
//!
//! A spreadsheet evaluates a cell that starts with `=`, `+`, `-` or `@` (and, in some, a leading
//! tab or carriage return) as a formula, so a customer named `=HYPERLINK("http://evil",
//! "click")` becomes a live link or worse (CSV injection). Following the OWASP rule, such text
//! cells get a leading `'`, which spreadsheets show as text. Whether a cell is text is decided by
//! its Arrow column type, never by the look of the value: `-12.50` in a number column stays a
//! number, `-12.50` in a text column becomes `'-12.50`.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, GenericStringArray, OffsetSizeTrait, RecordBatch, StringViewArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema};

/// First characters a spreadsheet may evaluate: the OWASP list, plus the full-width forms of
/// `= + - @` that some spreadsheet locales also accept.
const FORMULA_STARTS: [char; 10] = [
    '=', '+', '-', '@', '\t', '\r', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// Whether a text cell would be evaluated by a spreadsheet.
pub fn looks_like_formula(cell: &str) -> bool {
    cell.starts_with(FORMULA_STARTS)
}

/// The table with every text cell that a spreadsheet would evaluate prefixed with `'`.
/// Number, boolean and date columns are left as they are. Dictionary-encoded text columns
/// come back as plain text columns.
pub fn neutralize_formulas(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let mut changed = false;
    let mut fields: Vec<Field> = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let text = match column.data_type() {
            DataType::Dictionary(_, values)
                if matches!(
                    values.as_ref(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                Some(arrow_cast::cast(column, &DataType::Utf8)?)
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(column.clone()),
            _ => None,
        };
        match text.and_then(|t| neutralized(&t).or(Some(t))) {
            Some(new) if !Arc::ptr_eq(&new, column) => {
                changed = true;
                fields.push(
                    field
                        .as_ref()
                        .clone()
                        .with_data_type(new.data_type().clone()),
                );
                columns.push(new);
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    if !changed {
        return Ok(batch.clone());
    }
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        columns,
    )
}

/// A text column with its formula-like cells prefixed, or `None` when it has none.
fn neutralized(column: &ArrayRef) -> Option<ArrayRef> {
    match column.data_type() {
        DataType::Utf8 => prefixed(column.as_string::<i32>()),
        DataType::LargeUtf8 => prefixed(column.as_string::<i64>()),
        DataType::Utf8View => {
            let values = column.as_string_view();
            values.iter().flatten().any(looks_like_formula).then(|| {
                let out: StringViewArray = values.iter().map(|v| v.map(escaped)).collect();
                Arc::new(out) as ArrayRef
            })
        }
        _ => None,
    }
}

fn prefixed<O: OffsetSizeTrait>(values: &GenericStringArray<O>) -> Option<ArrayRef> {
    values.iter().flatten().any(looks_like_formula).then(|| {
        let out: GenericStringArray<O> = values.iter().map(|v| v.map(escaped)).collect();
        Arc::new(out) as ArrayRef
    })
}

fn escaped(cell: &str) -> String {
    if looks_like_formula(cell) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

/// Writes a table as CSV with a header row, safe to open in a spreadsheet (see
/// [`neutralize_formulas`]).
pub fn write_csv_for_spreadsheets(
    batch: &RecordBatch,
    out: impl std::io::Write,
) -> Result<(), ArrowError> {
    SpreadsheetCsv::new(out).write(batch)
}

/// Rows neutralised and written at a time, so that a large table is not copied whole; a
/// caller that transforms a table before writing it can do so in slices of this size too.
pub const ROWS_PER_WRITE: usize = 64 * 1024;

/// Writes tables one after another as one CSV with a header row, safe to open in a
/// spreadsheet (see [`neutralize_formulas`]). Each write reaches `out` before it returns.
pub struct SpreadsheetCsv<W: std::io::Write> {
    writer: arrow_csv::Writer<W>,
}

impl<W: std::io::Write> SpreadsheetCsv<W> {
    pub fn new(out: W) -> Self {
        SpreadsheetCsv {
            writer: arrow_csv::WriterBuilder::new().with_header(true).build(out),
        }
    }

    /// Appends the rows of `batch` (the first write also writes the header, from its schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let mut start = 0;
        loop {
            let len = ROWS_PER_WRITE.min(batch.num_rows() - start);
            self.writer
                .write(&neutralize_formulas(&batch.slice(start, len))?)?;
            start += len;
            if start == batch.num_rows() {
                return Ok(());
            }
        }
    }

    pub fn into_inner(self) -> W {
        self.writer.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::builder::StringDictionaryBuilder;
    use arrow_array::types::Int32Type;
    use arrow_array::{Float64Array, Int64Array, LargeStringArray, StringArray};

    use super::*;

    fn csv(batch: &RecordBatch) -> String {
        let mut buf = Vec::new();
        write_csv_for_spreadsheets(batch, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn text_cells_that_start_a_formula_get_a_quote() {
        let names = StringArray::from(vec![
            Some("=HYPERLINK(\"http://evil.example\",\"click\")"),
            Some("+SUM(A1:A9)"),
            Some("-2+3"),
            Some("@cmd"),
            Some("\tTab"),
            Some("\rReturn"),
            Some("\u{FF1D}1+1"),
            Some("Ada = Lovelace"),
            Some("O'Brien"),
            None,
            Some(""),
        ]);
        let out = neutralize_formulas(
            &RecordBatch::try_from_iter(vec![("name", Arc::new(names) as ArrayRef)]).unwrap(),
        )
        .unwrap();
        let got: Vec<Option<&str>> = out.column(0).as_string::<i32>().iter().collect();
        assert_eq!(
            got,
            [
                Some("'=HYPERLINK(\"http://evil.example\",\"click\")"),
                Some("'+SUM(A1:A9)"),
                Some("'-2+3"),
                Some("'@cmd"),
                Some("'\tTab"),
                Some("'\rReturn"),
                Some("'\u{FF1D}1+1"),
                Some("Ada = Lovelace"),
                Some("O'Brien"),
                None,
                Some(""),
            ]
        );
    }

    #[test]
    fn numbers_stay_numbers_and_the_column_type_decides() {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "amount",
                Arc::new(Float64Array::from(vec![-12.5, 3.0])) as ArrayRef,
            ),
            (
                "orders",
                Arc::new(Int64Array::from(vec![-1, 2])) as ArrayRef,
            ),
            (
                "note",
                Arc::new(StringArray::from(vec!["-12.50", "fine"])) as ArrayRef,
            ),
        ])
        .unwrap();
        assert_eq!(
            csv(&batch),
            "amount,orders,note\n-12.5,-1,'-12.50\n3.0,2,fine\n"
        );
    }

    #[test]
    fn large_view_and_dictionary_text_columns_are_covered() {
        let mut dict = StringDictionaryBuilder::<Int32Type>::new();
        dict.append_value("@dict");
        dict.append_value("ok");
        let batch = RecordBatch::try_from_iter(vec![
            (
                "large",
                Arc::new(LargeStringArray::from(vec!["=1", "a"])) as ArrayRef,
            ),
            (
                "view",
                Arc::new(StringViewArray::from(vec!["+1", "b"])) as ArrayRef,
            ),
            ("dict", Arc::new(dict.finish()) as ArrayRef),
        ])
        .unwrap();
        let out = neutralize_formulas(&batch).unwrap();
        assert_eq!(out.column(0).as_string::<i64>().value(0), "'=1");
        assert_eq!(out.column(1).as_string_view().value(0), "'+1");
        assert_eq!(out.column(2).as_string::<i32>().value(0), "'@dict");
        assert_eq!(out.column(2).as_string::<i32>().value(1), "ok");
        assert_eq!(out.schema().field(2).data_type(), &DataType::Utf8);
    }

    #[test]
    fn a_safe_table_is_returned_unchanged() {
        let col: ArrayRef = Arc::new(StringArray::from(vec!["Ada", "Bob"]));
        let batch = RecordBatch::try_from_iter(vec![("name", col.clone())]).unwrap();
        let out = neutralize_formulas(&batch).unwrap();
        assert!(Arc::ptr_eq(out.column(0), &col));
    }
}
