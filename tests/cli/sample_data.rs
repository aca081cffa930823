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

#[test]
fn a_simulated_campaign_adds_only_its_extra_orders() {
    let ws = Workspace::new();
    let args = ["--customers", "300", "--days", "200", "--end", "2026-10-31"];
    let plain = generated(&ws, "plain", &args);
    let out = ws
        .flow()
        .args(["sample-data", "--out", "with"])
        .args(args)
        .args(["--campaign", "campaign_vip:2026-09-01:0.5:0.2:14"])
        .run();
    out.assert_stderr_contains("simulated 1 campaign:");
    let with = std::fs::read_to_string(ws.path("with/transactions.csv")).expect("transactions");
    let natural: Vec<&str> = with.lines().filter(|l| !l.starts_with("OX1-")).collect();
    let plain_tx = String::from_utf8(plain[0].clone()).expect("utf-8");
    assert_eq!(natural, plain_tx.lines().collect::<Vec<_>>());
    assert!(with.lines().any(|l| l.starts_with("OX1-")));
    // Bad specifications are refused with the expected form in the message.
    for bad in [
        "campaign_vip",
        "campaign_vip:2026-13-01:0.1",
        "campaign_vip:2026-09-01:2",
        "campaign_vip:2026-09-01:0.1:0.1:0",
    ] {
        let out = ws
            .flow()
            .args(["sample-data", "--out", "bad", "--campaign", bad])
            .expect_exit(2)
            .run();
        out.assert_stderr_contains("--campaign");
    }
}
