//! Deploy tests: files in a temporary directory, transitions across runs sharing state, and the
//! POS endpoint against a local server (127.0.0.1 only) that fails midway.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use serde_json::{Value as Json, json};

use super::*;
use flow_engine::data::{Body, Data};
use untrusted::{decode_words, mailbox_of, parse_eml};

mod outcomes;
mod pos;
mod scale;
mod smtp;
mod square;
mod untrusted;
use flow_engine::node::Input;

/// Contexts for the runs of one workflow's `deploy` node: they share the effect ledger and the
/// node state (clones of a context share them), as the runs of one workflow share a store.
struct Stores(NodeContext);

impl Stores {
    fn new() -> Self {
        Stores(
            flow_engine::testing::context()
                .with_node_id("deploy")
                .with_workflow_dir("/work/shop")
                .with_workflow_path("/work/shop/segmentation.yaml")
                .with_trigger(json!({ "time": "2024-04-01T06:00:00+02:00" })),
        )
    }

    fn ctx(&self, run_id: &str) -> NodeContext {
        NodeContext {
            run_id: run_id.into(),
            run_cache: flow_engine::run_cache::RunCache::new(),
            ..self.0.clone()
        }
    }
}

/// (customer, segment, email, name, send, clv, total_spend, orders, p_purchase)
type Row<'a> = (&'a str, &'a str, &'a str, &'a str, bool, f64, f64, i64, f64);

fn campaign_table(rows: &[Row<'static>]) -> RecordBatch {
    let s = |f: fn(&Row<'static>) -> &'static str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let f = |f: fn(&Row<'static>) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    };
    let sent: Vec<bool> = rows.iter().map(|r| r.4).collect();
    RecordBatch::try_from_iter(vec![
        ("customer_id", s(|r| r.0)),
        ("segment", s(|r| r.1)),
        ("email", s(|r| r.2)),
        ("customer_name", s(|r| r.3)),
        ("clv", f(|r| r.5)),
        ("total_spend", f(|r| r.6)),
        (
            "orders",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.7))),
        ),
        ("p_purchase", f(|r| r.8)),
        ("recommended_action", s(|_| "Say hello")),
        ("offer", s(|_| "10% off")),
        ("send", Arc::new(BooleanArray::from(sent.clone()))),
        (
            "skip_reason",
            Arc::new(StringArray::from(
                sent.iter()
                    .map(|s| (!s).then_some("no marketing consent"))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "subject",
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.4.then(|| format!("Café treats for {}", r.3)))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "body_html",
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| {
                        r.4.then(|| format!("<p>Hi {} &amp; welcome = yes</p>", r.3))
                    })
                    .collect::<Vec<_>>(),
            )),
        ),
        ("sender", s(|_| "Corner Shop <shop@example.com>")),
    ])
    .unwrap()
}

fn recommendation_table(rows: &[(&str, &str, i64, &str)]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        (
            "customer_id",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
        ),
        (
            "segment",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ),
        (
            "rank",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ),
        (
            "product_id",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
        ),
        (
            "product_name",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
        ),
        (
            "category",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "food"))),
        ),
        (
            "score",
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.2 as f64),
            )),
        ),
        (
            "reason",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|_| "bestseller in food"),
            )),
        ),
        (
            "strategy",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|_| "bestsellers"),
            )),
        ),
    ])
    .unwrap()
}

fn inputs(tables: Vec<(&str, RecordBatch)>) -> Inputs {
    Inputs(
        tables
            .into_iter()
            .map(|(from, t)| Input {
                from: from.into(),
                case: None,
                // The role each test input fills, from the name the test gives it.
                role: match from {
                    "c" => Some("campaign".into()),
                    "r" => Some("recommendations".into()),
                    f if f.starts_with("campaign") => Some("campaign".into()),
                    f if f.starts_with("rec") => Some("recommendations".into()),
                    _ => None,
                },
                data: Data::Table(t),
                meta: Default::default(),
            })
            .collect(),
    )
}

fn first_run_inputs() -> Inputs {
    inputs(vec![
        (
            "campaign_vip",
            campaign_table(&[
                (
                    "C1",
                    "vip",
                    "ada@example.com",
                    "Ada Lovelace",
                    true,
                    500.0,
                    900.0,
                    6,
                    0.8,
                ),
                (
                    "C2",
                    "vip",
                    "bob@example.com",
                    "Bob",
                    false,
                    300.0,
                    400.0,
                    4,
                    0.6,
                ),
            ]),
        ),
        (
            "rec_vip",
            recommendation_table(&[
                ("C1", "vip", 1, "P1"),
                ("C1", "vip", 2, "P2"),
                ("C2", "vip", 1, "P3"),
            ]),
        ),
        (
            "campaign_at_risk",
            campaign_table(&[(
                "C3",
                "at_risk",
                "cy@example.com",
                "Zoë",
                true,
                100.0,
                100.0,
                1,
                0.2,
            )]),
        ),
    ])
}

