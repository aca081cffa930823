//! No log level prints a secret: the shipped workflow pushing to a POS with a bearer token and a
//! URL with a password and a key in its query, run with `RUST_LOG=trace`, failing and resumed.

use crate::fake_pos::{FakePos, Reply};
use crate::shipped::{WF, out_dir, workspace, yaml_with_batches};
use crate::support::Output;

/// Everything at trace level but the database's own page-cache tracing: it holds no secrets and
/// is so verbose that a debug build spends minutes writing it.
const TRACE: &str = "trace,sled=info";

const TOKEN: &str = "Zq8Xw3Kp9Lm2Tb7R";
const PASSWORD: &str = "Pw4Hn6Vc1Jd8Gs5Y";
const QUERY_KEY: &str = "Qk2Mf9Wr5Ex3Ua7N";

/// Panics when any six consecutive characters of a secret appear in `text`: a hex dump prints
/// 16 bytes per line, so a secret split over two lines still shows a piece this long.
fn assert_no_secret(what: &str, text: &str) {
    for secret in [TOKEN, PASSWORD, QUERY_KEY] {
        let chars: Vec<char> = secret.chars().collect();
        for piece in chars.windows(6) {
            let piece: String = piece.iter().collect();
            if let Some(at) = text.find(&piece) {
                let line = text[..at].lines().count();
                panic!("{what} shows `{piece}` of a secret, near line {line}");
            }
        }
    }
}

fn check(output: &Output) {
    assert_no_secret(&format!("`{}` stdout", output.command), &output.stdout);
    assert_no_secret(&format!("`{}` stderr", output.command), &output.stderr);
}

#[test]
fn trace_logs_errors_and_reports_never_show_the_token_or_url_credentials() {
    let server = FakePos::start();
    // The second batch is refused: its error quotes the endpoint.
    server.set_rule(|r| {
        if r.key
            .as_deref()
            .is_some_and(|k| k.ends_with("/pos-batch-2"))
        {
            Reply::Status(400)
        } else {
            Reply::Status(200)
        }
    });
    let url = format!(
        "http://flow:{PASSWORD}@127.0.0.1:{}/updates?api_key={QUERY_KEY}&batch=1",
        server.port()
    );
    let ws = workspace(&yaml_with_batches(500));
    let failed = ws
        .flow()
        .args(["run", WF])
        .param("pos_url", &url)
        .env("FLOW_POS_TOKEN", TOKEN)
        .env("RUST_LOG", TRACE)
        .expect_exit(1)
        .run();
    // Trace lines come before `run ID of ...`, so the id comes from the store.
    let id = ws.show("last")["run"]["id"]
        .as_str()
        .expect("run id")
        .to_string();
    assert!(
        failed.stderr.contains("batch 2 of") && failed.stderr.contains("HTTP 400"),
        "{failed}"
    );
    check(&failed);
    // The URL is still recognisable, without its secrets.
    assert!(
        failed.stderr.contains("http://***@127.0.0.1:"),
        "the endpoint is not named\n{failed}"
    );

    server.set_rule(|_| Reply::Status(200));
    let resumed = ws
        .flow()
        .args(["resume", "last"])
        .env("FLOW_POS_TOKEN", TOKEN)
        .env("RUST_LOG", TRACE)
        .run();
    check(&resumed);
    check(
        &ws.flow()
            .args(["runs", "show", &id])
            .env("RUST_LOG", TRACE)
            .run(),
    );
    check(&ws.flow().args(["runs"]).env("RUST_LOG", TRACE).run());

    // The token did reach the endpoint, and trace logging was on (flow's own debug lines).
    let requests = server.requests();
    assert!(!requests.is_empty());
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(bearer.as_str()))
    );
    // Redaction is for printing only: the request went to the URL as given.
    let target = format!("/updates?api_key={QUERY_KEY}&batch=1");
    assert!(
        requests.iter().all(|r| r.path == target),
        "{:?}",
        requests[0].path
    );
    assert!(
        resumed.stderr.lines().count() > 20,
        "RUST_LOG=trace printed almost nothing\n{resumed}"
    );

    // The reports written for people name the endpoint without its secrets.
    let dir = out_dir(&ws);
    for name in ["summary.json", "report.html"] {
        let text = std::fs::read_to_string(dir.join(name)).expect("report file");
        assert_no_secret(name, &text);
    }
}
