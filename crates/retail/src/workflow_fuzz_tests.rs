//! Fuzzing the loader with the shipped workflow and every retail node type registered:
//! mutations must compile or fail with diagnostics naming the file, never panic, and never take
//! long. See `flow_engine::testing::fuzz` for running it longer.

use std::time::Duration;

use flow_engine::node::Registry;
use flow_engine::testing::fuzz::{self, Rng, WORKFLOW_TOKENS, check_workflow};

const SHIPPED: &str = include_str!("../../../workflows/segmentation.yaml");

fn registry() -> Registry {
    let mut registry = flow_engine::nodes::core_registry();
    crate::register(&mut registry);
    registry
}

#[test]
fn fuzz_shipped_workflow_loader() {
    let registry = registry();
    assert_eq!(check_workflow(SHIPPED.as_bytes(), &registry), "");
    fuzz::run(
        "shipped-workflow",
        200,
        Duration::from_secs(5),
        |rng: &mut Rng| fuzz::mutate(rng, SHIPPED.as_bytes(), WORKFLOW_TOKENS, 20_000),
        |bytes| {
            check_workflow(bytes, &registry);
        },
    );
}

/// Inputs that once crashed or stalled the loader inside a `segmentation.classify` rule.
#[test]
fn fuzz_regressions_shipped_workflow() {
    let registry = registry();
    // The line of the shipped workflow's `new` rule, where both cases below point.
    let rule_line = SHIPPED
        .lines()
        .position(|l| l.contains("orders == 1 &&"))
        .expect("the shipped workflow has a `new` rule")
        + 1;
    let at_rule = format!("fuzz.yaml:{rule_line}:");
    let cases = [
        // minijinja's lexer panicked on `}}` followed by more in a row expression.
        SHIPPED.replace("days_since_last <=", "days_since_last }}<="),
        // minijinja recursed once per operator of a long chain: a stack overflow.
        SHIPPED.replace(
            "orders == 1 &&",
            &format!("orders{} == 1 &&", "+1".repeat(40_000)),
        ),
    ];
    for case in cases {
        let started = std::time::Instant::now();
        let errors = check_workflow(case.as_bytes(), &registry);
        assert!(errors.starts_with(&at_rule), "{errors}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
