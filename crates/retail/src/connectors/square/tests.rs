//! The Square pull against the mock server.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::mock::{Mock, State};
use super::*;

fn client(mock: &Mock) -> Client {
    let cfg = SquareConfig {
        base_url: mock.url.clone(),
        backoff: Duration::from_millis(1),
        retries: 3,
        ..SquareConfig::default()
    };
    Client::new(cfg, "sq-secret-token".into())
}

fn source() -> SquareSource {
    SquareSource {
        config: SquareConfig::default(),
        location_ids: Vec::new(),
        limit: 2,
        lookback: Duration::from_secs(600),
    }
}

fn order(
    id: &str,
    loc: &str,
    customer: Option<&str>,
    state: &str,
    updated: &str,
    cents: i64,
    cur: &str,
) -> Json {
    json!({
        "id": id, "location_id": loc, "customer_id": customer, "state": state,
        "created_at": updated, "updated_at": updated, "version": 1,
        "line_items": [{"uid": "u1", "name": "Widget", "quantity": "1", "catalog_object_id": "V1",
            "base_price_money": {"amount": cents, "currency": cur},
            "total_money": {"amount": cents, "currency": cur}}]
    })
}

fn state() -> State {
    let mut locations = vec![
        json!({"id": "L_NY", "timezone": "America/New_York"}),
        json!({"id": "L_TK", "timezone": "Asia/Tokyo"}),
    ];
    // 12 locations: the search needs two queries.
    for i in 0..10 {
        locations.push(json!({"id": format!("L{i}"), "timezone": "Europe/Paris"}));
    }
    State {
        locations,
        orders: vec![
            order(
                "O1",
                "L_NY",
                Some("C1"),
                "COMPLETED",
                "2025-01-10T15:00:00.000Z",
                1999,
                "USD",
            ),
            order(
                "O2",
                "L_TK",
                Some("C2"),
                "COMPLETED",
                "2025-01-10T16:00:00.000Z",
                1500,
                "JPY",
            ),
            order(
                "O3",
                "L_NY",
                None,
                "COMPLETED",
                "2025-01-10T17:00:00.000Z",
                100,
                "USD",
            ),
            order(
                "O4",
                "L_NY",
                Some("C1"),
                "CANCELED",
                "2025-01-10T18:00:00.000Z",
                100,
                "USD",
            ),
            order(
                "O5",
                "L9",
                Some("C2"),
                "COMPLETED",
                "2025-01-10T19:00:00.000Z",
                250,
                "EUR",
            ),
        ],
        customers: vec![
            json!({"id": "C1", "given_name": "Ann", "family_name": "Lee", "email_address": "Ann@X.com",
                   "preferences": {"email_unsubscribed": false}, "updated_at": "2025-01-09T00:00:00.000Z"}),
            json!({"id": "C2", "given_name": "Bo", "email_address": "bo@x.com",
                   "preferences": {"email_unsubscribed": true}, "updated_at": "2025-01-09T01:00:00.000Z"}),
        ],
        page_size: 2,
        empty_first_page: true,
        ..State::default()
    }
}

