//! Shopify end to end: the shipped workflow reading a mock shop (`shopify.orders`,
//! `shopify.catalog`) and pushing segment tags and profiles back (`deploy`'s `shopify:`), over
//! two days; and SIGKILL during a sync and during the push, then `flow resume`.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use flow_retail::connectors::shopify::mock::{self, MockShop, RemoteCustomer, State};
use serde_json::{Value as Json, json};

use crate::shipped::{WF, out_dir, replace_once, shipped_yaml, workspace};
use crate::support::{Workspace, wait_until};

const TOKEN: &str = "shpat_test_token_0000";
const PREFIX: &str = "flow-segment:";

/// (product, quantity, unit price, line amount).
type Line = (u64, i64, String, String);

/// Customers `C00001`..`C00600` of the sample data: orders, products and customers of a shop.
fn sample_shop() -> State {
    let mut s = State::default();
    s.time_zone = "Europe/London".into();
    // The bulk operation starts after the last sale of the sample.
    s.now = "2026-11-01T06:00:00Z".into();
    let text = crate::shipped::read_repo("workflows/data/transactions.csv");
    let mut orders: BTreeMap<u64, (u64, String, Vec<Line>)> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let customer: u64 = f[1].trim_start_matches('C').parse().unwrap();
        if customer > 600 {
            continue;
        }
        let id: u64 = f[0].trim_start_matches('O').parse().unwrap();
        let at = format!("{}Z", f[2].replace(' ', "T"));
        let product: u64 = f[3].trim_start_matches('P').parse().unwrap();
        let e = orders
            .entry(id)
            .or_insert_with(|| (customer, at, Vec::new()));
        e.2.push((product, f[5].parse().unwrap(), f[6].into(), f[7].into()));
    }
    for (id, (customer, at, lines)) in orders {
        s.orders.insert(
            format!("gid://shopify/Order/{id}"),
            shop_order(id, customer, &at, &at, &lines),
        );
    }
    for c in 1..=600u64 {
        s.customers.insert(
            format!("gid://shopify/Customer/{c}"),
            RemoteCustomer::default(),
        );
    }
    let catalog = crate::shipped::read_repo("workflows/data/catalog.csv");
    for line in catalog.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let id: u64 = f[0].trim_start_matches('P').parse().unwrap();
        s.products.insert(
            format!("gid://shopify/Product/{id}"),
            json!({
                "id": format!("gid://shopify/Product/{id}"), "title": f[1], "productType": f[2],
                "updatedAt": "2024-01-01T00:00:00Z", "collections": [],
                "variants": [{ "id": format!("gid://shopify/ProductVariant/{id}"), "sku": f[0],
                    "price": f[4], "inventoryQuantity": f[5].parse::<i64>().unwrap() }],
            }),
        );
    }
    s
}

/// An order with the sample's lines: (product, quantity, unit price, line amount).
fn shop_order(id: u64, customer: u64, at: &str, updated: &str, lines: &[Line]) -> Json {
    let plain: Vec<(u64, i64, &str)> = lines
        .iter()
        .map(|(p, q, u, _)| (*p, *q, u.as_str()))
        .collect();
    let mut o = mock::order(id, Some(customer), at, updated, &plain);
    for (i, (_, _, _, amount)) in lines.iter().enumerate() {
        o["lineItems"][i]["discountedTotalSet"]["shopMoney"]["amount"] = json!(amount);
    }
    o
}

/// The shipped workflow reading `base` and pushing to it.
fn shop_yaml(base: &str) -> String {
    let yaml = replace_once(
        &shipped_yaml(),
        "    type: pos.extract\n    needs: daily\n    with:\n      path: data/transactions.csv\n      format: csv\n      catalog: data/catalog.csv\n      customers: data/customers.csv\n",
        &format!(
            "    type: shopify.orders\n    needs: daily\n    with:\n      base_url: {base}\n      page_size: 100\n      poll_interval: 20ms\n"
        ),
    );
    let yaml = replace_once(
        &yaml,
        "    type: pos.catalog\n    needs: daily\n    with: { path: data/catalog.csv }\n",
        &format!(
            "    type: shopify.catalog\n    needs: daily\n    with: {{ base_url: \"{base}\", poll_interval: 20ms }}\n"
        ),
    );
    replace_once(
        &yaml,
        "      pos_token_env: FLOW_POS_TOKEN\n",
        &format!("      pos_token_env: FLOW_POS_TOKEN\n      shopify: {{ base_url: \"{base}\", batch_size: 25, retries: 2 }}\n"),
    )
    .replace("      on_bad_rows: skip          # bad rows are counted and reported with their line numbers\n", "")
}

