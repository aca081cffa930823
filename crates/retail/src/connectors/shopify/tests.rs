//! The connector against the mock shop: bulk lifecycle, throttling, paging edges, faults, push.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::client::{Client, ClientConfig};
use super::incremental::Stream;
use super::mock::{self, MockShop, RemoteCustomer, State};
use super::push::{self, MetafieldType, Profile, PushTarget};
use super::source::{self, SourceConfig};
use super::{DEFAULT_API_VERSION, ShopifyError};

const TOKEN: &str = "shpat_test_token_0000";

fn client_cfg(shop: &MockShop) -> ClientConfig {
    ClientConfig {
        base_url: shop.base_url(),
        api_version: DEFAULT_API_VERSION.into(),
        timeout: Duration::from_secs(10),
        retries: 3,
        backoff: Duration::from_millis(5),
        throttle_retries: 20,
    }
}

fn cfg(shop: &MockShop) -> SourceConfig {
    SourceConfig {
        client: client_cfg(shop),
        token_env: "SHOPIFY_TEST_TOKEN".into(),
        lookback: Duration::from_secs(600),
        page_size: 3,
        poll: Duration::from_millis(5),
        bulk_timeout: Duration::from_secs(10),
    }
}

/// Ten orders of customers 1..=4 on 2026-01-0D, one walk-in, one cancelled.
fn shop_with_orders() -> MockShop {
    let mut s = State::default();
    for i in 1..=10u64 {
        let day = format!("2026-01-0{}T15:00:00Z", (i % 9) + 1);
        let o = mock::order(
            i,
            Some(i % 4 + 1),
            &day,
            &day,
            &[(i % 3 + 1, 2, "4.99"), (7, 1, "0.10")],
        );
        s.orders.insert(o["id"].as_str().unwrap().to_string(), o);
    }
    let walk_in = mock::order(
        11,
        None,
        "2026-01-05T10:00:00Z",
        "2026-01-05T10:00:00Z",
        &[(1, 1, "4.99")],
    );
    s.orders.insert("gid://shopify/Order/11".into(), walk_in);
    let mut cancelled = mock::order(
        12,
        Some(1),
        "2026-01-05T10:00:00Z",
        "2026-01-06T10:00:00Z",
        &[(1, 1, "4.99")],
    );
    cancelled["cancelledAt"] = json!("2026-01-06T10:00:00Z");
    s.orders.insert("gid://shopify/Order/12".into(), cancelled);
    MockShop::start(s)
}

#[test]
fn first_sync_is_a_bulk_operation_later_ones_fetch_only_changes() {
    let shop = shop_with_orders();
    let cfg = cfg(&shop);
    let day1 = source::fetch(&cfg, TOKEN.into(), Stream::Orders, None).unwrap();
    assert!(day1.full);
    assert_eq!(day1.orders.len(), 12);
    assert_eq!((day1.walk_in, day1.cancelled), (1, 1));
    let lines: usize = day1.orders.iter().map(|o| o.lines.len()).sum();
    // 10 orders of 2 lines, and the walk-in's line (without a customer id).
    assert_eq!(lines, 21);
    let total: f64 = day1
        .orders
        .iter()
        .flat_map(|o| &o.lines)
        .filter(|l| !l.customer_id.is_empty())
        .map(|l| l.amount)
        .sum();
    assert!((total - 10.0 * 10.08).abs() < 1e-9, "{total}");
    // New York in January: UTC-5.
    let l = &day1.orders[0].lines[0];
    assert_eq!(l.utc_offset_secs, Some(-5 * 3600));
    assert_eq!(l.timestamp.format("%H:%M").to_string(), "10:00");
    assert_eq!(day1.customers.len(), 4);
    assert_eq!(day1.cursor["updated_at"], "2026-01-10T06:00:00Z");
    assert_eq!(day1.cursor["api_version"], DEFAULT_API_VERSION);
    let c = shop.counts();
    // shop, run, 2 polls (RUNNING, COMPLETED), download.
    assert_eq!(
        (
            c.shop,
            c.bulk_runs,
            c.bulk_polls,
            c.downloads,
            c.order_pages
        ),
        (1, 1, 2, 1, 0)
    );
    assert_eq!(day1.requests, 5);
    assert_eq!(
        shop.state().versions.iter().collect::<Vec<_>>(),
        vec![DEFAULT_API_VERSION]
    );

    // Day 2: one order changed, one new, one refunded in part.
    {
        let mut s = shop.state();
        let o = mock::order(
            13,
            Some(2),
            "2026-01-10T09:00:00Z",
            "2026-01-10T09:00:00Z",
            &[(2, 1, "4.99")],
        );
        s.orders.insert("gid://shopify/Order/13".into(), o);
        let o = s.orders.get_mut("gid://shopify/Order/3").unwrap();
        o["updatedAt"] = json!("2026-01-10T11:00:00Z");
        o["refunds"] = json!([{ "id": "gid://shopify/Refund/1", "refundLineItems": [
            { "id": "gid://shopify/RefundLineItem/1", "lineItem": { "id": "gid://shopify/LineItem/300" },
              "quantity": 1, "subtotalSet": { "shopMoney": { "amount": "4.99", "currencyCode": "USD" } } }] }]);
    }
    let day2 = source::fetch(&cfg, TOKEN.into(), Stream::Orders, Some(&day1.cursor)).unwrap();
    assert!(!day2.full);
    let ids: Vec<&str> = day2.orders.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids, ["13", "3"]);
    let refunded = &day2.orders[1].lines[0];
    assert_eq!((refunded.quantity, refunded.amount), (1.0, 4.99));
    assert_eq!(day2.cursor["updated_at"], "2026-01-10T11:00:00Z");
    let c2 = shop.counts();
    assert_eq!((c2.bulk_runs, c2.order_pages, c2.shop), (1, 1, 2));
    assert_eq!(day2.requests, 2);

    // Day 3 with nothing new: the lookback re-reads the last change, idempotently.
    let day3 = source::fetch(&cfg, TOKEN.into(), Stream::Orders, Some(&day2.cursor)).unwrap();
    assert_eq!(
        day3.orders
            .iter()
            .map(|o| o.order_id.as_str())
            .collect::<Vec<_>>(),
        ["3"]
    );
    assert_eq!(day3.cursor, day2.cursor);
}

