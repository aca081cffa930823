//! Fuzzing the workflow loader: mutations of workflows of the generic node types must compile or
//! fail with diagnostics naming the file, never panic, and never take long. See `crate::fuzz` for
//! running it longer. (The retail crate fuzzes the shipped workflow the same way.)

use std::time::Duration;

use crate::fuzz::{self, Rng, WORKFLOW_TOKENS};

const SEEDS: &[&str] = &[
    "name: s\nparams: { limit: 3 }\nnodes:\n  - { id: go, kind: trigger, type: manual }\n  - id: split\n    kind: decision\n    type: core.switch\n    needs: go\n    with:\n      rules:\n        - { case: big, when: 'value > params.limit && value <= 10' }\n      default: small\n  - { id: b, kind: action, type: core.noop, needs: split.big }\n  - { id: join, kind: output, type: core.noop, needs: [b, split.small] }\n",
    "name: x\nnodes:\n  - { id: a, kind: action, type: core.noop }\n  - id: b\n    kind: action\n    type: core.shell\n    needs: [a]\n    with:\n      command: 'echo {{ params.n }}'\n    retry: { max_attempts: 3, backoff: 1s }\nparams:\n  n: 1\n",
];

#[test]
fn fuzz_workflow_loader() {
    fuzz::run(
        "workflow",
        300,
        Duration::from_secs(5),
        |rng: &mut Rng| {
            let seed = SEEDS[rng.index(SEEDS.len())];
            fuzz::mutate(rng, seed.as_bytes(), WORKFLOW_TOKENS, 20_000)
        },
        |bytes| {
            check(bytes);
        },
    );
}

fn check(bytes: &[u8]) -> String {
    fuzz::check_workflow(bytes, &crate::nodes::core_registry())
}

/// Inputs the fuzzer (or the field) found that once crashed or stalled the loader.
#[test]
fn fuzz_regressions_workflow_loader() {
    let deep_block: String = (0..3_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    // The line of the switch rule, where both rule cases below point.
    let at_rule = "fuzz.yaml:11:";
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
            format!("{}\n", SEEDS[0].replace("value <=", "value }}<=")).into_bytes(),
            at_rule,
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
                    "value > params.limit",
                    &format!("value{} > params.limit", "+1".repeat(40_000)),
                )
                .into_bytes(),
            at_rule,
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
