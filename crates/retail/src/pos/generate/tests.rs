use std::collections::{HashMap, HashSet};
use std::io::Write;

use chrono::{Datelike, NaiveDate};

use super::super::catalog::{CatalogOptions, parse_catalog};
use super::super::csv_mapped::{CsvOptions, parse_with};
use super::super::customers::{CustomersOptions, parse_customers};
use super::super::model::LineItem;
use super::calibration::expected_lines;
use super::catalog::build_catalog;
use super::*;
use flow_analytics::rng::Rng;

fn small() -> GenerateOptions {
    GenerateOptions {
        customers: 400,
        products: 120,
        seed: 7,
        ..GenerateOptions::default()
    }
}

fn items(text: &str) -> (Vec<LineItem>, super::super::model::ParseReport) {
    let mut items = Vec::new();
    let out = parse_with(text.as_bytes(), &CsvOptions::default(), &mut |i, _| {
        items.push(i.clone())
    })
    .unwrap();
    (items, out.report)
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = generate(&small()).unwrap();
    let b = generate(&small()).unwrap();
    assert_eq!(a, b);
    let c = generate(&GenerateOptions { seed: 8, ..small() }).unwrap();
    assert_ne!(a.transactions, c.transactions);
    assert_ne!(a.catalog, c.catalog);
    assert_ne!(a.customers, c.customers);
}

#[test]
fn streaming_matches_in_memory_and_small_writes() {
    struct Chunky(Vec<u8>);
    impl Write for Chunky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut sink = Chunky(Vec::new());
    let stats = write_transactions(&small(), &mut sink).unwrap();
    let whole = generate(&small()).unwrap();
    assert_eq!(String::from_utf8(sink.0).unwrap(), whole.transactions);
    assert_eq!(stats, whole.stats);
}

#[test]
fn output_parses_with_exactly_the_malformed_rows_bad() {
    let opts = GenerateOptions {
        malformed_rows: 12,
        ..small()
    };
    let data = generate(&opts).unwrap();
    let (items, report) = items(&data.transactions);
    assert_eq!(report.bad_row_count, 12, "{:?}", report.bad_rows);
    assert_eq!(report.rows_without_customer, 0);
    assert_eq!(items.len() as u64, data.stats.lines);
    assert_eq!(data.stats.malformed, 12);
    // All six kinds of damage show up.
    let reasons: Vec<String> = report.bad_rows.iter().map(|b| b.reason.clone()).collect();
    for needle in [
        "12.3x",
        "-02-30",
        "fields but the header",
        "`two`",
        "order_id`: empty",
        "N/A",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "{needle}: {reasons:?}"
        );
    }
    // Catalog and customers parse cleanly and cover every id.
    let catalog = parse_catalog(data.catalog.as_bytes(), &CatalogOptions::default()).unwrap();
    assert_eq!(catalog.report.bad_row_count, 0);
    assert_eq!(catalog.products.len(), 120);
    let customers =
        parse_customers(data.customers.as_bytes(), &CustomersOptions::default()).unwrap();
    assert_eq!(customers.report.bad_row_count, 0);
    assert_eq!(customers.customers.len(), 400);
    let pids: HashSet<&str> = catalog
        .products
        .iter()
        .map(|p| p.product_id.as_str())
        .collect();
    let cids: HashSet<&str> = customers
        .customers
        .iter()
        .map(|c| c.customer_id.as_str())
        .collect();
    assert!(items.iter().all(|i| pids.contains(i.product_id.as_str())));
    assert!(items.iter().all(|i| cids.contains(i.customer_id.as_str())));
    // Every customer bought at least once; items are in time order and inside the period.
    let buyers: HashSet<&str> = items.iter().map(|i| i.customer_id.as_str()).collect();
    assert_eq!(buyers.len(), 400);
    assert!(items.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let first = opts.start_date.and_hms_opt(0, 0, 0).unwrap();
    let last = first + chrono::Duration::days(i64::from(opts.days));
    assert!(
        items
            .iter()
            .all(|i| i.timestamp >= first && i.timestamp < last)
    );
    // Categories in the transactions match the catalog.
    let cat_of: HashMap<&str, &str> = catalog
        .products
        .iter()
        .map(|p| (p.product_id.as_str(), p.category.as_deref().unwrap_or("")))
        .collect();
    assert!(
        items
            .iter()
            .all(|i| i.category.as_deref() == cat_of.get(i.product_id.as_str()).copied())
    );
}

