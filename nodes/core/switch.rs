//! `core.switch`: a generic decision.
//!
//! With a table input, each row goes to the case of the first rule whose `when` expression is
//! true (else to `default`). With any other input (a shell command's output, say) the whole input
//! goes to one case, with the value bound to `value` in the expressions.

use std::sync::Arc;

use arrow_array::BooleanArray;
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
}

struct Rule {
    case: String,
    when: RowExpr,
}

struct Configured {
    rules: Vec<Rule>,
    default: Option<String>,
    cases: Vec<String>,
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
        let mut errors = Vec::new();
        let known = cx.known_columns();
        let mut rules = Vec::new();
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
                    let mut when_path = at.clone();
                    when_path.push(Seg::key("when"));
                    match RowExpr::parse(&def.when) {
                        Ok(when) => {
                            if let Some(columns) = &known {
                                let unknown = when.unknown_columns(columns.iter().copied());
                                if !unknown.is_empty() {
                                    errors.push(ParamError::at(
                                        when_path,
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
                            })
                        }
                        Err(e) => errors.push(ParamError::at(when_path, e)),
                    }
                }
                Err(e) => errors.push(ParamError::at(
                    at,
                    format!("a rule is {{ case: NAME, when: EXPRESSION }}: {e}"),
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
        Ok(Arc::new(Configured {
            rules,
            default,
            cases,
        }))
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
        self.cases.clone()
    }

    fn output_columns(&self, input_columns: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        // Rows are routed, not changed.
        input_columns.first().cloned().flatten()
    }

    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let input = inputs.single()?;
        let mut partitions: Vec<(String, Data)> = self
            .cases
            .iter()
            .map(|c| (c.clone(), Data::Empty))
            .collect();
        match &input.data {
            Data::Table(batch) => {
                let n = batch.num_rows();
                // The case index per row; usize::MAX = unmatched.
                let mut assigned = vec![usize::MAX; n];
                let mut left = n;
                for rule in &self.rules {
                    if left == 0 {
                        break;
                    }
                    let hits = rule
                        .when
                        .eval_rows(batch, &ctx.params)
                        .map_err(NodeError::msg)?;
                    let case = self
                        .cases
                        .iter()
                        .position(|c| *c == rule.case)
                        .expect("declared");
                    for (slot, hit) in assigned.iter_mut().zip(hits) {
                        if hit && *slot == usize::MAX {
                            *slot = case;
                            left -= 1;
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
                        .filter(|s| **s == usize::MAX)
                        .for_each(|s| *s = case);
                }
                let unmatched = assigned.iter().filter(|s| **s == usize::MAX).count();
                for (case, (_, data)) in partitions.iter_mut().enumerate() {
                    let mask =
                        BooleanArray::from(assigned.iter().map(|s| *s == case).collect::<Vec<_>>());
                    *data = Data::Table(arrow_select::filter::filter_record_batch(batch, &mask)?);
                }
                let mut out = Output::cases(partitions);
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
                let mut chosen = None;
                for rule in &self.rules {
                    if rule
                        .when
                        .eval_value(&value, &ctx.params)
                        .map_err(NodeError::msg)?
                    {
                        chosen = Some(rule.case.clone());
                        break;
                    }
                }
                let chosen = chosen.or_else(|| self.default.clone());
                if let Some(case) = &chosen
                    && let Some((_, slot)) = partitions.iter_mut().find(|(c, _)| c == case)
                {
                    *slot = if other.is_empty() {
                        Data::Json(serde_json::Value::Bool(true))
                    } else {
                        other.clone()
                    };
                }
                Ok(Output::cases(partitions).with_meta("chosen", chosen.unwrap_or_default()))
            }
        }
    }
}
