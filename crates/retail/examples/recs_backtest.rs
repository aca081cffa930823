//! Backtests the recommendation strategies against the baselines on generated data.
//!
//!     cargo run --release -p flow-retail --example recs_backtest -- [customers] [products] [days] [seeds...]
//!
//! Defaults: 20,000 customers, 500 products, 730 days, seeds 1 2 3; every customer in one
//! segment, k = 4, the last 60 days hidden. Prints each method's figures per seed, then how
//! many distinct lists the best customers (the top 5% by spend among those who bought in the
//! last 90 days) get from each strategy, live.

use flow_retail::pos::generate::{GenerateOptions, generate};
use flow_retail::segmentation::recommend_harness::{
    Run, best_customers, distinct_lists, everyone as customer_ids, run, tables,
};

fn main() -> Result<(), String> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().map_err(|_| format!("not a number: {a}")))
        .collect::<Result<_, _>>()?;
    let customers = args.first().copied().unwrap_or(20_000);
    let products = args.get(1).copied().unwrap_or(500) as u32;
    let days = args.get(2).copied().unwrap_or(730) as u32;
    let seeds: Vec<u64> = if args.len() > 3 {
        args[3..].to_vec()
    } else {
        vec![1, 2, 3]
    };
    for seed in seeds {
        let opts = GenerateOptions {
            customers,
            products,
            days,
            seed,
            malformed_rows: 0,
            ..GenerateOptions::default()
        };
        let started = std::time::Instant::now();
        let ds = generate(&opts).map_err(|e| e.to_string())?;
        let t = tables(&ds)?;
        let all = customer_ids(&t);
        let (_, backtest) = run(
            &t,
            &Run {
                customers: &all,
                strategy: "seasonal",
                top_k: 4,
                fallback_bestsellers: true,
                backtest_days: 60,
            },
        )?;
        println!(
            "seed {seed}: {customers} customers, {products} products, {days} days; cut-off {}, \
             {} customers scored (k = {})",
            backtest["cutoff"].as_str().unwrap_or("?"),
            backtest["customers"],
            backtest["k"],
        );
        println!(
            "  {:<16} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "method", "customers", "hit rate", "precision", "recall", "ndcg"
        );
        for m in backtest["methods"].as_array().into_iter().flatten() {
            let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "  {:<16} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                m["method"].as_str().unwrap_or("?"),
                m["customers"],
                f("hit_rate"),
                f("precision"),
                f("recall"),
                f("ndcg")
            );
        }
        if let Some(note) = backtest.get("note").and_then(|n| n.as_str()) {
            println!("  note: {note}");
        }
        let best = best_customers(&t);
        print!("  best customers ({}): distinct lists", best.len());
        for strategy in ["cross_sell", "upsell", "seasonal", "bestsellers"] {
            let (table, _) = run(
                &t,
                &Run {
                    customers: &best,
                    strategy,
                    top_k: 4,
                    fallback_bestsellers: true,
                    backtest_days: 0,
                },
            )?;
            print!(" {strategy} {}", distinct_lists(&table));
        }
        println!("\n  ({:.1} s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}
