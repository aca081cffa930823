//! The fitted models and their predictions on generated data, and a timing run at scale.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type};
use arrow_array::{Array, Float64Array, RecordBatch};

use super::generated::generated_table;
use super::{col, floats, ints, out_table, strs};
use crate::segmentation::metrics::accumulate::compute;
use crate::segmentation::metrics::config::MetricsConfig;
use flow_analytics::bgnbd::{self, Observation};
use flow_analytics::clv::{ClvOptions, customer_lifetime_value, discounted_value};
use flow_analytics::gamma_gamma;
use flow_analytics::summary::{TimeUnit, Transaction, summarize};
use flow_engine::data::Output;

#[test]
fn fitted_models_on_generated_data() {
    let batch = generated_table(800, 7, 400, 1.0);
    let cfg = MetricsConfig::default();
    let out = compute(&batch, &cfg).unwrap();
    let t = out_table(&out);
    assert!(
        !out.meta.contains_key("model_fallback"),
        "{:?}",
        out.meta.get("model_fallback")
    );
    let bg = &out.meta["bgnbd"];
    let gg = &out.meta["gamma_gamma"];
    assert_eq!(bg["converged"], true);
    assert_eq!(gg["converged"], true);

    // The same fit straight from the analytics code on the same summary.
    let customers = strs(t, "customer_id");
    let index: std::collections::HashMap<String, u32> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone().unwrap(), i as u32))
        .collect();
    let ids = batch.column(0).as_string::<i32>();
    let days = batch.column(2).as_primitive::<Date32Type>();
    let amounts = batch.column(3).as_primitive::<Float64Type>();
    let txs: Vec<Transaction> = (0..batch.num_rows())
        .map(|i| Transaction {
            customer: index[ids.value(i)],
            day: days.value(i),
            amount: amounts.value(i),
        })
        .collect();
    let end = days.values().iter().copied().max().unwrap();
    let summaries = summarize(&txs, customers.len(), end, TimeUnit::Days).unwrap();
    let obs: Vec<Observation> = summaries.iter().map(Observation::from).collect();
    let want = bgnbd::fit(
        &obs,
        &bgnbd::FitOptions {
            min_repeat_customers: 20,
            ..Default::default()
        },
    )
    .unwrap();
    let close = |a: f64, b: f64| ((a - b) / b).abs() < 1e-9;
    for (key, value) in [
        ("r", want.params.r),
        ("alpha", want.params.alpha),
        ("a", want.params.a),
        ("b", want.params.b),
        ("log_likelihood", want.log_likelihood),
    ] {
        assert!(close(bg[key].as_f64().unwrap(), value), "{key}: {bg}");
    }
    let spend: Vec<gamma_gamma::SpendObservation> = summaries
        .iter()
        .map(gamma_gamma::SpendObservation::from)
        .collect();
    let want_gg = gamma_gamma::fit(
        &spend,
        &gamma_gamma::FitOptions {
            min_repeat_customers: 20,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(close(gg["q"].as_f64().unwrap(), want_gg.params.q), "{gg}");
    assert_eq!(gg["customers_used"], want_gg.customers);

    // Per-customer predictions: ranges, and equal to the analytics functions.
    let p_alive = floats(t, "p_alive");
    let expected = floats(t, "expected_purchases");
    let p_purchase = floats(t, "p_purchase");
    let spend_col = floats(t, "expected_avg_spend");
    let clv = floats(t, "clv");
    let population = want_gg.params.population_mean_spend().unwrap();
    let clv_options = ClvOptions {
        months: 12,
        monthly_discount_rate: 0.01,
        time_units_per_month: 30.0,
    };
    for i in 0..t.num_rows() {
        let (pa, e, pp, sp, v) = (
            p_alive[i].unwrap(),
            expected[i].unwrap(),
            p_purchase[i].unwrap(),
            spend_col[i].unwrap(),
            clv[i].unwrap(),
        );
        assert!((0.0..=1.0).contains(&pa), "p_alive {pa}");
        assert!(
            (0.0..=1.0).contains(&pp) && pp <= pa + 1e-12,
            "p_purchase {pp}"
        );
        assert!(pp <= e + 1e-12, "P(Y >= 1) = {pp} > E[Y] = {e}");
        assert!(v >= 0.0 && v.is_finite(), "clv {v}");
        let o = &obs[i];
        assert!(close(pa, want.params.probability_alive(o).unwrap()));
        assert!(close(e, want.params.expected_purchases(90.0, o).unwrap()));
        let (r, alpha) = (want.params.r, want.params.alpha);
        let stay = ((alpha + o.t) / (alpha + o.t + 90.0)).powf(r + f64::from(o.frequency));
        assert!((pp - pa * (1.0 - stay)).abs() < 1e-12, "p_purchase {pp}");
        if o.frequency == 0 {
            assert!(close(sp, population));
        }
        let want_clv = customer_lifetime_value(
            &want.params,
            &want_gg.params,
            o,
            summaries[i].monetary_value,
            &clv_options,
        )
        .unwrap();
        assert!(
            (v - want_clv).abs() <= 1e-9 * want_clv.abs().max(1e-9),
            "{v} vs {want_clv}"
        );
    }
    // At the fitted parameters, the predictions (computed once per pattern, with the 2F1
    // series shared by equal frequencies and ages, over several threads) are bit for bit
    // what the analytics functions give for each customer.
    let fitted = |key: &str| bg[key].as_f64().unwrap();
    let params =
        bgnbd::BgNbdParams::new(fitted("r"), fitted("alpha"), fitted("a"), fitted("b")).unwrap();
    for (i, o) in obs.iter().enumerate() {
        assert_eq!(
            p_alive[i].unwrap().to_bits(),
            params.probability_alive(o).unwrap().to_bits()
        );
        assert_eq!(
            expected[i].unwrap().to_bits(),
            params.expected_purchases(90.0, o).unwrap().to_bits()
        );
        let per_spend = discounted_value(&params, o, 1.0, &clv_options).unwrap();
        assert_eq!(
            clv[i].unwrap().to_bits(),
            (per_spend * spend_col[i].unwrap()).to_bits()
        );
    }
    // Someone who bought often and recently is more likely to buy than a lapsed one-timer.
    let r = ints(t, "r_score");
    let f = ints(t, "f_score");
    let mean = |pick: &dyn Fn(usize) -> bool| {
        let v: Vec<f64> = (0..t.num_rows())
            .filter(|&i| pick(i))
            .map(|i| p_purchase[i].unwrap())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean(&|i| r[i] >= 4 && f[i] >= 4) > mean(&|i| r[i] <= 2 && f[i] <= 2));
}

#[test]
fn a_missing_spend_model_nulls_only_the_columns_that_need_it() {
    // All amounts negative: BG/NBD (which ignores amounts) fits, Gamma-Gamma has no
    // repeat customer with positive spend.
    let batch = generated_table(800, 7, 400, 1.0);
    let amounts = batch.column(3).as_primitive::<Float64Type>();
    let negated: Float64Array = amounts.iter().map(|a| a.map(|a| -a - 1.0)).collect();
    let mut columns = batch.columns().to_vec();
    columns[3] = Arc::new(negated);
    let batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
    let out = compute(&batch, &MetricsConfig::default()).unwrap();
    let t = out_table(&out);
    let reason = out.meta["model_fallback"].as_str().unwrap();
    assert!(
        reason.contains("Gamma-Gamma") && !reason.contains("BG/NBD"),
        "{reason}"
    );
    assert_eq!(out.meta["bgnbd"]["converged"], true);
    assert!(!out.meta.contains_key("gamma_gamma"));
    for name in ["p_alive", "expected_purchases", "p_purchase"] {
        assert_eq!(col(t, name).null_count(), 0, "{name}");
    }
    for name in ["expected_avg_spend", "clv"] {
        assert_eq!(col(t, name).null_count(), t.num_rows(), "{name}");
    }
    let strict = MetricsConfig {
        require_model: true,
        ..Default::default()
    };
    let err = compute(&batch, &strict).err().unwrap().to_string();
    assert!(err.contains("Gamma-Gamma model cannot be fitted"), "{err}");
}

/// The node's output with every core taken (each step on this thread alone), then with cores
/// free (other tests take cores too: it starts when one is free, almost always at once).
fn alone_and_spread(batch: &RecordBatch, cfg: &MetricsConfig) -> (Output, Output) {
    let all_cores = flow_engine::node::spare_cores(usize::MAX);
    let alone = compute(batch, cfg).unwrap();
    drop(all_cores);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while flow_engine::node::spare_cores(2).threads() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (alone, compute(batch, cfg).unwrap())
}

#[test]
fn the_same_bits_on_one_thread_as_on_the_cores_other_work_leaves_free() {
    let batch = generated_table(5_000, 5, 730, 1.7);
    let cfg = MetricsConfig::default();
    let (alone, spread) = alone_and_spread(&batch, &cfg);
    assert_eq!(out_table(&alone), out_table(&spread));
    assert_eq!(alone.meta, spread.meta);
    assert!(alone.meta.contains_key("clv_backtest"));
    assert!(!alone.meta.contains_key("model_fallback"));
}

#[test]
fn the_same_bits_when_the_thread_beside_takes_its_turns_first() {
    // Without the CLV backtest the thread beside is free at once and takes the first turns at
    // the RFM scores, the Gamma-Gamma fit and the BG/NBD fit's preparation, which otherwise
    // this thread mostly makes after the category figures.
    let batch = generated_table(5_000, 5, 730, 1.7);
    let cfg = MetricsConfig {
        backtest_days: Some(0),
        ..Default::default()
    };
    let (alone, spread) = alone_and_spread(&batch, &cfg);
    assert_eq!(out_table(&alone), out_table(&spread));
    assert_eq!(alone.meta, spread.meta);
    assert!(!alone.meta.contains_key("clv_backtest"));
    assert!(!alone.meta.contains_key("model_fallback"));
}

/// CPU time (user + system, all threads) of this process so far, in ms (Linux), so timings
/// can be read on a machine shared with other jobs.
fn process_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields 14 and 15 of stat (utime, stime) in clock ticks of 10 ms.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) * 10
}

