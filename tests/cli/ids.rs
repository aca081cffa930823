//! Run ids sort by creation: `last` is the newest run even when many runs start in one second.

use crate::support::Workspace;

const ONE_NODE: &str = "name: quick\nnodes:\n  - { id: start, kind: trigger, type: manual }\n  - { id: step, kind: action, type: core.noop, needs: start }\n";

#[test]
fn last_is_the_tenth_of_ten_quick_runs_and_ids_sort_by_creation() {
    let ws = Workspace::with_workflow(ONE_NODE);
    let ids: Vec<String> = (0..10).map(|_| ws.run().run().run_id()).collect();

    // Text order is creation order, for runs in the same second too.
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "ids do not sort in creation order");

    let tenth = &ids[9];
    let show = ws.show("last");
    assert_eq!(show["run"]["id"].as_str(), Some(tenth.as_str()), "{show:#}");

    // `flow resume last` picks the tenth: it already succeeded, and the message names it.
    ws.resume("last")
        .expect_exit(2)
        .run()
        .assert_stderr_contains(&format!("run {tenth} already succeeded"));

    // `flow runs` lists newest first.
    let listed = ws.flow().args(["runs", "--json"]).run().json();
    let listed: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
}

#[test]
fn ids_of_an_older_flow_still_resolve_and_sort_by_creation() {
    let ws = Workspace::with_workflow(ONE_NODE);
    let first = ws.run().run().run_id();
    let second = ws.run().run().run_id();
    // Rewrite both as ids of the older format (time to the second, random hex suffix), chosen
    // so that their text order is the reverse of their creation order.
    let stamp = first[..15].to_string();
    let older = [
        (first, format!("{stamp}-ffff")),
        (second, format!("{stamp}-0000")),
    ];
    {
        let db = sled::open(ws.path(".flow/db")).expect("open with sled");
        for (id, old) in &older {
            let bytes = db.remove(format!("run/{id}")).unwrap().expect("run record");
            let mut record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            record["id"] = old.as_str().into();
            db.insert(format!("run/{old}"), serde_json::to_vec(&record).unwrap())
                .unwrap();
        }
        db.flush().unwrap();
    }
    let third = ws.run().run().run_id();
    let listed = ws.flow().args(["runs", "--json"]).run().json();
    let listed: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, [third.as_str(), &older[1].1, &older[0].1]);
    let show = ws.show("last");
    assert_eq!(show["run"]["id"].as_str(), Some(third.as_str()));
    // An old id, and a unique prefix of one, still resolve.
    let shown = ws.show(&older[0].1[..18]);
    assert_eq!(shown["run"]["id"].as_str(), Some(older[0].1.as_str()));
}
