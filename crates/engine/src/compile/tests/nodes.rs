//! What a compiled node carries: trigger rules, retry policy and fingerprint.

use std::time::Duration;

use super::*;

#[test]
fn trigger_rules_default_by_kind_and_are_checked() {
    let wf = compile_str(VALID).unwrap();
    let rule = |id: &str| {
        let n = wf.node(id).unwrap();
        (n.trigger_rule, n.trigger_rule_set)
    };
    assert_eq!(rule("b"), (TriggerRule::AllSuccess, false));
    assert_eq!(rule("split"), (TriggerRule::AllSuccess, false));
    assert_eq!(rule("join"), (TriggerRule::NoneFailedMinOneSuccess, false));
    let set = VALID.replace(
        "needs: split.big }",
        "needs: split.big, trigger_rule: all_done }",
    );
    let wf = compile_str(&set).unwrap();
    let b = wf.node("b").unwrap();
    assert_eq!(
        (b.trigger_rule, b.trigger_rule_set),
        (TriggerRule::AllDone, true)
    );

    let text = "\
name: rules
nodes:
  - { id: go, kind: trigger, type: manual, trigger_rule: all_done }
  - { id: a, kind: action, type: core.noop, needs: go, trigger_rule: one_faild }
  - { id: b, kind: action, type: core.noop, needs: go, trigger_rule: 3 }
";
    let errs = errors(text);
    let expect = [
        (
            3,
            "a trigger has no inputs, so `trigger_rule: all_done` means nothing",
        ),
        (
            4,
            "unknown trigger rule `one_faild` (did you mean `one_failed`?",
        ),
        (5, "`trigger_rule` must be a string, got 3"),
    ];
    for (line, text) in expect {
        assert!(
            errs.iter().any(|(l, m)| *l == line && m.contains(text)),
            "missing line {line}: {text}\ngot: {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
}

#[test]
fn retry_policy_backoff_grows_to_a_cap() {
    let p = RetryPolicy {
        max_attempts: 5,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(3),
        factor: 2.0,
    };
    assert_eq!(p.delay_after(1), Duration::from_secs(1));
    assert_eq!(p.delay_after(2), Duration::from_secs(2));
    assert_eq!(p.delay_after(3), Duration::from_secs(3));
}

#[test]
fn fingerprints_ignore_key_order_but_not_values() {
    let a = compile_str(VALID).unwrap();
    let reordered = VALID.replace(
        "{ id: b, kind: action, type: core.noop, needs: split.big }",
        "{ kind: action, needs: split.big, id: b, type: core.noop }",
    );
    let b = compile_str(&reordered).unwrap();
    assert_eq!(
        a.node("b").unwrap().fingerprint,
        b.node("b").unwrap().fingerprint
    );
    let changed = VALID.replace("default: small", "default: small\n      # same\n");
    assert_eq!(a.fingerprint, compile_str(&changed).unwrap().fingerprint);
    let changed = VALID.replace("params.limit", "params.limit + 1");
    let c = compile_str(&changed).unwrap();
    assert_ne!(
        a.node("split").unwrap().fingerprint,
        c.node("split").unwrap().fingerprint
    );
    assert_eq!(
        a.node("b").unwrap().fingerprint,
        c.node("b").unwrap().fingerprint
    );
}
