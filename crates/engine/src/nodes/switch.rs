//! `core.switch`: a generic decision.
//!
//! With a table input, each row goes to the case of the first rule whose `when` expression is
//! true (else to `default`). With any other input (a shell command's output, say) the whole input
//! goes to one case, with the value bound to `value` in the expressions.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch};
use async_trait::async_trait;
use serde::Deserialize;

use crate::data::{Data, Output};
use crate::expr::RowExpr;
use crate::node::{
    ConfigureCx, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError, ParamSpec,
    ParamType, Params,
};
use crate::source::Seg;

#[derive(Debug)]
pub struct Switch;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    case: String,
    when: String,
    /// How reports name the case (`At risk` for `at_risk`).
    #[serde(default)]
    label: Option<String>,
}

struct Rule {
    case: String,
    when: RowExpr,
    /// Where `when` is written, under `with:`.
    path: Vec<Seg>,
}

/// Ordered rules, first match wins, with an optional default case. Shared by the decisions
/// that route rows (`core.switch`, `segmentation.classify`).
pub struct RuleSet {
    rules: Vec<Rule>,
    default: Option<String>,
    cases: Vec<String>,
    /// Case -> label, for the cases whose rules give one.
    labels: BTreeMap<String, String>,
}

struct Configured {
    rules: RuleSet,
}

impl NodeType for Switch {
    fn name(&self) -> &'static str {
        "core.switch"
    }
    fn summary(&self) -> &'static str {
        "Routes rows (or a whole value) to cases by ordered rules; first match wins."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Decision]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required(
                "rules",
                ParamType::List,
                "ordered list of { case: NAME, when: EXPRESSION }; columns (or `value`) are variables",
            ),
            ParamSpec::optional(
                "default",
                ParamType::String,
                "the case for rows no rule matches (dropped if absent)",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        Ok(Arc::new(Configured {
            rules: RuleSet::from_params(params, cx)?,
        }))
    }
}

