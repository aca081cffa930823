//! Control groups on the shipped workflow: the same customers are held out in every run and
//! after a kill -9 and resume; the sends are recorded once per run.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{WF, out_dir, profiles, read_json, workspace};
use crate::shipped::shipped_yaml;
use crate::support::Workspace;

/// Customer -> group of the run's `segments.csv`.
fn groups(ws: &Workspace, run: &str) -> BTreeMap<String, String> {
    profiles(&out_dir(ws, run))
        .into_iter()
        .map(|(id, p)| (id, p["group"].clone()))
        .collect()
}

#[test]
fn control_groups_are_stable_across_runs_and_a_killed_run_resumed() {
    let ws = workspace(&shipped_yaml());
    let started = Instant::now();
    let first = ws.flow().args(["run", WF]).run().run_id();
    let took = started.elapsed();
    let before = groups(&ws, &first);
    assert!(before.values().any(|g| g == "control"), "no control group");
    assert!(before.values().all(|g| g == "control" || g == "treated"));

    // A second run killed midway (SIGKILL), then resumed.
    let mut child = ws
        .command(["run", WF])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn flow run");
    std::thread::sleep(took.mul_f64(0.6).min(Duration::from_secs(5)));
    let _ = child.kill();
    let finished = child.wait().expect("wait").success();
    let show = ws.show("last");
    let mut second = show["run"]["id"].as_str().expect("run id").to_string();
    if second == first {
        // Killed before the run was recorded: nothing to resume.
        second = ws.flow().args(["run", WF]).run().run_id();
    } else if !finished && show["run"]["status"] != "succeeded" {
        ws.flow().args(["resume", "last"]).run();
    }
    assert_eq!(ws.statuses(&second)["deploy"], "succeeded");
    assert_eq!(
        groups(&ws, &second),
        before,
        "the same customers are held out"
    );

    // Each run recorded one send per email campaign with customers, never two.
    let summary = read_json(&out_dir(&ws, &second).join("summary.json"));
    let mut seen = BTreeSet::new();
    let mut per_run: BTreeMap<String, usize> = BTreeMap::new();
    for segment in summary["outcomes"]["segments"]
        .as_array()
        .expect("segments")
    {
        for send in segment["sends"].as_array().expect("sends") {
            let key = (
                send["run_id"].as_str().unwrap().to_string(),
                send["campaign"].as_str().unwrap().to_string(),
                send["segment"].as_str().unwrap().to_string(),
            );
            assert!(seen.insert(key.clone()), "{key:?} recorded twice");
            *per_run.entry(key.0).or_default() += 1;
        }
    }
    let campaigns = summary["outcomes"]["recorded"].as_array().unwrap().len();
    assert!(campaigns >= 3, "{summary:#}");
    assert_eq!(per_run.get(&first), Some(&campaigns), "{per_run:?}");
    assert_eq!(per_run.get(&second), Some(&campaigns), "{per_run:?}");
}
