use super::*;
use chrono::NaiveDate;
use serde_json::json;

fn money(a: &str) -> Json {
    json!({ "shopMoney": { "amount": a, "currencyCode": "EUR" } })
}

fn sample() -> Json {
    json!({
        "id": "gid://shopify/Order/5001",
        "name": "#1001",
        "createdAt": "2026-03-29T00:30:00Z",
        "processedAt": "2026-03-29T00:30:00Z",
        "updatedAt": "2026-03-30T10:00:00Z",
        "cancelledAt": null,
        "customer": { "id": "gid://shopify/Customer/77", "email": "Ann@Example.COM",
            "firstName": "Ann", "lastName": "Lee",
            "emailMarketingConsent": { "marketingState": "SUBSCRIBED" } },
        "refunds": [{ "id": "gid://shopify/Refund/1", "refundLineItems": { "nodes": [
            { "lineItem": { "id": "gid://shopify/LineItem/1" }, "quantity": 1, "subtotalSet": money("0.10") }
        ] } }],
        "lineItems": { "nodes": [
            { "id": "gid://shopify/LineItem/1", "title": "Tea", "name": "Tea - Green", "sku": "T1",
              "quantity": 3, "currentQuantity": 3,
              "originalUnitPriceSet": money("0.10"), "discountedTotalSet": money("0.30"),
              "variant": { "id": "gid://shopify/ProductVariant/9" },
              "product": { "id": "gid://shopify/Product/42", "productType": "Drinks" } },
            { "id": "gid://shopify/LineItem/2", "title": "Gift card", "sku": "",
              "quantity": 1, "currentQuantity": 0,
              "originalUnitPriceSet": money("25.00"), "discountedTotalSet": money("25.00"),
              "variant": null, "product": null }
        ] }
    })
}

#[test]
fn refunds_reduce_the_line_and_money_is_summed_exactly() {
    let tz: Tz = "Europe/Paris".parse().unwrap();
    let (v, c, gone) = order(&sample(), tz, "e").unwrap();
    assert_eq!(gone, None);
    assert_eq!(v.order_id, "5001");
    assert_eq!(v.updated_at, "2026-03-30T10:00:00Z");
    // The second line was removed by an edit (currentQuantity 0): gone.
    assert_eq!(v.lines.len(), 1);
    let l = &v.lines[0];
    assert_eq!((l.quantity, l.amount, l.unit_price), (2.0, 0.2, Some(0.1)));
    assert_eq!(l.product_id, "42");
    assert_eq!(l.category.as_deref(), Some("Drinks"));
    assert_eq!(l.product_name.as_deref(), Some("Tea"));
    assert_eq!(l.currency.as_deref(), Some("EUR"));
    assert_eq!(l.customer_id, "77");
    // 00:30 UTC on the night Paris moves to summer time (02:00 → 03:00 at 01:00 UTC): +01:00.
    assert_eq!(
        l.timestamp,
        NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap()
    );
    assert_eq!(l.utc_offset_secs, Some(3600));
    let c = c.unwrap();
    assert_eq!(c.email.as_deref(), Some("ann@example.com"));
    assert_eq!(c.name.as_deref(), Some("Ann Lee"));
    assert_eq!(c.accepts_marketing, Some(true));

    let mut later = sample();
    later["processedAt"] = json!("2026-03-29T01:30:00Z");
    let (v, ..) = order(&later, tz, "e").unwrap();
    assert_eq!(v.lines[0].utc_offset_secs, Some(7200));
    assert_eq!(v.lines[0].timestamp.format("%H:%M").to_string(), "03:30");
}

#[test]
fn cancelled_walk_in_and_fully_refunded_orders_have_no_lines() {
    let tz = Tz::UTC;
    let mut o = sample();
    o["cancelledAt"] = json!("2026-03-30T09:00:00Z");
    let (v, _, gone) = order(&o, tz, "e").unwrap();
    assert!(v.lines.is_empty());
    assert_eq!(gone, Some(Gone::Cancelled));

    let mut o = sample();
    o["customer"] = Json::Null;
    let (v, c, gone) = order(&o, tz, "e").unwrap();
    assert!(c.is_none());
    assert_eq!(v.lines.len(), 1);
    assert_eq!(v.lines[0].customer_id, "");
    assert_eq!(gone, Some(Gone::NoCustomer));

    let mut o = sample();
    o["refunds"][0]["refundLineItems"]["nodes"][0]["quantity"] = json!(3);
    o["refunds"][0]["refundLineItems"]["nodes"][0]["subtotalSet"] = money("0.30");
    let (v, _, gone) = order(&o, tz, "e").unwrap();
    assert!(v.lines.is_empty());
    assert_eq!(gone, Some(Gone::FullyRefunded));
}

#[test]
fn malformed_fields_are_named() {
    let mut o = sample();
    o["lineItems"]["nodes"][0]["discountedTotalSet"] = money("12,30");
    let e = order(&o, Tz::UTC, "https://shop/admin/api/2025-07/graphql.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("LineItem.discountedTotalSet.shopMoney.amount") && e.contains("12,30"),
        "{e}"
    );
    assert!(
        e.contains("https://shop/admin/api/2025-07/graphql.json"),
        "{e}"
    );
    let mut o = sample();
    o["updatedAt"] = json!("yesterday");
    let e = order(&o, Tz::UTC, "x").unwrap_err().to_string();
    assert!(
        e.contains("Order.updatedAt") && e.contains("yesterday"),
        "{e}"
    );
    let mut o = sample();
    o["lineItems"]["nodes"][0]["quantity"] = json!("3");
    let e = order(&o, Tz::UTC, "x").unwrap_err().to_string();
    assert!(e.contains("LineItem.quantity"), "{e}");
}

#[test]
fn decimals_are_exact() {
    let a = Decimal::parse("0.1").unwrap() + Decimal::parse("0.2").unwrap();
    assert_eq!(a.to_f64(), 0.3);
    assert_eq!(Decimal::parse("-12.345").unwrap().to_f64(), -12.345);
    assert_eq!(
        (Decimal::parse("1500").unwrap() - Decimal::parse("0.01").unwrap()).to_f64(),
        1499.99
    );
    for bad in ["", "1,5", "1e3", "--1", ".", "abc"] {
        assert_eq!(Decimal::parse(bad), None, "{bad}");
    }
    assert_eq!(numeric_id("gid://shopify/Customer/123"), "123");
    assert_eq!(numeric_id("ann@example.com"), "ann@example.com");
}

#[test]
fn products_take_the_type_else_a_collection() {
    let p = json!({ "id": "gid://shopify/Product/3", "title": "Mug", "productType": "",
        "collections": [{ "id": "gid://shopify/Collection/1", "title": "Kitchen" }],
        "variants": [{ "id": "gid://shopify/ProductVariant/1", "price": "9.90", "inventoryQuantity": 4 },
                     { "id": "gid://shopify/ProductVariant/2", "price": "10.90", "inventoryQuantity": 1 }] });
    let r = product(&p, "e").unwrap();
    assert_eq!(r.product_id, "3");
    assert_eq!(r.category.as_deref(), Some("Kitchen"));
    assert_eq!((r.price, r.stock), (Some(9.9), Some(5)));
}
