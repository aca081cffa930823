//! `segmentation.classify`: assigns each customer a segment by ordered rules over the metric
//! columns (first match wins, then the default) and routes each segment to its own branch.
//!
//! It is `core.switch` for customers: the same rule language and validation (a rule over a column
//! the metrics do not have is an error with its line), plus a `segment` column on every row so
//! profiles and campaigns downstream know which rule placed the customer, and a
//! `segment_label` column with the segment's readable name for reports: the rule's `label`
//! (`{ case: at_risk, label: "At risk", when: ... }`), `default_label` for the default case,
//! else the case name humanised (`at_risk` -> `At risk`).

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;

use flow_engine::data::{Data, Output};
use flow_engine::expr::RowExpr;
use flow_engine::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};
use flow_engine::nodes::RuleSet;
use flow_engine::source::Seg;

#[derive(Debug)]
pub struct Classify;

struct Configured {
    rules: RuleSet,
    column: String,
    default_label: Option<String>,
}

impl NodeType for Classify {
    fn name(&self) -> &'static str {
        "segmentation.classify"
    }
    fn summary(&self) -> &'static str {
        "Assigns each customer a segment by ordered rules (first match wins); each segment is a branch."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Decision]
    }
    fn inputs(&self) -> Vec<flow_engine::node::InputSpec> {
        vec![flow_engine::node::InputSpec::any(
            "customers",
            "one row per customer (segmentation.metrics); the rules read its columns",
        )]
    }
    fn output_kind(&self) -> Option<flow_engine::node::TableKind> {
        Some(super::tables::customers())
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required(
                "rules",
                ParamType::List,
                "ordered list of { case: SEGMENT, when: EXPRESSION, label: TEXT } over the metric columns (label optional)",
            ),
            ParamSpec::required(
                "default",
                ParamType::String,
                "the segment of customers no rule matches",
            ),
            ParamSpec::optional(
                "default_label",
                ParamType::String,
                "how reports name the default segment (default: its name humanised)",
            ),
            ParamSpec::with_default(
                "column",
                ParamType::String,
                "segment",
                "the column that receives the segment name",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let rules = RuleSet::from_params(params, cx)?;
        let column = params
            .str_or("column", "segment")
            .map_err(|e| vec![e])?
            .to_string();
        let default_label = match params.opt_str("default_label").map_err(|e| vec![e])? {
            Some(l) if l.trim().is_empty() || l.contains(['\r', '\n']) => {
                return Err(vec![ParamError::new(
                    "default_label",
                    "a label is one line of text (it names the segment in reports)",
                )]);
            }
            l => l.map(|l| l.trim().to_string()),
        };
        Ok(Arc::new(Configured {
            rules,
            column,
            default_label,
        }))
    }
}

#[async_trait]
impl Node for Configured {
    fn cases(&self) -> Vec<String> {
        self.rules.cases().to_vec()
    }

    fn expressions(&self) -> Vec<(Vec<Seg>, &RowExpr)> {
        self.rules.expressions()
    }

    fn output_columns(&self, input_columns: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        let mut columns = input_columns.first().cloned().flatten()?;
        for c in [self.column.clone(), self.label_column()] {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
        Some(columns)
    }

    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let input = inputs.single()?;
        let Data::Table(batch) = &input.data else {
            return Err(NodeError::msg(format!(
                "expects a table of customers from `{}`, got a value",
                input.name()
            )));
        };
        let assigned = self
            .rules
            .assign(batch, &ctx.params)
            .map_err(NodeError::msg)?;
        let mut parts = Vec::new();
        for (segment, rows) in self.rules.partition(batch, &assigned)? {
            let label = self.label(&segment);
            let tagged = with_segment(&rows, &self.column, &segment)?;
            let tagged = with_segment(&tagged, &self.label_column(), &label)?;
            parts.push((segment, Data::Table(tagged)));
        }
        Ok(Output::cases(parts).with_meta("customers", batch.num_rows() as u64))
    }
}

impl Configured {
    fn label_column(&self) -> String {
        format!("{}_label", self.column)
    }

    fn label(&self, case: &str) -> String {
        if let Some(l) = self.rules.label(case) {
            return l.to_string();
        }
        match &self.default_label {
            Some(l) if self.rules.default_case() == Some(case) => l.clone(),
            _ => humanize(case),
        }
    }
}

/// A case name as words: `at_risk` -> `At risk`, `high-value` -> `High value`.
pub(crate) fn humanize(case: &str) -> String {
    let words = case.replace(['_', '-'], " ");
    let mut chars = words.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A segment without customers: what a branch node works on when its rule lets it run although
/// its segment is empty (say `trigger_rule: all_done`), so it produces an empty output.
pub(crate) fn no_customers() -> RecordBatch {
    RecordBatch::new_empty(Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, false),
    ])))
}