#[test]
fn full_then_incremental_pull() {
    let mock = Mock::start(state());
    let c = client(&mock);
    let src = source();
    let p = src.pull(&c, None).unwrap();
    let ids: Vec<&str> = p.orders.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids, ["O1", "O2", "O3", "O4", "O5"]);
    assert_eq!(p.walk_in_orders, 1);
    assert!(p.orders[3].lines.is_empty(), "canceled");
    assert_eq!(p.orders[0].lines[0].amount, 19.99);
    assert_eq!(p.orders[1].lines[0].amount, 1500.0);
    assert_eq!(
        p.orders[1].lines[0].timestamp.to_string(),
        "2025-01-11 01:00:00"
    );
    assert_eq!(p.orders[4].lines[0].utc_offset_secs, Some(3600));
    assert_eq!(p.customers.len(), 2);
    assert_eq!(p.customers[0].customer.email.as_deref(), Some("ann@x.com"));
    assert_eq!(p.customers[0].customer.name.as_deref(), Some("Ann Lee"));
    assert_eq!(p.customers[0].customer.accepts_marketing, Some(true));
    assert_eq!(p.customers[1].customer.accepts_marketing, Some(false));
    assert_eq!(p.cursor["orders_updated_at"], "2025-01-10T19:00:00.000Z");
    // Orders: group 1 (10 locations) holds 4 orders: empty page + 2 pages; group 2: empty +
    // 1 page. Customers: empty + 1. Plus ListLocations.
    assert_eq!(mock.count("POST /v2/orders/search"), 5);
    assert_eq!(p.requests, 1 + 5 + 2);
    {
        let s = mock.state.lock().unwrap();
        assert_eq!(
            s.tokens_seen.iter().collect::<Vec<_>>(),
            ["Bearer sq-secret-token"]
        );
        assert_eq!(
            s.versions_seen.iter().collect::<Vec<_>>(),
            [client::DEFAULT_API_VERSION]
        );
    }

    // Day 2: one order changes (canceled), one is new; the lookback refetches O5 too.
    {
        let mut s = mock.state.lock().unwrap();
        s.orders[0] = order(
            "O1",
            "L_NY",
            Some("C1"),
            "CANCELED",
            "2025-01-11T09:00:00.000Z",
            1999,
            "USD",
        );
        s.orders.push(order(
            "O6",
            "L_NY",
            Some("C2"),
            "COMPLETED",
            "2025-01-11T10:00:00.000Z",
            500,
            "USD",
        ));
        s.empty_first_page = false;
        s.log.clear();
    }
    let p2 = src.pull(&c, Some(&p.cursor)).unwrap();
    let mut ids: Vec<&str> = p2.orders.iter().map(|o| o.order_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["O1", "O5", "O6"]);
    assert!(
        p2.orders
            .iter()
            .find(|o| o.order_id == "O1")
            .unwrap()
            .lines
            .is_empty()
    );
    assert_eq!(p2.cursor["orders_updated_at"], "2025-01-11T10:00:00.000Z");
    assert_eq!(mock.count("POST /v2/customers/search"), 1);
    assert_eq!(mock.count("GET /v2/customers"), 0);
}

#[test]
fn retries_after_429_and_gives_up_with_a_clear_error() {
    let mut st = state();
    st.throttle = 2;
    let mock = Mock::start(st);
    let c = client(&mock);
    let locs = locations::list(&c, &[]).unwrap();
    assert_eq!(locs.len(), 12);
    assert_eq!(c.requests(), 3);
    mock.state.lock().unwrap().throttle = 10;
    let err = locations::list(&c, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Square GET /v2/locations: still rate-limited (HTTP 429) after 4 attempts"
    );
}

#[test]
fn retry_after_is_honoured_5xx_retried_and_a_refused_token_named_without_it() {
    let mut st = state();
    st.throttle = 1;
    st.retry_after = "0.3".into();
    let mock = Mock::start(st);
    let c = client(&mock);
    let t = std::time::Instant::now();
    locations::list(&c, &[]).unwrap();
    // The backoff is 1 ms: only Retry-After explains the wait.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    mock.state.lock().unwrap().unavailable = 2;
    locations::list(&c, &[]).unwrap();
    assert_eq!(c.requests(), 2 + 3);
    mock.state.lock().unwrap().unavailable = 10;
    let err = locations::list(&c, &[]).unwrap_err().to_string();
    assert!(
        err.contains("HTTP 503: API_ERROR SERVICE_UNAVAILABLE: down (after 4 attempts)"),
        "{err}"
    );
    mock.state.lock().unwrap().unavailable = 0;
    mock.state.lock().unwrap().require_token = Some("another".into());
    let err: crate::connectors::ConnectorError = locations::list(&c, &[]).unwrap_err().into();
    let err = err.to_string();
    assert!(
        err.starts_with(
            "Square GET /v2/locations: the credentials were refused (HTTP 401); \
             AUTHENTICATION_ERROR UNAUTHORIZED"
        ),
        "{err}"
    );
    assert!(
        err.contains("ORDERS_READ") && !err.contains("sq-secret-token"),
        "{err}"
    );
}

