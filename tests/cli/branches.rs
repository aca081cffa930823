//! The shipped workflow (`workflows/segmentation.yaml`) when segments are empty: each segment
//! forced empty alone, all but one empty, every one empty, and on each shipped fixture format.
//! Every such run succeeds; the empty segment's nodes are skipped with the reason; deploy runs
//! and `segments.csv` holds every customer the metrics scored. A branch skipped although its
//! segment has customers fails deploy instead of losing them; validation warns about segments
//! that reach no output, at their lines.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value as Json;

use crate::shipped::{replace_once, repo_path, shipped_yaml};
use crate::support::Workspace;

const WF: &str = "segmentation.yaml";

/// The shipped segments, rules first, then the default.
const SEGMENTS: [&str; 6] = ["vip", "at_risk", "new", "frequent", "lapsed", "regular"];

/// The shipped rule of `segment`'s `when`, as written.
fn rule_of(segment: &str) -> &'static str {
    match segment {
        "vip" => "r_score >= 4 && f_score >= 4 && clv >= params.vip_min_clv",
        "at_risk" => "r_score <= 2 && f_score >= 3",
        "new" => "orders == 1 && days_since_last <= params.new_within_days",
        "frequent" => "f_score >= 4",
        "lapsed" => "r_score == 1",
        other => panic!("`{other}` has no rule"),
    }
}

/// `yaml` with `segment`'s rule never true.
fn never(yaml: &str, segment: &str) -> String {
    replace_once(
        yaml,
        &format!("when: \"{}\"", rule_of(segment)),
        "when: \"orders < 0\"",
    )
}

/// A workspace with `yaml`, the sample data under `data/` and the parser fixtures under
/// `fixtures/`.
fn workspace(yaml: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write(WF, yaml);
    for (dir, into) in [
        ("workflows/data", "data"),
        ("crates/retail/src/pos/fixtures", "fixtures"),
    ] {
        for entry in std::fs::read_dir(repo_path(dir)).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                ws.write(
                    &format!("{into}/{name}"),
                    std::fs::read(&path).expect("read"),
                );
            }
        }
    }
    ws
}

/// Node records of a run by id.
fn nodes(ws: &Workspace, id: &str) -> BTreeMap<String, Json> {
    ws.node_records(id)
}

/// Checks a run of the segmentation workflow that must deliver every customer, with exactly
/// `empty` segments empty; returns the node records.
fn check_delivered(ws: &Workspace, id: &str, empty: &[&str]) -> BTreeMap<String, Json> {
    let show = ws.show(id);
    assert_eq!(show["run"]["status"], "succeeded", "{show:#}");
    let nodes = nodes(ws, id);
    let cases = &nodes["classify"]["case_rows"];
    for segment in SEGMENTS {
        let (rec, camp) = (
            &nodes[&format!("recommend_{segment}")],
            &nodes[&format!("campaign_{segment}")],
        );
        if empty.contains(&segment) {
            assert_eq!(cases[segment], 0, "`{segment}` should be empty: {cases}");
            assert_eq!(rec["status"], "skipped", "{rec:#}");
            assert_eq!(
                rec["reason"],
                format!("branch `classify.{segment}` was empty")
            );
            assert_eq!(camp["status"], "skipped", "{camp:#}");
            assert!(
                camp["reason"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("branch `classify.{segment}` was empty")),
                "{camp:#}"
            );
        } else {
            assert!(cases[segment].as_u64().unwrap() > 0, "`{segment}`: {cases}");
            assert_eq!(rec["status"], "succeeded", "{rec:#}");
            assert_eq!(camp["status"], "succeeded", "{camp:#}");
        }
    }
    let deploy = &nodes["deploy"];
    assert_eq!(deploy["status"], "succeeded", "{deploy:#}");
    let scored = nodes["metrics"]["rows_out"].as_u64().unwrap();
    assert!(scored > 0);
    assert_eq!(deploy["meta"]["customers"], scored, "{deploy:#}");

    // segments.csv: one row per scored customer, none in an empty segment.
    let out_dir = PathBuf::from(deploy["meta"]["out_dir"].as_str().unwrap());
    let out_dir = if out_dir.is_absolute() {
        out_dir
    } else {
        ws.dir().join(out_dir)
    };
    let mut reader = csv::Reader::from_path(out_dir.join("segments.csv")).expect("segments.csv");
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "segment")
        .expect("segment column");
    let mut rows = 0u64;
    for record in reader.records() {
        let record = record.expect("csv row");
        assert!(!empty.contains(&&record[column]), "{record:?}");
        rows += 1;
    }
    assert_eq!(rows, scored, "segments.csv must hold every scored customer");
    nodes
}

