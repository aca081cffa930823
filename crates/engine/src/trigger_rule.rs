//! Trigger rules: when a node runs, given how each of its inputs ended.
//!
//! A node inside a branch must not run when its branch was not taken, whatever its other inputs
//! did; a node that joins branches runs with whatever the branches produced. The rule is chosen
//! per node (`trigger_rule:`), with a default by kind, and one function, [`decide`], applies it.
//! The names are Airflow's, which many users know.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::node::NodeKind;

/// When a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every input succeeded and every subscribed decision case has rows. Otherwise the node is
    /// skipped (an input was skipped or a case was empty) or `upstream_failed` (an input failed).
    /// The default for actions and decisions: a node inside a branch.
    AllSuccess,
    /// No input failed and at least one succeeded; it receives only the inputs that succeeded.
    /// Skipped when every input was skipped. The default for outputs: a join of branches.
    NoneFailedMinOneSuccess,
    /// No input failed; runs even when every input was skipped.
    NoneFailed,
    /// Every input is final, whatever happened (notifications, cleanup); it receives the inputs
    /// that succeeded.
    AllDone,
    /// At least one input failed (an alert); skipped when none did.
    OneFailed,
}

impl TriggerRule {
    pub const ALL: [TriggerRule; 5] = [
        TriggerRule::AllSuccess,
        TriggerRule::NoneFailedMinOneSuccess,
        TriggerRule::NoneFailed,
        TriggerRule::AllDone,
        TriggerRule::OneFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::AllDone => "all_done",
            TriggerRule::OneFailed => "one_failed",
        }
    }

    pub fn parse(s: &str) -> Option<TriggerRule> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The rule of a node that does not set one.
    pub fn default_for(kind: NodeKind) -> TriggerRule {
        match kind {
            NodeKind::Output => TriggerRule::NoneFailedMinOneSuccess,
            NodeKind::Trigger | NodeKind::Action | NodeKind::Decision => TriggerRule::AllSuccess,
        }
    }

    /// Whether the node runs with only part of its inputs (so it joins branches).
    pub fn is_join(self) -> bool {
        self != TriggerRule::AllSuccess
    }
}

impl fmt::Display for TriggerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one input of a node ended, as far as the scheduler knows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputState {
    /// Not final yet (pending, running, or stopped by a shutdown and waiting for a resume).
    Waiting,
    /// Succeeded (and, for a decision case, the case has rows).
    Succeeded,
    /// Skipped, or a subscribed decision case that is empty; the text says which.
    Skipped(String),
    /// Failed or `upstream_failed`; the text names it.
    Failed(String),
}

/// What to do with a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Waiting,
    Run,
    Skip(String),
    UpstreamFailed(String),
}