/// customer id → segment, from `segments.csv`.
fn segments(ws: &Workspace) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(out_dir(ws).join("segments.csv")).expect("segments.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (ci, si) = (
        header.iter().position(|h| *h == "customer_id").unwrap(),
        header.iter().position(|h| *h == "segment").unwrap(),
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[ci].to_string(), f[si].to_string())
        })
        .collect()
}

/// Every customer of `segments.csv` carries exactly its segment's tag and profile.
fn assert_remote_matches(shop: &MockShop, segs: &BTreeMap<String, String>) {
    assert!(segs.len() > 300, "{} customers", segs.len());
    let s = shop.state();
    for (id, segment) in segs {
        let c = &s.customers[&format!("gid://shopify/Customer/{id}")];
        let tags: Vec<&String> = c.tags.iter().filter(|t| t.starts_with(PREFIX)).collect();
        assert_eq!(tags, vec![&format!("{PREFIX}{segment}")], "customer {id}");
        let profile = &c.metafields[&("flow".to_string(), "profile".to_string())];
        let v: Json = serde_json::from_str(&profile.1).unwrap();
        assert_eq!(v["segment"], json!(segment), "customer {id}");
        assert_eq!(profile.0, "json");
    }
    assert!(s.metafields_per_call.iter().all(|n| *n <= 25));
}

fn run_flow(ws: &Workspace, args: &[&str]) {
    ws.flow()
        .args(args.iter().copied())
        .env("SHOPIFY_ACCESS_TOKEN", TOKEN)
        .timeout(Duration::from_secs(120))
        .run();
}

#[test]
fn two_days_full_load_then_changes_segments_move_and_tags_follow() {
    let shop = MockShop::start(sample_shop());
    let ws = workspace(&shop_yaml(&shop.base_url()));
    run_flow(&ws, &["run", WF]);
    let day1 = segments(&ws);
    assert_remote_matches(&shop, &day1);
    let c1 = shop.counts();
    // Orders and products: one bulk operation each (the second to start waits for the first:
    // one runs at a time), no pages.
    assert_eq!((c1.downloads, c1.order_pages, c1.product_pages), (2, 0, 0));
    assert!((2..=3).contains(&c1.bulk_runs), "{c1:?}");
    assert_eq!(c1.unauthorized, 0);
    let deploy = &ws.node_records("last")["deploy"];
    let text = deploy.to_string();
    assert!(
        !text.contains(TOKEN),
        "the token leaked into the run record"
    );

    // Day 2: a hundred customers buy again, ten orders are cancelled.
    {
        let mut s = shop.state();
        for (n, c) in (1..=600u64).step_by(6).enumerate() {
            let id = 900_000 + n as u64;
            let o = shop_order(
                id,
                c,
                "2026-11-01T10:00:00Z",
                "2026-11-01T10:00:00Z",
                &[(7, 3, "50.00".into(), "150.00".into())],
            );
            s.orders.insert(format!("gid://shopify/Order/{id}"), o);
        }
        let ids: Vec<String> = s.orders.keys().take(10).cloned().collect();
        for id in ids {
            let o = s.orders.get_mut(&id).unwrap();
            o["cancelledAt"] = json!("2026-11-01T11:00:00Z");
            o["updatedAt"] = json!("2026-11-01T11:00:00Z");
        }
    }
    run_flow(&ws, &["run", WF]);
    let c2 = shop.counts();
    // Only the changes: no bulk operation, two pages of 100 orders (110 changed).
    assert_eq!((c2.bulk_runs, c2.downloads), (c1.bulk_runs, 2));
    assert_eq!(c2.order_pages, 2);
    assert_eq!(c2.product_pages, 1);
    let day2 = segments(&ws);
    let moved = day1
        .iter()
        .filter(|(id, s)| day2.get(*id).is_some_and(|t| t != *s))
        .count();
    assert!(moved > 20, "only {moved} customers moved");
    assert_remote_matches(&shop, &day2);
    let orders = &ws.node_records("last")["transactions"];
    assert_eq!(orders["meta"]["sync"]["full"], json!(false), "{orders}");
    assert_eq!(
        ws.node_records("last")["deploy"]["meta"]["shopify"]["not_shopify_ids"],
        0
    );

    // The token is nowhere in the store, the histories, the outputs or the run records.
    for (path, bytes) in ws.snapshot(".") {
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the token is in {}",
            path.display()
        );
    }
    let shown = ws.flow().args(["runs", "show", "last"]).run();
    assert!(!shown.stdout.contains(TOKEN) && !shown.stderr.contains(TOKEN));
}