#[test]
fn pages_follow_the_cursor_to_the_end_including_an_empty_last_page() {
    let shop = shop_with_orders();
    let mut cfg = cfg(&shop);
    let cursor = json!({ "updated_at": "2026-01-01T00:00:00Z" });
    cfg.lookback = Duration::ZERO;
    // 12 orders, 3 per page: exactly 4 full pages, then an empty page without a next one.
    shop.state().trailing_empty_page = true;
    let got = source::fetch(&cfg, TOKEN.into(), Stream::Orders, Some(&cursor)).unwrap();
    assert_eq!(got.orders.len(), 12);
    assert_eq!(shop.counts().order_pages, 5);
    // Nothing changed since: one empty page, hasNextPage false, and the cursor stays.
    let late = json!({ "updated_at": "2027-01-01T00:00:00Z" });
    let got = source::fetch(&cfg, TOKEN.into(), Stream::Orders, Some(&late)).unwrap();
    assert!(got.orders.is_empty());
    assert_eq!(got.cursor["updated_at"], "2027-01-01T00:00:00Z");
    assert_eq!(shop.counts().order_pages, 6);
}

#[test]
fn an_order_with_many_line_items_is_read_whole() {
    let shop = shop_with_orders();
    let lines: Vec<(u64, i64, &str)> = (0..620).map(|i| (i, 1, "1.00")).collect();
    let big = mock::order(
        50,
        Some(1),
        "2026-01-09T10:00:00Z",
        "2026-01-09T10:00:00Z",
        &lines,
    );
    shop.state()
        .orders
        .insert("gid://shopify/Order/50".into(), big);
    let cursor = json!({ "updated_at": "2026-01-09T00:00:00Z" });
    let got = source::fetch(&cfg(&shop), TOKEN.into(), Stream::Orders, Some(&cursor)).unwrap();
    let big = got.orders.iter().find(|o| o.order_id == "50").unwrap();
    assert_eq!(big.lines.len(), 620);
    // 100 in the page, then 250, 250 and 20.
    assert_eq!(shop.counts().order_line_pages, 3);
}

#[test]
fn throttled_queries_wait_for_the_bucket_and_retry() {
    let shop = shop_with_orders();
    {
        let mut s = shop.state();
        s.bucket_max = 40.0;
        s.restore_rate = 200.0;
        s.query_cost = 30.0;
        s.set_available(0.0);
    }
    let cursor = json!({ "updated_at": "2026-01-01T00:00:00Z" });
    let got = source::fetch(&cfg(&shop), TOKEN.into(), Stream::Orders, Some(&cursor)).unwrap();
    assert_eq!(got.orders.len(), 12);
    let c = shop.counts();
    // The first query met an empty bucket, and so did the first orders page, whose cost the
    // client did not know yet; the three pages after it waited for the restore rate instead.
    assert_eq!(c.throttled, 2, "{c:?}");
    assert_eq!(c.order_pages, 4, "{c:?}");
    assert_eq!(got.requests, c.total);

    // A query costing more than the bucket holds: a clear error after the configured retries.
    shop.state().query_cost = 50.0;
    let mut cfg = cfg(&shop);
    cfg.client.throttle_retries = 2;
    let e = source::fetch(&cfg, TOKEN.into(), Stream::Orders, Some(&cursor)).unwrap_err();
    assert!(
        matches!(e, ShopifyError::Throttled { attempts: 3, .. }),
        "{e}"
    );
}