/// Applies `rule` to the states of a node's inputs. A node without inputs runs.
///
/// A decision never depends on timing: a result other than `Waiting` comes only once it cannot
/// change, i.e. once every input is final, except that a failure decides `upstream_failed` at
/// once under the rules it always decides that way.
pub fn decide(rule: TriggerRule, inputs: &[InputState]) -> Readiness {
    if inputs.is_empty() {
        return Readiness::Run;
    }
    let failed: Vec<&str> = inputs
        .iter()
        .filter_map(|s| match s {
            InputState::Failed(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    let fails_on_failure = matches!(
        rule,
        TriggerRule::AllSuccess | TriggerRule::NoneFailedMinOneSuccess | TriggerRule::NoneFailed
    );
    if fails_on_failure && !failed.is_empty() {
        return Readiness::UpstreamFailed(failed.join("; "));
    }
    if inputs.contains(&InputState::Waiting) {
        return Readiness::Waiting;
    }
    let skipped: Vec<&str> = inputs
        .iter()
        .filter_map(|s| match s {
            InputState::Skipped(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    let succeeded = inputs
        .iter()
        .filter(|s| **s == InputState::Succeeded)
        .count();
    match rule {
        TriggerRule::AllSuccess if !skipped.is_empty() => Readiness::Skip(skipped.join("; ")),
        TriggerRule::NoneFailedMinOneSuccess if succeeded == 0 => {
            Readiness::Skip(format!("every input was skipped ({})", skipped.join("; ")))
        }
        TriggerRule::OneFailed if failed.is_empty() => Readiness::Skip("no input failed".into()),
        _ => Readiness::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InputState::{Failed, Skipped, Succeeded, Waiting};

    fn skipped() -> InputState {
        Skipped("`a` was skipped".into())
    }
    fn failed() -> InputState {
        Failed("input `b` did not succeed".into())
    }

    fn kind(r: &Readiness) -> &'static str {
        match r {
            Readiness::Waiting => "wait",
            Readiness::Run => "run",
            Readiness::Skip(_) => "skip",
            Readiness::UpstreamFailed(_) => "upstream_failed",
        }
    }

    /// Every rule against every combination of final input states, and with one input waiting.
    #[test]
    fn every_rule_by_every_combination_of_inputs() {
        use TriggerRule::*;
        // (inputs, all_success, none_failed_min_one_success, none_failed, all_done, one_failed)
        let table: Vec<(Vec<InputState>, [&str; 5])> = vec![
            (vec![], ["run", "run", "run", "run", "run"]),
            (vec![Succeeded], ["run", "run", "run", "run", "skip"]),
            (
                vec![Succeeded, Succeeded],
                ["run", "run", "run", "run", "skip"],
            ),
            (vec![skipped()], ["skip", "skip", "run", "run", "skip"]),
            (
                vec![skipped(), skipped()],
                ["skip", "skip", "run", "run", "skip"],
            ),
            (
                vec![Succeeded, skipped()],
                ["skip", "run", "run", "run", "skip"],
            ),
            (
                vec![failed()],
                [
                    "upstream_failed",
                    "upstream_failed",
                    "upstream_failed",
                    "run",
                    "run",
                ],
            ),
            (
                vec![Succeeded, failed()],
                [
                    "upstream_failed",
                    "upstream_failed",
                    "upstream_failed",
                    "run",
                    "run",
                ],
            ),
            (
                vec![skipped(), failed()],
                [
                    "upstream_failed",
                    "upstream_failed",
                    "upstream_failed",
                    "run",
                    "run",
                ],
            ),
            (
                vec![Succeeded, skipped(), failed()],
                [
                    "upstream_failed",
                    "upstream_failed",
                    "upstream_failed",
                    "run",
                    "run",
                ],
            ),
            (
                vec![Succeeded, Waiting],
                ["wait", "wait", "wait", "wait", "wait"],
            ),
            (
                vec![skipped(), Waiting],
                ["wait", "wait", "wait", "wait", "wait"],
            ),
            // A failure decides at once where it always means upstream_failed.
            (
                vec![failed(), Waiting],
                [
                    "upstream_failed",
                    "upstream_failed",
                    "upstream_failed",
                    "wait",
                    "wait",
                ],
            ),
        ];
        for (inputs, expected) in table {
            for (rule, want) in [
                AllSuccess,
                NoneFailedMinOneSuccess,
                NoneFailed,
                AllDone,
                OneFailed,
            ]
            .into_iter()
            .zip(expected)
            {
                let got = decide(rule, &inputs);
                assert_eq!(kind(&got), want, "{rule} with {inputs:?}: {got:?}");
            }
        }
    }

    #[test]
    fn reasons_name_the_inputs() {
        let r = decide(
            TriggerRule::AllSuccess,
            &[Succeeded, Skipped("branch `classify.vip` was empty".into())],
        );
        assert_eq!(r, Readiness::Skip("branch `classify.vip` was empty".into()));
        let r = decide(
            TriggerRule::NoneFailedMinOneSuccess,
            &[skipped(), Skipped("`c` was skipped".into())],
        );
        assert_eq!(
            r,
            Readiness::Skip("every input was skipped (`a` was skipped; `c` was skipped)".into())
        );
        let r = decide(TriggerRule::AllSuccess, &[skipped(), failed()]);
        assert_eq!(
            r,
            Readiness::UpstreamFailed("input `b` did not succeed".into())
        );
    }

    #[test]
    fn defaults_by_kind_and_names_round_trip() {
        assert_eq!(
            TriggerRule::default_for(NodeKind::Action),
            TriggerRule::AllSuccess
        );
        assert_eq!(
            TriggerRule::default_for(NodeKind::Decision),
            TriggerRule::AllSuccess
        );
        assert_eq!(
            TriggerRule::default_for(NodeKind::Output),
            TriggerRule::NoneFailedMinOneSuccess
        );
        for rule in TriggerRule::ALL {
            assert_eq!(TriggerRule::parse(rule.as_str()), Some(rule));
            let json = serde_json::to_value(rule).unwrap();
            assert_eq!(json, rule.as_str());
        }
        assert_eq!(TriggerRule::parse("all_succes"), None);
    }
}
