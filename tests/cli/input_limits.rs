//! `flow validate` on hostile and huge input: refused before parsing with a located error, in
//! bounded time, never a crash; a large legal workflow validates in time linear in its size.

use std::time::{Duration, Instant};

use crate::support::{Output, Workspace};

/// `flow validate flow.yaml` on `contents`; the output and how long it took.
fn validate(contents: impl AsRef<[u8]>, exit: i32) -> (Output, Duration) {
    let ws = Workspace::new();
    ws.write("flow.yaml", contents);
    let started = Instant::now();
    let out = ws
        .flow()
        .args(["validate", "flow.yaml"])
        .expect_exit(exit)
        .timeout(Duration::from_secs(60))
        .run();
    (out, started.elapsed())
}

/// A chain of `n` shell nodes, each with a template and a retry policy.
fn chain(n: usize) -> String {
    let mut text = String::from(
        "name: big\nparams:\n  greeting: hi\nnodes:\n  - { id: start, kind: trigger, type: manual }\n",
    );
    for i in 0..n {
        let needs = if i == 0 {
            "start".to_string()
        } else {
            format!("n{}", i - 1)
        };
        text.push_str(&format!(
            "  - id: n{i}\n    kind: action\n    type: core.shell\n    needs: [{needs}]\n    \
             with:\n      command: 'echo {{{{ params.greeting }}}} {i}'\n    retry: {{ max_attempts: 2, backoff: 1s }}\n"
        ));
    }
    text
}

#[test]
fn deep_block_nesting_is_refused_not_a_stack_overflow() {
    let (out, _) = validate("- ".repeat(10_000), 2);
    assert!(
        out.stderr
            .contains("flow.yaml:1:129: nested deeper than 64 levels"),
        "{out}"
    );
    let maps: String = (0..3_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let (out, _) = validate(maps, 2);
    assert!(
        out.stderr
            .contains("flow.yaml:65:65: nested deeper than 64 levels"),
        "{out}"
    );
}

#[test]
fn deep_flow_nesting_is_refused_quickly() {
    let (out, took) = validate("[".repeat(200_000), 2);
    assert!(
        out.stderr
            .contains("flow.yaml:1:65: nested deeper than 64 levels"),
        "{out}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Parsed before the limit, this took 12 s unoptimised: quadratic in the nesting.
    let (out, took) = validate(format!("name: x\nnodes: {}", "[{a: ".repeat(20_000)), 2);
    assert!(out.stderr.contains("flow.yaml:2:"), "{out}");
    assert!(out.stderr.contains("nested deeper than 64 levels"), "{out}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_file_that_is_not_utf8_or_too_large_is_a_located_error() {
    let (out, _) = validate(b"name: x\nnodes: \xff\n", 2);
    assert!(
        out.stderr
            .contains("flow.yaml:2:8: not valid UTF-8 (byte 0xFF)"),
        "{out}"
    );
    let line = format!("# {}\n", "x".repeat(1021));
    let (out, _) = validate(line.repeat(9 * 1024), 2);
    assert!(
        out.stderr
            .contains("flow.yaml:8193:1: workflow file is larger than 8 MiB"),
        "{out}"
    );
}

#[test]
fn a_large_legal_workflow_validates_in_linear_time() {
    let (small, small_took) = validate(chain(500), 0);
    assert!(
        format!("{}{}", small.stdout, small.stderr).contains("(501 nodes"),
        "{small}"
    );
    let (large, large_took) = validate(chain(2_000), 0);
    assert!(
        format!("{}{}", large.stdout, large.stderr).contains("(2001 nodes"),
        "{large}"
    );
    // Four times the nodes: linear work takes about four times as long; quadratic, sixteen.
    // The bound leaves room for a noisy machine and the fixed cost of starting the process.
    assert!(
        large_took < small_took * 10 + Duration::from_secs(2),
        "500 nodes: {small_took:?}, 2000 nodes: {large_took:?}"
    );
}
