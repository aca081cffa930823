//! The Square connector end to end: the shipped workflow reading its sales from a mock Square
//! server (`square.orders`) and pushing segments back (`deploy` with `square:`). Two days (a full
//! load, then only the changes; segments move and the group memberships follow), and SIGKILL
//! during the sync and during the push, then `flow resume`: no order lost or counted twice, no
//! membership left wrong, and the token nowhere in the workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::Duration;

use flow_retail::connectors::square::mock::{Mock, State};
use serde_json::{Value as Json, json};

use crate::shipped::{WF, out_dir, read_repo, replace_once, shipped_yaml, workspace};
use crate::support::{Rng, Workspace, wait_until};

const TOKEN: &str = "sq-cli-secret-7f3a9c01";
/// The customers of the sample data kept (C00001..=C00500): a run stays short.
const LAST_CUSTOMER: &str = "C00500";

/// `2024-11-01 11:26:26` as Square writes it.
fn rfc3339(date: &str) -> String {
    format!("{}.000Z", date.replacen(' ', "T", 1))
}

fn cents(text: &str) -> i64 {
    (text.parse::<f64>().expect("amount") * 100.0).round() as i64
}

/// The sample data as Square objects: (orders, customers, catalog).
fn sample() -> (Vec<Json>, Vec<Json>, Vec<Json>) {
    let text = read_repo("workflows/data/transactions.csv");
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let mut orders: Vec<Json> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    // The sample has bad rows on purpose (pos.extract skips them): they are left out here.
    for r in rdr.records().flatten() {
        let (order, customer, date, product, qty, price, amount) =
            (&r[0], &r[1], &r[2], &r[3], &r[5], &r[6], &r[7]);
        let valid = chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S").is_ok()
            && qty.parse::<f64>().is_ok_and(f64::is_finite)
            && price.parse::<f64>().is_ok_and(f64::is_finite)
            && amount.parse::<f64>().is_ok_and(f64::is_finite)
            && !order.is_empty()
            && !product.is_empty();
        if customer.is_empty() || customer > LAST_CUSTOMER || !valid {
            continue;
        }
        let line = json!({
            "name": product, "quantity": qty, "catalog_object_id": product,
            "base_price_money": {"amount": cents(price), "currency": "USD"},
            "total_money": {"amount": cents(amount), "currency": "USD"},
        });
        // An order's rows are not always adjacent: group them by id.
        match index.get(order) {
            Some(&i) => orders[i]["line_items"].as_array_mut().unwrap().push(line),
            None => {
                index.insert(order.to_string(), orders.len());
                orders.push(json!({
                "id": order, "location_id": "L1", "customer_id": customer, "state": "COMPLETED",
                "created_at": rfc3339(date), "updated_at": rfc3339(date),
                "line_items": [line],
                }));
            }
        }
    }
    let text = read_repo("workflows/data/customers.csv");
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let customers = rdr
        .records()
        .flatten()
        .filter(|r| &r[0] <= LAST_CUSTOMER)
        .map(|r| {
            json!({
                "id": &r[0], "given_name": &r[1], "email_address": &r[2],
                "preferences": {"email_unsubscribed": &r[3] != "yes"},
            })
        })
        .collect::<Vec<Json>>();
    // One customer updated a minute after the other.
    let customers = customers
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let at = chrono::NaiveDate::from_ymd_opt(2024, 9, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                + chrono::Duration::minutes(i as i64);
            c["updated_at"] = json!(format!("{}.000Z", at.format("%Y-%m-%dT%H:%M:%S")));
            c
        })
        .collect();
    let text = read_repo("workflows/data/catalog.csv");
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let mut categories: BTreeMap<String, String> = BTreeMap::new();
    let mut catalog: Vec<Json> = Vec::new();
    for r in rdr.records().flatten() {
        if r[4].parse::<f64>().is_err() {
            continue;
        }
        let n = categories.len();
        let cat = categories
            .entry(r[2].to_string())
            .or_insert_with(|| format!("K{n}"))
            .clone();
        catalog.push(json!({
            "type": "ITEM", "id": format!("I-{}", &r[0]),
            "item_data": {"name": &r[1], "categories": [{"id": cat}], "variations": [{
                "type": "ITEM_VARIATION", "id": &r[0],
                "item_variation_data": {"name": "Regular",
                    "price_money": {"amount": cents(&r[4]), "currency": "USD"}}}]}
        }));
    }
    for (name, id) in categories {
        catalog.push(json!({"type": "CATEGORY", "id": id, "category_data": {"name": name}}));
    }
    (orders, customers, catalog)
}

