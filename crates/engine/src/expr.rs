//! Row expressions: `r_score >= 4 && clv >= 500` evaluated per row of a table.
//!
//! Expressions use minijinja's expression language (`and`, `or`, `not`, `in`, comparisons,
//! arithmetic, string literals); `&&`, `||` and `!` are accepted as spellings of `and`, `or`
//! and `not`. Column names are variables; `params.NAME` refers to run parameters.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, cast::AsArray, types::*};
use arrow_schema::DataType;
use minijinja::value::{Object, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value as Json;

/// A compiled row expression.
pub struct RowExpr {
    source: String,
    env: Arc<Environment<'static>>,
    translated: String,
}

impl std::fmt::Debug for RowExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowExpr({:?})", self.source)
    }
}

impl RowExpr {
    /// Parses an expression; the error says what is wrong with it.
    pub fn parse(source: &str) -> Result<Self, String> {
        crate::template_limits::check_expression(source)
            .map_err(|e| format!("invalid expression: {e}"))?;
        let translated = translate_operators(source);
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.compile_expression(&translated).map_err(|e| {
            format!(
                "invalid expression `{source}`: {}",
                e.detail().unwrap_or("syntax error")
            )
        })?;
        Ok(RowExpr {
            source: source.to_string(),
            env: Arc::new(env),
            translated,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables (column names, `params`, `value`) the expression refers to.
    pub fn variables(&self) -> Vec<String> {
        let expr = self
            .env
            .compile_expression(&self.translated)
            .expect("checked in parse");
        let mut vars: Vec<String> = expr.undeclared_variables(false).into_iter().collect();
        vars.sort();
        vars
    }

    /// The params the expression names as `params.NAME`, sorted.
    pub fn param_names(&self) -> Vec<String> {
        let expr = self
            .env
            .compile_expression(&self.translated)
            .expect("checked in parse");
        crate::template::params_among(expr.undeclared_variables(true))
    }

    /// Comparisons of a param with a literal (`params.min >= 500`, `'gold' == params.tier`):
    /// the param's name, the operator and the literal. Other operands (columns, arithmetic)
    /// have no type before the data arrives and are left out.
    pub fn param_literal_comparisons(&self) -> Vec<(String, String, Json)> {
        let tokens = tokenize(&self.translated);
        let mut out = Vec::new();
        for i in 0..tokens.len().saturating_sub(2) {
            let (left, op, right) = (&tokens[i], &tokens[i + 1], &tokens[i + 2]);
            let Tok::Op(op) = op else { continue };
            if !COMPARISONS.contains(&op.as_str()) {
                continue;
            }
            // The operand must be whole: not `x * params.n` or `params.n + 1`.
            let before = i.checked_sub(1).map(|j| &tokens[j]);
            let after = tokens.get(i + 3);
            const ARITHMETIC: [&str; 8] = ["+", "-", "*", "/", "//", "%", "**", "~"];
            let op_in = |t: Option<&Tok>, set: &[&str]| matches!(t, Some(Tok::Op(o)) if set.contains(&o.as_str()));
            if op_in(before, &ARITHMETIC)
                || op_in(after, &ARITHMETIC)
                || op_in(after, &["(", "[", "|"])
            {
                continue;
            }
            let pair = match (left, right) {
                (Tok::Name(n), lit) | (lit, Tok::Name(n)) => {
                    n.strip_prefix("params.").zip(lit.literal())
                }
                _ => None,
            };
            if let Some((name, literal)) = pair
                && !name.contains('.')
            {
                out.push((name.to_string(), op.clone(), literal));
            }
        }
        out
    }

    /// Columns the expression uses that `columns` lacks (ignoring `params` and `value`).
    pub fn unknown_columns<'a>(&self, columns: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let known: Vec<&str> = columns.into_iter().collect();
        self.variables()
            .into_iter()
            .filter(|v| v != "params" && v != "value" && !known.contains(&v.as_str()))
            .collect()
    }

    /// Evaluates the expression for every row; errors name the (1-based) row.
    pub fn eval_rows(
        &self,
        batch: &RecordBatch,
        params: &BTreeMap<String, Json>,
    ) -> Result<Vec<bool>, String> {
        let all: Vec<u32> = (0..batch.num_rows() as u32).collect();
        self.eval_rows_at(batch, params, &all)
    }

    /// Evaluates the expression for the given rows (0-based indices) only.
    pub fn eval_rows_at(
        &self,
        batch: &RecordBatch,
        params: &BTreeMap<String, Json>,
        rows: &[u32],
    ) -> Result<Vec<bool>, String> {
        let expr = self
            .env
            .compile_expression(&self.translated)
            .expect("checked in parse");
        let params = Value::from_serialize(params);
        let columns: Arc<BTreeMap<String, usize>> = Arc::new(
            batch
                .schema()
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name().clone(), i))
                .collect(),
        );
        let batch = Arc::new(batch.clone());
        let mut out = Vec::with_capacity(rows.len());
        for &row in rows {
            let row = row as usize;
            let ctx = Value::from_object(Row {
                batch: batch.clone(),
                columns: columns.clone(),
                row,
                params: params.clone(),
            });
            let v = expr.eval(ctx).map_err(|e| {
                format!(
                    "row {}: `{}`: {}",
                    row + 1,
                    self.source,
                    e.detail().unwrap_or(&e.to_string())
                )
            })?;
            out.push(v.is_true());
        }
        Ok(out)
    }

