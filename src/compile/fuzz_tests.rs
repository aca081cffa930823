//! Fuzzing the workflow loader: mutations of the shipped workflows must compile or fail with
//! diagnostics naming the file, never panic, and never take long. See `crate::fuzz` for running
//! it longer.

use std::path::Path;
use std::time::Duration;

use crate::fuzz::{self, Rng};

const SEEDS: &[&str] = &[
    include_str!("../../workflows/segmentation.yaml"),
    "name: x\nnodes:\n  - { id: a, kind: action, type: core.noop }\n  - id: b\n    kind: action\n    type: core.shell\n    needs: [a]\n    with:\n      command: 'echo {{ params.n }}'\n    retry: { max_attempts: 3, backoff: 1s }\nparams:\n  n: 1\n",
];

/// YAML syntax worth inserting, alone or repeated.
const TOKENS: &[&str] = &[
    "[",
    "{",
    "]",
    "}",
    "- ",
    "? ",
    ": ",
    "a: ",
    "{a: ",
    "[{",
    "\n  ",
    "\n- ",
    "'",
    "\"",
    "''",
    "\\",
    "#",
    " #",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "<<: *a\n",
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "{{",
    "}}",
    "{{ params.",
    "\t",
    "\r\n",
    "\u{feff}",
    "é",
    "x",
    "nodes:\n",
    "needs: ",
    "id: ",
    "with: ",
    "kind: decision\n",
    "type: core.switch\n",
];

/// Loads `bytes` as a workflow file; the problems, one per line, if it is invalid.
fn check(bytes: &[u8]) -> String {
    let path = Path::new("fuzz.yaml");
    let registry = crate::nodes::builtin_registry();
    let text = match super::decode(path, bytes.to_vec()) {
        Ok(text) => text,
        Err(d) => {
            assert!(d.line.is_some() && d.column.is_some(), "{d}");
            return d.to_string();
        }
    };
    match super::compile(&text, path, &registry) {
        Ok(_) => String::new(),
        Err(diags) => {
            assert!(!diags.is_empty());
            for d in &diags {
                assert_eq!(d.file, path);
                assert!(!d.message.is_empty());
            }
            super::display_all(&diags)
        }
    }
}

#[test]
fn fuzz_workflow_loader() {
    fuzz::run(
        "workflow",
        300,
        Duration::from_secs(5),
        |rng: &mut Rng| {
            let seed = SEEDS[rng.below(SEEDS.len())];
            fuzz::mutate(rng, seed.as_bytes(), TOKENS, 20_000)
        },
        |bytes| {
            check(bytes);
        },
    );
}

/// Inputs the fuzzer (or the field) found that once crashed or stalled the loader.
#[test]
fn fuzz_regressions_workflow_loader() {
    let deep_block: String = (0..3_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    // The line of the shipped workflow's `new` rule, where both rule cases below point.
    let rule_line = SEEDS[0]
        .lines()
        .position(|l| l.contains("orders == 1 &&"))
        .expect("the shipped workflow has a `new` rule")
        + 1;
    let at_rule = format!("fuzz.yaml:{rule_line}:");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Stack overflow (SIGABRT) in the position parser.
        (
            "- ".repeat(10_000).into_bytes(),
            "fuzz.yaml:1:129: nested deeper than 64 levels",
        ),
        (
            deep_block.into_bytes(),
            "fuzz.yaml:65:65: nested deeper than 64 levels",
        ),
        // Quadratic scanning of deep flow nesting (seconds to minutes).
        (
            "[".repeat(200_000).into_bytes(),
            "fuzz.yaml:1:65: nested deeper than 64 levels",
        ),
        (
            format!("name: x\nnodes: {}", "[{a: ".repeat(20_000)).into_bytes(),
            "fuzz.yaml:2:",
        ),
        // minijinja's lexer panicked on `}}` followed by more in a row expression.
        (
            format!(
                "{}\n",
                SEEDS[0].replace("days_since_last <=", "days_since_last }}<=")
            )
            .into_bytes(),
            &at_rule,
        ),
        // minijinja recursed once per operator of a long chain: a stack overflow.
        (
            SEEDS[1]
                .replace(
                    "params.n }}",
                    &format!("params.n{} }}}}", "*a".repeat(40_000)),
                )
                .into_bytes(),
            "fuzz.yaml:9:16: node `b`: template tag of 80010 characters is longer than the 2000",
        ),
        (
            SEEDS[0]
                .replace(
                    "orders == 1 &&",
                    &format!("orders{} == 1 &&", "+1".repeat(40_000)),
                )
                .into_bytes(),
            &at_rule,
        ),
        // Not UTF-8.
        (
            b"name: x\nnodes: \xff\n".to_vec(),
            "fuzz.yaml:2:8: not valid UTF-8 (byte 0xFF)",
        ),
    ];
    for (case, expected) in cases {
        let started = std::time::Instant::now();
        let errors = check(&case);
        assert!(errors.starts_with(expected), "{errors}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
