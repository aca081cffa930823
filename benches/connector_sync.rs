//! The Shopify connector's sync against a local mock shop: a first full load of about 1M line
//! items (one bulk operation, its JSONL downloaded and nested), then a day of 10k changed
//! orders on top of that history. Each phase is a real `flow run` of a one-node workflow in its
//! own process; the bench prints wall time, the process's peak memory (max RSS, measured by
//! GNU time) and the
//! requests the shop served.
//!
//!   cargo bench --bench connector_sync                  # 200,000 orders x 5 lines
//!   cargo bench --bench connector_sync -- --orders 20000 --day 2000
//!
//! The mock's cost bucket is set large, so the figures are flow's own work, not Shopify's rate
//! limit (which a real shop adds: see docs/connectors/shopify.md).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flow_retail::connectors::shopify::mock::{MockShop, State, order};

const LINES_PER_ORDER: u64 = 5;
const CUSTOMERS: u64 = 50_000;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Order `id` as of `day` (0: the history, 1: changed on the second day).
fn make_order(id: u64, day: u64) -> serde_json::Value {
    let customer = 1 + (id * 7919) % CUSTOMERS;
    let d = 1 + id % 28;
    let m = 1 + (id / 28) % 12;
    let placed = format!("2025-{m:02}-{d:02}T1{}:15:00Z", id % 10);
    let updated = if day == 0 {
        "2026-01-09T12:00:00Z".to_string()
    } else {
        "2026-01-10T09:30:00Z".to_string()
    };
    let lines: Vec<(u64, i64, String)> = (0..LINES_PER_ORDER - day)
        .map(|l| {
            (
                1 + (id * 31 + l * 17) % 2000,
                1 + (l % 3) as i64,
                format!("{}.{:02}", 5 + l * 3, id % 100),
            )
        })
        .collect();
    let refs: Vec<(u64, i64, &str)> = lines.iter().map(|(p, q, s)| (*p, *q, s.as_str())).collect();
    order(id, Some(customer), &placed, &updated, &refs)
}

/// Runs `flow run` in `dir` under GNU time, returning (wall time, max RSS in KiB).
fn run_flow(bin: &Path, dir: &Path, token: &str) -> (Duration, u64) {
    let measured = dir.join("time.txt");
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(&measured)
        .arg(bin)
        .current_dir(dir)
        .args(["--state", ".flow", "run", "sync.yaml"])
        .env("SHOPIFY_TOKEN", token)
        .env_remove("RUST_LOG")
        .output()
        .expect("run flow under /usr/bin/time");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "flow run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = Command::new(bin)
        .current_dir(dir)
        .args(["--state", ".flow", "runs", "show", "last", "--json"])
        .output()
        .expect("flow runs show");
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).expect("runs show json");
    for node in show["nodes"].as_array().into_iter().flatten() {
        if node["node_id"] == "transactions" {
            eprintln!(
                "  node `transactions` ran {} ms of the {} ms (the rest: start-up, the checkpoint)",
                node["duration_ms"],
                wall.as_millis()
            );
        }
    }
    let text = std::fs::read_to_string(&measured).expect("time's output");
    let figures: Vec<f64> = text
        .lines()
        .next_back()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [rss, user, sys] = figures[..] else {
        panic!("/usr/bin/time wrote {text}");
    };
    eprintln!("  cpu {user:.2} s user + {sys:.2} s system");
    let rss = rss as u64;
    (wall, rss)
}

fn main() {
    let orders = arg("--orders", 200_000);
    let day = arg("--day", 10_000).min(orders);
    let bin = Path::new(env!("CARGO_BIN_EXE_flow"));

    let t = Instant::now();
    let mut state = State::default();
    state.query_cost = 1.0;
    state.bucket_max = 1_000_000.0;
    state.restore_rate = 1_000_000.0;
    state.bulk_polls = 1;
    state.set_available(1_000_000.0);
    for id in 1..=orders {
        state
            .orders
            .insert(format!("gid://shopify/Order/{id}"), make_order(id, 0));
    }
    let token = state.token.clone();
    let shop = MockShop::start(state);
    eprintln!(
        "mock shop with {orders} orders ({} line items) ready in {:.1}s",
        orders * LINES_PER_ORDER,
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "name: shopify-sync-bench\nnodes:\n  - id: start\n    kind: trigger\n    type: manual\n  \
         - id: transactions\n    kind: action\n    type: shopify.orders\n    needs: start\n    \
         with:\n      shop: bench.myshopify.com\n      base_url: {}\n      token_env: SHOPIFY_TOKEN\n      \
         page_size: 250\n      poll_interval: 100ms\n",
        shop.base_url()
    );
    std::fs::write(dir.path().join("sync.yaml"), yaml).expect("write workflow");

    let before = shop.counts();
    let (full_wall, full_rss) = run_flow(bin, dir.path(), &token);
    let full_requests = shop.counts().total - before.total;
    let full_mock = shop.counts().busy - before.busy;

    // Day 2: `day` orders changed (one line fewer each), spread over the history.
    {
        let mut s = shop.state();
        let step = (orders / day.max(1)).max(1);
        for n in 0..day {
            let id = 1 + n * step;
            s.orders
                .insert(format!("gid://shopify/Order/{id}"), make_order(id, 1));
        }
        s.now = "2026-01-10T10:00:00Z".into();
    }
    let before = shop.counts();
    let (day_wall, day_rss) = run_flow(bin, dir.path(), &token);
    let day_requests = shop.counts().total - before.total;
    let day_mock = shop.counts().busy - before.busy;

    let status = Command::new(bin)
        .current_dir(dir.path())
        .args(["--state", ".flow", "sync", "status", "sync.yaml"])
        .output()
        .expect("flow sync status");
    let status = String::from_utf8_lossy(&status.stdout);
    let want_lines = orders * LINES_PER_ORDER - day;
    assert!(
        status.contains(&format!("{orders} orders ({want_lines} lines)")),
        "the history after day 2 is wrong:\n{status}"
    );

    // The mock builds every page and the bulk file while flow waits: its time is not flow's.
    let own = |wall: Duration, mock: Duration| wall.saturating_sub(mock).as_secs_f64();
    println!(
        "full load     {orders} orders, {} line items: {:.2} s ({:.2} s without the mock's own \
         {:.2} s), peak RSS {} MiB, {full_requests} requests",
        orders * LINES_PER_ORDER,
        full_wall.as_secs_f64(),
        own(full_wall, full_mock),
        full_mock.as_secs_f64(),
        full_rss / 1024
    );
    println!(
        "one day       {day} changed orders on that history: {:.2} s ({:.2} s without the \
         mock's own {:.2} s), peak RSS {} MiB, {day_requests} requests",
        day_wall.as_secs_f64(),
        own(day_wall, day_mock),
        day_mock.as_secs_f64(),
        day_rss / 1024
    );
    println!(
        "ratio         without the mock, the day takes {:.1}% of the full load's time for {:.1}% \
         of its orders",
        100.0 * own(day_wall, day_mock) / own(full_wall, full_mock),
        100.0 * day as f64 / orders as f64
    );
    print!("{status}");
}
