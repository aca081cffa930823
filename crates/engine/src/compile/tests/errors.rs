//! Errors: every one reported, each at its line.

use super::*;

#[test]
fn reports_every_error_with_its_line() {
    let text = "\
name: bad
nodes:
  - { id: t, kind: trigger, type: manual, needs: x }
  - { id: a, kind: action, type: core.nope }
  - { id: a, kind: action, type: core.noop, with: { dealy: 1s } }
  - { id: c, kind: action, type: core.shell }
  - { id: d, kind: decision, type: core.switch, needs: c, with: { rules: [{ case: y, when: 'v > 1' }] } }
  - { id: e, kind: action, type: core.noop, needs: [d, d.n, ghost] }
  - { id: f, kind: action, type: core.noop, needs: g }
  - { id: g, kind: action, type: core.noop, needs: f }
  - { id: h, kind: sideways, type: core.noop }
";
    let errs = errors(text);
    let expect = [
        (3, "a trigger starts the run and cannot have `needs`"),
        (4, "unknown node type `core.nope`"),
        (5, "duplicate id `a` (first defined on line 4)"),
        (
            5,
            "unknown parameter `dealy` for type `core.noop` (did you mean `delay`?)",
        ),
        (6, "missing required parameter `command`"),
        (
            8,
            "needs decision `d` without naming a case; write one of: d.y",
        ),
        (8, "decision `d` has no case `n`"),
        (8, "needs unknown node `ghost`"),
        (9, "cycle: f -> g -> f"),
        (11, "unknown kind `sideways`"),
    ];
    for (line, text) in expect {
        assert!(
            errs.iter().any(|(l, m)| *l == line && m.contains(text)),
            "missing line {line}: {text}\ngot: {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    assert!(errs.iter().all(|(_, m)| m.starts_with("wf.yaml:")));
}

#[test]
fn yaml_syntax_and_shape_errors() {
    let errs = errors("name: x\nnodes:\n  - id: a\n    kind: [\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].1.contains("invalid YAML"), "{errs:?}");
    let errs = errors("nodes: 3\nextra: 1\n");
    assert!(errs.iter().any(|(_, m)| m.contains("missing `name`")));
    assert!(
        errs.iter()
            .any(|(l, m)| *l == 1 && m.contains("`nodes` must be a list"))
    );
    assert!(
        errs.iter()
            .any(|(l, m)| *l == 2 && m.contains("unknown workflow key `extra`"))
    );
}

#[test]
fn templates_and_schedules_are_checked() {
    let text = "\
name: t
params: { day: mon }
nodes:
  - { id: s, kind: trigger, type: schedule, with: { cron: '0 6 * *', timezone: Europe/Londn } }
  - { id: a, kind: action, type: core.shell, needs: s, with: { command: 'echo {{ params.dya }}' } }
";
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|(l, m)| *l == 4 && m.contains("has 4 fields")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|(l, m)| *l == 4 && m.contains("unknown time zone `Europe/Londn`"))
    );
    assert!(
        errs.iter()
            .any(|(l, m)| *l == 5 && m.contains("unknown param `dya`"))
    );
}