/// Statistics of a mid-sized data set shared by the realism tests.
fn realistic() -> (Dataset, Vec<LineItem>) {
    let opts = GenerateOptions {
        customers: 3000,
        products: 400,
        seed: 11,
        malformed_rows: 0,
        ..GenerateOptions::default()
    };
    let data = generate(&opts).unwrap();
    let (items, report) = items(&data.transactions);
    assert_eq!(report.bad_row_count, 0);
    (data, items)
}

#[test]
fn realism_orders_baskets_returns_and_promotions() {
    let (data, items) = realistic();
    let mut orders: HashMap<&str, Vec<&LineItem>> = HashMap::new();
    for i in items.iter().filter(|i| i.quantity > 0.0) {
        orders.entry(i.order_id.as_str()).or_default().push(i);
    }
    assert_eq!(orders.len() as u64, data.stats.orders);
    assert!(orders.values().all(|o| (1..=6).contains(&o.len())));
    let mean = items.iter().filter(|i| i.quantity > 0.0).count() as f64 / orders.len() as f64;
    assert!((1.8..=3.2).contains(&mean), "mean basket {mean}");
    assert!(orders.values().any(|o| o.len() == 6));
    // Lines per customer around 10 by default.
    let per_customer = data.stats.lines as f64 / 3000.0;
    assert!((6.0..=16.0).contains(&per_customer), "{per_customer}");
    // Returns are negative and reuse a sold order id.
    let returns: Vec<&LineItem> = items.iter().filter(|i| i.amount < 0.0).collect();
    assert_eq!(returns.len() as u64, data.stats.returns);
    assert!(!returns.is_empty());
    assert!(
        returns
            .iter()
            .all(|r| r.quantity < 0.0 && orders.contains_key(r.order_id.as_str()))
    );
    // Promotions: some amounts below quantity x unit price, none above.
    let promo = items
        .iter()
        .filter(|i| i.amount > 0.0 && i.amount < i.quantity * i.unit_price.unwrap_or(0.0) - 1e-9)
        .count();
    let share = promo as f64 / items.len() as f64;
    assert!((0.04..=0.12).contains(&share), "promo share {share}");
    assert!(
        items
            .iter()
            .all(|i| i.amount <= i.quantity.max(0.0) * i.unit_price.unwrap_or(0.0) + 1e-9)
    );
}

