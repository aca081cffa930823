//! `flow validate`: every kind of error, each with its exact line and column, in the text form
//! (`FILE:LINE:COL: node `ID`: message`, exit 2) and in `--json`; all errors of a file at once.
//!
//! Fixtures start with `name:` on line 1, so the line numbers in the expectations can be read
//! off the fixture text.

use serde_json::Value as Json;

use crate::support::{Output, WORKFLOW, Workspace};

/// One expected diagnostic: line, column, node, and a part of the message.
type Expected<'a> = (usize, usize, Option<&'a str>, &'a str);

/// A diagnostic as printed on stderr.
#[derive(Debug)]
struct Printed {
    line: usize,
    col: usize,
    rest: String,
}

/// The `FILE:LINE:COL: ...` lines of stderr.
fn printed(out: &Output) -> Vec<Printed> {
    let prefix = format!("{WORKFLOW}:");
    out.stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().and_then(|s| s.parse().ok());
            let col = parts.next().and_then(|s| s.parse().ok());
            match (line, col, parts.next()) {
                (Some(line), Some(col), Some(rest)) => Printed {
                    line,
                    col,
                    rest: rest.strip_prefix(' ').unwrap_or(rest).to_string(),
                },
                _ => panic!("not a FILE:LINE:COL: line: {rest:?}\n{out}"),
            }
        })
        .collect()
}