fn start_mock() -> Mock {
    let (orders, customers, catalog) = sample();
    Mock::start(State {
        locations: vec![json!({"id": "L1", "timezone": "UTC"})],
        orders,
        customers,
        catalog,
        page_size: 1000,
        ..State::default()
    })
}

/// The shipped workflow with its sales from Square and its segments pushed to Square.
fn yaml(url: &str) -> String {
    let text = replace_once(
        &shipped_yaml(),
        "    type: pos.extract\n    needs: daily\n    with:\n      path: data/transactions.csv\n      \
         format: csv\n      catalog: data/catalog.csv\n      customers: data/customers.csv\n      \
         on_bad_rows: skip",
        &format!(
            "    type: square.orders\n    needs: daily\n    with:\n      base_url: {url}\n      \
             token_env: FLOW_SQUARE_TOKEN\n      limit: 1000\n      backoff: 1ms"
        ),
    );
    replace_once(
        &text,
        "      pos_token_env: FLOW_POS_TOKEN\n",
        &format!(
            "      pos_token_env: FLOW_POS_TOKEN\n      square: {{ token_env: FLOW_SQUARE_TOKEN, \
             base_url: \"{url}\", backoff: 1ms }}\n"
        ),
    )
}

fn run(ws: &Workspace) {
    ws.flow()
        .args(["run", WF])
        .env("FLOW_SQUARE_TOKEN", TOKEN)
        .timeout(Duration::from_secs(120))
        .run();
}

fn spawn_run(ws: &Workspace) -> Child {
    ws.command(["run", WF])
        .env("FLOW_SQUARE_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn flow")
}

fn resume(ws: &Workspace) {
    ws.flow()
        .args(["resume", "last"])
        .env("FLOW_SQUARE_TOKEN", TOKEN)
        .timeout(Duration::from_secs(120))
        .run();
    assert_eq!(ws.statuses("last")["deploy"], "succeeded");
}

/// Requests whose "METHOD /path" is exactly `what`.
fn count(mock: &Mock, what: &str) -> usize {
    mock.state
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| *l == what)
        .count()
}

/// Customer → segment, from `segments.csv`.
fn segments(ws: &Workspace) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(out_dir(ws).join("segments.csv")).expect("segments.csv");
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (id, seg) = (at("customer_id"), at("segment"));
    rdr.records()
        .map(|r| r.unwrap())
        .map(|r| (r[id].to_string(), r[seg].to_string()))
        .collect()
}

/// Every profiled customer is in exactly one segment group, the one of its segment (one group
/// per segment), and no one else is in any.
fn assert_groups_follow(ws: &Workspace, mock: &Mock) {
    let segments = segments(ws);
    let groups = mock.groups_of();
    let mut group_of_segment: BTreeMap<&str, &str> = BTreeMap::new();
    for (customer, names) in &groups {
        let seg_groups: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("Segment: "))
            .collect();
        let Some(segment) = segments.get(customer) else {
            assert!(
                seg_groups.is_empty(),
                "{customer} has no profile but is in {seg_groups:?}"
            );
            continue;
        };
        assert_eq!(seg_groups.len(), 1, "{customer}: {seg_groups:?}");
        let g = group_of_segment.entry(segment).or_insert(seg_groups[0]);
        assert_eq!(*g, seg_groups[0].as_str(), "{customer} ({segment})");
    }
    let square: BTreeSet<String> = mock
        .state
        .lock()
        .unwrap()
        .customers
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let in_groups = groups
        .values()
        .filter(|n| n.iter().any(|n| n.starts_with("Segment: ")))
        .count();
    let profiled = segments.keys().filter(|c| square.contains(*c)).count();
    assert_eq!(
        in_groups, profiled,
        "every profile of a Square customer has its group"
    );
    let distinct: BTreeSet<&&str> = group_of_segment.values().collect();
    assert_eq!(
        distinct.len(),
        group_of_segment.len(),
        "one group per segment"
    );
}