fn configure(yaml: &str) -> Result<Arc<dyn Node>, Vec<ParamError>> {
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    let params = Params::new(value.as_object().unwrap().clone(), "/");
    let cx = ConfigureCx {
        node_id: "deploy",
        kind: NodeKind::Output,
        workflow_dir: Path::new("/"),
        input_columns: &[],
    };
    Deploy.configure(&params, &cx)
}

fn run(node: &Arc<dyn Node>, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(node.run(ctx, inputs))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn csv_header_and_rows(path: &Path) -> (String, usize) {
    let text = read(path);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("").to_string();
    (header, lines.count())
}

fn qp_decode(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn json_out(out: &Output) -> &Json {
    match &out.body {
        Body::Data(Data::Json(v)) => v,
        _ => panic!("not JSON"),
    }
}

#[test]
fn writes_profiles_recommendations_messages_summary_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out/2024-04-01");
    let node = configure(&format!("out_dir: {}\n", out_dir.display())).unwrap();
    let stores = Stores::new();
    let out = run(&node, stores.ctx("r1"), first_run_inputs()).unwrap();

    let (header, rows) = csv_header_and_rows(&out_dir.join("segments.csv"));
    let expected: Vec<&str> = PROFILE_COLUMNS.iter().map(|c| c.0).collect();
    assert_eq!(header, expected.join(","));
    assert_eq!(rows, 3);
    let (header, rows) = csv_header_and_rows(&out_dir.join("recommendations.csv"));
    assert_eq!(
        header,
        "customer_id,segment,rank,product_id,product_name,category,score,reason,strategy"
    );
    assert_eq!(rows, 3);

    // One .eml per message sent; none for Bob (no consent).
    let eml_path = out_dir.join("messages/vip/C1.eml");
    assert!(!out_dir.join("messages/vip/C2.eml").exists());
    let text = read(&eml_path);
    let eml = parse_eml(&text);
    assert_eq!(eml.one("From"), "\"Corner Shop\" <shop@example.com>");
    assert_eq!(eml.one("To"), "\"Ada Lovelace\" <ada@example.com>");
    assert_eq!(
        decode_words(eml.one("Subject")),
        "Café treats for Ada Lovelace"
    );
    assert!(eml.one("Subject").starts_with("=?utf-8?b?"), "encoded word");
    assert_eq!(eml.one("Date"), "Mon, 01 Apr 2024 04:00:00 +0000");
    assert_eq!(
        eml.one("Message-ID"),
        "<r1/deploy/message/vip/C1@example.com>"
    );
    assert_eq!(eml.one("MIME-Version"), "1.0");
    assert!(
        eml.one("Content-Type")
            .starts_with("multipart/alternative; boundary="),
        "{}",
        eml.one("Content-Type")
    );
    assert_eq!(eml.one("X-Flow-Segment"), "vip");
    assert_eq!(
        eml.body.trim_end(),
        "<p>Hi Ada Lovelace &amp; welcome = yes</p>"
    );
    // The plain-text alternative: tags stripped, entities decoded.
    assert_eq!(eml.text.trim_end(), "Hi Ada Lovelace & welcome = yes");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert!(body.lines().all(|l| l.len() <= 76));
    // A non-ASCII display name is an encoded word.
    let zoe = parse_eml(&read(&out_dir.join("messages/at_risk/C3.eml")));
    assert!(zoe.one("To").starts_with("=?utf-8?b?"), "{}", zoe.one("To"));
    assert_eq!(
        mailbox_of(zoe.one("To")),
        ("Zoë".to_string(), "cy@example.com".to_string())
    );

    let summary: Json = serde_json::from_str(&read(&out_dir.join("summary.json"))).unwrap();
    assert_eq!(summary["totals"]["customers"], 3);
    assert_eq!(summary["totals"]["messages_sent"], 2);
    assert_eq!(summary["totals"]["revenue"], 1400.0);
    assert_eq!(summary["totals"]["recommendations"], 3);
    assert_eq!(summary["segments"][0]["segment"], "vip");
    assert_eq!(summary["segments"][0]["customers"], 2);
    assert_eq!(summary["segments"][0]["avg_order_value"], 130.0); // 1300 / 10 orders
    assert_eq!(summary["segments"][0]["mean_clv"], 400.0);
    assert_eq!(summary["segments"][0]["predicted_conversion"], 0.7);
    assert_eq!(summary["segments"][1]["segment"], "at_risk");
    assert_eq!(summary["messages_skipped"]["no marketing consent"], 1);
    assert!(summary["changes"].is_null());

    let report = read(&out_dir.join("report.html"));
    assert!(report.starts_with("<!DOCTYPE html>"));
    assert!(
        report.contains("<td>Vip<span class=\"code\">vip</span></td>"),
        "a table row per segment, under its label (humanised without one)"
    );
    assert!(report.contains("class=\"bar\""), "bar charts");
    assert!(report.contains("first run"));
    assert!(
        !report.contains("<script") && !report.contains("src=\"http"),
        "self-contained"
    );

    assert_eq!(out.meta["customers"], 3);
    assert_eq!(out.meta["messages_sent"], 2);
    assert_eq!(out.meta["mean_clv"], 300.0);
    assert!(out.meta["previous_run"].is_null());
    assert_eq!(json_out(&out)["files"]["message_files"], 2);
    // No temporary files are left behind.
    let leftovers: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_second_run_reports_transitions_and_clv_change() {
    let dir = tempfile::tempdir().unwrap();
    let node = configure(&format!(
        "out_dir: {}\nmessages: none\n",
        dir.path().display()
    ))
    .unwrap();
    let stores = Stores::new();
    run(&node, stores.ctx("r1"), first_run_inputs()).unwrap();

    // Ada lapses from vip to at_risk; Dan is new; Bob's CLV grows.
    let second = || {
        inputs(vec![
            (
                "campaign_vip",
                campaign_table(&[
                    (
                        "C2",
                        "vip",
                        "bob@example.com",
                        "Bob",
                        false,
                        450.0,
                        500.0,
                        5,
                        0.6,
                    ),
                    (
                        "C4",
                        "vip",
                        "dan@example.com",
                        "Dan",
                        true,
                        250.0,
                        250.0,
                        2,
                        0.5,
                    ),
                ]),
            ),
            (
                "campaign_at_risk",
                campaign_table(&[
                    (
                        "C1",
                        "at_risk",
                        "ada@example.com",
                        "Ada",
                        true,
                        200.0,
                        900.0,
                        6,
                        0.3,
                    ),
                    (
                        "C3",
                        "at_risk",
                        "cy@example.com",
                        "Cy",
                        true,
                        100.0,
                        100.0,
                        1,
                        0.2,
                    ),
                ]),
            ),
        ])
    };
    let out = run(&node, stores.ctx("r2"), second()).unwrap();
    let check = |out: &Output| {
        assert_eq!(out.meta["previous_run"], "r1");
        assert_eq!(out.meta["customers_moved"], 1);
        assert_eq!(
            out.meta["transitions"],
            json!(["1 customer moved from vip to at_risk"])
        );
        assert_eq!(out.meta["new_customers"], 1);
        assert_eq!(out.meta["customers_gone_since_previous"], 0);
        assert_eq!(out.meta["clv_total_change"], 100.0); // 1000 - 900
        assert_eq!(out.meta["clv_mean_change"], -50.0); // 250 - 300
    };
    check(&out);
    let summary: Json = serde_json::from_str(&read(&dir.path().join("summary.json"))).unwrap();
    assert_eq!(
        summary["changes"]["transitions"],
        json!([{"from": "vip", "to": "at_risk", "customers": 1}])
    );
    assert_eq!(summary["changes"]["clv"]["previous_total"], 900.0);
    assert_eq!(summary["changes"]["clv"]["current_total"], 1000.0);
    let report = read(&dir.path().join("report.html"));
    assert!(
        report.contains("1 customer moved from Vip to At risk"),
        "report shows transitions"
    );
    assert!(report.contains("+100.00"), "report shows the CLV change");

    // A retried or resumed attempt of r2 still compares with r1, not with itself.
    check(&run(&node, stores.ctx("r2"), second()).unwrap());
    // The next run compares with r2: nobody moved.
    let out = run(&node, stores.ctx("r3"), second()).unwrap();
    assert_eq!(out.meta["previous_run"], "r2");
    assert_eq!(out.meta["customers_moved"], 0);
    // State is per node: another node id starts afresh.
    let mut other = stores.ctx("r4");
    other.node_id = "deploy_other".into();
    assert!(run(&node, other, second()).unwrap().meta["previous_run"].is_null());
}

#[test]
fn csv_messages_replace_the_eml_folder() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::new();
    let eml = configure(&format!("out_dir: {}\n", dir.path().display())).unwrap();
    run(&eml, stores.ctx("r1"), first_run_inputs()).unwrap();
    assert!(dir.path().join("messages/vip/C1.eml").exists());
    let csv = configure(&format!(
        "out_dir: {}\nmessages: csv\n",
        dir.path().display()
    ))
    .unwrap();
    run(&csv, stores.ctx("r2"), first_run_inputs()).unwrap();
    assert!(
        !dir.path().join("messages/vip").exists(),
        "the old messages are gone"
    );
    let (header, rows) = csv_header_and_rows(&dir.path().join("messages/vip.csv"));
    assert_eq!(header, MESSAGE_CSV_COLUMNS.join(","));
    assert_eq!(rows, 1, "only the message that is sent");
    assert!(dir.path().join("messages/at_risk.csv").exists());
}

#[test]
fn only_recommendations_and_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let node = configure(&format!("out_dir: {}\n", dir.path().display())).unwrap();
    let stores = Stores::new();
    let out = run(
        &node,
        stores.ctx("r1"),
        inputs(vec![(
            "rec",
            recommendation_table(&[("C1", "vip", 1, "P1")]),
        )]),
    )
    .unwrap();
    assert_eq!(out.meta["recommendations"], 1);
    let (header, rows) = csv_header_and_rows(&dir.path().join("segments.csv"));
    assert!(header.starts_with("customer_id,customer_name"), "{header}");
    assert_eq!(rows, 0);

    let customers = RecordBatch::try_from_iter(vec![(
        "segment",
        Arc::new(StringArray::from(vec!["vip"])) as ArrayRef,
    )])
    .unwrap();
    let err = run(
        &node,
        stores.ctx("r2"),
        inputs(vec![("classify.vip", customers)]),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("needs a campaign table (role `campaign`: a message and profile row per customer (segmentation.campaign)) or a recommendations table"),
        "{err}"
    );
    assert!(
        err.contains("inputs received: `classify.vip` (no role, table of 1 row: segment)"),
        "{err}"
    );
}

