//! `flow sample-data`: the sample shipped in `workflows/data/` is exactly what the command
//! generates with its defaults, so the generator's output stays byte-identical across changes
//! to its code.

use crate::shipped::repo_path;
use crate::support::Workspace;

const FILES: [&str; 3] = ["transactions.csv", "catalog.csv", "customers.csv"];

fn generated(ws: &Workspace, dir: &str, extra: &[&str]) -> Vec<Vec<u8>> {
    ws.flow()
        .args(["sample-data", "--out", dir])
        .args(extra.iter().copied())
        .run();
    FILES
        .iter()
        .map(|name| std::fs::read(ws.path(&format!("{dir}/{name}"))).expect("generated file"))
        .collect()
}

#[test]
fn the_default_sample_is_the_shipped_sample_byte_for_byte() {
    let ws = Workspace::new();
    let shipped: Vec<Vec<u8>> = FILES
        .iter()
        .map(|name| std::fs::read(repo_path(&format!("workflows/data/{name}"))).expect("sample"))
        .collect();
    let defaults = generated(&ws, "defaults", &[]);
    for ((name, got), want) in FILES.iter().zip(&defaults).zip(&shipped) {
        assert!(got == want, "{name} differs from workflows/data/{name}");
    }
    // The same seed given explicitly gives the same bytes; another seed other bytes.
    assert_eq!(generated(&ws, "seed42", &["--seed", "42"]), defaults);
    let other = generated(&ws, "seed7", &["--seed", "7"]);
    for ((name, got), want) in FILES.iter().zip(&other).zip(&defaults) {
        assert!(got != want, "{name} does not depend on the seed");
    }
}