/// Validates `yaml` and checks the text and JSON reports against `expected` (in line order).
fn check(yaml: &str, expected: &[Expected<'_>]) {
    let ws = Workspace::with_workflow(yaml);
    let out = ws.flow().args(["validate", WORKFLOW]).expect_exit(2).run();
    let diags = printed(&out);
    let positions: Vec<(usize, usize)> = diags.iter().map(|d| (d.line, d.col)).collect();
    let wanted: Vec<(usize, usize)> = expected.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(positions, wanted, "positions\n{out}");
    for (d, (line, _, node, message)) in diags.iter().zip(expected) {
        let text = match node {
            Some(node) => d
                .rest
                .strip_prefix(&format!("node `{node}`: "))
                .unwrap_or_else(|| {
                    panic!("line {line}: the message must name node `{node}`\n{out}")
                }),
            None => d.rest.as_str(),
        };
        assert!(
            text.contains(message),
            "line {line}: expected {message:?} in {text:?}\n{out}"
        );
    }
    let n = expected.len();
    // The summary names the file and the count of errors.
    let summary = format!("invalid: {n} error{}", if n == 1 { "" } else { "s" });
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains(WORKFLOW) && l.ends_with(&summary)),
        "no summary line ending with {summary:?}\n{out}"
    );

    let json = ws
        .flow()
        .args(["validate", WORKFLOW, "--json"])
        .expect_exit(2)
        .run()
        .json();
    assert_eq!(json["valid"], false);
    let errors = json["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), n, "{json:#}");
    for (e, (line, col, node, message)) in errors.iter().zip(expected) {
        assert_eq!(e["file"], WORKFLOW);
        assert_eq!(
            (e["line"].as_u64(), e["column"].as_u64()),
            (Some(*line as u64), Some(*col as u64)),
            "{e}"
        );
        assert_eq!(e["node"].as_str(), *node, "{e}");
        assert!(e["message"].as_str().unwrap().contains(message), "{e}");
    }
}

#[test]
fn yaml_syntax_error() {
    check(
        "name: syntax
nodes:
  - id: a
    kind: action
   type: core.noop
",
        &[(
            5,
            4,
            None,
            "invalid YAML: did not find expected '-' indicator",
        )],
    );
}

#[test]
fn duplicate_ids() {
    check(
        "name: dup
nodes:
  - id: a
    kind: action
    type: core.noop
  - id: b
    kind: action
    type: core.noop
  - id: a
    kind: action
    type: core.noop
",
        &[(
            9,
            9,
            Some("a"),
            "duplicate id `a` (first defined on line 3)",
        )],
    );
}

#[test]
fn unknown_node_type() {
    check(
        r#"name: types
nodes:
  - id: a
    kind: action
    type: core.shel
    with: { command: "true" }
"#,
        &[(
            5,
            11,
            Some("a"),
            "unknown node type `core.shel` (did you mean `core.shell`?)",
        )],
    );
}

#[test]
fn unknown_parameter() {
    check(
        r#"name: params
nodes:
  - id: a
    kind: action
    type: core.shell
    with:
      command: "true"
      comand: "false"
"#,
        &[(
            8,
            7,
            Some("a"),
            "unknown parameter `comand` for type `core.shell` (did you mean `command`?)",
        )],
    );
}

#[test]
fn wrong_parameter_types() {
    check(
        r#"name: types
nodes:
  - id: a
    kind: action
    type: core.noop
    with:
      delay: 5 minutes please
  - id: b
    kind: action
    type: core.shell
    with:
      command: [echo, hi]
"#,
        &[
            (
                7,
                14,
                Some("a"),
                "`delay` must be a duration such as 30s or 5m",
            ),
            (
                12,
                16,
                Some("b"),
                "`command` must be a string, got [\"echo\",\"hi\"]",
            ),
        ],
    );
}

#[test]
fn needs_an_unknown_node() {
    check(
        "name: needs
nodes:
  - id: extract
    kind: action
    type: core.noop
  - id: load
    kind: action
    type: core.noop
    needs: [extract, extrct]
",
        &[(
            9,
            22,
            Some("load"),
            "needs unknown node `extrct` (did you mean `extract`?)",
        )],
    );
}

#[test]
fn unknown_case_missing_case_and_case_of_a_non_decision() {
    check(
        r#"name: cases
nodes:
  - id: src
    kind: action
    type: core.noop
  - id: route
    kind: decision
    type: core.switch
    needs: [src]
    with:
      rules:
        - { case: vip, when: "x > 1" }
      default: regular
  - id: a
    kind: action
    type: core.noop
    needs: [route.vipp]
  - id: b
    kind: action
    type: core.noop
    needs:
      - route
  - id: c
    kind: action
    type: core.noop
    needs: [src.big]
"#,
        &[
            (
                17,
                13,
                Some("a"),
                "decision `route` has no case `vipp` (did you mean `vip`? its cases: vip, regular)",
            ),
            (
                22,
                9,
                Some("b"),
                "needs decision `route` without naming a case; write one of: route.vip, route.regular",
            ),
            (
                26,
                13,
                Some("c"),
                "`src.big`: `src` is not a decision, so it has no case `big`",
            ),
        ],
    );
}

#[test]
fn cycles_print_the_whole_path() {
    check(
        "name: cycle
nodes:
  - id: a
    kind: action
    type: core.noop
    needs: [c]
  - id: b
    kind: action
    type: core.noop
    needs: [a]
  - id: c
    kind: action
    type: core.noop
    needs: [b]
  - id: d
    kind: action
    type: core.noop
    needs: [d]
",
        &[
            (6, 12, Some("a"), "cycle: a -> b -> c -> a"),
            (18, 12, Some("d"), "cycle: d -> d"),
        ],
    );
}

#[test]
fn bad_cron_expressions() {
    check(
        r#"name: cron
nodes:
  - id: nightly
    kind: trigger
    type: schedule
    with:
      cron: "0 25 * * *"
  - id: hourly
    kind: trigger
    type: schedule
    with: { cron: "every day" }
"#,
        &[
            (
                7,
                13,
                Some("nightly"),
                "invalid cron expression `0 25 * * *`",
            ),
            (
                11,
                19,
                Some("hourly"),
                "cron expression `every day` has 2 fields",
            ),
        ],
    );
}

#[test]
fn unknown_time_zone() {
    check(
        r#"name: tz
nodes:
  - id: london
    kind: trigger
    type: schedule
    with:
      cron: "0 6 * * *"
      timezone: Europe/Londn
"#,
        &[(8, 17, Some("london"), "unknown time zone `Europe/Londn`")],
    );
}

#[test]
fn template_referencing_an_unknown_param() {
    check(
        r#"name: templates
params:
  region: eu
nodes:
  - id: a
    kind: action
    type: core.shell
    with:
      command: "echo {{ params.nope }}"
      env:
        REGION: "{{ params.region }}"
"#,
        &[(
            9,
            16,
            Some("a"),
            "template refers to unknown param `nope` (declared params: region)",
        )],
    );
}

/// One file with a problem of every kind.
const EVERYTHING_WRONG: &str = r#"name: everything
params:
  region: eu
nodes:
  - id: start
    kind: trigger
    type: schedule
    with:
      cron: "61 6 * * *"
  - id: zone
    kind: trigger
    type: schedule
    with: { cron: "0 6 * * *", timezone: Mars/Olympus }
  - id: a
    kind: action
    type: core.shell
    needs: [start]
    with:
      command: "echo {{ params.nope }}"
      colour: red
  - id: a
    kind: action
    type: core.nope
    needs: [start]
  - id: b
    kind: action
    type: core.noop
    needs: [ghost]
    with:
      delay: [1, 2]
  - id: split
    kind: decision
    type: core.switch
    needs: [start]
    with:
      rules:
        - { case: big, when: "x > 1" }
  - id: c
    kind: action
    type: core.noop
    needs: [split.huge]
  - id: d
    kind: action
    type: core.noop
    needs: [split]
  - id: x
    kind: action
    type: core.noop
    needs: [z]
  - id: y
    kind: action
    type: core.noop
    needs: [x]
  - id: z
    kind: action
    type: core.noop
    needs: [y]
"#;

const EVERYTHING_EXPECTED: &[Expected<'static>] = &[
    (9, 13, Some("start"), "invalid cron expression `61 6 * * *`"),
    (13, 42, Some("zone"), "unknown time zone `Mars/Olympus`"),
    (19, 16, Some("a"), "template refers to unknown param `nope`"),
    (
        20,
        7,
        Some("a"),
        "unknown parameter `colour` for type `core.shell`",
    ),
    (
        21,
        9,
        Some("a"),
        "duplicate id `a` (first defined on line 14)",
    ),
    (
        23,
        11,
        Some("a"),
        "unknown node type `core.nope` (did you mean `core.noop`?)",
    ),
    (28, 13, Some("b"), "needs unknown node `ghost`"),
    (30, 14, Some("b"), "`delay` must be a duration"),
    (41, 13, Some("c"), "decision `split` has no case `huge`"),
    (
        45,
        13,
        Some("d"),
        "needs decision `split` without naming a case",
    ),
    (49, 12, Some("x"), "cycle: x -> y -> z -> x"),
];

#[test]
fn all_errors_of_a_file_are_reported_at_once() {
    check(EVERYTHING_WRONG, EVERYTHING_EXPECTED);
}

#[test]
fn run_reports_the_same_errors_and_runs_nothing() {
    let ws = Workspace::with_workflow(EVERYTHING_WRONG);
    let out = ws.run().expect_exit(2).run();
    let positions: Vec<(usize, usize)> = printed(&out).iter().map(|d| (d.line, d.col)).collect();
    let wanted: Vec<(usize, usize)> = EVERYTHING_EXPECTED.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(positions, wanted, "{out}");
    assert!(!ws.state_dir().exists());
}

#[test]
fn a_valid_workflow_validates() {
    let ws = Workspace::with_workflow(
        r#"name: fine
params: { region: eu }
nodes:
  - { id: start, kind: trigger, type: schedule, with: { cron: "0 6 * * MON-FRI", timezone: Europe/London } }
  - id: a
    kind: action
    type: core.shell
    needs: [start]
    retry: { max_attempts: 3, backoff: 1s, max_backoff: 10s, factor: 2 }
    timeout: 30s
    with: { command: "echo {{ params.region }} {{ run.id }}", output: lines }
"#,
    );
    let out = ws.flow().args(["validate", WORKFLOW]).run();
    out.assert_stdout_contains("valid workflow `fine` (2 nodes, 1 trigger)");
    let json = ws
        .flow()
        .args(["validate", WORKFLOW, "--json"])
        .run()
        .json();
    assert_eq!(json["valid"], true);
    assert_eq!(json["errors"], Json::Array(vec![]));
    ws.flow()
        .args(["validate", "missing.yaml"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("missing.yaml");
}

#[test]
fn every_diagnostic_line_starts_with_file_line_col() {
    let ws = Workspace::with_workflow(EVERYTHING_WRONG);
    let out = ws.flow().args(["validate", WORKFLOW]).expect_exit(2).run();
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), EVERYTHING_EXPECTED.len() + 1, "{out}");
    for line in &lines[..EVERYTHING_EXPECTED.len()] {
        assert!(
            line.starts_with(&format!("{WORKFLOW}:")),
            "{line:?} does not start with FILE:LINE:COL\n{out}"
        );
    }
}

#[test]
fn a_cron_error_is_one_line() {
    let ws = Workspace::with_workflow(
        r#"name: cron
nodes:
  - id: nightly
    kind: trigger
    type: schedule
    with:
      cron: "0 25 * * *"
"#,
    );
    let out = ws.flow().args(["validate", WORKFLOW]).expect_exit(2).run();
    assert_eq!(
        out.stderr.lines().count(),
        2,
        "one diagnostic line and the summary\n{out}"
    );
}

#[test]
fn a_bad_cron_and_a_bad_time_zone_on_one_node_are_both_reported() {
    check(
        r#"name: both
nodes:
  - id: t
    kind: trigger
    type: schedule
    with:
      cron: "0 25 * * *"
      timezone: Mars/Olympus
"#,
        &[
            (7, 13, Some("t"), "invalid cron expression"),
            (8, 17, Some("t"), "unknown time zone `Mars/Olympus`"),
        ],
    );
}
