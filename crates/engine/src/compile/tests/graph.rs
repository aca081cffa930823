//! The graph: order, cases, cycles, and cases that reach no output.

use super::*;

#[test]
fn compiles_graph_order_and_cases() {
    let wf = compile_str(VALID).unwrap();
    let ids: Vec<&str> = wf.order.iter().map(|&i| wf.nodes[i].id.as_str()).collect();
    assert_eq!(ids, ["go", "split", "b", "s", "join"]);
    assert_eq!(wf.node("split").unwrap().cases, ["big", "small"]);
    assert_eq!(wf.node("b").unwrap().needs[0].case.as_deref(), Some("big"));
    let down = wf.downstream(&[wf.index_of("b").unwrap()]);
    let mut down: Vec<&str> = down.iter().map(|&i| wf.nodes[i].id.as_str()).collect();
    down.sort();
    assert_eq!(down, ["b", "join"]);
}

#[test]
fn cycles_print_their_whole_path() {
    let text = "\
name: loop
nodes:
  - { id: one, kind: action, type: core.noop, needs: three }
  - { id: two, kind: action, type: core.noop, needs: one }
  - { id: three, kind: action, type: core.noop, needs: two }
  - { id: self, kind: action, type: core.noop, needs: self }
";
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|(l, m)| *l == 3 && m.ends_with("cycle: one -> two -> three -> one")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|(l, m)| *l == 6 && m.ends_with("cycle: self -> self")),
        "{errs:#?}"
    );
}

#[test]
fn cases_that_reach_no_output_are_warnings_at_their_rule() {
    let text = "\
name: warn
nodes:
  - { id: go, kind: trigger, type: manual }
  - id: split
    kind: decision
    type: core.switch
    needs: go
    with:
      rules:
        - { case: big, when: 'value > 3' }
        - { case: mid, when: 'value > 2' }
      default: small
  - { id: b, kind: action, type: core.noop, needs: split.big }
  - { id: s, kind: action, type: core.noop, needs: split.small }
  - { id: out, kind: output, type: core.noop, needs: b }
";
    let wf = compile_str(text).unwrap();
    let warnings: Vec<(usize, String)> = wf
        .warnings
        .iter()
        .map(|d| (d.line.unwrap(), d.to_string()))
        .collect();
    assert_eq!(
        warnings,
        [
            (
                11,
                "wf.yaml:11:19: warning: node `split`: case `mid` has no subscriber (no node needs it); its rows will not be delivered".to_string()
            ),
            (
                12,
                "wf.yaml:12:16: warning: node `split`: case `small` leads to no output node; its rows will not be delivered".to_string()
            ),
        ]
    );
    assert!(wf.warnings.iter().all(|d| d.severity == Severity::Warning));
    // Without output nodes only the case nobody subscribes to is a warning.
    let no_outputs = text.replace("kind: output", "kind: action");
    let wf = compile_str(&no_outputs).unwrap();
    assert_eq!(wf.warnings.len(), 1);
    assert!(wf.warnings[0].message.contains("`mid` has no subscriber"));
}