#[test]
fn bulk_failures_and_server_errors() {
    let shop = shop_with_orders();
    // 502, 429, 503 then fine: retried.
    shop.state().fail_next = vec![502, 429, 503];
    let got = source::fetch(&cfg(&shop), TOKEN.into(), Stream::Orders, None).unwrap();
    assert_eq!(got.orders.len(), 12);
    assert_eq!(shop.counts().faults, 3);
    // More failures in a row than retries: the last status, named.
    shop.state().fail_next = vec![503; 4];
    let e = source::fetch(&cfg(&shop), TOKEN.into(), Stream::Orders, None).unwrap_err();
    assert!(matches!(e, ShopifyError::Http { status: 503, .. }), "{e}");

    shop.state().bulk_fail = Some("ACCESS_DENIED".into());
    let e = source::fetch(&cfg(&shop), TOKEN.into(), Stream::Orders, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("FAILED") && e.contains("ACCESS_DENIED"), "{e}");

    let e = source::fetch(&cfg(&shop), "shpat_wrong".into(), Stream::Orders, None).unwrap_err();
    assert!(matches!(e, ShopifyError::Auth { status: 401, .. }), "{e}");
    assert!(!e.to_string().contains("shpat_wrong"));
}

fn malformed(kind: &'static str, change: fn(&mut Json)) -> String {
    let shop = shop_with_orders();
    shop.state().transform = Some(Box::new(move |k, body| {
        if k == kind {
            change(body)
        }
    }));
    let cursor = json!({ "updated_at": "2026-01-01T00:00:00Z" });
    let e = source::fetch(&cfg(&shop), TOKEN.into(), Stream::Orders, Some(&cursor))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "{}/admin/api/{DEFAULT_API_VERSION}/graphql.json",
            shop.base_url()
        )),
        "{e}"
    );
    e
}

#[test]
fn malformed_replies_name_the_endpoint_and_field() {
    let e = malformed("orders", |b| {
        b["data"]["orders"]
            .as_object_mut()
            .unwrap()
            .remove("pageInfo");
    });
    assert!(e.contains("orders.pageInfo.hasNextPage"), "{e}");
    let e = malformed("orders", |b| {
        b["data"]["orders"]["pageInfo"]["endCursor"] = Json::Null;
        b["data"]["orders"]["pageInfo"]["hasNextPage"] = json!(true);
    });
    assert!(e.contains("orders.pageInfo.endCursor"), "{e}");
    let e = malformed("orders", |b| {
        b["data"]["orders"]["nodes"][0]["lineItems"]["nodes"][0]["originalUnitPriceSet"]["shopMoney"]
            ["amount"] = json!("4,99");
    });
    assert!(
        e.contains("LineItem.originalUnitPriceSet.shopMoney.amount") && e.contains("4,99"),
        "{e}"
    );
    let e = malformed("shop", |b| {
        b["data"]["shop"]["ianaTimezone"] = json!("Mars/Olympus")
    });
    assert!(
        e.contains("shop.ianaTimezone") && e.contains("Mars/Olympus"),
        "{e}"
    );
    let e = malformed("shop", |b| {
        *b = json!({ "errors": [{ "message": "Field 'shop' doesn't exist" }] })
    });
    assert!(e.contains("Field 'shop' doesn't exist"), "{e}");
    let e = malformed("orders", |b| *b = json!({ "extensions": {} }));
    assert!(e.contains("`data` missing"), "{e}");
    // A bulk result line that is cut off.
    let shop = shop_with_orders();
    shop.state().transform = Some(Box::new(|k, body| {
        if k == "download" {
            let t = body.as_str().unwrap().to_string();
            *body = json!(format!("{}{{\"id\": \"gid://shop", t));
        }
    }));
    let e = source::fetch(&cfg(&shop), TOKEN.into(), Stream::Orders, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/bulk/orders-1.jsonl") && e.contains("not JSON"),
        "{e}"
    );
    assert!(!e.contains("Signature"), "{e}");
}