fn spawn(ws: &Workspace, args: &[&str]) -> Child {
    ws.command(args.iter().copied())
        .env("SHOPIFY_ACCESS_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn flow")
}

/// Waits for `cond` while `child` runs; panics when it ends first (it failed early: run
/// `flow run` by hand to see why).
fn wait_while_running(child: &mut Child, what: &str, mut cond: impl FnMut() -> bool) {
    let ok = wait_until(Duration::from_secs(120), || {
        cond() || child.try_wait().expect("try_wait").is_some()
    });
    assert!(
        ok && cond(),
        "{what}: flow ended first or timed out ({:?})",
        child.try_wait()
    );
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL flow");
    child.wait().expect("wait for flow");
}

/// A pseudo-random number below `n`, printed so a failure can be told apart.
fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let r = nanos.wrapping_mul(6364136223846793005).rotate_left(17) % n.max(1);
    eprintln!("random instant: {r} of {n}");
    r
}

#[test]
fn a_kill_during_the_push_then_resume_leaves_every_tag_right() {
    let mut state = sample_shop();
    // Tags of an earlier segmentation, all wrong now.
    for c in state.customers.values_mut() {
        c.tags.insert(format!("{PREFIX}old"));
        c.tags.insert("vip-club".into());
    }
    state.delay = Duration::from_millis(3);
    let buyers: std::collections::BTreeSet<&str> = state
        .orders
        .values()
        .filter_map(|o| o["customer"]["id"].as_str())
        .collect();
    let batches = buyers.len().div_ceil(25) as u64;
    let shop = MockShop::start(state);
    let ws = workspace(&shop_yaml(&shop.base_url()));
    let mut child = spawn(&ws, &["run", WF]);
    // The push sends a read and (here) a write per batch of 25: kill after a random number.
    let k = 1 + random_below(batches - 1);
    wait_while_running(&mut child, "the push", || shop.counts().state_reads >= k);
    kill(child);
    let reads_before = shop.counts().state_reads;
    run_flow(&ws, &["resume", "last"]);
    assert_eq!(ws.statuses("last")["deploy"], "succeeded");
    let segs = segments(&ws);
    assert_remote_matches(&shop, &segs);
    let s = shop.state();
    assert!(s.customers.values().all(|c| c.tags.contains("vip-club")));
    // The batches acknowledged before the kill were not sent again: at most the one in flight
    // and the one whose acknowledgement the kill may have raced.
    assert_eq!(batches, segs.len().div_ceil(25) as u64);
    let reads_after = s.counts.state_reads - reads_before;
    assert!(
        reads_after + reads_before <= batches + 2,
        "{reads_before} reads before the kill, {reads_after} after, {batches} batches"
    );
}

const SYNC_WF: &str = "name: shop\nnodes:\n  - id: start\n    kind: trigger\n    type: manual\n  - id: transactions\n    kind: action\n    type: shopify.orders\n    needs: start\n    with:\n      base_url: BASE\n      page_size: 10\n      poll_interval: 30ms\n  - id: save\n    kind: output\n    type: file.write\n    needs: transactions\n    with: { path: out/transactions.csv }\n";

/// `flow resume last`, unless the run ended before the kill landed.
fn resume_unless_done(ws: &Workspace) {
    if ws.statuses("last").get("save").map(String::as_str) != Some("succeeded") {
        run_flow(ws, &["resume", "last"]);
    } else {
        eprintln!("the run ended before the kill");
    }
}

