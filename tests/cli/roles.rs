//! Input roles in real workflows: a table is used in the role its node or `as:` gives it, never
//! told apart by its columns (customers with a `rank` column stay customers), and every role
//! mistake is a validation error at its line that says what to write.

use crate::shipped::{replace_once, shipped_yaml, workspace};
use crate::support::Workspace;

const WF: &str = "roles.yaml";

/// Scored customers with a `rank` column (the telltale column of recommendations).
const SCORED: &str = "\
customer_id,rank,customer_name
C1,1,Ada
C2,2,Bob
C3,3,Cy
";

/// Classify a file of scored customers, a campaign per segment, deploy. `{campaign_needs}` is
/// the `needs` of the top segment's campaign.
fn classify_then_deploy(campaign_needs: &str) -> String {
    format!(
        "\
name: roles
nodes:
  - {{ id: start, kind: trigger, type: manual }}
  - {{ id: scored, kind: action, type: file.read, needs: start, with: {{ path: scored.csv }} }}
  - id: classify
    kind: decision
    type: segmentation.classify
    needs: scored
    with:
      rules:
        - {{ case: top, when: \"rank <= 2\" }}
      default: rest
  - id: campaign_top
    kind: action
    type: segmentation.campaign
    needs: {campaign_needs}
    with: {{ channel: none, action: \"Call {{{{ customer.customer_name }}}}\" }}
  - {{ id: campaign_rest, kind: action, type: segmentation.campaign, needs: classify.rest, with: {{ channel: none }} }}
  - id: deploy
    kind: output
    type: segmentation.deploy
    needs: [campaign_top, campaign_rest]
    with: {{ out_dir: out, messages: none }}
"
    )
}

fn segments_csv_ids(ws: &Workspace) -> Vec<String> {
    let text = ws.read("out/segments.csv");
    let mut ids: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_classify_branch_with_a_rank_column_is_used_as_customers() {
    let ws = Workspace::new();
    ws.write(WF, classify_then_deploy("classify.top"));
    ws.write("scored.csv", SCORED);
    ws.flow().args(["run", WF]).run();
    // Every customer reached the profiles, the top segment's with its action.
    assert_eq!(segments_csv_ids(&ws), ["C1", "C2", "C3"]);
    let segments = ws.read("out/segments.csv");
    assert!(segments.contains("Call Ada"), "{segments}");
}

#[test]
fn a_file_with_a_rank_column_fills_the_customers_role_named_with_as() {
    let customers = "customer_id,segment,rank,customer_name\nC7,top,5,Eve\n";
    let extra = "  - { id: vip_list, kind: action, type: file.read, needs: start, with: { path: vip.csv } }\n";
    // Without `as:` the role cannot be told: the error says what to write, at the line.
    let yaml = classify_then_deploy("[classify.top, vip_list]")
        .replace("  - id: classify\n", &format!("{extra}  - id: classify\n"));
    let ws = Workspace::new();
    ws.write(WF, &yaml);
    ws.write("scored.csv", SCORED);
    ws.write("vip.csv", customers);
    let out = ws.flow().args(["validate", WF]).expect_exit(2).run();
    out.assert_stderr_contains(
        "roles.yaml:17:27: node `campaign_top`: cannot tell which input role `vip_list` fills: its node type does not declare the kind of table it produces; write { node: vip_list, as: ROLE } with ROLE one of: `customers` (customers, one or more), `recommendations` (recommendations, any number)",
    );

    let yaml = replace_once(
        &yaml,
        "needs: [classify.top, vip_list]",
        "needs: [classify.top, { node: vip_list, as: customers }]",
    );
    ws.write(WF, &yaml);
    ws.flow().args(["validate", WF]).run();
    ws.flow().args(["run", WF]).run();
    assert_eq!(segments_csv_ids(&ws), ["C1", "C2", "C3", "C7"]);
}

#[test]
fn role_mistakes_are_errors_at_their_line() {
    let yaml = replace_once(
        &shipped_yaml(),
        "    needs: [classify.vip, transactions, catalog, affinity]\n",
        "    needs: [classify.vip, transactions, { node: affinity, as: afinity }]\n",
    );
    let yaml = replace_once(
        &yaml,
        "      - recommend_regular\n",
        "      - recommend_regular\n      - classify.regular\n",
    );
    let ws = workspace(&yaml);
    let line_of = |needle: &str| {
        yaml.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap()
    };
    let vip = line_of("{ node: affinity, as: afinity }");
    let deploy = line_of("- classify.regular");
    let out = ws
        .flow()
        .args(["validate", "segmentation.yaml"])
        .expect_exit(2)
        .run();
    for expected in [
        format!(
            "segmentation.yaml:{}:5: node `recommend_vip`: no input fills the role `catalog` (catalog (product_id Utf8, name Utf8, category Utf8, price Float64, stock Int64): what can be recommended (in stock)); add the node that produces it to `needs`, as {{ node: ID, as: catalog }} if its type does not declare that kind",
            vip
        ),
        format!(
            "segmentation.yaml:{vip}:63: node `recommend_vip`: `afinity` is not an input role of type `segmentation.recommend` (did you mean `affinity`? its roles: `customers` (customers, one or more), `transactions` (transactions), `catalog` (catalog), `affinity` (affinity, optional))"
        ),
        format!(
            "segmentation.yaml:{deploy}:9: node `deploy`: cannot tell which input role `classify.regular` fills: it produces customers tables, which no role of type `segmentation.deploy` takes; write {{ node: classify.regular, as: ROLE }} with ROLE one of: `campaign` (campaign, any number), `recommendations` (recommendations, any number)"
        ),
    ] {
        out.assert_stderr_contains(&expected);
    }
}

#[test]
fn a_table_of_the_wrong_types_fails_the_node_naming_the_column() {
    let ws = Workspace::new();
    ws.write(
        WF,
        "\
name: types
nodes:
  - { id: start, kind: trigger, type: manual }
  - { id: lines, kind: action, type: file.read, needs: start, with: { path: lines.csv } }
  - { id: metrics, kind: action, type: segmentation.metrics, needs: lines }
",
    );
    ws.write(
        "lines.csv",
        "customer_id,order_id,date,amount\nC1,O1,true,5.0\nC2,O2,false,7.5\n",
    );
    ws.flow().args(["validate", WF]).run();
    let out = ws.flow().args(["run", WF]).expect_exit(1).run();
    out.assert_stderr_contains(
        "input `lines` (role `transactions`, transactions expected) column `date` is Boolean; expected Date32",
    );
    // A missing column fails the node, naming it, the input, the role and the column.
    ws.write("lines.csv", "customer_id,order_id,date\nC1,O1,2024-01-02\n");
    let out = ws.flow().args(["run", WF]).expect_exit(1).run();
    out.assert_stderr_contains("node metrics ✘ failed");
    out.assert_stderr_contains(
        "0 rows: input `lines` (role `transactions`, transactions expected) has no `amount` column (Float64 expected); its columns are: customer_id, order_id, date",
    );
    // Dates as text are read as dates: the same file with real dates runs.
    ws.write(
        "lines.csv",
        "customer_id,order_id,date,amount\nC1,O1,2024-01-02,5\nC2,O2,2024-01-03,7\n",
    );
    ws.flow().args(["run", WF]).run();
}

#[test]
fn nodes_lists_each_types_input_roles_and_output_kind() {
    let ws = Workspace::new();
    let text = ws.flow().args(["nodes"]).run().stdout;
    for line in [
        "    input `customers` (customers, one or more): the customers to recommend to",
        "    input `affinity` (affinity, optional): co-purchase pairs (required by cross_sell)",
        "    output: catalog (product_id Utf8, name Utf8, category Utf8, price Float64, stock Int64)",
    ] {
        assert!(text.contains(line), "`flow nodes` lacks {line}\n{text}");
    }
    let json = ws.flow().args(["nodes", "--json"]).run().json();
    let recommend = json
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "segmentation.recommend")
        .expect("segmentation.recommend");
    assert_eq!(recommend["output"], "recommendations");
    assert_eq!(
        recommend["inputs"][3],
        serde_json::json!({
            "role": "affinity",
            "kind": "affinity",
            "required": false,
            "many": false,
            "doc": "co-purchase pairs (required by cross_sell)",
        })
    );
}
