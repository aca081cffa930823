//! The HTTP API with 100,000 runs in the store, on a real TCP port.
//!
//! `cargo bench --bench api` fills a fresh sled store with 100,000 run records (three
//! workflows, every status), runs the shipped segmentation workflow once through the API, and
//! prints the latency of:
//! - the first page of `/api/runs?limit=50`, a filtered page (`status=failed`) and a deep page
//!   (the 1,000th, by cursor);
//! - the run page data (`/api/runs/ID`) of the segmentation run;
//! - server-sent events to 50 clients during a second segmentation run: time from the store
//!   write to each client receiving the event (p50, p99).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flow_engine::executor::Shutdown;
use flow_engine::serve::{ServeOptions, Server, SystemClock};
use flow_engine::store::{
    LiveRuns, RunRecord, SledStore, StateStore, StoreChange, WatchedStore, Write,
};
use serde_json::{Value as Json, json};
use tokio::sync::watch;

const RUNS: usize = 100_000;
const CLIENTS: usize = 50;
const SAMPLES: usize = 30;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = copy_segmentation(dir.path());
    let state = dir.path().join(".flow");
    let started = Instant::now();
    let sled = SledStore::open(&state).expect("open store");
    fill(&sled, &wf);
    println!(
        "filled the store with {RUNS} runs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store = Arc::new(WatchedStore::new(Arc::new(sled)));
    let live = LiveRuns::default();
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = Server::new(
        vec![wf.clone()],
        flow::builtin_registry(),
        store.clone(),
        Arc::new(SystemClock),
        live.clone(),
        events_tx,
        ServeOptions::default(),
    )
    .expect("serve the segmentation workflow");
    let handle = server.handle();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (stop_tx, stop_rx) = watch::channel(Shutdown::None);
    let (web_stop, web_stopped) = watch::channel(false);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("listen");
    let addr = listener.local_addr().expect("address");
    let base = format!("http://{addr}");
    let app = flow_web::AppState::new(
        handle,
        store.clone(),
        flow_web::WebOptions {
            bind: addr,
            state_dir: state.clone(),
            tokens: flow_web::Tokens::default(),
        },
        web_stopped.clone(),
        live,
    );
    let serving = rt.spawn(server.run(stop_rx));
    let mut stopped = web_stopped;
    let web = rt.spawn(flow_web::serve(listener, app, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    rt.spawn(async move { while events_rx.recv().await.is_some() {} });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |path: &str| -> (Duration, Json) {
        let t = Instant::now();
        let mut r = agent.get(format!("{base}{path}")).call().expect(path);
        let body: Json =
            serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
        (t.elapsed(), body)
    };
    // The first request waits for the run index to load.
    let (load, _) = get("/api/runs?limit=1");
    println!(
        "first answer (run index loaded from the store): {:.0} ms",
        ms(load)
    );
    report(
        "GET /api/runs?limit=50",
        (0..SAMPLES).map(|_| get("/api/runs?limit=50").0).collect(),
    );
    report(
        "GET /api/runs?status=failed&limit=50",
        (0..SAMPLES)
            .map(|_| get("/api/runs?status=failed&limit=50").0)
            .collect(),
    );
    let mut cursor = String::new();
    for _ in 0..1000 {
        let (_, page) = get(&format!("/api/runs?limit=50{cursor}"));
        cursor = format!(
            "&cursor={}",
            page["next_cursor"].as_str().expect("more pages")
        );
    }
    report(
        "GET /api/runs?limit=50&cursor=(page 1,000)",
        (0..SAMPLES)
            .map(|_| get(&format!("/api/runs?limit=50{cursor}")).0)
            .collect(),
    );

    let run = start_and_wait(&agent, &base);
    report(
        "GET /api/runs/ID (segmentation run page)",
        (0..SAMPLES)
            .map(|_| get(&format!("/api/runs/{run}")).0)
            .collect(),
    );

    // SSE fan-out: when each change was written (seen in-process), when each client got it.
    let written: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut changes = store.subscribe();
    let sink = written.clone();
    rt.spawn(async move {
        while let Ok(change) = changes.recv().await {
            if let StoreChange::Node { run_id, record } = change {
                let key = format!("{run_id}/{}/{}", record.node_id, record.status.as_str());
                sink.lock().unwrap().entry(key).or_insert_with(Instant::now);
            }
        }
    });
    let received: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let received = received.clone();
        let url = format!("{base}/api/events");
        readers.push(std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
            let mut r = agent.get(url).call().expect("events");
            let reader = BufReader::new(r.body_mut().as_reader());
            let mut event = String::new();
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if line == ": connected" {
                    let _ = ready_tx.send(());
                } else if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(data) = line.strip_prefix("data: ")
                    && event == "node"
                {
                    let at = Instant::now();
                    let v: Json = serde_json::from_str(data).unwrap_or(Json::Null);
                    let key = format!(
                        "{}/{}/{}",
                        v["run_id"].as_str().unwrap_or(""),
                        v["node"]["id"].as_str().unwrap_or(""),
                        v["node"]["status"].as_str().unwrap_or("")
                    );
                    received.lock().unwrap().push((key, at));
                }
            }
        }));
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("client connected");
    }
    start_and_wait(&agent, &base);
    std::thread::sleep(Duration::from_millis(500));
    let written = written.lock().unwrap();
    let mut latencies: Vec<Duration> = received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(key, at)| written.get(key).map(|w| at.saturating_duration_since(*w)))
        .collect();
    println!(
        "SSE fan-out: {} node events delivered to {CLIENTS} clients",
        latencies.len()
    );
    latencies.sort();
    report("SSE store write -> client (50 clients)", latencies);

    let _ = web_stop.send(true);
    let _ = stop_tx.send(Shutdown::Drain);
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), web).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), serving).await;
    });
    drop(readers);
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, mut samples: Vec<Duration>) {
    if samples.is_empty() {
        println!("{what}: no samples");
        return;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*samples.last().unwrap()),
        samples.len()
    );
}

