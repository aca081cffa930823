//! From Shopify's objects to the POS model: an order becomes its sale lines, its customer a
//! [`Customer`], a product a catalog row.
//!
//! Choices:
//! - Ids: the numeric part of the GID (`gid://shopify/Customer/123` → `123`) for orders,
//!   customers and products, so the keys match the ids Shopify's admin and exports show; the
//!   push turns a numeric customer id back into its GID.
//! - Refunds reduce the line they refund: quantity minus the refunded units, amount minus the
//!   refunded subtotal (`refundLineItems`), rather than adding negative lines. The history holds
//!   one line per line item with its net effect, and an order whose every unit was refunded has
//!   no lines left. Units removed by an order edit without a refund (`currentQuantity` below
//!   the net quantity) reduce the line the same way, pro rata.
//! - A cancelled order (`cancelledAt` set) has no lines: it leaves the history.
//! - An order without a customer is a walk-in sale: its lines have an empty customer id, so
//!   the history counts them and does not keep them.
//! - Money: `*Set { shopMoney { amount currencyCode } }`, the shop's currency; the decimal
//!   strings are summed exactly (as integers of their smallest digit) before becoming `f64`.
//! - Time: `processedAt` (when the sale happened; `createdAt` if absent), converted to the
//!   shop's wall clock in `shop { ianaTimezone }` with its UTC offset.

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value as Json;

use super::ShopifyError;
use crate::pos::{Customer, LineItem};

pub use crate::connectors::{OrderVersion, ProductRow};

/// Why an order has no lines, or (`NoCustomer`) lines without a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    Cancelled,
    /// A walk-in sale: its lines have an empty customer id, and the history does not keep them.
    NoCustomer,
    FullyRefunded,
}

/// An exact decimal: `units / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decimal {
    units: i128,
    scale: u32,
}

impl Decimal {
    /// Parses Shopify's decimal strings (`"12.30"`, `"-0.5"`, `"3"`).
    pub fn parse(s: &str) -> Option<Decimal> {
        let s = s.trim();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if (int.is_empty() && frac.is_empty())
            || frac.len() > 12
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut units: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            units = units.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        Some(Decimal {
            units: if neg { -units } else { units },
            scale: frac.len() as u32,
        })
    }

    fn rescale(self, scale: u32) -> i128 {
        self.units * 10i128.pow(scale - self.scale)
    }

    pub fn to_f64(self) -> f64 {
        // Through the decimal text, so 0.1 + 0.2 is the f64 nearest 0.3.
        let sign = if self.units < 0 { "-" } else { "" };
        let abs = self.units.unsigned_abs();
        let p = 10u128.pow(self.scale);
        format!(
            "{sign}{}.{:0width$}",
            abs / p,
            abs % p,
            width = self.scale as usize
        )
        .parse()
        .unwrap_or(0.0)
    }
}

impl std::ops::Add for Decimal {
    type Output = Decimal;
    fn add(self, other: Decimal) -> Decimal {
        let scale = self.scale.max(other.scale);
        Decimal {
            units: self.rescale(scale) + other.rescale(scale),
            scale,
        }
    }
}

impl std::ops::Sub for Decimal {
    type Output = Decimal;
    fn sub(self, other: Decimal) -> Decimal {
        self + Decimal {
            units: -other.units,
            scale: other.scale,
        }
    }
}

/// The numeric id of a GID (`gid://shopify/Order/42` → `42`); other strings as they are.
pub fn numeric_id(gid: &str) -> &str {
    gid.rsplit_once('/')
        .map_or(gid, |(_, id)| id.split('?').next().unwrap_or(id))
}

/// Reads fields of one object, naming the object kind and field in errors.
struct Fields<'a> {
    endpoint: &'a str,
    kind: &'static str,
    id: String,
}