impl RuleSet {
    /// Reads `rules` and `default`. When the input's columns are known (`cx`), a rule over a
    /// column the input cannot have is an error.
    pub fn from_params(params: &Params, cx: &ConfigureCx<'_>) -> Result<Self, Vec<ParamError>> {
        let mut errors = Vec::new();
        let known = cx.known_columns();
        let mut rules = Vec::new();
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        let raw = params
            .get("rules")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        if raw.is_empty() {
            errors.push(ParamError::new("rules", "needs at least one rule"));
        }
        for (i, item) in raw.iter().enumerate() {
            let at = vec![Seg::key("rules"), Seg::Index(i)];
            match serde_json::from_value::<RuleDef>(item.clone()) {
                Ok(def) => {
                    if !valid_case(&def.case) {
                        let mut p = at.clone();
                        p.push(Seg::key("case"));
                        errors.push(ParamError::at(
                            p,
                            format!(
                                "case `{}` may contain only letters, digits, `_` and `-`",
                                def.case
                            ),
                        ));
                    }
                    if let Some(label) = &def.label {
                        let mut p = at.clone();
                        p.push(Seg::key("label"));
                        let label = label.trim();
                        match labels.get(&def.case) {
                            _ if label.is_empty() || label.contains(['\r', '\n']) => {
                                errors.push(ParamError::at(
                                    p,
                                    "a label is one line of text (it names the case in reports)",
                                ))
                            }
                            Some(other) if other != label => errors.push(ParamError::at(
                                p,
                                format!(
                                    "case `{}` already has the label `{other}`; give one label per case",
                                    def.case
                                ),
                            )),
                            _ => {
                                labels.insert(def.case.clone(), label.to_string());
                            }
                        }
                    }
                    let mut when_path = at.clone();
                    when_path.push(Seg::key("when"));
                    match RowExpr::parse(&def.when) {
                        Ok(when) => {
                            if let Some(columns) = &known {
                                let unknown = when.unknown_columns(columns.iter().copied());
                                if !unknown.is_empty() {
                                    errors.push(ParamError::at(
                                        when_path.clone(),
                                        format!(
                                            "`{}` refers to unknown column{} {} (the input has: {})",
                                            def.when,
                                            if unknown.len() == 1 { "" } else { "s" },
                                            unknown.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "),
                                            columns.join(", ")
                                        ),
                                    ));
                                }
                            }
                            rules.push(Rule {
                                case: def.case,
                                when,
                                path: when_path,
                            })
                        }
                        Err(e) => errors.push(ParamError::at(when_path, e)),
                    }
                }
                Err(e) => errors.push(ParamError::at(
                    at,
                    format!(
                        "a rule is {{ case: NAME, when: EXPRESSION, label: TEXT (optional) }}: {e}"
                    ),
                )),
            }
        }
        let default = params
            .opt_str("default")
            .map_err(|e| vec![e])?
            .map(str::to_string);
        let mut cases: Vec<String> = Vec::new();
        for case in rules.iter().map(|r| &r.case).chain(default.iter()) {
            if !cases.contains(case) {
                cases.push(case.clone());
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RuleSet {
            rules,
            default,
            cases,
            labels,
        })
    }

    /// The case of rows no rule matches.
    pub fn default_case(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// The label a rule gives `case`, if any.
    pub fn label(&self, case: &str) -> Option<&str> {
        self.labels.get(case).map(String::as_str)
    }

    /// Each rule's `when`, with its path under `with:`.
    pub fn expressions(&self) -> Vec<(Vec<Seg>, &RowExpr)> {
        self.rules
            .iter()
            .map(|r| (r.path.clone(), &r.when))
            .collect()
    }

    /// The cases, in order: rule cases as first written, then the default.
    pub fn cases(&self) -> &[String] {
        &self.cases
    }

    /// The case (index into [`RuleSet::cases`]) of each row; `None` when nothing matches and
    /// there is no default. Each rule is evaluated only on rows no earlier rule took.
    pub fn assign(
        &self,
        batch: &RecordBatch,
        params: &BTreeMap<String, serde_json::Value>,
    ) -> Result<Vec<Option<usize>>, String> {
        let mut assigned: Vec<Option<usize>> = vec![None; batch.num_rows()];
        for rule in &self.rules {
            let open: Vec<u32> = (0..assigned.len() as u32)
                .filter(|&i| assigned[i as usize].is_none())
                .collect();
            if open.is_empty() {
                break;
            }
            let case = self
                .cases
                .iter()
                .position(|c| *c == rule.case)
                .expect("declared");
            let hits = rule.when.eval_rows_at(batch, params, &open)?;
            for (row, hit) in open.iter().zip(hits) {
                if hit {
                    assigned[*row as usize] = Some(case);
                }
            }
        }
        if let Some(default) = &self.default {
            let case = self
                .cases
                .iter()
                .position(|c| c == default)
                .expect("declared");
            assigned
                .iter_mut()
                .filter(|s| s.is_none())
                .for_each(|s| *s = Some(case));
        }
        Ok(assigned)
    }

    /// Splits `batch` by case, in case order.
    pub fn partition(
        &self,
        batch: &RecordBatch,
        assigned: &[Option<usize>],
    ) -> Result<Vec<(String, RecordBatch)>, arrow_schema::ArrowError> {
        self.cases
            .iter()
            .enumerate()
            .map(|(case, name)| {
                let mask = BooleanArray::from(
                    assigned
                        .iter()
                        .map(|s| *s == Some(case))
                        .collect::<Vec<_>>(),
                );
                Ok((
                    name.clone(),
                    arrow_select::filter::filter_record_batch(batch, &mask)?,
                ))
            })
            .collect()
    }

    /// The case for a whole value (`value` in the expressions).
    pub fn choose(
        &self,
        value: &serde_json::Value,
        params: &BTreeMap<String, serde_json::Value>,
    ) -> Result<Option<String>, String> {
        for rule in &self.rules {
            if rule.when.eval_value(value, params)? {
                return Ok(Some(rule.case.clone()));
            }
        }
        Ok(self.default.clone())
    }
}

fn valid_case(case: &str) -> bool {
    !case.is_empty()
        && case
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[async_trait]
impl Node for Configured {
    fn cases(&self) -> Vec<String> {
        self.rules.cases.clone()
    }

    fn effect_free(&self) -> bool {
        true
    }

    fn expressions(&self) -> Vec<(Vec<Seg>, &RowExpr)> {
        self.rules.expressions()
    }

    fn output_columns(&self, input_columns: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        // Rows are routed, not changed.
        input_columns.first().cloned().flatten()
    }

    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let input = inputs.single()?;
        let rules = &self.rules;
        match &input.data {
            Data::Table(batch) => {
                let assigned = rules.assign(batch, &ctx.params).map_err(NodeError::msg)?;
                let unmatched = assigned.iter().filter(|s| s.is_none()).count();
                let parts = rules.partition(batch, &assigned)?;
                let mut out = Output::cases(
                    parts
                        .into_iter()
                        .map(|(c, b)| (c, Data::Table(b)))
                        .collect(),
                );
                if unmatched > 0 {
                    out = out.with_meta("unmatched_rows", unmatched as u64);
                }
                Ok(out)
            }
            other => {
                let value = match other {
                    Data::Json(v) => v.clone(),
                    _ => serde_json::Value::Null,
                };
                let chosen = rules.choose(&value, &ctx.params).map_err(NodeError::msg)?;
                let partitions = rules
                    .cases()
                    .iter()
                    .map(|c| {
                        let data = if chosen.as_ref() == Some(c) {
                            if other.is_empty() {
                                Data::Json(serde_json::Value::Bool(true))
                            } else {
                                other.clone()
                            }
                        } else {
                            Data::Empty
                        };
                        (c.clone(), data)
                    })
                    .collect();
                Ok(Output::cases(partitions).with_meta("chosen", chosen.unwrap_or_default()))
            }
        }
    }
}
