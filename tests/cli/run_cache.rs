//! Values the nodes of one run share through the run cache: the shipped workflow's recommend
//! nodes build their index (and their backtest's) once per run, and `flow runs show` says which node built it.

use crate::shipped::{WF, shipped_yaml, workspace};

#[test]
fn the_recommend_nodes_of_a_run_build_one_index_and_show_their_lookups() {
    let ws = workspace(&shipped_yaml());
    for _ in 0..2 {
        let run = ws.flow().args(["run", WF]).run().run_id();
        let records = ws.node_records(&run);
        let recommend: Vec<_> = records
            .iter()
            .filter(|(id, n)| id.starts_with("recommend_") && n["status"] == "succeeded")
            .collect();
        assert!(recommend.len() >= 2, "{records:#?}");
        let total = |what: &str| -> u64 {
            recommend
                .iter()
                .map(|(id, n)| {
                    n["meta"]["run_cache"][what]
                        .as_u64()
                        .unwrap_or_else(|| panic!("{id}: {n:#}"))
                })
                .sum()
        };
        // Each run builds its own index and its backtest's calibration index, once each (the
        // second run finds nothing from the first). Each node looks the index up once and the
        // calibration twice: to have it built beside the index, and for its backtest.
        let n = recommend.len() as u64;
        assert_eq!(total("misses"), 2, "{recommend:#?}");
        assert_eq!(total("hits"), (n - 1) + (2 * n - 1));
        // Nodes that look nothing up say nothing about it.
        assert!(records["classify"]["meta"].get("run_cache").is_none());

        let text = ws.flow().args(["runs", "show", &run]).run();
        text.assert_stdout_contains("\"run_cache\":{\"hits\":");
    }
}