/// `rows` with the segment column set (replaced if the input already has one).
fn with_segment(rows: &RecordBatch, column: &str, segment: &str) -> Result<RecordBatch, NodeError> {
    let schema = rows.schema();
    let mut fields: Vec<Arc<Field>> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (field, array) in schema.fields().iter().zip(rows.columns()) {
        if field.name() != column {
            fields.push(field.clone());
            arrays.push(array.clone());
        }
    }
    fields.push(Arc::new(Field::new(column, DataType::Utf8, false)));
    arrays.push(Arc::new(StringArray::from(vec![segment; rows.num_rows()])));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, cast::AsArray};

    fn customers() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("customer_id", DataType::Utf8, false),
                Field::new("r_score", DataType::Int64, false),
                Field::new("f_score", DataType::Int64, false),
                Field::new("clv", DataType::Float64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
                Arc::new(Int64Array::from(vec![5, 4, 1, 2])),
                Arc::new(Int64Array::from(vec![5, 5, 1, 4])),
                Arc::new(Float64Array::from(vec![
                    Some(900.0),
                    Some(200.0),
                    None,
                    Some(50.0),
                ])),
            ],
        )
        .unwrap()
    }

    fn params(yaml: &str) -> Params {
        let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        Params::new(value.as_object().unwrap().clone(), "/")
    }

    fn cx<'a>(columns: &'a [Option<Vec<String>>]) -> ConfigureCx<'a> {
        ConfigureCx {
            node_id: "classify",
            kind: NodeKind::Decision,
            workflow_dir: std::path::Path::new("/"),
            input_columns: columns,
        }
    }

    #[test]
    fn first_match_wins_and_rows_carry_their_segment() {
        let p = params(
            "rules:\n  - { case: vip, when: 'r_score >= 4 && f_score >= 4 && clv >= 500' }\n  - { case: frequent, when: 'f_score >= 4' }\ndefault: other\n",
        );
        let node = Classify.configure(&p, &cx(&[])).unwrap();
        assert_eq!(node.cases(), ["vip", "frequent", "other"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ctx = flow_engine::testing::context();
        let inputs = Inputs(vec![flow_engine::node::Input {
            from: "m".into(),
            case: None,
            role: None,
            data: Data::Table(customers()),
            meta: Default::default(),
        }]);
        let out = rt.block_on(node.run(ctx, inputs)).unwrap();
        let ids = |case: &str| -> Vec<String> {
            let t = out.select(Some(case));
            let t = t.as_table().unwrap();
            let seg = t.column_by_name("segment").unwrap().as_string::<i32>();
            assert!(seg.iter().all(|s| s == Some(case)));
            t.column_by_name("customer_id")
                .unwrap()
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect()
        };
        assert_eq!(ids("vip"), ["a"]);
        assert_eq!(ids("frequent"), ["b", "d"]);
        assert_eq!(ids("other"), ["c"]);
    }

    #[test]
    fn rows_carry_the_label_of_their_segment() {
        let p = params(
            "rules:\n  - { case: vip, label: VIP, when: 'clv >= 500' }\n  - { case: at_risk, when: 'r_score <= 2' }\ndefault: other\ndefault_label: Everyone else\n",
        );
        let node = Classify.configure(&p, &cx(&[])).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let inputs = Inputs(vec![flow_engine::node::Input {
            from: "m".into(),
            case: None,
            role: None,
            data: Data::Table(customers()),
            meta: Default::default(),
        }]);
        let out = rt
            .block_on(node.run(flow_engine::testing::context(), inputs))
            .unwrap();
        let labels = |case: &str| -> Vec<String> {
            let t = out.select(Some(case));
            let t = t.as_table().unwrap();
            t.column_by_name("segment_label")
                .unwrap()
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect()
        };
        assert_eq!(labels("vip"), ["VIP"]);
        assert_eq!(labels("at_risk"), ["At risk", "At risk"]);
        assert_eq!(labels("other"), ["Everyone else"]);
        assert_eq!(humanize("high-value_customers"), "High value customers");
    }

    #[test]
    fn a_label_must_be_one_line_and_one_per_case() {
        let p = params(
            "rules:\n  - { case: vip, label: VIP, when: 'clv >= 500' }\n  - { case: vip, label: Best, when: 'clv >= 400' }\n  - { case: new, label: '', when: 'clv < 1' }\ndefault: other\n",
        );
        let errors = Classify.configure(&p, &cx(&[])).err().unwrap();
        let paths: Vec<String> = errors
            .iter()
            .map(|e| flow_engine::source::path_to_string(&e.path))
            .collect();
        assert_eq!(paths, ["rules[1].label", "rules[2].label"], "{errors:?}");
        assert!(errors[0].message.contains("already has the label `VIP`"));
    }

    #[test]
    fn unknown_columns_are_rejected_when_the_input_declares_its_columns() {
        let p =
            params("rules:\n  - { case: vip, when: 'clv >= 500 and spend > 3' }\ndefault: other\n");
        let columns = [Some(vec!["customer_id".to_string(), "clv".to_string()])];
        let errors = Classify.configure(&p, &cx(&columns)).err().unwrap();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("unknown column `spend`"),
            "{}",
            errors[0].message
        );
        assert_eq!(
            flow_engine::source::path_to_string(&errors[0].path),
            "rules[0].when"
        );
        // Without column knowledge the same rules configure (the check happens at run time).
        assert!(Classify.configure(&p, &cx(&[])).is_ok());
    }
}