impl Fields<'_> {
    fn bad(&self, field: &str, reason: impl Into<String>) -> ShopifyError {
        ShopifyError::Malformed {
            endpoint: self.endpoint.to_string(),
            field: format!("{}.{field}", self.kind),
            reason: format!("{} (in {} {})", reason.into(), self.kind, self.id),
        }
    }

    fn str<'v>(&self, v: &'v Json, field: &str) -> Result<&'v str, ShopifyError> {
        match v.get(field) {
            Some(Json::String(s)) => Ok(s),
            Some(Json::Null) | None => Err(self.bad(field, "is missing")),
            Some(other) => Err(self.bad(field, format!("is not a string: {other}"))),
        }
    }

    fn opt_str<'v>(&self, v: &'v Json, field: &str) -> Result<Option<&'v str>, ShopifyError> {
        match v.get(field) {
            Some(Json::String(s)) => Ok(Some(s)),
            Some(Json::Null) | None => Ok(None),
            Some(other) => Err(self.bad(field, format!("is not a string: {other}"))),
        }
    }

    fn time(&self, v: &Json, field: &str) -> Result<DateTime<Utc>, ShopifyError> {
        let s = self.str(v, field)?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| self.bad(field, format!("`{s}` is not an ISO 8601 time ({e})")))
    }

    fn int(&self, v: &Json, field: &str) -> Result<i64, ShopifyError> {
        match v.get(field) {
            Some(Json::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or(0)),
            Some(Json::Null) | None => Err(self.bad(field, "is missing")),
            Some(other) => Err(self.bad(field, format!("is not an integer: {other}"))),
        }
    }

    /// `field { shopMoney { amount currencyCode } }`.
    fn money(&self, v: &Json, field: &str) -> Result<(Decimal, Option<String>), ShopifyError> {
        let Some(m) = v.get(field).and_then(|m| m.get("shopMoney")) else {
            return Err(self.bad(&format!("{field}.shopMoney"), "is missing"));
        };
        let amount = match m.get("amount") {
            Some(Json::String(s)) => Decimal::parse(s).ok_or_else(|| {
                self.bad(
                    &format!("{field}.shopMoney.amount"),
                    format!("`{s}` is not a decimal"),
                )
            })?,
            // A number is tolerated, through its decimal text.
            Some(Json::Number(n)) => Decimal::parse(&n.to_string()).ok_or_else(|| {
                self.bad(
                    &format!("{field}.shopMoney.amount"),
                    format!("`{n}` is not a decimal"),
                )
            })?,
            _ => return Err(self.bad(&format!("{field}.shopMoney.amount"), "is missing")),
        };
        let currency = m
            .get("currencyCode")
            .and_then(Json::as_str)
            .map(str::to_string);
        Ok((amount, currency))
    }
}

