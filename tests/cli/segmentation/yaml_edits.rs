//! Editing the YAML.

use std::collections::BTreeSet;

use super::{Row, WF, line_of, num, out_dir, profiles, read_csv, read_json, workspace};
use crate::shipped::{replace_once, shipped_yaml};

const BIG_SPENDERS_NODES: &str = r#"  - id: recommend_big_spenders
    kind: action
    type: segmentation.recommend
    needs: [classify.big_spenders, transactions, catalog, affinity]
    with: { strategy: upsell, top_k: 2, fallback: bestsellers }
  - id: campaign_big_spenders
    kind: action
    type: segmentation.campaign
    needs: [classify.big_spenders, recommend_big_spenders]
    with:
      offer: { type: discount, value: 5 }
      subject: "{{ customer.first_name or 'Hello' }}, {{ offer.label }} for our big spenders"
      body: |
        <p>Thank you, {{ customer.first_name or "friend" }}.</p>
        <ul>{% for p in products %}<li>{{ p.name }}</li>{% endfor %}</ul>
      action: "Big spender: thank them"

  # 7. Deploy"#;

#[test]
fn a_new_rule_and_branch_in_the_yaml_give_a_new_segment() {
    let yaml = shipped_yaml();
    let yaml = replace_once(
        &yaml,
        "        - { case: vip,",
        "        - { case: big_spenders, when: \"total_spend >= 1500\" }\n        - { case: vip,",
    );
    let yaml = replace_once(&yaml, "  # 7. Deploy", BIG_SPENDERS_NODES);
    let yaml = replace_once(
        &yaml,
        "      - campaign_vip\n",
        "      - campaign_big_spenders\n      - recommend_big_spenders\n      - campaign_vip\n",
    );
    let ws = workspace(&yaml);
    let run = ws.flow().args(["run", WF]).run();
    let id = run.run_id();
    let statuses = ws.statuses(&id);
    for n in ["recommend_big_spenders", "campaign_big_spenders", "deploy"] {
        assert_eq!(statuses[n], "succeeded", "{n}: {statuses:?}");
    }

    let dir = out_dir(&ws, &id);
    let profiles = profiles(&dir);
    let big: Vec<&Row> = profiles
        .values()
        .filter(|p| p["segment"] == "big_spenders")
        .collect();
    assert!(!big.is_empty(), "no big_spenders in segments.csv");
    // The new rule comes first, so it takes every customer it matches, and only those.
    for p in profiles.values() {
        assert_eq!(
            p["segment"] == "big_spenders",
            num(p, "total_spend") >= 1500.0,
            "{p:?}"
        );
    }

    let recs = read_csv(&dir.join("recommendations.csv"));
    assert!(
        recs.iter().any(|r| r["segment"] == "big_spenders"),
        "no recommendations for big_spenders"
    );
    let messages = dir.join("messages/big_spenders");
    assert!(messages.is_dir(), "no {}", messages.display());
    let sent: BTreeSet<String> = big
        .iter()
        .filter(|p| p["message_sent"] == "true")
        .map(|p| format!("{}.eml", p["customer_id"]))
        .collect();
    assert!(!sent.is_empty(), "no big spender got a message");
    let files: BTreeSet<String> = std::fs::read_dir(&messages)
        .expect("read messages/big_spenders")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, sent, "messages/big_spenders vs message_sent");

    let summary = read_json(&dir.join("summary.json"));
    let n = summary["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .find(|s| s["segment"] == "big_spenders")
        .unwrap_or_else(|| panic!("no big_spenders in summary.json"))["customers"]
        .as_u64();
    assert_eq!(n, Some(big.len() as u64));
}

#[test]
fn a_rule_with_an_unknown_column_is_a_validation_error_at_its_line() {
    let yaml = replace_once(
        &shipped_yaml(),
        "\"r_score <= 2 && f_score >= 3\"",
        "\"totl_spend > 3\"",
    );
    let line = line_of(&yaml, "totl_spend");
    let ws = workspace(&yaml);
    let out = ws.flow().args(["validate", WF]).expect_exit(2).run();
    let all = format!("{}{}", out.stdout, out.stderr);
    let located: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with(&format!("{WF}:{line}:")))
        .collect();
    assert!(
        located.iter().any(|l| l.contains("totl_spend")),
        "no `{WF}:{line}:...totl_spend` error\n{out}"
    );
    assert!(
        located.iter().any(|l| l.contains("classify")),
        "the error does not name the node\n{out}"
    );
    // `flow run` refuses it too, before running anything.
    let out = ws.flow().args(["run", WF]).expect_exit(2).run();
    out.assert_stderr_contains(&format!("{WF}:{line}:"));
    assert!(!ws.exists("out"), "an invalid workflow wrote outputs");
}
