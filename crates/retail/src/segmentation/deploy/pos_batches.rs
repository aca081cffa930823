//! The POS update batches built from the profiles and the recommendations.

use super::*;

/// The POS update batches: one item per customer (profiles and customers with only
/// recommendations), sorted by customer id.
pub(super) fn pos_batches(
    ctx: &NodeContext,
    camp: &RecordBatch,
    recs: &RecordBatch,
    profiles: &[(usize, ProfileRow)],
    batch_size: usize,
) -> Result<Vec<Vec<u8>>, NodeError> {
    let mut items: BTreeMap<String, serde_json::Map<String, Json>> = BTreeMap::new();
    let ids = text(camp, "customer_id");
    for (i, _) in profiles {
        let i = *i;
        let mut item = serde_json::Map::new();
        for (name, dt) in &CAMPAIGN_COLUMNS {
            if matches!(
                *name,
                "subject"
                    | "body_html"
                    | "sender"
                    | "channel"
                    | "skip_reason"
                    | "send"
                    | "eligible"
            ) {
                continue;
            }
            let col = camp.column_by_name(name).expect("normalized");
            let v = if col.is_null(i) {
                Json::Null
            } else {
                match dt {
                    DataType::Utf8 => Json::from(col.as_string::<i32>().value(i)),
                    DataType::Int64 => Json::from(col.as_primitive::<Int64Type>().value(i)),
                    DataType::Float64 => {
                        let v = col.as_primitive::<Float64Type>().value(i);
                        serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
                    }
                    DataType::Boolean => Json::from(col.as_boolean().value(i)),
                    _ => Json::Null,
                }
            };
            item.insert((*name).to_string(), v);
        }
        item.insert(
            "message_sent".into(),
            Json::from(bools(camp, "send").is_valid(i) && bools(camp, "send").value(i)),
        );
        item.insert("recommendations".into(), Json::Array(Vec::new()));
        items.insert(ids.value(i).to_string(), item);
    }
    let (rid, rseg) = (any_text(recs, "customer_id")?, any_text(recs, "segment")?);
    let (rank, score) = (ints(recs, "rank"), floats(recs, "score"));
    let (pid, pname, cat, reason) = (
        any_text(recs, "product_id")?,
        any_text(recs, "product_name")?,
        any_text(recs, "category")?,
        any_text(recs, "reason")?,
    );
    for i in 0..recs.num_rows() {
        let Some(id) = rid.get(i) else { continue };
        let item = items.entry(id.to_string()).or_insert_with(|| {
            let mut m = serde_json::Map::new();
            m.insert("customer_id".into(), Json::from(id));
            m.insert("segment".into(), json!(rseg.get(i)));
            m.insert("recommendations".into(), Json::Array(Vec::new()));
            m
        });
        if let Some(Json::Array(list)) = item.get_mut("recommendations") {
            list.push(json!({
                "rank": opt_i64(rank, i),
                "product_id": pid.get(i),
                "product_name": pname.get(i),
                "category": cat.get(i),
                "score": opt_f64(score, i),
                "reason": reason.get(i),
            }));
        }
    }
    for item in items.values_mut() {
        if let Some(Json::Array(list)) = item.get_mut("recommendations") {
            list.sort_by_key(|r| r["rank"].as_i64().unwrap_or(i64::MAX));
        }
    }
    let items: Vec<Json> = items.into_values().map(Json::Object).collect();
    let total = items.len().div_ceil(batch_size);
    items
        .chunks(batch_size)
        .enumerate()
        .map(|(n, chunk)| {
            serde_json::to_vec(&json!({
                "run_id": ctx.run_id,
                "batch": n + 1,
                "batches": total,
                "customers": chunk,
            }))
            .map_err(|e| NodeError::msg(format!("POS batch: {e}")))
        })
        .collect()
}
