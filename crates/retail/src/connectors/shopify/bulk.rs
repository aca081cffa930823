//! Bulk operations: the first full load.
//!
//! `bulkOperationRunQuery` starts the query; `node(id:)` is polled until the operation is
//! `COMPLETED` (or `FAILED`, `CANCELED`, `EXPIRED`); the result is a JSONL file at `url` (none
//! when nothing matched). Each line is one object; an object of a nested connection carries
//! `__parentId` and comes after its parent, so the nesting is rebuilt while streaming: a
//! top-level object is complete when the next top-level object starts.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::ShopifyError;
use super::client::Client;
use super::queries;

/// What a finished operation reported.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResult {
    pub id: String,
    /// When the operation started (RFC 3339): objects changed after it may be missing.
    pub created_at: Option<String>,
    pub object_count: u64,
}

/// Runs `query` as a bulk operation and hands each rebuilt top-level object to `each`.
pub fn run(
    client: &Client,
    query: &str,
    poll: Duration,
    timeout: Duration,
    mut each: impl FnMut(Json) -> Result<(), ShopifyError>,
) -> Result<BulkResult, ShopifyError> {
    let endpoint = client.endpoint().to_string();
    let bad = |field: &str, reason: &str| ShopifyError::Malformed {
        endpoint: endpoint.clone(),
        field: field.to_string(),
        reason: reason.to_string(),
    };
    let deadline = Instant::now() + timeout;
    // One bulk query runs at a time per app and shop (per API version, up to a few): when
    // another one runs (a catalog sync next to the orders), wait for it to end and start again.
    let started = loop {
        let started = client.graphql(
            "bulkOperationRunQuery",
            queries::BULK_RUN,
            json!({ "query": query }),
            10.0,
        )?;
        let errors: Vec<String> = started["bulkOperationRunQuery"]
            .get("userErrors")
            .and_then(Json::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|e| e.get("message").and_then(Json::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if errors.is_empty() {
            break started;
        }
        let busy = errors.iter().any(|e| e.contains("already in progress"));
        if !busy || Instant::now() > deadline {
            return Err(ShopifyError::GraphQl {
                endpoint: endpoint.clone(),
                what: "bulkOperationRunQuery".into(),
                message: errors.join("; "),
            });
        }
        loop {
            std::thread::sleep(poll);
            let current = client.graphql(
                "current bulk operation",
                queries::BULK_CURRENT,
                json!({}),
                1.0,
            )?;
            let status = current
                .pointer("/currentBulkOperation/status")
                .and_then(Json::as_str)
                .unwrap_or("COMPLETED");
            if !matches!(status, "CREATED" | "RUNNING" | "CANCELING") || Instant::now() > deadline {
                break;
            }
        }
    };
    let run = &started["bulkOperationRunQuery"];
    let id = run
        .pointer("/bulkOperation/id")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("bulkOperationRunQuery.bulkOperation.id", "is missing"))?
        .to_string();
    let op = loop {
        let data = client.graphql(
            "bulk operation status",
            queries::BULK_POLL,
            json!({ "id": id }),
            1.0,
        )?;
        let op = data.get("node").cloned().unwrap_or(Json::Null);
        if op.is_null() {
            return Err(bad(
                "node",
                &format!("is null: Shopify does not know the bulk operation {id}"),
            ));
        }
        let status = op
            .get("status")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("node.status", "is missing in the bulk operation status"))?;
        match status {
            "COMPLETED" => break op,
            "CREATED" | "RUNNING" | "CANCELING" => {}
            "FAILED" | "CANCELED" | "EXPIRED" => {
                return Err(ShopifyError::Bulk {
                    id,
                    status: status.to_string(),
                    error_code: op
                        .get("errorCode")
                        .and_then(Json::as_str)
                        .map(str::to_string),
                });
            }
            other => {
                return Err(bad(
                    "node.status",
                    &format!("`{other}` is not a bulk operation status"),
                ));
            }
        }
        if Instant::now() > deadline {
            return Err(ShopifyError::Bulk {
                id,
                status: format!("still {status} after {}s", timeout.as_secs()),
                error_code: None,
            });
        }
        std::thread::sleep(poll);
    };
    let object_count = match op.get("objectCount") {
        // UnsignedInt64 is serialized as a string.
        Some(Json::String(s)) => s
            .parse()
            .map_err(|_| bad("node.objectCount", "is not a count"))?,
        Some(Json::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    };
    if let Some(url) = op.get("url").and_then(Json::as_str) {
        let reader = client.download(url)?;
        let shown = url.split('?').next().unwrap_or("").to_string();
        rebuild(reader, &shown, &mut each)?;
    }
    Ok(BulkResult {
        id,
        created_at: op
            .get("createdAt")
            .and_then(Json::as_str)
            .map(str::to_string),
        object_count,
    })
}

/// The field a child object goes into, from its GID type.
fn child_key(child: &Json) -> &'static str {
    let kind = child
        .get("id")
        .and_then(Json::as_str)
        .and_then(|id| id.strip_prefix("gid://shopify/"))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    match kind {
        "LineItem" => "lineItems",
        "RefundLineItem" => "refundLineItems",
        "Refund" => "refunds",
        "Collection" => "collections",
        "ProductVariant" => "variants",
        "Customer" => "customers",
        _ => "children",
    }
}