/// Orders and lines the history holds (`flow sync status --json`).
fn held(ws: &Workspace) -> (u64, u64) {
    let status = ws
        .flow()
        .args(["sync", "status", WF, "--json"])
        .run()
        .json();
    let lines = &status[0]["status"]["tables"]["lines"];
    assert_eq!(status[0]["node"], "transactions");
    (
        lines["keys"].as_u64().unwrap(),
        lines["rows"].as_u64().unwrap(),
    )
}

fn expected(mock: &Mock) -> (u64, u64) {
    let s = mock.state.lock().unwrap();
    let kept: Vec<&Json> = s
        .orders
        .iter()
        .filter(|o| o["state"] == "COMPLETED")
        .collect();
    let lines = kept
        .iter()
        .map(|o| o["line_items"].as_array().unwrap().len())
        .sum::<usize>();
    (kept.len() as u64, lines as u64)
}

/// No file of the workspace (store, checkpoints, logs, outputs) holds the token.
fn assert_token_nowhere(ws: &Workspace) {
    fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, found);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes())
            {
                found.push(p.display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(ws.dir(), &mut found);
    assert!(found.is_empty(), "the token is in {found:?}");
}

#[test]
fn two_days_full_load_then_only_the_changes_and_the_groups_follow() {
    let mock = start_mock();
    let ws = workspace(&yaml(&mock.url));
    run(&ws);
    let (orders, lines) = expected(&mock);
    assert_eq!(held(&ws), (orders, lines));
    let pages = (orders as usize).div_ceil(1000);
    assert_eq!(count(&mock, "POST /v2/orders/search"), pages);
    assert_eq!(count(&mock, "POST /v2/customers/search"), 0);
    assert_groups_follow(&ws, &mock);
    let day1 = segments(&ws);
    {
        let s = mock.state.lock().unwrap();
        assert_eq!(
            s.tokens_seen.iter().collect::<Vec<_>>(),
            [&format!("Bearer {TOKEN}")]
        );
    }

    // Day 2: forty customers buy again, one order is canceled.
    let last = {
        let s = mock.state.lock().unwrap();
        s.orders
            .iter()
            .map(|o| o["updated_at"].as_str().unwrap().to_string())
            .max()
            .unwrap()
    };
    let day2 = format!("{}T15:00:00.000Z", next_day(&last[..10]));
    {
        let mut s = mock.state.lock().unwrap();
        let canceled = s.orders[0]["id"].clone();
        s.orders[0]["state"] = json!("CANCELED");
        s.orders[0]["updated_at"] = json!(day2);
        for i in 0..40 {
            let customer = format!("C{:05}", 1 + i * 12);
            s.orders.push(json!({
                "id": format!("D2-{i}"), "location_id": "L1", "customer_id": customer,
                "state": "COMPLETED", "created_at": day2, "updated_at": day2,
                "line_items": [{"name": "P0001", "quantity": "3", "catalog_object_id": "P0001",
                    "base_price_money": {"amount": 19_59, "currency": "USD"},
                    "total_money": {"amount": 3 * 19_59, "currency": "USD"}}],
            }));
        }
        assert_ne!(canceled, Json::Null);
        s.log.clear();
    }
    run(&ws);
    // Only the changes: one page of orders, one page of customers.
    let log = mock.state.lock().unwrap().log.clone();
    let pulled: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("search") || l.contains("locations") || l.contains("catalog"))
        .collect();
    assert_eq!(count(&mock, "POST /v2/orders/search"), 1, "{pulled:?}");
    assert_eq!(count(&mock, "POST /v2/customers/search"), 1);
    let (orders2, lines2) = expected(&mock);
    assert_eq!((orders2, lines2.min(lines2)), (orders + 40 - 1, lines2));
    assert_eq!(held(&ws), (orders2, lines2));
    let moved = segments(&ws)
        .iter()
        .filter(|(c, s)| day1.get(*c).is_some_and(|d| d != *s))
        .count();
    assert!(moved > 0, "no customer changed segment");
    assert_groups_follow(&ws, &mock);
    assert_token_nowhere(&ws);
}