/// A connection's items: `[..]`, `{nodes: [..]}` or `{edges: [{node}]}`; absent is empty.
pub fn items(v: Option<&Json>) -> Vec<&Json> {
    match v {
        Some(Json::Array(a)) => a.iter().collect(),
        Some(Json::Object(o)) => {
            if let Some(Json::Array(n)) = o.get("nodes") {
                n.iter().collect()
            } else if let Some(Json::Array(e)) = o.get("edges") {
                e.iter().filter_map(|e| e.get("node")).collect()
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

/// The shop's wall clock for a UTC time, with its offset.
pub fn local(t: DateTime<Utc>, tz: Tz) -> (chrono::NaiveDateTime, i32) {
    let l = tz.from_utc_datetime(&t.naive_utc());
    (l.naive_local(), l.offset().fix().local_minus_utc())
}

/// One order: its lines, its customer, and why it has no lines if it has none.
pub fn order(
    o: &Json,
    tz: Tz,
    endpoint: &str,
) -> Result<(OrderVersion, Option<Customer>, Option<Gone>), ShopifyError> {
    let mut f = Fields {
        endpoint,
        kind: "Order",
        id: String::from("?"),
    };
    let gid = f.str(o, "id")?;
    f.id = gid.to_string();
    let order_id = numeric_id(gid).to_string();
    let updated = f.time(o, "updatedAt")?;
    let mut version = OrderVersion {
        order_id: order_id.clone(),
        updated_at: updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        lines: Vec::new(),
    };
    let customer = match o.get("customer") {
        Some(c) if c.is_object() => Some(customer(c, endpoint)?),
        _ => None,
    };
    if f.opt_str(o, "cancelledAt")?.is_some() {
        return Ok((version, customer, Some(Gone::Cancelled)));
    }
    let customer_id = customer
        .as_ref()
        .map(|c| c.customer_id.clone())
        .unwrap_or_default();
    let when = if o.get("processedAt").is_some_and(|v| !v.is_null()) {
        f.time(o, "processedAt")?
    } else {
        f.time(o, "createdAt")?
    };
    let (timestamp, offset) = local(when, tz);

    // Refunded units and subtotals per line item.
    let mut refunded: std::collections::HashMap<String, (i64, Decimal)> = Default::default();
    for refund in items(o.get("refunds")) {
        for r in items(refund.get("refundLineItems")) {
            let rf = Fields {
                endpoint,
                kind: "RefundLineItem",
                id: f.id.clone(),
            };
            let line = r
                .get("lineItem")
                .and_then(|l| l.get("id"))
                .and_then(Json::as_str)
                .ok_or_else(|| rf.bad("lineItem.id", "is missing"))?;
            let qty = rf.int(r, "quantity")?;
            let (sub, _) = rf.money(r, "subtotalSet")?;
            let e = refunded.entry(line.to_string()).or_default();
            e.0 += qty;
            e.1 = e.1 + sub;
        }
    }

    for (n, li) in items(o.get("lineItems")).into_iter().enumerate() {
        let lf = Fields {
            endpoint,
            kind: "LineItem",
            id: li
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or(&f.id)
                .to_string(),
        };
        let ordered = lf.int(li, "quantity")?;
        let (unit, currency) = lf.money(li, "originalUnitPriceSet")?;
        let (total, _) = lf.money(li, "discountedTotalSet")?;
        let (ref_qty, ref_amount) = li
            .get("id")
            .and_then(Json::as_str)
            .and_then(|id| refunded.get(id))
            .copied()
            .unwrap_or_default();
        let mut quantity = (ordered - ref_qty).max(0);
        let mut amount = (total - ref_amount).to_f64();
        if let Some(current) = li.get("currentQuantity").and_then(Json::as_i64)
            && current < quantity
        {
            // Removed by an order edit without a refund: the line shrinks pro rata.
            amount = if quantity > 0 {
                amount * current.max(0) as f64 / quantity as f64
            } else {
                0.0
            };
            quantity = current.max(0);
        }
        if quantity == 0 {
            continue;
        }
        let product = li.get("product").filter(|p| p.is_object());
        let product_id = product
            .and_then(|p| p.get("id"))
            .and_then(Json::as_str)
            .map(|id| numeric_id(id).to_string())
            .or_else(|| {
                lf.opt_str(li, "sku")
                    .ok()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .or_else(|| {
                li.get("variant")
                    .and_then(|v| v.get("id"))
                    .and_then(Json::as_str)
                    .map(|id| numeric_id(id).to_string())
            })
            .or_else(|| lf.opt_str(li, "name").ok().flatten().map(str::to_string))
            .ok_or_else(|| lf.bad("product", "is missing, and so are sku, variant and name"))?;
        let category = product
            .and_then(|p| p.get("productType"))
            .and_then(Json::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_string);
        let name = lf
            .opt_str(li, "title")?
            .or(lf.opt_str(li, "name")?)
            .map(str::to_string);
        version.lines.push(LineItem {
            line: n as u64 + 1,
            order_id: order_id.clone(),
            customer_id: customer_id.clone(),
            timestamp,
            utc_offset_secs: Some(offset),
            product_id,
            product_name: name,
            category,
            quantity: quantity as f64,
            unit_price: Some(unit.to_f64()),
            amount,
            currency,
        });
    }
    let gone = if version.lines.is_empty() {
        Some(Gone::FullyRefunded)
    } else if customer.is_none() {
        Some(Gone::NoCustomer)
    } else {
        None
    };
    Ok((version, customer, gone))
}

/// A customer: numeric id, lowercased email, name, and whether they subscribed to email
/// marketing (`emailMarketingConsent.marketingState` = `SUBSCRIBED`; unknown without consent).
pub fn customer(c: &Json, endpoint: &str) -> Result<Customer, ShopifyError> {
    let mut f = Fields {
        endpoint,
        kind: "Customer",
        id: "?".into(),
    };
    let gid = f.str(c, "id")?;
    f.id = gid.to_string();
    let name = match (
        f.opt_str(c, "firstName")?.filter(|s| !s.is_empty()),
        f.opt_str(c, "lastName")?.filter(|s| !s.is_empty()),
    ) {
        (Some(a), Some(b)) => Some(format!("{a} {b}")),
        (Some(a), None) | (None, Some(a)) => Some(a.to_string()),
        (None, None) => f.opt_str(c, "displayName")?.map(str::to_string),
    };
    let accepts_marketing = c
        .get("emailMarketingConsent")
        .filter(|v| v.is_object())
        .and_then(|v| v.get("marketingState"))
        .and_then(Json::as_str)
        .map(|s| s == "SUBSCRIBED");
    Ok(Customer {
        customer_id: numeric_id(gid).to_string(),
        email: f
            .opt_str(c, "email")?
            .filter(|e| !e.is_empty())
            .map(str::to_lowercase),
        name,
        accepts_marketing,
    })
}

/// A product: category from `productType`, else its first collection's title; price of its
/// first variant; stock summed over the variants (unknown if one is untracked).
pub fn product(p: &Json, endpoint: &str) -> Result<ProductRow, ShopifyError> {
    let mut f = Fields {
        endpoint,
        kind: "Product",
        id: "?".into(),
    };
    let gid = f.str(p, "id")?;
    f.id = gid.to_string();
    let category = f
        .opt_str(p, "productType")?
        .filter(|t| !t.trim().is_empty())
        .map(str::to_string)
        .or_else(|| {
            items(p.get("collections"))
                .first()
                .and_then(|c| c.get("title"))
                .and_then(Json::as_str)
                .map(str::to_string)
        });
    let variants = items(p.get("variants"));
    let vf = Fields {
        endpoint,
        kind: "ProductVariant",
        id: f.id.clone(),
    };
    let price = match variants.first().and_then(|v| v.get("price")) {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(
            Decimal::parse(s)
                .ok_or_else(|| vf.bad("price", format!("`{s}` is not a decimal")))?
                .to_f64(),
        ),
        Some(Json::Number(n)) => n.as_f64(),
        Some(other) => return Err(vf.bad("price", format!("is not a decimal: {other}"))),
    };
    let stock = if variants.is_empty() {
        None
    } else {
        variants
            .iter()
            .map(|v| v.get("inventoryQuantity").and_then(Json::as_i64))
            .sum::<Option<i64>>()
    };
    Ok(ProductRow {
        product_id: numeric_id(gid).to_string(),
        name: f.opt_str(p, "title")?.map(str::to_string),
        category,
        price,
        stock,
    })
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
