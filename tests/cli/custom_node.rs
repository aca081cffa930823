//! A binary of one's own with an extra node type (`examples/greet.rs`, built by `cargo test`):
//! the library's `main_with` runs the whole command line with it.

use std::path::PathBuf;

use crate::support::{WORKFLOW, Workspace};

/// `target/<profile>/examples/greet`, next to the `deps` directory holding this test binary.
fn greet_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/cli-*");
    let bin = profile_dir
        .join("examples")
        .join(format!("greet{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds it (or `cargo build --example greet`)",
        bin.display()
    );
    bin
}

const GREET: &str = "\
name: greet
nodes:
  - { id: go, kind: trigger, type: manual }
  - { id: hello, kind: action, type: demo.greet, needs: go, with: { name: shop } }
  - { id: done, kind: output, type: core.noop, needs: hello }
";

#[test]
fn a_binary_built_on_the_library_runs_its_own_node_type() {
    let ws = Workspace::new();
    ws.write(WORKFLOW, GREET);
    let nodes = ws.flow().binary(greet_bin()).arg("nodes").run();
    assert!(nodes.stdout.contains("demo.greet"), "{nodes}");
    assert!(nodes.stdout.contains("segmentation.classify"), "{nodes}");
    ws.flow()
        .binary(greet_bin())
        .args(["validate", WORKFLOW])
        .run();
    let run = ws.run().binary(greet_bin()).run();
    let id = run.run_id();
    let show = ws
        .flow()
        .binary(greet_bin())
        .args(["runs", "output", &id, "hello"])
        .run();
    assert!(show.stdout.contains("hello shop from hello"), "{show}");
}

#[test]
fn the_custom_type_checks_its_params_and_plain_flow_does_not_know_it() {
    let ws = Workspace::new();
    ws.write(WORKFLOW, GREET.replace("name: shop", "name: ' '"));
    let out = ws
        .flow()
        .binary(greet_bin())
        .args(["validate", WORKFLOW])
        .expect_exit(2)
        .run();
    assert!(out.stderr.contains("flow.yaml:4:"), "{out}");
    assert!(out.stderr.contains("must not be empty"), "{out}");
    let plain = ws.flow().args(["validate", WORKFLOW]).expect_exit(2).run();
    assert!(plain.stderr.contains("demo.greet"), "{plain}");
}
