//! Params: typed declarations, checked where written, and the params rules and templates name.

use super::{compile_str, errors};
use crate::params::ParamKind;

#[test]
fn params_are_typed_and_their_declarations_checked_where_written() {
    let wf = compile_str(
        "\
name: p
params:
  min: 300
  days: { type: integer, default: 30, min: 1, description: recent }
  tier: { default: gold, allowed: [gold, silver] }
nodes:
  - { id: go, kind: trigger, type: manual }
",
    )
    .unwrap();
    let kinds: Vec<(&str, ParamKind)> = wf
        .param_decls
        .values()
        .map(|d| (d.name.as_str(), d.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("days", ParamKind::Integer),
            ("min", ParamKind::Number),
            ("tier", ParamKind::String)
        ]
    );
    assert_eq!(wf.param_decls["days"].pos.map(|p| p.line), Some(4));
    assert_eq!(wf.params["days"], serde_json::json!(30));

    let errs = errors(
        "\
name: p
params:
  a: { type: integr, default: 1 }
  b: { type: integer, default: 2.5 }
  c: { default: 5, max: 3 }
  d: ~
nodes:
  - { id: go, kind: trigger, type: manual }
",
    );
    let expect = [
        (3, "unknown param type `integr` (did you mean `integer`?"),
        (4, "the default of param `b`: expected an integer, got 2.5"),
        (5, "the default of param `c`: 5 is above the maximum 3"),
        (6, "param `d` has no default"),
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
fn undeclared_params_in_rules_and_templates_are_errors_at_their_line() {
    let errs = errors(
        "\
name: p
params: { limit: 3, tier: gold }
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: split
    kind: decision
    type: core.switch
    needs: go
    with:
      rules:
        - { case: big, when: 'value > params.limt' }
        - { case: odd, when: 'params.tier > 2' }
        - { case: fine, when: 'value > params.limit and params.tier == \"gold\"' }
      default: small
  - { id: b, kind: action, type: core.shell, needs: split.big, with: { command: 'echo {{ params.tierr }}' } }
  - id: mail
    kind: action
    type: test.message
    needs: split.small
    with: { action: 'Call {{ customer.first_name }} about {{ params.tire }}' }
",
    );
    let expect = [
        (
            11,
            "`value > params.limt` refers to unknown param `limt` (did you mean `limit`?)",
        ),
        (
            12,
            "`params.tier > 2`: param `tier` is a string but is compared (`>`) with 2",
        ),
        (15, "template refers to unknown param `tierr`"),
        (
            20,
            "template refers to unknown param `tire` (did you mean `tier`?)",
        ),
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
fn nodes_record_the_params_they_use_and_fingerprint_their_values() {
    let text = "\
name: p
params: { limit: 3, label: x, unused: 1 }
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: split
    kind: decision
    type: core.switch
    needs: go
    with:
      rules: [{ case: big, when: 'value > params.limit' }]
      default: small
  - { id: env, kind: action, type: core.shell, needs: go, with: { command: 'echo $FLOW_PARAM_LABEL' } }
  - { id: all, kind: action, type: core.shell, needs: go, with: { command: 'echo {{ params }}' } }
  - { id: none, kind: action, type: core.shell, needs: go, with: { command: 'echo params.limit' } }
";
    let wf = compile_str(text).unwrap();
    let used = |id: &str| -> Vec<&str> {
        wf.node(id)
            .unwrap()
            .params_used
            .iter()
            .map(String::as_str)
            .collect()
    };
    assert_eq!(used("split"), ["limit"]);
    assert_eq!(used("env"), ["label"]);
    assert_eq!(used("all"), ["label", "limit", "unused"]);
    // A plain string that mentions a param counts: re-running is the safe mistake.
    assert_eq!(used("none"), ["limit"]);
    assert!(used("go").is_empty());

    let mut params = wf.params.clone();
    let split = wf.node("split").unwrap();
    let env = wf.node("env").unwrap();
    let go = wf.node("go").unwrap();
    let (split_fp, env_fp) = (
        split.fingerprint_with(&params),
        env.fingerprint_with(&params),
    );
    assert_eq!(go.fingerprint_with(&params), go.fingerprint);
    params.insert("limit".into(), serde_json::json!(4));
    assert_ne!(split.fingerprint_with(&params), split_fp);
    assert_eq!(env.fingerprint_with(&params), env_fp);
    params.insert("unused".into(), serde_json::json!(2));
    params.insert("limit".into(), serde_json::json!(3));
    assert_eq!(split.fingerprint_with(&params), split_fp);
}
