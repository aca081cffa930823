//! The Square push against the mock Square server: groups, memberships and custom attributes
//! end in the desired state, across a failure midway, a resume and a second day.

use super::*;
use crate::connectors::square::mock::{Mock, State};

fn customer(id: &str) -> Json {
    json!({"id": id, "given_name": id, "updated_at": "2025-01-01T00:00:00.000Z"})
}

fn mock() -> Mock {
    let mut groups = BTreeMap::new();
    groups.insert("G_REG".to_string(), "Regulars".to_string());
    groups.insert("G_OLD".to_string(), "Segment: vip".to_string());
    let mut memberships: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    memberships
        .entry("C1".into())
        .or_default()
        .insert("G_REG".into());
    // C9 has no profile any more: it leaves the segment groups.
    memberships
        .entry("C9".into())
        .or_default()
        .insert("G_OLD".into());
    Mock::start(State {
        customers: ["C1", "C3", "C9"].iter().map(|c| customer(c)).collect(),
        groups,
        memberships,
        page_size: 2,
        ..State::default()
    })
}

fn node(dir: &Path, url: &str) -> Arc<dyn Node> {
    configure(&format!(
        "out_dir: {}\nmessages: none\nsquare:\n  token_env: PATH\n  base_url: {url}\n  retries: 0\n  backoff: 1ms\n",
        dir.display()
    ))
    .unwrap()
}

fn groups_of(m: &Mock) -> Vec<(String, Vec<String>)> {
    m.groups_of().into_iter().collect()
}

fn day2_inputs() -> Inputs {
    inputs(vec![(
        "campaign_vip",
        campaign_table(&[
            ("C1", "vip", "a@example.com", "Ada", true, 5.0, 5.0, 1, 0.5),
            ("C3", "vip", "c@example.com", "Cy", true, 3.0, 3.0, 1, 0.5),
        ]),
    )])
}

#[test]
fn groups_memberships_and_attributes_converge_across_a_failure_a_resume_and_a_second_day() {
    let dir = tempfile::tempdir().unwrap();
    let m = mock();
    let node = node(dir.path(), &m.url);
    let stores = Stores::new();

    // The server goes down midway: the run fails, naming the endpoint, never the token.
    m.state.lock().unwrap().fail_after = Some(18);
    let err = run(&node, stores.ctx("day-1"), first_run_inputs())
        .unwrap_err()
        .to_string();
    let token = std::env::var("PATH").unwrap();
    assert!(
        err.contains("Square ") && err.contains("HTTP 503") && !err.contains(&token),
        "{err}"
    );

    // The resume converges.
    // The first attempt had taken C9 out and put C1 in before the server went down; the resume
    // writes only C3's membership.
    {
        let mut s = m.state.lock().unwrap();
        s.fail_after = None;
        s.log.clear();
    }
    let out = run(&node, stores.ctx("day-1"), first_run_inputs()).unwrap();
    let r = &json_out(&out)["square"];
    assert_eq!(
        r["not_square_customers"], 1,
        "C2 is not a Square customer: {r}"
    );
    assert_eq!((m.count("PUT "), m.count("DELETE ")), (1, 0), "{r}");
    assert!(!out.meta.values().any(|v| v.to_string().contains(&token)));
    let expected = vec![
        (
            "C1".to_string(),
            vec!["Regulars".to_string(), "Segment: vip".to_string()],
        ),
        ("C3".to_string(), vec!["Segment: at_risk".to_string()]),
    ];
    assert_eq!(groups_of(&m), expected);
    {
        let s = m.state.lock().unwrap();
        // The existing `Segment: vip` group is reused, `Segment: at_risk` created once.
        assert_eq!(
            s.groups
                .values()
                .filter(|n| n.starts_with("Segment: "))
                .count(),
            2
        );
        assert_eq!(s.definitions.len(), 5);
        assert_eq!(
            s.attributes[&("C1".to_string(), "flow-segment".to_string())],
            "vip"
        );
        assert_eq!(
            s.attributes[&("C1".to_string(), "flow-clv".to_string())],
            "500.00"
        );
        assert_eq!(
            s.attributes[&("C3".to_string(), "flow-action".to_string())],
            "Say hello"
        );
        assert!(!s.attributes.keys().any(|(c, _)| c == "C2" || c == "C9"));
        assert_eq!(s.tokens_seen.len(), 1);
    }

    // The same run again writes no membership.
    m.state.lock().unwrap().log.clear();
    run(&node, stores.ctx("day-1"), first_run_inputs()).unwrap();
    assert_eq!(
        m.count("PUT ") + m.count("DELETE ") + m.count("POST /v2/customers/groups"),
        0
    );
    assert_eq!(groups_of(&m), expected);

    // Day 2: C3 moves to vip; only its memberships change.
    m.state.lock().unwrap().log.clear();
    let out = run(&node, stores.ctx("day-2"), day2_inputs()).unwrap();
    assert_eq!((m.count("PUT "), m.count("DELETE ")), (1, 1));
    assert_eq!(json_out(&out)["square"]["memberships_added"], 1);
    assert_eq!(
        groups_of(&m),
        vec![
            (
                "C1".to_string(),
                vec!["Regulars".to_string(), "Segment: vip".to_string()]
            ),
            ("C3".to_string(), vec!["Segment: vip".to_string()]),
        ]
    );
}

#[test]
fn square_parameters_are_checked_and_a_missing_token_fails_first() {
    let e = configure("out_dir: o\nsquare:\n  token_env: 'sq0atp-secret value'\n  colour: red\n  base_url: ftp://x\n")
        .err()
        .unwrap();
    let e: Vec<String> = e
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                flow_engine::source::path_to_string(&e.path),
                e.message
            )
        })
        .collect();
    for k in ["square.token_env", "square.colour", "square.base_url"] {
        assert!(e.iter().any(|m| m.starts_with(k)), "{k}: {e:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let node = configure(&format!(
        "out_dir: {}\nsquare:\n  token_env: FLOW_TEST_SQUARE_TOKEN_NOT_SET\n",
        dir.path().join("o").display()
    ))
    .unwrap();
    let err = run(&node, Stores::new().ctx("r"), first_run_inputs())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`FLOW_TEST_SQUARE_TOKEN_NOT_SET` (square.token_env) is not set"),
        "{err}"
    );
    assert!(!dir.path().join("o").exists());
}
