//! `customer` in templates: a row of the customers table, read on demand.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch};
use arrow_schema::DataType;
use minijinja::Value;
use minijinja::value::{Enumerator, Object};

use crate::segmentation::{
    TextColumn, bool_column, date_column, day_string, f64_column, text_column,
};
use flow_engine::node::NodeError;

/// The first word of a name.
fn first_name(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or("")
}

/// A typed view of one column, for template values.
enum Cell {
    Text(TextColumn),
    Float(Float64Array),
    Int(Int64Array),
    Bool(BooleanArray),
    Date(Date32Array),
}

impl Cell {
    fn read(batch: &RecordBatch, name: &str) -> Result<Option<Cell>, NodeError> {
        let Some(array) = batch.column_by_name(name) else {
            return Ok(None);
        };
        Ok(Some(match array.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                Cell::Float(f64_column(batch, name)?.expect("present"))
            }
            dt if dt.is_integer() => {
                let cast = arrow_cast::cast(array, &DataType::Int64)?;
                Cell::Int(cast.as_primitive::<Int64Type>().clone())
            }
            DataType::Boolean => Cell::Bool(bool_column(batch, name)?.expect("present")),
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
                Cell::Date(date_column(batch, name)?.expect("present"))
            }
            _ => match text_column(batch, name) {
                Ok(Some(t)) => Cell::Text(t),
                _ => return Ok(None),
            },
        }))
    }

    fn value(&self, i: usize) -> Value {
        match self {
            Cell::Text(c) => c.get(i).map_or(Value::from(()), Value::from),
            Cell::Float(a) => nullable(a, i, |a| Value::from(a.value(i))),
            Cell::Int(a) => nullable(a, i, |a| Value::from(a.value(i))),
            Cell::Bool(a) => nullable(a, i, |a| Value::from(a.value(i))),
            Cell::Date(a) => nullable(a, i, |a| Value::from(day_string(a.value(i)))),
        }
    }
}

fn nullable<A: Array>(a: &A, i: usize, f: impl FnOnce(&A) -> Value) -> Value {
    if a.is_null(i) { Value::from(()) } else { f(a) }
}

/// The columns of a customers table, shared by the per-row template objects.
pub(super) struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
    cells: Vec<Cell>,
    name_col: Option<usize>,
}

impl Columns {
    pub(super) fn new(batch: &RecordBatch) -> Result<Self, NodeError> {
        let mut names = Vec::new();
        let mut cells = Vec::new();
        for field in batch.schema().fields() {
            if let Some(cell) = Cell::read(batch, field.name())? {
                names.push(field.name().clone());
                cells.push(cell);
            }
        }
        let index: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Ok(Columns {
            name_col: index.get("customer_name").copied(),
            names,
            index,
            cells,
        })
    }
}

/// `customer` in templates: one row, read on demand.
pub(super) struct CustomerRow {
    pub(super) columns: Arc<Columns>,
    pub(super) row: usize,
}

impl std::fmt::Debug for CustomerRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, cell) in self.columns.names.iter().zip(&self.columns.cells) {
            map.entry(name, &cell.value(self.row));
        }
        map.finish()
    }
}

impl Object for CustomerRow {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        if key == "first_name" && !self.columns.index.contains_key("first_name") {
            let name = match self.columns.name_col {
                Some(c) => self.columns.cells[c].value(self.row),
                None => Value::from(()),
            };
            return Some(Value::from(name.as_str().map(first_name).unwrap_or("")));
        }
        let c = *self.columns.index.get(key)?;
        Some(self.columns.cells[c].value(self.row))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = self
            .columns
            .names
            .iter()
            .map(|n| Value::from(n.as_str()))
            .collect();
        if !self.columns.index.contains_key("first_name") {
            keys.push(Value::from("first_name"));
        }
        Enumerator::Values(keys)
    }
}