#[test]
fn products_become_catalog_rows() {
    let mut s = State::default();
    for i in 1..=3u64 {
        s.products.insert(format!("gid://shopify/Product/{i}"), json!({
            "id": format!("gid://shopify/Product/{i}"), "title": format!("P{i}"),
            "productType": if i == 1 { "" } else { "Tea" }, "updatedAt": "2026-01-02T00:00:00Z",
            "collections": [{ "id": "gid://shopify/Collection/5", "title": "Autumn" }],
            "variants": [{ "id": format!("gid://shopify/ProductVariant/{i}"), "sku": "S", "price": "3.50", "inventoryQuantity": i }],
        }));
    }
    let shop = MockShop::start(s);
    let got = source::fetch(&cfg(&shop), TOKEN.into(), Stream::Products, None).unwrap();
    assert_eq!(got.products.len(), 3, "{:?}", shop.counts());
    assert_eq!(got.products[0].category.as_deref(), Some("Autumn"));
    assert_eq!(got.products[1].category.as_deref(), Some("Tea"));
    assert_eq!(
        (got.products[2].price, got.products[2].stock),
        (Some(3.5), Some(3))
    );
    shop.state()
        .products
        .get_mut("gid://shopify/Product/2")
        .unwrap()["updatedAt"] = json!("2026-01-11T00:00:00Z");
    let again = source::fetch(
        &cfg(&shop),
        TOKEN.into(),
        Stream::Products,
        Some(&got.cursor),
    )
    .unwrap();
    assert_eq!(again.products.len(), 1);
    assert_eq!(again.products[0].product_id, "2");
    assert_eq!(shop.counts().product_pages, 1);
}

fn profile(id: &str, segment: &str) -> Profile {
    Profile {
        customer_id: id.into(),
        segment: segment.into(),
        clv: Some(123.456),
        p_alive: Some(0.87654),
        recommended_products: vec!["P1".into(), "P2".into()],
        recommended_action: Some("Offer early access".into()),
    }
}

#[test]
fn push_sets_exactly_one_segment_tag_and_the_profile() {
    let mut s = State::default();
    for i in 1..=60u64 {
        let mut c = RemoteCustomer::default();
        c.tags.insert("wholesale".into());
        if i % 2 == 0 {
            c.tags.insert("flow-segment:at_risk".into());
            c.tags.insert("flow-segment:old_name".into());
        }
        s.customers.insert(format!("gid://shopify/Customer/{i}"), c);
    }
    let shop = MockShop::start(s);
    let client = Client::new(client_cfg(&shop), TOKEN.into());
    let target = PushTarget {
        tag_prefix: "flow-segment:".into(),
        namespace: "flow".into(),
        metafield_type: MetafieldType::Text,
    };
    let profiles: Vec<Profile> = (1..=61u64)
        .map(|i| profile(&i.to_string(), if i % 3 == 0 { "vip" } else { "at_risk" }))
        .collect();
    let run = |target: &PushTarget| {
        let mut total = push::BatchOutcome::default();
        let items: Vec<(String, &Profile)> = profiles
            .iter()
            .filter_map(|p| Some((push::customer_gid(&p.customer_id)?, p)))
            .collect();
        for chunk in items.chunks(25) {
            let o = push::push_batch(&client, target, chunk).unwrap();
            total.tags_added += o.tags_added;
            total.tags_removed += o.tags_removed;
            total.metafields_set += o.metafields_set;
            total.unchanged += o.unchanged;
            total.not_found += o.not_found;
        }
        total
    };
    let first = run(&target);
    assert_eq!(first.not_found, 1);
    assert_eq!(first.unchanged, 0);
    for i in 1..=60u64 {
        let want = if i % 3 == 0 {
            "flow-segment:vip"
        } else {
            "flow-segment:at_risk"
        };
        assert_eq!(
            shop.tags(&i.to_string(), "flow-segment:"),
            vec![want.to_string()],
            "customer {i}"
        );
        assert!(shop.tags(&i.to_string(), "wholesale").len() == 1);
    }
    {
        let s = shop.state();
        let c = &s.customers["gid://shopify/Customer/6"];
        let get = |k: &str| c.metafields[&("flow".to_string(), k.to_string())].1.clone();
        assert_eq!(get("segment"), "vip");
        assert_eq!(get("clv"), "123.46");
        assert_eq!(get("p_alive"), "0.8765");
        assert_eq!(get("recommended_products"), "P1, P2");
        assert!(
            s.metafields_per_call.iter().all(|n| *n <= 25),
            "{:?}",
            s.metafields_per_call
        );
    }
    // Again: nothing to change, only the reads.
    let mutations = shop.counts().mutations;
    let second = run(&target);
    assert_eq!(
        (
            second.tags_added,
            second.tags_removed,
            second.metafields_set
        ),
        (0, 0, 0)
    );
    assert_eq!(second.unchanged, 60);
    assert_eq!(shop.counts().mutations, mutations);

    // JSON profiles.
    let json_target = PushTarget {
        metafield_type: MetafieldType::Json,
        ..target
    };
    run(&json_target);
    let s = shop.state();
    let v: Json = serde_json::from_str(
        &s.customers["gid://shopify/Customer/3"].metafields
            [&("flow".to_string(), "profile".to_string())]
            .1,
    )
    .unwrap();
    assert_eq!(v["segment"], "vip");
    assert_eq!(v["clv"], 123.46);
}