fn run_ok(ws: &Workspace, params: &[(&str, &str)]) -> String {
    let mut flow = ws.flow().args(["run", WF]);
    for (k, v) in params {
        flow = flow.param(k, v);
    }
    flow.run().run_id()
}

fn one_segment_empty(segment: &str) {
    let (yaml, params): (String, Vec<(&str, &str)>) = match segment {
        "vip" => (shipped_yaml(), vec![("vip_min_clv", "1000000")]),
        // Everyone left after the rules is lapsed, so the default is empty.
        "regular" => (
            replace_once(
                &shipped_yaml(),
                &format!("when: \"{}\"", rule_of("lapsed")),
                "when: \"orders >= 0\"",
            ),
            vec![],
        ),
        other => (never(&shipped_yaml(), other), vec![]),
    };
    let ws = workspace(&yaml);
    let id = run_ok(&ws, &params);
    check_delivered(&ws, &id, &[segment]);
}

#[test]
fn vip_empty() {
    one_segment_empty("vip");
}

#[test]
fn at_risk_empty() {
    one_segment_empty("at_risk");
}

#[test]
fn new_empty() {
    one_segment_empty("new");
}

#[test]
fn frequent_empty() {
    one_segment_empty("frequent");
}

#[test]
fn lapsed_empty() {
    one_segment_empty("lapsed");
}

#[test]
fn regular_empty() {
    one_segment_empty("regular");
}

#[test]
fn all_but_one_segment_empty() {
    let mut yaml = shipped_yaml();
    for segment in &SEGMENTS[..5] {
        yaml = never(&yaml, segment);
    }
    let ws = workspace(&yaml);
    let id = run_ok(&ws, &[]);
    check_delivered(&ws, &id, &SEGMENTS[..5]);
}

#[test]
fn every_segment_empty_skips_deploy_and_the_run_succeeds() {
    // Every rule never true, `regular` made a rule too, and the default a segment that no branch
    // takes: every branch is empty, and the customers reach no output (a warning, not a loss in
    // silence).
    let mut yaml = shipped_yaml();
    for segment in &SEGMENTS[..5] {
        yaml = never(&yaml, segment);
    }
    let yaml = replace_once(
        &yaml,
        "      default: regular",
        "        - { case: regular, when: \"orders < 0\" }\n      default: unsegmented",
    );
    let ws = workspace(&yaml);
    let out = ws.flow().args(["run", WF]).run();
    let id = out.run_id();
    assert_eq!(ws.show(&id)["run"]["status"], "succeeded");
    let nodes = nodes(&ws, &id);
    for segment in SEGMENTS {
        assert_eq!(nodes[&format!("recommend_{segment}")]["status"], "skipped");
    }
    assert_eq!(nodes["deploy"]["status"], "skipped");
    let reason = nodes["deploy"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("every input was skipped (`campaign_vip` was skipped;"),
        "{reason}"
    );
    // The summary says so.
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(" deploy "))
        .unwrap_or_else(|| panic!("no deploy line\n{out}"));
    assert!(
        line.contains("skipped") && line.contains("every input was skipped"),
        "{line}"
    );
    assert!(out.stdout.contains(&format!("run {id} succeeded")), "{out}");
    assert!(!ws.exists("out"), "nothing is delivered");
}