#[test]
fn realism_heterogeneous_customers_who_lapse() {
    let (_, items) = realistic();
    let mut by_customer: HashMap<
        &str,
        (HashSet<&str>, chrono::NaiveDateTime, chrono::NaiveDateTime),
    > = HashMap::new();
    for i in items.iter().filter(|i| i.quantity > 0.0) {
        let e = by_customer.entry(i.customer_id.as_str()).or_insert((
            HashSet::new(),
            i.timestamp,
            i.timestamp,
        ));
        e.0.insert(i.order_id.as_str());
        e.1 = e.1.min(i.timestamp);
        e.2 = e.2.max(i.timestamp);
    }
    let n = by_customer.len() as f64;
    let one_timers = by_customer.values().filter(|c| c.0.len() == 1).count() as f64 / n;
    let heavy = by_customer.values().filter(|c| c.0.len() >= 10).count() as f64 / n;
    assert!(
        one_timers > 0.2 && one_timers < 0.6,
        "one-time buyers {one_timers}"
    );
    assert!(heavy > 0.03, "heavy buyers {heavy}");
    // Lapsed: acquired in the first year, bought again, but nothing in the last 180 days.
    let end = NaiveDate::from_ymd_opt(2025, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let early: Vec<_> = by_customer
        .values()
        .filter(|c| c.0.len() >= 2 && (end - c.1).num_days() > 365)
        .collect();
    let lapsed = early
        .iter()
        .filter(|c| (end - c.2).num_days() > 180)
        .count() as f64
        / early.len() as f64;
    assert!(lapsed > 0.15 && lapsed < 0.9, "lapsed share {lapsed}");
}

#[test]
fn realism_popularity_seasonality_and_co_purchase() {
    let (data, items) = realistic();
    let sales: Vec<&LineItem> = items.iter().filter(|i| i.quantity > 0.0).collect();
    // Zipf-like popularity: the top 10% of products take well over 10% of the lines.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for i in &sales {
        *counts.entry(i.product_id.as_str()).or_default() += 1;
    }
    let mut c: Vec<usize> = counts.values().copied().collect();
    c.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = c.iter().take(40).sum();
    let share = top as f64 / sales.len() as f64;
    assert!(share > 0.35, "top-10% share {share}");
    // December is busier than February (per day).
    let per_day = |m: u32| {
        let n = sales.iter().filter(|i| i.timestamp.month() == m).count() as f64;
        n / if m == 2 { 28.5 } else { 31.0 }
    };
    assert!(
        per_day(12) > 1.4 * per_day(2),
        "dec {} feb {}",
        per_day(12),
        per_day(2)
    );
    // Outdoor sells in summer; toys in December.
    let share_in = |cat: &str, months: &[u32]| {
        let in_months: Vec<&&LineItem> = sales
            .iter()
            .filter(|i| months.contains(&i.timestamp.month()))
            .collect();
        in_months
            .iter()
            .filter(|i| i.category.as_deref() == Some(cat))
            .count() as f64
            / in_months.len() as f64
    };
    assert!(share_in("Outdoor", &[6, 7, 8]) > 2.0 * share_in("Outdoor", &[12, 1, 2]));
    assert!(share_in("Toys & Games", &[12]) > 2.0 * share_in("Toys & Games", &[3, 4, 5]));
    // Complements are bought together: lift of (product, complement) pairs well above 1.
    let model = build_catalog(&GenerateOptions {
        customers: 3000,
        products: 400,
        seed: 11,
        ..GenerateOptions::default()
    });
    let mut order_sets: HashMap<&str, HashSet<&str>> = HashMap::new();
    for i in &sales {
        order_sets
            .entry(i.order_id.as_str())
            .or_default()
            .insert(i.product_id.as_str());
    }
    let n_orders = order_sets.len() as f64;
    let mut top_products: Vec<(&str, usize)> = counts.iter().map(|(k, v)| (*k, *v)).collect();
    top_products.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut lifts = Vec::new();
    for (pid, n_a) in top_products.iter().take(20) {
        let idx: usize = pid[1..].parse::<usize>().unwrap() - 1;
        for comp in model.products[idx].complements {
            let cid = format!("P{:04}", comp + 1);
            let n_b = counts.get(cid.as_str()).copied().unwrap_or(0);
            let both = order_sets
                .values()
                .filter(|s| s.contains(pid) && s.contains(cid.as_str()))
                .count();
            if n_b > 0 && both > 0 {
                lifts.push(both as f64 * n_orders / (*n_a as f64 * n_b as f64));
            }
        }
    }
    lifts.sort_by(f64::total_cmp);
    let median = lifts[lifts.len() / 2];
    assert!(
        median > 3.0,
        "median complement lift {median} over {} pairs",
        lifts.len()
    );
    assert!(data.stats.orders > 0);
}

#[test]
fn catalog_and_customer_files_are_realistic() {
    let opts = GenerateOptions {
        customers: 2000,
        products: 600,
        ..GenerateOptions::default()
    };
    let data = generate(&GenerateOptions {
        target_lines: Some(1000),
        ..opts.clone()
    })
    .unwrap();
    let catalog = parse_catalog(data.catalog.as_bytes(), &CatalogOptions::default()).unwrap();
    let out_of_stock = catalog.products.iter().filter(|p| !p.in_stock()).count() as f64 / 600.0;
    assert!((0.03..=0.12).contains(&out_of_stock), "{out_of_stock}");
    let cats: HashSet<&str> = catalog
        .products
        .iter()
        .filter_map(|p| p.category.as_deref())
        .collect();
    assert_eq!(cats.len(), 12);
    assert!(
        catalog
            .products
            .iter()
            .all(|p| p.price.is_some_and(|x| x > 0.5))
    );
    let customers =
        parse_customers(data.customers.as_bytes(), &CustomersOptions::default()).unwrap();
    let no_email = customers
        .customers
        .iter()
        .filter(|c| c.email.is_none())
        .count() as f64
        / 2000.0;
    let accepts = customers
        .customers
        .iter()
        .filter(|c| c.accepts_marketing == Some(true))
        .count() as f64
        / 2000.0;
    assert!((0.07..=0.17).contains(&no_email), "{no_email}");
    assert!((0.5..=0.66).contains(&accepts), "{accepts}");
    // Few products: categories are still all usable.
    let tiny = generate(&GenerateOptions {
        customers: 20,
        products: 3,
        ..GenerateOptions::default()
    })
    .unwrap();
    let (items, report) = items(&tiny.transactions);
    assert_eq!(report.bad_row_count, 6);
    assert!(!items.is_empty());
}