#[test]
fn only_shopify_customer_ids_are_pushed() {
    assert_eq!(
        push::customer_gid("123").as_deref(),
        Some("gid://shopify/Customer/123")
    );
    assert_eq!(
        push::customer_gid("gid://shopify/Customer/9").as_deref(),
        Some("gid://shopify/Customer/9")
    );
    for other in [
        "ann@example.com",
        "",
        "CUST_9X",
        "gid://shopify/Order/1",
        "12a",
    ] {
        assert_eq!(push::customer_gid(other), None, "{other}");
    }
}

fn sync_once(
    ctx: &flow_engine::node::NodeContext,
    shop: &MockShop,
    full: bool,
) -> crate::connectors::Synced {
    let connector = super::connector::ShopifyConnector {
        cfg: cfg(shop),
        stream: Stream::Orders,
        token: TOKEN.into(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(crate::connectors::sync(
        ctx,
        std::sync::Arc::new(connector),
        full,
    ))
    .unwrap()
}

#[test]
fn the_history_holds_each_order_once_across_syncs() {
    let shop = shop_with_orders();
    let store = tempfile::tempdir().unwrap();
    let ctx = flow_engine::testing::context().with_store_dir(store.path());
    let day1 = sync_once(&ctx, &shop, false);
    assert!(day1.report.full);
    // 12 orders: 10 kept, the cancelled one removed, the walk-in's line dropped.
    assert_eq!(day1.report.orders_held, 10);
    assert_eq!(day1.report.lines_held, 20);
    assert_eq!(day1.report.fetched.walk_in_lines, 1);
    assert_eq!(day1.report.customers_held, 4);
    assert_eq!(day1.report.fetched.requests, 5);
    let t = day1.transactions().unwrap();
    assert!(t.meta.get("sync").is_some());

    // Day 2: order 4 is cancelled, order 5 changes, order 14 is new; order 5 changes again
    // while the pages are read, so it comes twice: held once.
    {
        let mut s = shop.state();
        s.orders.get_mut("gid://shopify/Order/4").unwrap()["cancelledAt"] =
            json!("2026-01-10T08:00:00Z");
        s.orders.get_mut("gid://shopify/Order/4").unwrap()["updatedAt"] =
            json!("2026-01-10T08:00:00Z");
        let o = mock::order(
            14,
            Some(9),
            "2026-01-10T09:00:00Z",
            "2026-01-10T09:00:00Z",
            &[(1, 1, "4.99")],
        );
        s.orders.insert("gid://shopify/Order/14".into(), o);
        let mut o5 = s.orders["gid://shopify/Order/5"].clone();
        o5["updatedAt"] = json!("2026-01-10T07:00:00Z");
        s.orders.insert("gid://shopify/Order/5".into(), o5.clone());
        // The same order a second time under another key: what a page sees when it moved.
        o5["updatedAt"] = json!("2026-01-10T10:00:00Z");
        s.orders.insert("gid://shopify/Order/5#moved".into(), o5);
    }
    let day2 = sync_once(&ctx, &shop, false);
    assert!(!day2.report.full);
    assert_eq!(day2.report.orders_held, 10); // -4 +14
    assert_eq!(day2.report.lines_held, 19);
    // The shop, and two pages of three for the four changed orders.
    assert_eq!(day2.report.fetched.requests, 3);
    assert_eq!(shop.counts().bulk_runs, 1);
    assert_eq!(day2.report.cursor["updated_at"], "2026-01-10T10:00:00Z");

    // A full re-sync: a new bulk operation, same history.
    shop.state().orders.remove("gid://shopify/Order/5#moved");
    let again = sync_once(&ctx, &shop, true);
    assert!(again.report.full);
    assert_eq!(
        (again.report.orders_held, again.report.lines_held),
        (10, 19)
    );
    assert_eq!(shop.counts().bulk_runs, 2);
}