/// 1M lines / 100k customers in release mode:
/// `cargo test --release --lib -- --ignored --nocapture metrics_1m_timing`.
#[test]
#[ignore]
fn metrics_1m_timing() {
    let start = std::time::Instant::now();
    let batch = generated_table(100_000, 11, 730, 1.7);
    println!(
        "generated {} lines, {} customers in {:?}",
        batch.num_rows(),
        100_000,
        start.elapsed()
    );
    assert!(batch.num_rows() >= 1_000_000);
    // As a POS export: by date, so rows of a customer are scattered.
    let dates = batch.column(2).as_primitive::<Date32Type>();
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by_key(|&i| dates.value(i as usize));
    let batch =
        arrow_select::take::take_record_batch(&batch, &arrow_array::UInt32Array::from(order))
            .unwrap();
    for (label, cfg) in [
        ("fit: bgnbd", MetricsConfig::default()),
        (
            "fit: none",
            MetricsConfig {
                fit: false,
                ..Default::default()
            },
        ),
    ] {
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (start, cpu_start) = (std::time::Instant::now(), process_cpu_ms());
            let out = compute(&batch, &cfg).unwrap();
            wall.push(start.elapsed().as_millis());
            cpu.push(process_cpu_ms() - cpu_start);
            assert_eq!(out.rows(), 100_000);
            assert!(!out.meta.contains_key("model_fallback") || !cfg.fit);
        }
        println!("metrics ({label}): wall ms {wall:?}, process CPU ms {cpu:?}");
    }
}