/// Indexes the objects with an id inside `v` (inline lists such as `refunds`), so children
/// can name them as parent.
fn index_inline(v: &Json, ptr: String, index: &mut HashMap<String, String>) {
    match v {
        Json::Object(m) => {
            if let Some(id) = m.get("id").and_then(Json::as_str) {
                index.insert(id.to_string(), ptr.clone());
            }
            for (k, child) in m {
                if child.is_array() {
                    index_inline(child, format!("{ptr}/{k}"), index);
                }
            }
        }
        Json::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                index_inline(child, format!("{ptr}/{i}"), index);
            }
        }
        _ => {}
    }
}

/// Rebuilds the nesting of a bulk result and hands each top-level object to `each`.
pub fn rebuild(
    reader: impl BufRead,
    source: &str,
    each: &mut impl FnMut(Json) -> Result<(), ShopifyError>,
) -> Result<u64, ShopifyError> {
    let mut root: Option<Json> = None;
    // Ids of the current root's objects → their JSON pointer within it.
    let mut index: HashMap<String, String> = HashMap::new();
    let mut roots = 0u64;
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| ShopifyError::Transport {
            endpoint: source.to_string(),
            message: format!("reading line {}: {e}", n + 1),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |field: &str, reason: String| ShopifyError::Malformed {
            endpoint: source.to_string(),
            field: field.to_string(),
            reason: format!("{reason} (line {})", n + 1),
        };
        let mut obj: Json =
            serde_json::from_str(&line).map_err(|e| bad("line", format!("is not JSON: {e}")))?;
        let parent = match obj.as_object_mut() {
            Some(o) => o.remove("__parentId"),
            None => return Err(bad("line", "is not a JSON object".into())),
        };
        match parent {
            None => {
                if let Some(done) = root.take() {
                    each(done)?;
                }
                index.clear();
                index_inline(&obj, String::new(), &mut index);
                roots += 1;
                root = Some(obj);
            }
            Some(parent) => {
                let parent = parent.as_str().unwrap_or_default().to_string();
                let (Some(r), Some(ptr)) = (root.as_mut(), index.get(&parent).cloned()) else {
                    return Err(bad(
                        "__parentId",
                        format!(
                            "`{parent}` is not an object read before (children must follow their parent)"
                        ),
                    ));
                };
                let key = child_key(&obj);
                let id = obj.get("id").and_then(Json::as_str).map(str::to_string);
                let holder = r
                    .pointer_mut(&ptr)
                    .and_then(Json::as_object_mut)
                    .ok_or_else(|| bad("__parentId", format!("`{parent}` is not an object")))?;
                let list = holder.entry(key).or_insert_with(|| Json::Array(Vec::new()));
                if !list.is_array() {
                    // An inline connection of the same name gives way to the streamed children.
                    *list = Json::Array(Vec::new());
                }
                let list = list.as_array_mut().expect("an array");
                list.push(obj);
                if let Some(id) = id {
                    index.insert(id, format!("{ptr}/{key}/{}", list.len() - 1));
                }
            }
        }
    }
    if let Some(done) = root.take() {
        each(done)?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_put_back_under_their_parent_at_any_depth() {
        let jsonl = r##"{"id":"gid://shopify/Order/1","name":"#1001"}
{"id":"gid://shopify/LineItem/11","quantity":2,"__parentId":"gid://shopify/Order/1"}
{"id":"gid://shopify/Refund/5","__parentId":"gid://shopify/Order/1"}
{"id":"gid://shopify/RefundLineItem/51","quantity":1,"__parentId":"gid://shopify/Refund/5"}
{"id":"gid://shopify/LineItem/12","quantity":1,"__parentId":"gid://shopify/Order/1"}
{"id":"gid://shopify/Order/2","name":"#1002","refunds":[]}

{"id":"gid://shopify/LineItem/21","quantity":3,"__parentId":"gid://shopify/Order/2"}
"##;
        let mut out = Vec::new();
        let n = rebuild(jsonl.as_bytes(), "test", &mut |o| {
            out.push(o);
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(out[0]["lineItems"].as_array().unwrap().len(), 2);
        assert_eq!(out[0]["refunds"][0]["refundLineItems"][0]["quantity"], 1);
        assert_eq!(out[1]["lineItems"][0]["id"], "gid://shopify/LineItem/21");
        assert!(out[1].get("__parentId").is_none());
    }

    #[test]
    fn a_child_before_its_parent_is_a_clear_error() {
        let jsonl = r#"{"id":"gid://shopify/Order/1"}
{"id":"gid://shopify/LineItem/21","__parentId":"gid://shopify/Order/2"}
"#;
        let err = rebuild(jsonl.as_bytes(), "https://files/x.jsonl", &mut |_| Ok(())).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("__parentId") && msg.contains("line 2"),
            "{msg}"
        );
        let err = rebuild("{\"id\":1}\nnot json\n".as_bytes(), "f", &mut |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
    }
}