fn next_day(date: &str) -> String {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("date");
    (d + chrono::Duration::days(1)).to_string()
}

#[test]
fn sigkill_during_the_sync_then_resume_loses_and_doubles_no_order() {
    sigkill_during_the_sync(None, 0x5eed_0001);
}

/// The same on the PostgreSQL store, where the history is in the database.
#[test]
fn sigkill_during_the_sync_on_postgres_then_resume_loses_and_doubles_no_order() {
    let db = flow_engine::test_postgres::TestDatabase::new();
    sigkill_during_the_sync(Some(db.url()), 0x5eed_0003);
}

fn sigkill_during_the_sync(store: Option<&str>, seed: u64) {
    let mut rng = Rng::new(seed);
    // Killed while the catalog is listed, then while the orders are paged.
    for (what, pages) in [("GET /v2/catalog/list", 5), ("POST /v2/orders/search", 3)] {
        let mock = start_mock();
        // Slow answers: the sync takes about half a second.
        mock.state.lock().unwrap().delay = Duration::from_millis(25);
        let mut ws = workspace(&yaml(&mock.url));
        if let Some(url) = store {
            ws = ws.on_postgres(url);
        }
        let k = 1 + rng.below(pages) as usize;
        let child = spawn_run(&ws);
        assert!(wait_until(Duration::from_secs(60), || count(&mock, what) >= k));
        kill(child);
        let status = ws.statuses("last").get("transactions").cloned();
        assert_ne!(status.as_deref(), Some("succeeded"), "{what} {k}");
        mock.state.lock().unwrap().delay = Duration::ZERO;
        resume(&ws);
        assert_eq!(held(&ws), expected(&mock), "{what} {k}");
        assert_groups_follow(&ws, &mock);
    }
}

#[test]
fn sigkill_during_the_push_then_resume_leaves_every_membership_right() {
    let mut rng = Rng::new(0x5eed_0002);
    let mock = start_mock();
    let ws = workspace(&yaml(&mock.url));
    let child = spawn_run(&ws);
    // Once the push starts, answers slow down so the kill lands among the memberships.
    assert!(wait_until(Duration::from_secs(60), || count(
        &mock,
        "GET /v2/customers/groups"
    ) > 0));
    mock.state.lock().unwrap().delay = Duration::from_millis(3);
    let k = 20 + rng.below(200) as usize;
    assert!(wait_until(Duration::from_secs(60), || {
        mock.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.starts_with("PUT /v2/customers/"))
            .count()
            >= k
    }));
    kill(child);
    let status = ws.statuses("last").get("deploy").cloned();
    assert_ne!(
        status.as_deref(),
        Some("succeeded"),
        "killed after {k} memberships"
    );
    let before = mock.groups_of();
    mock.state.lock().unwrap().delay = Duration::ZERO;
    resume(&ws);
    assert_eq!(held(&ws), expected(&mock));
    assert_groups_follow(&ws, &mock);
    // The kill left some memberships written and the rest not: the resume completed them.
    assert!(!before.is_empty() && before.len() < mock.groups_of().len());
    assert_token_nowhere(&ws);
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL flow");
    child.wait().expect("wait for flow");
}