    /// Evaluates the expression once with `value` bound to a JSON value.
    pub fn eval_value(
        &self,
        value: &Json,
        params: &BTreeMap<String, Json>,
    ) -> Result<bool, String> {
        let expr = self
            .env
            .compile_expression(&self.translated)
            .expect("checked in parse");
        let ctx = minijinja::context! { value => Value::from_serialize(value), params => Value::from_serialize(params) };
        expr.eval(ctx).map(|v| v.is_true()).map_err(|e| {
            format!(
                "`{}`: {}",
                self.source,
                e.detail().unwrap_or(&e.to_string())
            )
        })
    }
}

/// Rewrites `&&`, `||` and `!` (outside string literals) into minijinja's keywords, and
/// spaces out `}}`: minijinja's lexer reads it as the end of a `{{ }}` block and panics when
/// anything follows it in an expression; `} }` is the same two closing braces.
fn translate_operators(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 8);
    let mut chars = source.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                out.push(c);
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                out.push_str(" and ");
            }
            '|' if chars.peek() == Some(&'|') => {
                chars.next();
                out.push_str(" or ");
            }
            '!' if chars.peek() != Some(&'=') => out.push_str(" not "),
            '}' if chars.peek() == Some(&'}') => out.push_str("} "),
            _ => out.push(c),
        }
    }
    out
}

const COMPARISONS: [&str; 6] = ["==", "!=", "<", "<=", ">", ">="];

/// A token of an expression, as far as spotting `params.NAME OP LITERAL` needs.
#[derive(Debug, PartialEq)]
enum Tok {
    /// A dotted name such as `params.min` or `clv`.
    Name(String),
    Number(f64),
    Str(String),
    Op(String),
}

impl Tok {
    fn literal(&self) -> Option<Json> {
        match self {
            Tok::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => Some(Json::from(*n as i64)),
            Tok::Number(n) => serde_json::Number::from_f64(*n).map(Json::Number),
            Tok::Str(s) => Some(Json::String(s.clone())),
            Tok::Name(n) if matches!(n.as_str(), "true" | "True") => Some(Json::Bool(true)),
            Tok::Name(n) if matches!(n.as_str(), "false" | "False") => Some(Json::Bool(false)),
            _ => None,
        }
    }
}

fn tokenize(source: &str) -> Vec<Tok> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut text = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                text.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(text));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            out.push(match text.parse::<f64>() {
                Ok(n) => Tok::Number(n),
                Err(_) => Tok::Name(text),
            });
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // Keyword operators split operands like symbols do.
            out.push(match word.as_str() {
                "and" | "or" | "not" | "in" | "is" | "if" | "else" => Tok::Op(word),
                _ => Tok::Name(word),
            });
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["==", "!=", "<=", ">=", "//", "**"].contains(&two.as_str()) {
                out.push(Tok::Op(two));
                i += 2;
            } else {
                out.push(Tok::Op(c.to_string()));
                i += 1;
            }
        }
    }
    out
}

/// One row of a table seen as template variables.
#[derive(Debug)]
struct Row {
    batch: Arc<RecordBatch>,
    columns: Arc<BTreeMap<String, usize>>,
    row: usize,
    params: Value,
}

