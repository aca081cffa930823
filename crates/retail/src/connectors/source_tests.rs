use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use chrono::NaiveDate;
use serde_json::{Value as Json, json};

use super::*;
use crate::pos::{Customer, LineItem};

/// A POS in memory: orders with an update counter; pulls return what changed after the
/// cursor (the counter), or fail after handing over some orders when told to.
#[derive(Default)]
struct FakePos {
    orders: Mutex<Vec<(u64, OrderVersion)>>,
    customers: Mutex<Vec<Customer>>,
    clock: Mutex<u64>,
    fail_after: Mutex<Option<usize>>,
    pulls: Mutex<Vec<Option<Json>>>,
}

fn line(order: &str, customer: &str, product: &str, amount: f64) -> LineItem {
    LineItem {
        order_id: order.into(),
        customer_id: customer.into(),
        timestamp: NaiveDate::from_ymd_opt(2026, 11, 30)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap(),
        utc_offset_secs: Some(3600),
        product_id: product.into(),
        quantity: 1.0,
        amount,
        ..LineItem::default()
    }
}

impl FakePos {
    fn put(&self, order: &str, lines: Vec<LineItem>) {
        let mut clock = self.clock.lock().unwrap();
        *clock += 1;
        let mut orders = self.orders.lock().unwrap();
        orders.retain(|(_, o)| o.order_id != order);
        orders.push((
            *clock,
            OrderVersion {
                order_id: order.into(),
                updated_at: format!("t{clock}"),
                lines,
            },
        ));
    }
}

impl Connector for FakePos {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn pull(&self, cursor: Option<&Json>, sink: &mut Sink<'_>) -> Result<Json, ConnectorError> {
        self.pulls.lock().unwrap().push(cursor.cloned());
        let after = cursor.and_then(Json::as_u64).unwrap_or(0);
        let fail_after = *self.fail_after.lock().unwrap();
        let mut newest = after;
        for (i, (at, order)) in self
            .orders
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at > after)
            .enumerate()
        {
            if fail_after == Some(i) {
                return Err(ConnectorError::Transport {
                    endpoint: "fake".into(),
                    reason: "connection reset".into(),
                });
            }
            sink.request();
            sink.order(order.clone())?;
            newest = newest.max(*at);
        }
        for c in self.customers.lock().unwrap().iter() {
            sink.customer(c.clone(), "t0")?;
        }
        Ok(json!(newest))
    }
}

fn amounts(synced: &Synced) -> Vec<(String, String, f64)> {
    let out = synced.transactions().unwrap();
    let t = table(&out);
    let c = crate::segmentation::text_column(t, "customer_id")
        .unwrap()
        .unwrap();
    let o = t.column_by_name("order_id").unwrap().as_string::<i32>();
    let a = t
        .column_by_name("amount")
        .unwrap()
        .as_primitive::<Float64Type>();
    let mut v: Vec<_> = (0..t.num_rows())
        .map(|i| {
            let c = c.get(i).unwrap();
            (c.to_string(), o.value(i).to_string(), a.value(i))
        })
        .collect();
    v.sort_by(|x, y| x.partial_cmp(y).unwrap());
    v
}

fn table(out: &flow_engine::data::Output) -> &arrow_array::RecordBatch {
    match &out.body {
        flow_engine::data::Body::Data(d) => d.as_table().unwrap(),
        _ => panic!("not a table"),
    }
}

fn run(
    ctx: &flow_engine::node::NodeContext,
    pos: &Arc<FakePos>,
    full: bool,
) -> Result<Synced, NodeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(sync(ctx, pos.clone(), full))
}

