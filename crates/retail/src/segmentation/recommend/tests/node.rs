//! The node: its inputs, its parameters and the run cache it is given.

use super::*;

fn node_inputs(tables: Vec<(&str, RecordBatch)>) -> Inputs {
    Inputs(
        tables
            .into_iter()
            .map(|(from, t)| Input {
                from: from.into(),
                case: None,
                // The role each test input fills, from the name the test gives it.
                role: Some(
                    match from {
                        f if f.starts_with("extract") => "transactions",
                        f if f.starts_with("classify.") => "customers",
                        f => f,
                    }
                    .into(),
                ),
                data: Data::Table(t),
                meta: Default::default(),
            })
            .collect(),
    )
}

fn configure(
    yaml: &str,
    columns: &[Option<Vec<String>>],
) -> Result<Arc<dyn Node>, Vec<ParamError>> {
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    let params = Params::new(value.as_object().unwrap().clone(), "/");
    let cx = ConfigureCx {
        node_id: "recommend",
        kind: NodeKind::Action,
        workflow_dir: std::path::Path::new("/"),
        input_columns: columns,
    };
    Recommend.configure(&params, &cx)
}

#[test]
fn the_node_finds_its_inputs_by_their_roles_in_any_order() {
    let node = configure("strategy: cross_sell\ntop_k: 2\n", &[]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inputs = node_inputs(vec![
        ("affinity", affinity()),
        ("catalog", catalog()),
        ("classify.vip", customers()),
        ("extract", transactions()),
    ]);
    let out = rt
        .block_on(node.run(flow_engine::testing::context(), inputs))
        .unwrap();
    let t = out.body_table();
    assert_eq!(t.num_rows(), 4);
    let names: Vec<String> = t
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, OUTPUT_COLUMNS);
    assert_eq!(node.output_columns(&[]).unwrap(), OUTPUT_COLUMNS);

    // No catalog: the error names the missing role and what was received.
    let inputs = node_inputs(vec![
        ("classify.vip", customers()),
        ("extract", transactions()),
        ("affinity", affinity()),
    ]);
    let err = rt
        .block_on(node.run(flow_engine::testing::context(), inputs))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("a catalog table (role `catalog`"), "{err}");
    assert!(
        err.contains("`classify.vip` (role `customers`, table of 3 rows: customer_id, segment"),
        "{err}"
    );
}

#[test]
fn nodes_given_one_run_cache_share_the_index_of_the_same_inputs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ctx = flow_engine::testing::context();
    let inputs = |transactions_from: &str| {
        node_inputs(vec![
            ("classify.vip", customers()),
            (transactions_from, transactions()),
            ("catalog", catalog()),
            ("affinity", affinity()),
        ])
    };
    // The backtest off: this counts the index's builds only.
    let seasonal = configure("strategy: seasonal\nbacktest_days: 0\n", &[]).unwrap();
    let upsell = configure("strategy: upsell\nbacktest_days: 0\n", &[]).unwrap();
    rt.block_on(seasonal.run(ctx.clone(), inputs("extract")))
        .unwrap();
    let shared = rt
        .block_on(upsell.run(ctx.clone(), inputs("extract")))
        .unwrap();
    assert_eq!(ctx.run_cache.stats(), CacheStats { hits: 1, misses: 1 });
    // Transactions from another node: another index, the same answer for the same data.
    let own = rt
        .block_on(upsell.run(ctx.clone(), inputs("extract_again")))
        .unwrap();
    assert_eq!(ctx.run_cache.stats(), CacheStats { hits: 1, misses: 2 });
    assert_eq!(shared.body_table(), own.body_table());
}

#[test]
fn parameters_and_declared_inputs_are_checked_at_validation() {
    let errors = configure("strategy: magic\ntop_k: 0\nfallback: random\n", &[])
        .err()
        .unwrap();
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(errors.len(), 3, "{messages:?}");
    assert!(
        messages[0].contains("cross_sell, upsell, seasonal, bestsellers or replenishment")
            || messages[0].contains("must be one of")
    );
    // cross_sell needs the otherwise optional affinity role; validation reports it missing.
    let cross_sell = configure("strategy: cross_sell\n", &[]).unwrap();
    assert_eq!(cross_sell.required_inputs(), ["affinity"]);
    let bestsellers = configure("strategy: bestsellers\n", &[]).unwrap();
    assert!(bestsellers.required_inputs().is_empty());
}