/// (order id, rows, amount in cents) of `out/transactions.csv`.
fn saved(ws: &Workspace) -> BTreeMap<String, (u64, i64)> {
    let text = ws.read("out/transactions.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (oi, ai) = (
        header.iter().position(|h| *h == "order_id").unwrap(),
        header.iter().position(|h| *h == "amount").unwrap(),
    );
    let mut out: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let e = out.entry(f[oi].to_string()).or_default();
        e.0 += 1;
        e.1 += (f[ai].parse::<f64>().unwrap() * 100.0).round() as i64;
    }
    out
}

/// What the shop holds: order id → (lines, cents), orders with a customer and not cancelled.
fn expected(shop: &MockShop) -> BTreeMap<String, (u64, i64)> {
    let s = shop.state();
    let mut out = BTreeMap::new();
    for o in s.orders.values() {
        if o["cancelledAt"].is_string() || o["customer"].is_null() {
            continue;
        }
        let id = o["id"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let items = o["lineItems"].as_array().unwrap();
        let cents: i64 = items
            .iter()
            .map(|l| {
                let a: f64 = l["discountedTotalSet"]["shopMoney"]["amount"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                (a * 100.0).round() as i64
            })
            .sum();
        out.insert(id, (items.len() as u64, cents));
    }
    out
}

#[test]
fn a_kill_during_a_sync_then_resume_loses_and_doubles_no_order() {
    let mut state = State::default();
    for i in 1..=300u64 {
        let at = format!("2026-01-{:02}T{:02}:00:00Z", i % 28 + 1, i % 24);
        let o = mock::order(
            i,
            Some(i % 40 + 1),
            &at,
            &at,
            &[(i % 7, 1 + (i % 3) as i64, "2.50"), (3, 1, "0.99")],
        );
        state.orders.insert(format!("gid://shopify/Order/{i}"), o);
    }
    state.bulk_polls = 6;
    state.delay = Duration::from_millis(10);
    let shop = MockShop::start(state);
    let ws = Workspace::with_workflow(&SYNC_WF.replace("BASE", &shop.base_url()));

    // Day 1: killed at a random instant of the bulk load (polls take ~150 ms).
    let mut child = spawn(&ws, &["run", "flow.yaml"]);
    wait_while_running(&mut child, "the sync", || shop.counts().total >= 1);
    let started = Instant::now();
    // The bulk load takes ~300 ms (6 polls 30 ms apart, 10 ms per request).
    std::thread::sleep(Duration::from_millis(random_below(280)));
    kill(child);
    eprintln!("killed after {:?}", started.elapsed());
    resume_unless_done(&ws);
    assert_eq!(ws.statuses("last")["save"], "succeeded");
    assert_eq!(saved(&ws), expected(&shop));

    // Day 2: 120 orders change (12 pages of 10), 5 are cancelled; killed among the pages.
    {
        let mut s = shop.state();
        for i in (1..=300u64).step_by(3).take(120) {
            let at = format!("2026-02-01T{:02}:{:02}:00Z", i % 24, i % 60);
            let o = mock::order(i, Some(i % 40 + 1), &at, &at, &[(i % 7, 5, "1.25")]);
            s.orders.insert(format!("gid://shopify/Order/{i}"), o);
        }
        for i in [2u64, 5, 8, 11, 14] {
            let o = s
                .orders
                .get_mut(&format!("gid://shopify/Order/{i}"))
                .unwrap();
            o["cancelledAt"] = json!("2026-02-02T00:00:00Z");
            o["updatedAt"] = json!("2026-02-02T00:00:00Z");
        }
        s.delay = Duration::from_millis(25);
    }
    let pages_before = shop.counts().order_pages;
    let bulk_before = shop.counts().bulk_runs;
    let mut child = spawn(&ws, &["run", "flow.yaml"]);
    let k = 1 + random_below(11);
    wait_while_running(&mut child, "the incremental sync", || {
        shop.counts().order_pages >= pages_before + k
    });
    kill(child);
    shop.state().delay = Duration::ZERO;
    resume_unless_done(&ws);
    assert_eq!(ws.statuses("last")["save"], "succeeded");
    assert_eq!(saved(&ws), expected(&shop));
    assert_eq!(shop.counts().bulk_runs, bulk_before, "day 2 is incremental");
}