impl Object for Row {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if name == "params" {
            return Some(self.params.clone());
        }
        let &col = self.columns.get(name)?;
        Some(cell(self.batch.column(col).as_ref(), self.row))
    }
}

/// A table cell as a template value.
pub fn cell(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::from(());
    }
    match array.data_type() {
        DataType::Boolean => Value::from(array.as_boolean().value(row)),
        DataType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => Value::from(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => Value::from(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(row)),
        _ => {
            // Dates and anything exotic compare as their display text (ISO dates sort right).
            let options = arrow_cast::display::FormatOptions::default();
            match arrow_cast::display::ArrayFormatter::try_new(array, &options) {
                Ok(f) => Value::from(f.value(row).to_string()),
                Err(_) => Value::from(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("r", DataType::Int64, false),
                Field::new("clv", DataType::Float64, true),
                Field::new("city", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![5, 4, 1])),
                Arc::new(Float64Array::from(vec![Some(900.0), Some(100.0), None])),
                Arc::new(StringArray::from(vec!["Leeds", "York", "a && b"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn closing_braces_followed_by_more_are_an_error_not_a_panic() {
        for bad in ["x }}<= y", "}}x", "x -}}y", "x }}}", "r > 1 }} r"] {
            let err = RowExpr::parse(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid expression `{bad}`")),
                "{err}"
            );
        }
        // Nested mapping literals still close; braces inside strings are left alone.
        let e = RowExpr::parse("{'a': {'b': 1}}.a.b == 1 && city != '}}'").unwrap();
        assert_eq!(e.variables(), ["city"]);
    }

    #[test]
    fn evaluates_per_row_with_c_style_operators() {
        let e = RowExpr::parse("r >= 4 && clv >= 500 || city == 'a && b'").unwrap();
        assert_eq!(
            e.eval_rows(&batch(), &BTreeMap::new()).unwrap(),
            vec![true, false, true]
        );
        let e = RowExpr::parse("!(city == 'York')").unwrap();
        assert_eq!(
            e.eval_rows(&batch(), &BTreeMap::new()).unwrap(),
            vec![true, false, true]
        );
    }

    #[test]
    fn params_and_unknown_columns() {
        let e = RowExpr::parse("clv >= params.min and segment != 'x'").unwrap();
        assert_eq!(
            e.unknown_columns(["r", "clv", "city"]),
            vec!["segment".to_string()]
        );
        let e = RowExpr::parse("clv >= params.min").unwrap();
        let params = BTreeMap::from([("min".to_string(), serde_json::json!(500))]);
        assert_eq!(
            e.eval_rows(&batch(), &params).unwrap(),
            vec![true, false, false]
        );
    }

    #[test]
    fn params_and_their_literal_comparisons() {
        let e =
            RowExpr::parse("clv >= params.min && params.tier == 'gold' || 3 < params.n").unwrap();
        assert_eq!(e.param_names(), ["min", "n", "tier"]);
        assert_eq!(
            e.param_literal_comparisons(),
            vec![
                (
                    "tier".to_string(),
                    "==".to_string(),
                    serde_json::json!("gold")
                ),
                ("n".to_string(), "<".to_string(), serde_json::json!(3)),
            ]
        );
        // Arithmetic around the param leaves the comparison's operand types unknown here.
        let e = RowExpr::parse("params.n * 2 > 'x' and 'y' == params.s ~ 'z'").unwrap();
        assert!(e.param_literal_comparisons().is_empty());
        let e = RowExpr::parse("(params.on == true) and (params.rate != 0.5)").unwrap();
        assert_eq!(e.param_literal_comparisons().len(), 2);
    }

    #[test]
    fn value_expressions_and_errors() {
        let e = RowExpr::parse("value == 'yes'").unwrap();
        assert!(
            e.eval_value(&serde_json::json!("yes"), &BTreeMap::new())
                .unwrap()
        );
        assert!(RowExpr::parse("r >= ").is_err());
        let e = RowExpr::parse("missing > 1").unwrap();
        let err = e.eval_rows(&batch(), &BTreeMap::new()).unwrap_err();
        assert!(err.starts_with("row 1"), "{err}");
    }
}