#[test]
fn a_changed_query_across_pages_is_rejected_by_the_mock() {
    let mock = Mock::start(state());
    let c = client(&mock);
    let q1 = orders::query(&["L_NY"], None, 2);
    let a = c
        .call(
            client::Method::Post,
            "POST /v2/orders/search",
            "/v2/orders/search",
            &[],
            Some(&q1),
        )
        .unwrap();
    let mut q2 = orders::query(&["L_NY"], Some("2025-01-01T00:00:00.000Z"), 2);
    q2["cursor"] = a["cursor"].clone();
    let err = c
        .call(
            client::Method::Post,
            "POST /v2/orders/search",
            "/v2/orders/search",
            &[],
            Some(&q2),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Square POST /v2/orders/search: HTTP 400: INVALID_REQUEST_ERROR BAD_REQUEST: the query must be \
         the same as the one the cursor came from (field `cursor`)"
    );
}

#[test]
fn malformed_answers_name_endpoint_and_field() {
    let mock = Mock::start(state());
    let c = client(&mock);
    let src = SquareSource {
        location_ids: vec!["L_NY".into()],
        ..source()
    };
    mock.state.lock().unwrap().garble =
        Some(("/v2/orders/search".into(), json!({"orders": {"id": 1}})));
    let err = src.pull(&c, None).unwrap_err().to_string();
    assert_eq!(
        err,
        "Square POST /v2/orders/search: malformed response: field `orders` is not an array (an object)"
    );
    mock.state.lock().unwrap().garble = Some((
        "/v2/locations".into(),
        json!({"locations": [{"id": "L_NY", "timezone": "Mars/Base"}]}),
    ));
    let err = src.pull(&c, None).unwrap_err().to_string();
    assert!(
        err.contains("GET /v2/locations") && err.contains("`locations[0].timezone`"),
        "{err}"
    );
    let err = SquareSource {
        location_ids: vec!["NOPE".into()],
        ..source()
    }
    .pull(&c, None)
    .unwrap_err();
    assert!(err.to_string().contains("location `NOPE`"), "{err}");
    // Errors never quote the token.
    let bad = Client::new(
        SquareConfig {
            base_url: "http://127.0.0.1:1".into(),
            retries: 0,
            ..SquareConfig::default()
        },
        "sq-secret-token".into(),
    );
    let err = locations::list(&bad, &[]).unwrap_err().to_string();
    assert!(
        !err.contains("sq-secret-token") && err.contains("GET /v2/locations"),
        "{err}"
    );
}

#[test]
fn catalog_variations_categories_and_prices() {
    let mut st = state();
    st.catalog = vec![
        json!({"type": "ITEM", "id": "I1", "item_data": {"name": "Tea", "categories": [{"id": "K1"}],
            "variations": [
                {"type": "ITEM_VARIATION", "id": "V1", "item_variation_data": {"name": "Small", "price_money": {"amount": 300, "currency": "USD"}}},
                {"type": "ITEM_VARIATION", "id": "V2", "item_variation_data": {"name": "Large"}}]}}),
        json!({"type": "ITEM", "id": "I2", "is_deleted": true, "item_data": {"name": "Old"}}),
        json!({"type": "CATEGORY", "id": "K1", "category_data": {"name": "Drinks"}}),
    ];
    let mock = Mock::start(st);
    let products = catalog::list(&client(&mock)).unwrap();
    assert_eq!(products.len(), 2);
    assert_eq!(products[0].name, "Tea (Small)");
    assert_eq!(products[0].category.as_deref(), Some("Drinks"));
    assert_eq!(products[0].price, Some(3.0));
    assert_eq!(products[1].price, None);
}