#[test]
fn parameters_are_checked() {
    let errors = |yaml: &str| -> Vec<String> {
        configure(yaml)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    flow_engine::source::path_to_string(&e.path),
                    e.message
                )
            })
            .collect()
    };
    let e = errors(
        "messages: pdf\npos_url: ftp://pos\npos_token_env: 'my secret token'\nbatch_size: 0\n",
    );
    assert_eq!(e.len(), 5, "{e:?}");
    assert!(
        e.iter().any(|m| m.starts_with("out_dir: is required")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.starts_with("messages: ")), "{e:?}");
    assert!(
        e.iter()
            .any(|m| m.starts_with("pos_url: ") && m.contains("http://")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.starts_with("pos_token_env: ")), "{e:?}");
    assert!(e.iter().any(|m| m.starts_with("batch_size: ")), "{e:?}");
    // No POS push without a URL: an empty one (a param left at its default) is allowed, and the
    // token variable is then unused.
    assert!(configure("out_dir: out\npos_url: ''\npos_token_env: TOKEN\n").is_ok());
    assert!(
        configure("out_dir: out\npos_url: https://pos.example.com/api/updates\npos_timeout: 5s\n")
            .is_ok()
    );
}

#[test]
fn a_missing_token_variable_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let node = configure(&format!(
        "out_dir: {}\npos_url: http://127.0.0.1:9/updates\npos_token_env: FLOW_TEST_TOKEN_THAT_IS_NOT_SET\n",
        dir.path().display()
    ))
    .unwrap();
    let err = run(&node, Stores::new().ctx("r1"), first_run_inputs())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("`FLOW_TEST_TOKEN_THAT_IS_NOT_SET` (pos_token_env)")
            && err.contains("not set"),
        "{err}"
    );
    assert!(!dir.path().join("segments.csv").exists());
}

#[test]
fn message_ids_and_file_names() {
    assert_eq!(message_id_local("r 1/n:x"), "r%201/n%3Ax");
    assert_eq!(file_stem("../etc/passwd"), "_.._etc_passwd");
}
