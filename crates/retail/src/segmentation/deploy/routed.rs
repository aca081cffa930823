//! Deploy never loses customers in silence: every customer a `segmentation.classify` upstream
//! routed toward deploy must arrive in the campaign rows of their segment.
//!
//! A branch that failed stops deploy (`upstream_failed`); this catches the rest: a branch that
//! was skipped although its segment had customers (say, a node of the branch that needs a
//! further input which was skipped), or a node that dropped customers on the way.

use std::collections::{BTreeMap, HashSet};

use arrow_array::RecordBatch;

use super::NODE;
use crate::segmentation::text_column;
use flow_engine::node::{NodeError, RoutedCase};

/// The classifier whose cases are segments.
const CLASSIFY: &str = "segmentation.classify";

/// Fails naming each segment that reached deploy with fewer customers than were routed to it.
/// Without campaign rows there is nothing to count customers by, and nothing is checked.
pub(super) fn check(routed: &[RoutedCase], campaigns: &[RecordBatch]) -> Result<(), NodeError> {
    if campaigns.is_empty() {
        return Ok(());
    }
    let mut received: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for batch in campaigns {
        let (Some(ids), Some(segments)) = (
            text_column(batch, "customer_id")?,
            text_column(batch, "segment")?,
        ) else {
            continue;
        };
        for row in 0..batch.num_rows() {
            if let (Some(id), Some(segment)) = (ids.get(row), segments.get(row)) {
                received
                    .entry(segment.to_string())
                    .or_default()
                    .insert(id.to_string());
            }
        }
    }
    let short: Vec<String> = routed
        .iter()
        .filter(|r| r.decision_type == CLASSIFY && r.rows > 0)
        .filter_map(|r| {
            let got = received.get(&r.case).map_or(0, |s| s.len() as u64);
            (got < r.rows).then(|| {
                format!(
                    "`{}` routed {} customer{} to `{}` but {got} arrived",
                    r.decision,
                    r.rows,
                    if r.rows == 1 { "" } else { "s" },
                    r.case
                )
            })
        })
        .collect();
    if short.is_empty() {
        return Ok(());
    }
    Err(NodeError::msg(format!(
        "{NODE} would lose customers: {}. Each segment's branch must run and keep every \
         customer (see the skip reasons of its nodes in `flow runs show`)",
        short.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::StringArray;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn campaign(rows: &[(&str, &str)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("segment", DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    }

    fn routed(case: &str, rows: u64) -> RoutedCase {
        RoutedCase {
            decision: "classify".into(),
            decision_type: CLASSIFY.into(),
            case: case.into(),
            rows,
        }
    }

    #[test]
    fn every_routed_customer_arrived() {
        let rows = campaign(&[("c1", "vip"), ("c2", "vip"), ("c3", "regular")]);
        let r = [routed("vip", 2), routed("regular", 1), routed("new", 0)];
        assert!(check(&r, std::slice::from_ref(&rows)).is_ok());
    }

    #[test]
    fn a_segment_that_did_not_arrive_is_named() {
        let rows = campaign(&[("c1", "vip"), ("c3", "regular")]);
        let r = [routed("vip", 2), routed("regular", 1), routed("at_risk", 4)];
        let err = check(&r, &[rows]).unwrap_err().to_string();
        assert!(
            err.contains("`classify` routed 2 customers to `vip` but 1 arrived")
                && err.contains("`classify` routed 4 customers to `at_risk` but 0 arrived")
                && !err.contains("`regular`"),
            "{err}"
        );
    }

    #[test]
    fn other_decisions_and_recommendation_only_deploys_are_not_checked() {
        let mut other = routed("big", 3);
        other.decision_type = "core.switch".into();
        assert!(check(&[other], &[campaign(&[])]).is_ok());
        assert!(check(&[routed("vip", 3)], &[]).is_ok());
    }
}