/// The shipped workflow with `transactions` pointed at a fixture export: the change
/// docs/segmentation.md describes (`path` and `format`).
fn on_fixture(path: &str, format: &str) {
    let yaml = replace_once(
        &shipped_yaml(),
        "      path: data/transactions.csv\n      format: csv",
        &format!("      path: {path}\n      format: {format}"),
    );
    let ws = workspace(&yaml);
    let id = run_ok(&ws, &[]);
    let nodes = nodes(&ws, &id);
    let cases = nodes["classify"]["case_rows"].as_object().unwrap().clone();
    let empty: Vec<&str> = SEGMENTS
        .into_iter()
        .filter(|s| cases[*s].as_u64() == Some(0))
        .collect();
    assert!(!empty.is_empty(), "the fixtures leave some segment empty");
    check_delivered(&ws, &id, &empty);
}

#[test]
fn shopify_orders_fixture() {
    on_fixture("fixtures/shopify_orders.csv", "shopify_orders");
}

#[test]
fn square_items_fixture() {
    on_fixture("fixtures/square_items.csv", "square_items");
}

#[test]
fn jsonl_fixture() {
    on_fixture("fixtures/orders.jsonl", "jsonl");
}

#[test]
fn csv_fixture() {
    on_fixture("fixtures/transactions.csv", "csv");
}

#[test]
fn a_branch_skipped_although_its_segment_has_customers_fails_deploy() {
    // `campaign_regular` also needs `recommend_vip`, which is skipped when vip is empty: the
    // regular customers would be missing from the files.
    let yaml = replace_once(
        &shipped_yaml(),
        "needs: [classify.regular, recommend_regular]",
        "needs: [classify.regular, recommend_regular, recommend_vip]",
    );
    let ws = workspace(&yaml);
    let out = ws
        .flow()
        .args(["run", WF])
        .param("vip_min_clv", "1000000")
        .expect_exit(1)
        .run();
    let nodes = nodes(&ws, &out.run_id());
    assert_eq!(nodes["campaign_regular"]["status"], "skipped");
    assert_eq!(nodes["deploy"]["status"], "failed");
    let routed = nodes["classify"]["case_rows"]["regular"].as_u64().unwrap();
    let error = nodes["deploy"]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "`classify` routed {routed} customers to `regular` but 0 arrived"
        )),
        "{error}"
    );
    assert!(!ws.exists("out"), "nothing is delivered");
}

/// 1-based line and column of `needle` in `text` (first occurrence).
fn position(text: &str, needle: &str) -> (usize, usize) {
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
        .unwrap_or_else(|| panic!("{needle:?} not found"))
}

#[test]
fn segments_that_reach_no_output_are_warnings_at_their_lines_and_in_the_run() {
    // `vip` no longer reaches deploy; `vip2` has no subscriber.
    let mut yaml = shipped_yaml();
    yaml = replace_once(&yaml, "      - campaign_vip\n", "");
    yaml = replace_once(&yaml, "      - recommend_vip\n", "");
    yaml = replace_once(
        &yaml,
        "        - { case: at_risk,",
        "        - { case: vip2, when: \"orders < 0\" }\n        - { case: at_risk,",
    );
    let ws = workspace(&yaml);
    let out = ws.flow().args(["validate", WF]).run();
    let (vip_line, vip_col) = position(&yaml, "case: vip,");
    let (vip2_line, vip2_col) = position(&yaml, "case: vip2,");
    let expected = [
        format!(
            "{WF}:{vip_line}:{}: warning: node `classify`: case `vip` leads to no output node; its rows will not be delivered",
            vip_col + 6
        ),
        format!(
            "{WF}:{vip2_line}:{}: warning: node `classify`: case `vip2` has no subscriber (no node needs it); its rows will not be delivered",
            vip2_col + 6
        ),
    ];
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("warning"))
        .collect();
    assert_eq!(warnings, expected, "{out}");
    out.assert_stdout_contains("valid workflow `segmentation` (19 nodes, 1 trigger), 2 warnings");

    let json = ws.flow().args(["validate", WF, "--json"]).run().json();
    assert_eq!(json["valid"], true);
    let w = json["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 2, "{json:#}");
    assert_eq!(w[0]["severity"], "warning");
    assert_eq!(w[0]["line"], vip_line);
    assert_eq!(w[0]["node"], "classify");

    // The run delivers the others and says where the VIPs went.
    let out = ws.flow().args(["run", WF]).run();
    let id = out.run_id();
    let nodes = nodes(&ws, &id);
    let vips = nodes["classify"]["case_rows"]["vip"].as_u64().unwrap();
    assert!(vips > 0);
    let message = format!(
        "{vips} rows routed to case `vip`, which leads to no output node: they are not delivered"
    );
    assert_eq!(nodes["classify"]["warnings"], serde_json::json!([message]));
    assert!(
        out.stderr
            .contains(&format!("node classify warning: {message}")),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("warning: node `classify`: {message}")),
        "{out}"
    );
    assert_eq!(nodes["deploy"]["status"], "succeeded");
}

