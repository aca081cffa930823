//! The retail nodes at benchmark scale (ignored by default: a measurement).

use super::*;

/// The retail nodes at benchmark scale: 100k customers, 5k products, 1M transactions.
/// `cargo test --release --lib segmentation::deploy::tests::scale -- --ignored --nocapture`
#[test]
#[ignore = "a measurement; run in release"]
fn scale_100k_customers_5k_products() {
    use crate::segmentation::campaign::{CampaignConfig, campaign};
    use crate::segmentation::recommend::{RecommendConfig, RecommendInputs, Strategy, recommend};
    let (customers, products, lines, categories) =
        (100_000usize, 5_000usize, 1_000_000usize, 50usize);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let pid = |p: usize| format!("P{p:05}");
    let cat = |c: usize| format!("cat{c:02}");
    let catalog = RecordBatch::try_from_iter(vec![
        (
            "product_id",
            Arc::new(StringArray::from_iter_values((0..products).map(pid))) as ArrayRef,
        ),
        (
            "name",
            Arc::new(StringArray::from_iter_values(
                (0..products).map(|p| format!("Product {p}")),
            )),
        ),
        (
            "category",
            Arc::new(StringArray::from_iter_values(
                (0..products).map(|p| cat(p % categories)),
            )),
        ),
        (
            "price",
            Arc::new(Float64Array::from_iter_values(
                (0..products).map(|p| 1.0 + (p * 37 % 200) as f64),
            )),
        ),
        (
            "stock",
            Arc::new(Int64Array::from_iter_values(
                (0..products).map(|p| (p % 10) as i64),
            )),
        ),
    ])
    .unwrap();
    let (mut c, mut o, mut d, mut p, mut q, mut a) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..lines {
        let cust = next(customers);
        let prod = (next(products) * next(products)) / products; // skewed popularity
        c.push(format!("C{cust:06}"));
        o.push(format!("O{:07}", i / 3));
        d.push(19_000 + next(365) as i32);
        p.push(pid(prod));
        q.push(1.0 + next(3) as f64);
        a.push(10.0);
    }
    let transactions = RecordBatch::try_from_iter(vec![
        ("customer_id", Arc::new(StringArray::from(c)) as ArrayRef),
        ("order_id", Arc::new(StringArray::from(o))),
        ("date", Arc::new(arrow_array::Date32Array::from(d))),
        ("product_id", Arc::new(StringArray::from(p))),
        ("quantity", Arc::new(Float64Array::from(q))),
        ("amount", Arc::new(Float64Array::from(a))),
    ])
    .unwrap();
    let (mut pa, mut pb, mut lift) = (vec![], vec![], vec![]);
    for x in 0..products {
        for _ in 0..20 {
            pa.push(pid(x));
            pb.push(pid(next(products)));
            lift.push(0.5 + next(100) as f64 / 10.0);
        }
    }
    let affinity = RecordBatch::try_from_iter(vec![
        ("product_id", Arc::new(StringArray::from(pa)) as ArrayRef),
        ("other_product_id", Arc::new(StringArray::from(pb))),
        ("lift", Arc::new(Float64Array::from(lift))),
    ])
    .unwrap();
    let customer_table = RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(StringArray::from_iter_values(
                (0..customers).map(|i| format!("C{i:06}")),
            )) as ArrayRef,
        ),
        (
            "segment",
            Arc::new(StringArray::from_iter_values((0..customers).map(|_| "vip"))),
        ),
        (
            "favourite_category",
            Arc::new(StringArray::from_iter_values(
                (0..customers).map(|i| cat(i % categories)),
            )),
        ),
        (
            "top_category",
            Arc::new(StringArray::from_iter_values(
                (0..customers).map(|i| cat(i * 7 % categories)),
            )),
        ),
        (
            "email",
            Arc::new(StringArray::from_iter_values(
                (0..customers).map(|i| format!("c{i}@example.com")),
            )),
        ),
        (
            "customer_name",
            Arc::new(StringArray::from_iter_values(
                (0..customers).map(|i| format!("Customer {i}")),
            )),
        ),
        (
            "accepts_marketing",
            Arc::new(BooleanArray::from_iter(
                (0..customers).map(|i| Some(i % 2 == 0)),
            )),
        ),
        (
            "clv",
            Arc::new(Float64Array::from_iter_values(
                (0..customers).map(|i| (i % 1000) as f64),
            )),
        ),
    ])
    .unwrap();
    let rec_inputs = RecommendInputs {
        customers: vec![customer_table.clone()],
        transactions,
        catalog,
        affinity: Some(affinity),
        index_inputs: ["catalog".into(), "transactions".into()],
    };
    let mut recs = None;
    for strategy in [
        Strategy::CrossSell,
        Strategy::Upsell,
        Strategy::Seasonal,
        Strategy::Bestsellers,
        Strategy::Replenishment,
    ] {
        let start = Instant::now();
        let cache = flow_engine::run_cache::RunCache::new();
        let out = recommend(rec_inputs.clone(), &RecommendConfig::new(strategy), &cache).unwrap();
        let rows = out.rows();
        println!(
            "recommend {:<13} {:>8} rows {:>8.3} s",
            strategy.as_str(),
            rows,
            start.elapsed().as_secs_f64()
        );
        if strategy == Strategy::CrossSell {
            recs = match out.body {
                Body::Data(Data::Table(t)) => Some(t),
                _ => None,
            };
        }
    }
    let recs = recs.unwrap();
    let cfg = CampaignConfig::for_tests(
        "{{ customer.first_name }}, {{ offer.label }} on {{ products[0].name if products else 'our range' }}",
        "<p>Hi {{ customer.first_name }}</p><ul>{% for p in products %}<li>{{ p.name }} – {{ p.reason }}</li>{% endfor %}</ul>",
        Some("Call {{ customer.customer_name }}"),
    );
    let start = Instant::now();
    let out = campaign(
        &cfg,
        &[customer_table],
        std::slice::from_ref(&recs),
        minijinja::Value::from(()),
    )
    .unwrap();
    println!(
        "campaign {} rows, {} messages {:>8.3} s",
        out.rows(),
        out.meta["messages"],
        start.elapsed().as_secs_f64()
    );
    let camp = match out.body {
        Body::Data(Data::Table(t)) => t,
        _ => unreachable!(),
    };
    for messages in ["eml", "csv"] {
        let dir = tempfile::tempdir().unwrap();
        let node = configure(&format!(
            "out_dir: {}\nmessages: {messages}\n",
            dir.path().display()
        ))
        .unwrap();
        let start = Instant::now();
        let out = run(
            &node,
            Stores::new().ctx("scale"),
            inputs(vec![("c", camp.clone()), ("r", recs.clone())]),
        )
        .unwrap();
        println!(
            "deploy ({messages}) {} customers {:>8.3} s",
            out.meta["customers"],
            start.elapsed().as_secs_f64()
        );
    }
}
