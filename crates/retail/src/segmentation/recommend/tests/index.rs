//! The index shared by the recommend nodes of a run.

use super::*;

#[test]
fn nodes_of_one_run_share_one_index_build_with_the_same_answers() {
    let body = |t: &RecommendInputs, cfg: &RecommendConfig, cache: &RunCache| {
        recommend(t.clone(), cfg, cache)
            .unwrap()
            .body_table()
            .clone()
    };
    let tables = inputs();
    let strategies = STRATEGIES.map(|s| RecommendConfig {
        recent_days: 7,
        fallback_bestsellers: true,
        backtest_days: 0,
        ..cfg(Strategy::parse(s).unwrap())
    });
    // Alone in its run, every node builds its own index.
    let alone: Vec<RecordBatch> = strategies
        .iter()
        .map(|c| {
            let cache = RunCache::new();
            let table = body(&tables, c, &cache);
            assert_eq!(cache.stats(), CacheStats { hits: 0, misses: 1 });
            table
        })
        .collect();

    // In one run the first node builds it and the others reuse it, with the same answers;
    // so does another branch over the same inputs.
    let run = RunCache::new();
    for (c, expect) in strategies.iter().zip(&alone) {
        assert_eq!(&body(&tables, c, &run), expect);
    }
    let other_branch = RecommendInputs {
        customers: vec![customers().slice(1, 2)],
        ..tables.clone()
    };
    body(&other_branch, &strategies[1], &run);
    assert_eq!(run.stats(), CacheStats { hits: 5, misses: 1 });

    // Another recent window, analysis date or transactions input: another index.
    for c in [
        RecommendConfig {
            recent_days: 8,
            ..strategies[2].clone()
        },
        RecommendConfig {
            analysis_date: Some(D - 1),
            ..strategies[2].clone()
        },
    ] {
        body(&tables, &c, &run);
    }
    let other_input = RecommendInputs {
        transactions: tables.transactions.slice(0, 17),
        index_inputs: ["catalog".into(), "older_extract".into()],
        ..tables.clone()
    };
    let sliced = body(&other_input, &strategies[0], &run);
    assert_eq!(run.stats(), CacheStats { hits: 5, misses: 4 });
    assert_eq!(sliced, body(&other_input, &strategies[0], &RunCache::new()));
}

#[test]
fn an_index_that_cannot_be_built_fails_every_node_of_the_run_alike() {
    let tables = RecommendInputs {
        transactions: transactions().project(&[0, 1, 3, 4, 5]).unwrap(),
        ..inputs()
    };
    let run = RunCache::new();
    let errors: Vec<String> = [Strategy::Bestsellers, Strategy::Upsell]
        .map(|s| {
            recommend(tables.clone(), &cfg(s), &run)
                .err()
                .unwrap()
                .to_string()
        })
        .to_vec();
    assert!(errors[0].contains("`date`"), "{}", errors[0]);
    assert_eq!(errors[0], errors[1]);
    assert_eq!(run.stats(), CacheStats { hits: 1, misses: 1 });
}

#[test]
fn lines_of_one_customer_item_and_day_keep_their_input_order() {
    let tx = transactions();
    let with = |row: RecordBatch| RecommendInputs {
        transactions: arrow_select::concat::concat_batches(&tx.schema(), [&tx, &row]).unwrap(),
        ..inputs()
    };
    // B bought Tea twice on one day: the same line twice, or two different ones.
    let same = with(tx.slice(5, 1));
    let different = with(batch(vec![
        ("customer_id", strs(&["B"])),
        ("order_id", strs(&["o5b"])),
        ("date", Arc::new(Date32Array::from(vec![D - 10]))),
        ("product_id", strs(&["P1"])),
        ("quantity", Arc::new(Float64Array::from(vec![2.0]))),
        ("amount", Arc::new(Float64Array::from(vec![9.0]))),
    ]));
    for tables in [&same, &different] {
        for strategy in STRATEGIES {
            let cfg = RecommendConfig {
                include_purchased: true,
                ..cfg(Strategy::parse(strategy).unwrap())
            };
            let shared = SharedIndex::build(
                &tables.catalog,
                &tables.transactions,
                cfg.analysis_date,
                cfg.recent_days,
                Orders::Ignored,
            )
            .unwrap();
            // B's lines, by (item, day); the two of that day in input order.
            let b = shared.buyers.get("B").unwrap() as usize;
            let b_lines = &shared.lines[shared.by_buyer[b]..shared.by_buyer[b + 1]];
            assert!(b_lines.iter().all(|l| l.cust == b as u32));
            assert!(
                b_lines
                    .windows(2)
                    .all(|w| (w[0].item, w[0].day) <= (w[1].item, w[1].day))
            );
            let tea = shared.products.ids.get("P1").unwrap();
            let that_day: Vec<f64> = b_lines
                .iter()
                .filter(|l| l.item == tea && l.day == D - 10)
                .map(|l| l.units)
                .collect();
            let last = if std::ptr::eq(tables, &different) {
                2.0
            } else {
                that_day[0]
            };
            assert_eq!(that_day.len(), 2);
            assert_eq!(that_day[1], last);
            let out = recommend(tables.clone(), &cfg, &RunCache::new()).unwrap();
            assert!(out.body_table().num_rows() > 0, "{strategy}");
        }
    }
    // Both of B's Tea lines of that day count: one more drinks line lowers B's weight of
    // food, so Cake's bestseller score for B falls below the fixture's.
    let b_score = |t: &RecommendInputs, item: &str| {
        let out = recommend(t.clone(), &cfg(Strategy::Bestsellers), &RunCache::new()).unwrap();
        let t = out.body_table().clone();
        let col = |n: &str| strings(&t, n);
        let (c, p) = (col("customer_id"), col("product_id"));
        let scores = t
            .column_by_name("score")
            .unwrap()
            .as_primitive::<arrow_array::types::Float64Type>()
            .clone();
        (0..t.num_rows())
            .find(|&i| c.value(i) == "B" && p.value(i) == item)
            .map(|i| scores.value(i))
            .unwrap()
    };
    assert!(b_score(&different, "P6") < b_score(&inputs(), "P6"));
}

#[test]
fn the_backtest_calibration_is_built_once_per_run() {
    let tables = inputs();
    let run = RunCache::new();
    recommend(tables.clone(), &cfg(Strategy::Seasonal), &run).unwrap();
    // The index, and the calibration index of the backtest: built beside the index, then
    // found by the backtest.
    assert_eq!(run.stats(), CacheStats { hits: 1, misses: 2 });
    recommend(tables.clone(), &cfg(Strategy::Upsell), &run).unwrap();
    assert_eq!(run.stats(), CacheStats { hits: 4, misses: 2 });
}