#[test]
fn validate_and_graph_show_the_trigger_rules() {
    let ws = workspace(&shipped_yaml());
    let out = ws.flow().args(["validate", WF]).run();
    out.assert_stdout_contains(
        "deploy  none_failed_min_one_success (14 inputs, 2 of them context, not counted): runs with the inputs that succeeded; skipped when every input was skipped",
    );
    out.assert_stdout_contains("17 other nodes: all_success");
    let json = ws.flow().args(["validate", WF, "--json"]).run().json();
    let rules: BTreeMap<String, String> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["trigger_rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rules.len(), 19);
    assert_eq!(rules["deploy"], "none_failed_min_one_success");
    assert_eq!(rules["recommend_vip"], "all_success");
    assert_eq!(rules["classify"], "all_success");

    let mermaid = ws.flow().args(["graph", WF]).run().stdout;
    let deploy = mermaid.lines().find(|l| l.contains("n_deploy[")).unwrap();
    assert!(
        deploy.contains("<i>none_failed_min_one_success</i>"),
        "{deploy}"
    );
    let vip = mermaid
        .lines()
        .find(|l| l.contains("n_recommend_vip["))
        .unwrap();
    assert!(!vip.contains("<i>"), "{vip}");
    let dot = ws
        .flow()
        .args(["graph", WF, "--format", "dot"])
        .run()
        .stdout;
    assert!(
        dot.contains("label=\"deploy\\nsegmentation.deploy\\n[none_failed_min_one_success]\""),
        "{dot}"
    );

    // A rule written on an action is shown; an unknown rule is an error at its line.
    let yaml = replace_once(
        &shipped_yaml(),
        "    needs: [classify.vip, recommend_vip]\n",
        "    needs: [classify.vip, recommend_vip]\n    trigger_rule: all_done\n",
    );
    ws.write(WF, &yaml);
    ws.flow()
        .args(["validate", WF])
        .run()
        .assert_stdout_contains("campaign_vip  all_done (2 inputs): runs once every input is done");
    ws.write(
        WF,
        yaml.replace("trigger_rule: all_done", "trigger_rule: all_sucess"),
    );
    let out = ws.flow().args(["validate", WF]).expect_exit(2).run();
    let (line, col) = position(&yaml, "trigger_rule: all_done");
    out.assert_stderr_contains(&format!(
        "{WF}:{line}:{}: node `campaign_vip`: unknown trigger rule `all_sucess` (did you mean `all_success`?",
        col + 14
    ));
}

#[test]
fn branch_nodes_made_to_run_on_an_empty_segment_produce_empty_outputs() {
    let mut yaml = shipped_yaml();
    for needs in [
        "    needs: [classify.vip, transactions, catalog, affinity]\n",
        "    needs: [classify.vip, recommend_vip]\n",
    ] {
        yaml = replace_once(
            &yaml,
            needs,
            &format!("{needs}    trigger_rule: all_done\n"),
        );
    }
    let ws = workspace(&yaml);
    let id = run_ok(&ws, &[("vip_min_clv", "1000000")]);
    let nodes = nodes(&ws, &id);
    assert_eq!(nodes["classify"]["case_rows"]["vip"], 0);
    for node in ["recommend_vip", "campaign_vip"] {
        assert_eq!(nodes[node]["status"], "succeeded", "{:#}", nodes[node]);
        assert_eq!(nodes[node]["rows_out"], 0, "{:#}", nodes[node]);
    }
    assert_eq!(nodes["deploy"]["status"], "succeeded");
    assert_eq!(
        nodes["deploy"]["meta"]["customers"],
        nodes["metrics"]["rows_out"]
    );
}