#[test]
fn target_lines_is_approximately_met() {
    for target in [5_000u64, 40_000] {
        let opts = GenerateOptions {
            customers: 1000,
            products: 200,
            target_lines: Some(target),
            malformed_rows: 0,
            ..GenerateOptions::default()
        };
        let mut sink = io::sink();
        let stats = write_transactions(&opts, &mut sink).unwrap();
        let ratio = stats.lines as f64 / target as f64;
        assert!(
            (0.9..=1.1).contains(&ratio),
            "target {target}: {} lines",
            stats.lines
        );
    }
    // Below one order per customer the minimum is what you get.
    let opts = GenerateOptions {
        customers: 1000,
        target_lines: Some(10),
        ..GenerateOptions::default()
    };
    let stats = write_transactions(&opts, io::sink()).unwrap();
    assert!(
        stats.orders >= 1000 && stats.orders < 1100,
        "{}",
        stats.orders
    );
}

#[test]
fn invalid_options_are_errors_not_panics() {
    for opts in [
        GenerateOptions {
            customers: 0,
            ..GenerateOptions::default()
        },
        GenerateOptions {
            products: 0,
            ..GenerateOptions::default()
        },
        GenerateOptions {
            days: 0,
            ..GenerateOptions::default()
        },
        GenerateOptions {
            start_date: NaiveDate::MAX,
            ..GenerateOptions::default()
        },
        GenerateOptions {
            start_date: NaiveDate::from_ymd_opt(9999, 12, 1).unwrap(),
            ..GenerateOptions::default()
        },
    ] {
        let err = generate(&opts).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }
    // One day, one customer, one product works.
    let one = GenerateOptions {
        customers: 1,
        products: 1,
        days: 1,
        malformed_rows: 2,
        ..GenerateOptions::default()
    };
    let data = generate(&one).unwrap();
    let (items, report) = items(&data.transactions);
    assert_eq!(report.bad_row_count, 2);
    assert!(!items.is_empty());
}

#[test]
fn rng_distributions_have_the_right_moments() {
    let mut rng = Rng::stream(1, 2, 3);
    let n = 200_000;
    let mean = |f: &mut dyn FnMut() -> f64| (0..n).map(|_| f()).sum::<f64>() / n as f64;
    let g = mean(&mut || rng.gamma(0.9, 2.0));
    assert!((g - 1.8).abs() < 0.03, "gamma mean {g}");
    let g = mean(&mut || rng.gamma(3.0, 0.5));
    assert!((g - 1.5).abs() < 0.02, "gamma mean {g}");
    let b = mean(&mut || rng.beta(1.2, 4.0));
    assert!((b - 1.2 / 5.2).abs() < 0.005, "beta mean {b}");
    let e = mean(&mut || rng.exp(4.0));
    assert!((e - 0.25).abs() < 0.005, "exp mean {e}");
    let p = mean(&mut || f64::from(rng.poisson(1.5)));
    assert!((p - 1.5).abs() < 0.02, "poisson mean {p}");
    let z = mean(&mut || rng.normal());
    assert!(z.abs() < 0.01, "normal mean {z}");
    assert!((0..1000).all(|_| rng.below(7) < 7));
}

#[test]
fn expected_lines_matches_simulation() {
    let mut rng = Rng::stream(5, 5, 5);
    for mu in [1.0, 1.7, 2.6, 4.0] {
        let n = 100_000;
        let sim = (0..n)
            .map(|_| (1 + rng.poisson(mu - 1.0)).min(6) as f64)
            .sum::<f64>()
            / n as f64;
        assert!(
            (sim - expected_lines(mu)).abs() < 0.02,
            "mu {mu}: {sim} vs {}",
            expected_lines(mu)
        );
    }
}
