//! Looking at workflows and runs: `flow runs output`, `flow graph`, `flow schema`, `flow nodes`.

use serde_json::Value as Json;

use crate::support::{WORKFLOW, Workspace};

const TABLES: &str = r#"name: tables
nodes:
  - { id: start, kind: trigger, type: manual }
  - id: customers
    kind: action
    type: core.shell
    needs: [start]
    with: { command: "cat customers.csv", output: csv }
  - id: tier
    kind: decision
    type: core.switch
    needs: [customers]
    with:
      rules:
        - { case: vip, when: "spend >= 1000" }
      default: regular
  - id: vip_mail
    kind: action
    type: core.noop
    needs: [tier.vip]
  - id: regular_mail
    kind: output
    type: file.write
    needs: [tier.regular]
    with: { path: out/regular.csv }
  - id: report
    kind: action
    type: core.shell
    needs: [vip_mail, regular_mail]
    with: { command: "echo done" }
"#;

const CUSTOMERS: &str = "name,spend\nada,1200\nbob,80\ncy,1000\ndee,15.5\n";

fn tables() -> (Workspace, String) {
    let ws = Workspace::with_workflow(TABLES);
    ws.write("customers.csv", CUSTOMERS);
    let id = ws.run().run().run_id();
    (ws, id)
}

#[test]
fn runs_output_exports_the_table_a_node_produced() {
    let (ws, id) = tables();
    let csv = ws
        .flow()
        .args(["runs", "output", &id, "customers", "--format", "csv"])
        .run();
    assert_eq!(
        csv.stdout,
        "name,spend\nada,1200.0\nbob,80.0\ncy,1000.0\ndee,15.5\n"
    );

    let json = ws
        .flow()
        .args(["runs", "output", "last", "customers", "--format", "json"])
        .run();
    let rows: Vec<Json> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], serde_json::json!({"name": "ada", "spend": 1200.0}));

    // A decision's output is exported per case.
    let vip = ws
        .flow()
        .args(["runs", "output", &id, "tier", "--case", "vip"])
        .run();
    assert_eq!(vip.stdout, "name,spend\nada,1200.0\ncy,1000.0\n");
    let regular = ws
        .flow()
        .args(["runs", "output", &id, "tier", "--case", "regular"])
        .run();
    assert_eq!(regular.stdout, "name,spend\nbob,80.0\ndee,15.5\n");
    assert_eq!(
        ws.read("out/regular.csv"),
        regular.stdout,
        "file.write wrote the same table"
    );
    ws.flow()
        .args(["runs", "output", &id, "tier"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("choose a case with --case (vip: 2 rows, regular: 2 rows)");
    ws.flow()
        .args(["runs", "output", &id, "tier", "--case", "gold"])
        .expect_exit(2)
        .run();
    ws.flow()
        .args(["runs", "output", &id, "nope"])
        .expect_exit(2)
        .run()
        .assert_stderr_contains("no checkpointed output for node `nope`");
}

#[test]
fn runs_show_reports_every_node() {
    let (ws, id) = tables();
    let show = ws.flow().args(["runs", "show", &id]).run();
    for node in [
        "start",
        "customers",
        "tier",
        "vip_mail",
        "regular_mail",
        "report",
    ] {
        show.assert_stdout_contains(node);
    }
    show.assert_stdout_contains("tier cases: regular: 2, vip: 2");
    let json = ws.show(&id);
    let nodes = json["nodes"].as_array().unwrap();
    let order: Vec<&str> = nodes
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "start",
            "customers",
            "tier",
            "vip_mail",
            "regular_mail",
            "report"
        ],
        "workflow order"
    );
    assert_eq!(nodes[1]["rows_out"], 4);
    assert_eq!(nodes[3]["rows_in"], 2);
}

#[test]
fn graph_prints_mermaid_with_case_labels_and_dot() {
    let ws = Workspace::with_workflow(TABLES);
    let mermaid = ws.flow().args(["graph", WORKFLOW]).run().stdout;
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    for edge in [
        "n_start --> n_customers",
        "n_customers --> n_tier",
        "n_tier -->|vip| n_vip_mail",
        "n_tier -->|regular| n_regular_mail",
        "n_vip_mail --> n_report",
        "n_regular_mail --> n_report",
    ] {
        assert!(
            mermaid.lines().any(|l| l.trim() == edge),
            "missing `{edge}` in\n{mermaid}"
        );
    }
    assert_eq!(mermaid.matches("-->").count(), 6, "{mermaid}");

    let dot = ws
        .flow()
        .args(["graph", WORKFLOW, "--format", "dot"])
        .run()
        .stdout;
    assert!(dot.starts_with("digraph \"tables\""), "{dot}");
    assert!(
        dot.contains("\"tier\" -> \"vip_mail\" [label=\"vip\"];"),
        "{dot}"
    );
    assert!(dot.contains("\"customers\" -> \"tier\";"), "{dot}");

    // An invalid workflow has no graph.
    ws.workflow("name: x\nnodes: []\n");
    ws.flow().args(["graph", WORKFLOW]).expect_exit(2).run();
}

#[test]
fn schema_is_json_with_defs() {
    let ws = Workspace::new();
    let schema = ws.flow().args(["schema"]).run().json();
    let defs = schema["$defs"].as_object().expect("$defs");
    assert!(!defs.is_empty());
    let text = serde_json::to_string(&schema).unwrap();
    for ty in ["core.shell", "core.switch", "file.write", "schedule"] {
        assert!(text.contains(ty), "the schema should name node type `{ty}`");
    }
}

#[test]
fn nodes_lists_the_core_types_and_their_parameters() {
    let ws = Workspace::new();
    let text = ws.flow().args(["nodes"]).run().stdout;
    for ty in [
        "manual",
        "schedule",
        "core.shell",
        "core.switch",
        "core.noop",
        "file.read",
        "file.write",
    ] {
        assert!(text.contains(ty), "`flow nodes` lacks {ty}\n{text}");
    }
    let json = ws.flow().args(["nodes", "--json"]).run().json();
    let shell = json
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "core.shell")
        .expect("core.shell");
    let params: Vec<&str> = shell["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        params.contains(&"command") && params.contains(&"output"),
        "{params:?}"
    );
}