#[test]
fn the_first_sync_loads_everything_later_ones_only_the_changes() {
    let store = tempfile::tempdir().unwrap();
    let ctx = flow_engine::testing::context().with_store_dir(store.path());
    let pos = Arc::new(FakePos::default());
    pos.put(
        "o1",
        vec![line("o1", "c1", "p1", 10.0), line("o1", "c1", "p2", 5.0)],
    );
    pos.put("o2", vec![line("o2", "c2", "p1", 7.0)]);
    pos.put("o3", vec![line("o3", "", "p1", 1.0)]); // walk-in
    *pos.customers.lock().unwrap() = vec![Customer {
        customer_id: "c1".into(),
        email: Some("ann@example.com".into()),
        name: Some("Ann".into()),
        accepts_marketing: Some(true),
    }];

    let day1 = run(&ctx, &pos, false).unwrap();
    assert!(day1.report.full);
    assert_eq!(day1.report.fetched.requests, 3);
    assert_eq!(day1.report.fetched.walk_in_lines, 1);
    assert_eq!(day1.report.orders_held, 2);
    assert_eq!(
        amounts(&day1),
        vec![
            ("c1".into(), "o1".into(), 5.0),
            ("c1".into(), "o1".into(), 10.0),
            ("c2".into(), "o2".into(), 7.0)
        ]
    );
    let out = day1.transactions().unwrap();
    let t = table(&out);
    let email = crate::segmentation::text_column(t, "email")
        .unwrap()
        .unwrap();
    assert_eq!(email.get(0), Some("ann@example.com"));

    // Day 2: o1 refunded one line, o2 cancelled, o4 new.
    pos.put("o1", vec![line("o1", "c1", "p1", 10.0)]);
    pos.put("o2", vec![]);
    pos.put("o4", vec![line("o4", "c2", "p3", 3.0)]);
    let day2 = run(&ctx, &pos, false).unwrap();
    assert!(!day2.report.full);
    assert_eq!(day2.report.fetched.requests, 3, "only the three changes");
    assert_eq!(day2.report.fetched.removed, 1);
    assert_eq!(pos.pulls.lock().unwrap()[1], Some(json!(3)));
    assert_eq!(
        amounts(&day2),
        vec![
            ("c1".into(), "o1".into(), 10.0),
            ("c2".into(), "o4".into(), 3.0)
        ]
    );
    let meta = &day2.transactions().unwrap().meta;
    assert_eq!(meta["sync"]["orders_held"], 2);
    assert_eq!(meta["sync"]["cursor"], 6);

    // `full_sync` loads everything again and replaces the history.
    let full = run(&ctx, &pos, true).unwrap();
    assert!(full.report.full);
    assert_eq!(pos.pulls.lock().unwrap()[2], None);
    assert_eq!(amounts(&full), amounts(&day2));
}

#[test]
fn a_sync_that_fails_midway_keeps_the_history_and_cursor_and_the_retry_gets_everything() {
    let store = tempfile::tempdir().unwrap();
    let ctx = flow_engine::testing::context().with_store_dir(store.path());
    let pos = Arc::new(FakePos::default());
    pos.put("o1", vec![line("o1", "c1", "p1", 10.0)]);
    run(&ctx, &pos, false).unwrap();

    pos.put("o2", vec![line("o2", "c2", "p1", 7.0)]);
    pos.put("o3", vec![line("o3", "c3", "p1", 8.0)]);
    pos.put("o1", vec![line("o1", "c1", "p1", 4.0)]);
    *pos.fail_after.lock().unwrap() = Some(2);
    let err = run(&ctx, &pos, false).err().unwrap();
    assert!(err.to_string().contains("connection reset"), "{err}");
    let place = ctx.history_place(HISTORY).unwrap();
    let status = flow_engine::sync::status(&*place).unwrap().unwrap();
    assert_eq!(status.cursor, Some(json!(1)), "the cursor did not move");
    assert_eq!(status.tables["lines"].keys, 1);

    *pos.fail_after.lock().unwrap() = None;
    let retry = run(&ctx, &pos, false).unwrap();
    assert_eq!(pos.pulls.lock().unwrap()[2], Some(json!(1)));
    assert_eq!(
        amounts(&retry),
        vec![
            ("c1".into(), "o1".into(), 4.0),
            ("c2".into(), "o2".into(), 7.0),
            ("c3".into(), "o3".into(), 8.0)
        ]
    );
}

#[test]
fn an_empty_history_is_a_clear_error_and_a_store_without_histories_too() {
    let store = tempfile::tempdir().unwrap();
    let ctx = flow_engine::testing::context().with_store_dir(store.path());
    let pos = Arc::new(FakePos::default());
    let synced = run(&ctx, &pos, false).unwrap();
    let err = synced.transactions().unwrap_err().to_string();
    assert!(err.contains("holds no orders"), "{err}");
    assert_eq!(synced.catalog().unwrap().rows(), 0);

    let err = run(&flow_engine::testing::context(), &pos, false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("keeps no histories"), "{err}");
}