/// Starts a segmentation run through the API and waits for it to succeed.
fn start_and_wait(agent: &ureq::Agent, base: &str) -> String {
    let t = Instant::now();
    let mut r = agent
        .post(format!("{base}/api/workflows/segmentation/runs"))
        .send_empty()
        .expect("start");
    let body: Json =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
    let run = body["run_id"].as_str().expect("run id").to_string();
    loop {
        let mut r = agent
            .get(format!("{base}/api/runs/{run}"))
            .call()
            .expect("run");
        let detail: Json =
            serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
        match detail["status"].as_str() {
            Some("succeeded") => break,
            Some("failed" | "interrupted") => panic!("the segmentation run failed: {detail}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    println!(
        "segmentation run {run} took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    run
}

/// The shipped workflow and its sample data in `dir`.
fn copy_segmentation(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wf = dir.join("segmentation.yaml");
    std::fs::copy(root.join("workflows/segmentation.yaml"), &wf).expect("copy workflow");
    std::fs::create_dir_all(dir.join("data")).expect("data dir");
    for name in ["customers.csv", "transactions.csv", "catalog.csv"] {
        std::fs::copy(
            root.join("workflows/data").join(name),
            dir.join("data").join(name),
        )
        .expect("copy data");
    }
    wf
}

/// 100,000 finished runs of three workflows, a year of history, in batches.
fn fill(store: &SledStore, segmentation: &Path) {
    let workflows = [
        ("segmentation", segmentation.display().to_string()),
        ("nightly-export", "/srv/flow/export.yaml".to_string()),
        ("hourly-sync", "/srv/flow/sync.yaml".to_string()),
    ];
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let mut batch = Vec::new();
    for i in 0..RUNS {
        let created = start + chrono::TimeDelta::seconds(i as i64 * 300);
        let (name, path) = &workflows[i % 3];
        // The served workflow resumes its interrupted scheduled runs at start
        // (`resume_interrupted`), which would queue thousands of resumes: its history has none.
        let status = match (i % 10, i % 3) {
            (0 | 1, _) | (2, 0) => "failed",
            (2, _) => "interrupted",
            _ => "succeeded",
        };
        let id = format!("{}-0001", created.format("%Y%m%d-%H%M%S-%3f"));
        let finished = created + chrono::TimeDelta::seconds(40 + (i % 50) as i64);
        let record: RunRecord = serde_json::from_value(json!({
            "id": id, "workflow_name": name, "workflow_path": path,
            "workflow_fingerprint": "3f2a9c0d1e",
            "node_fingerprints": (0..12).map(|n| (format!("node_{n}"), format!("fp{n:08x}"))).collect::<HashMap<_, _>>(),
            "params": { "vip_min_clv": 300, "new_within_days": 60, "out_dir": "out", "pos_url": "", "currency": "USD" },
            "param_overrides": {},
            "trigger": { "fired_by": "schedule", "triggers": ["daily"], "time": created, "scheduled_for": created },
            "status": status, "created_at": created, "updated_at": finished, "finished_at": finished,
            "executions": 1,
            "error": if status == "failed" { Json::from("node `transactions` failed: data/transactions.csv: line 812: bad amount `12,5`") } else { Json::Null },
        }))
        .expect("record");
        batch.push(Write::Run(record));
        if batch.len() == 2000 {
            store.apply(std::mem::take(&mut batch)).expect("write");
        }
    }
    store.apply(batch).expect("write");
    store.flush().expect("flush");
}