fn orders_node(mock: &Mock, extra: &str) -> std::sync::Arc<dyn flow_engine::node::Node> {
    use flow_engine::node::{ConfigureCx, NodeKind, NodeType, Params};
    let yaml = format!(
        "base_url: {}\ntoken_env: PATH\nlimit: 2\nbackoff: 1ms\ncatalog: false\n{extra}",
        mock.url
    );
    let value: Json = serde_yaml::from_str(&yaml).unwrap();
    let params = Params::new(value.as_object().unwrap().clone(), "/");
    let cx = ConfigureCx {
        node_id: "sales",
        kind: NodeKind::Action,
        workflow_dir: std::path::Path::new("/"),
        input_columns: &[],
    };
    node::SquareOrdersNode
        .configure(&params, &cx)
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn run_node(
    node: &std::sync::Arc<dyn flow_engine::node::Node>,
    store: &std::path::Path,
) -> Result<flow_engine::data::Output, flow_engine::node::NodeError> {
    let ctx = flow_engine::testing::context()
        .with_node_id("sales")
        .with_store_dir(store);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(node.run(ctx, flow_engine::node::Inputs::default()))
}

fn table(out: &flow_engine::data::Output) -> &arrow_array::RecordBatch {
    match &out.body {
        flow_engine::data::Body::Data(flow_engine::data::Data::Table(t)) => t,
        _ => panic!("not a table"),
    }
}

/// (order id, amount) of every line, sorted.
fn lines(out: &flow_engine::data::Output) -> Vec<(String, f64)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    let t = table(out);
    let ids = t.column_by_name("order_id").unwrap().as_string::<i32>();
    let amounts = t
        .column_by_name("amount")
        .unwrap()
        .as_primitive::<Float64Type>();
    let mut v: Vec<(String, f64)> = (0..t.num_rows())
        .map(|i| (ids.value(i).to_string(), amounts.value(i)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn the_orders_node_keeps_a_history_across_two_days() {
    let store = tempfile::tempdir().unwrap();
    let mut st = state();
    st.empty_first_page = false;
    let mock = Mock::start(st);
    let node = orders_node(&mock, "");
    let out = run_node(&node, store.path()).unwrap();
    // The walk-in order O3 and the canceled O4 are not held.
    assert_eq!(
        lines(&out),
        [
            ("O1".into(), 19.99),
            ("O2".into(), 1500.0),
            ("O5".into(), 2.5)
        ]
    );
    let sync = &out.meta["sync"];
    assert_eq!(sync["full"], true);
    assert_eq!(sync["fetched"]["walk_in_lines"], 1);
    // Locations, 2 + 1 order pages, 1 customer page.
    assert_eq!(sync["fetched"]["requests"], 5);

    // Day 2: O1 canceled, O6 new; only the changes are fetched.
    {
        let mut s = mock.state.lock().unwrap();
        s.orders[0] = order(
            "O1",
            "L_NY",
            Some("C1"),
            "CANCELED",
            "2025-01-11T09:00:00.000Z",
            1999,
            "USD",
        );
        s.orders.push(order(
            "O6",
            "L_NY",
            Some("C2"),
            "COMPLETED",
            "2025-01-11T10:00:00.000Z",
            500,
            "USD",
        ));
        s.log.clear();
    }
    let out = run_node(&node, store.path()).unwrap();
    assert_eq!(
        lines(&out),
        [
            ("O2".into(), 1500.0),
            ("O5".into(), 2.5),
            ("O6".into(), 5.0)
        ]
    );
    let sync = &out.meta["sync"];
    assert_eq!(sync["full"], false);
    // ListLocations; O1 and O6 in one page for the first group of locations, O5 (inside the
    // lookback) in one page for the second; one page of customers.
    assert_eq!(mock.count("POST /v2/orders/search"), 2);
    assert_eq!(sync["fetched"]["requests"], 4);
    assert_eq!(sync["orders_held"], 3);

    // A failing pull leaves the history as it was; `full_sync` reloads everything.
    mock.state.lock().unwrap().throttle = 100;
    let err = run_node(&node, store.path()).unwrap_err().to_string();
    assert!(
        err.contains("rate-limited") && !err.contains("sq-secret"),
        "{err}"
    );
    mock.state.lock().unwrap().throttle = 0;
    let out = run_node(&orders_node(&mock, "full_sync: true\n"), store.path()).unwrap();
    assert_eq!(out.meta["sync"]["full"], true);
    assert_eq!(lines(&out).len(), 3);
}
