//! `http.request` against a local server that answers from a script.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;

use super::*;
use crate::data::{Body, Data};
use crate::node::Input;

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    key: Option<String>,
    auth: Option<String>,
    body: String,
}

type Script =
    Arc<Mutex<Box<dyn FnMut(usize, &Seen) -> (u16, Vec<(String, String)>, String) + Send>>>;

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(
        script: impl FnMut(usize, &Seen) -> (u16, Vec<(String, String)>, String) + Send + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/api/items?token=abc",
            listener.local_addr().unwrap()
        );
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Script = Arc::new(Mutex::new(Box::new(script)));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.is_empty() {
                    continue;
                }
                let method = line.split(' ').next().unwrap_or("").to_string();
                let (mut len, mut key, mut auth) = (0usize, None, None);
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (n, v) = h.split_once(':').unwrap();
                    let v = v.trim().to_string();
                    match n.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.parse().unwrap(),
                        "idempotency-key" => key = Some(v),
                        "authorization" => auth = Some(v),
                        _ => {}
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let seen = Seen {
                    method,
                    key,
                    auth,
                    body: String::from_utf8(body).unwrap(),
                };
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(seen.clone());
                    log.len()
                };
                let (status, headers, text) = (script.lock().unwrap())(n, &seen);
                let mut reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    text.len()
                );
                for (k, v) in headers {
                    reply.push_str(&format!("{k}: {v}\r\n"));
                }
                reply.push_str("\r\n");
                reply.push_str(&text);
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Server { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn ok(_: usize, _: &Seen) -> (u16, Vec<(String, String)>, String) {
    (200, vec![], r#"{"ok":true}"#.into())
}

fn node(yaml: &str) -> Arc<dyn Node> {
    let value: Json = serde_yaml::from_str(yaml).unwrap();
    let params = Params::new(value.as_object().unwrap().clone(), "/");
    let cx = ConfigureCx {
        node_id: "push",
        kind: NodeKind::Action,
        workflow_dir: std::path::Path::new("/"),
        input_columns: &[],
    };
    HttpRequest
        .configure(&params, &cx)
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn run(node: &Arc<dyn Node>, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(node.run(ctx, inputs))
}

fn rows(n: i64) -> Inputs {
    let table = RecordBatch::try_from_iter(vec![(
        "id",
        Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
    )])
    .unwrap();
    Inputs(vec![Input {
        from: "customers".into(),
        case: None,
        role: None,
        data: Data::Table(table),
        meta: Default::default(),
    }])
}

#[test]
fn a_single_request_returns_the_json_body() {
    let server = Server::start(|_, _| (200, vec![], r#"{"id": 7}"#.into()));
    let n = node(&format!("{{url: '{}', body: {{name: shop}}}}", server.url));
    let out = run(&n, crate::testing::context(), Inputs::default()).unwrap();
    match &out.body {
        Body::Data(Data::Json(v)) => assert_eq!(v, &json!({"id": 7})),
        other => panic!("{other:?}"),
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body, r#"{"name":"shop"}"#);
    assert_eq!(seen[0].key.as_deref(), Some("test-run/test-node/request-1"));
}

#[test]
fn a_429_waits_for_retry_after_and_a_500_is_retried() {
    let server = Server::start(|n, _| match n {
        1 => (
            429,
            vec![("Retry-After".into(), "1".into())],
            "slow down".into(),
        ),
        2 => (500, vec![], "oops".into()),
        _ => (200, vec![], "{}".into()),
    });
    let n = node(&format!(
        "{{url: '{}', method: GET, backoff: 10ms}}",
        server.url
    ));
    let started = std::time::Instant::now();
    run(&n, crate::testing::context(), Inputs::default()).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| s.key == seen[0].key),
        "one key across retries"
    );
}

#[test]
fn a_4xx_fails_at_once_naming_node_url_and_status_without_secrets() {
    let server = Server::start(|_, _| (403, vec![], "forbidden".into()));
    let n = node(&format!(
        "{{url: '{}', auth: {{bearer_env: PATH}}}}",
        server.url
    ));
    let err = run(&n, crate::testing::context(), Inputs::default())
        .unwrap_err()
        .to_string();
    assert_eq!(server.seen().len(), 1, "not retried");
    assert!(
        err.contains("http.request `push`") && err.contains("HTTP 403"),
        "{err}"
    );
    assert!(err.contains("token=***") && !err.contains("abc"), "{err}");
    // The bearer token (here the value of PATH) went out but never shows in the error.
    let path = std::env::var("PATH").unwrap();
    assert_eq!(
        server.seen()[0].auth.as_deref(),
        Some(format!("Bearer {path}").as_str())
    );
    assert!(!err.contains(&path), "{err}");
}

#[test]
fn batches_resume_without_resending_acknowledged_ones() {
    // Batch 3 fails the first time it arrives.
    let failed = Arc::new(Mutex::new(false));
    let flag = failed.clone();
    let server = Server::start(move |_, seen| {
        let third = seen
            .key
            .as_deref()
            .is_some_and(|k| k.ends_with("request-3"));
        let mut f = flag.lock().unwrap();
        if third && !*f {
            *f = true;
            return (400, vec![], "bad".into());
        }
        ok(0, seen)
    });
    let n = node(&format!(
        "{{url: '{}', batch_size: 2, batch_key: customers, body: {{source: flow}}}}",
        server.url
    ));
    let ctx = crate::testing::context();
    let err = run(&n, ctx.clone(), rows(7)).unwrap_err().to_string();
    assert!(
        err.contains("request 3 of 4") && err.contains("2 earlier requests were acknowledged"),
        "{err}"
    );
    assert_eq!(server.seen().len(), 3);
    assert_eq!(
        server.seen()[0].body,
        r#"{"source":"flow","customers":[{"id":0},{"id":1}]}"#
    );
    // The resumed attempt sends batches 3 and 4 only.
    let out = run(&n, ctx, rows(7)).unwrap();
    let keys: Vec<String> = server.seen().iter().filter_map(|s| s.key.clone()).collect();
    assert_eq!(keys.len(), 5);
    assert!(
        keys[3].ends_with("request-3") && keys[4].ends_with("request-4"),
        "{keys:?}"
    );
    let Body::Data(Data::Table(t)) = &out.body else {
        panic!("a table")
    };
    let status = t
        .column_by_name("status")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(status.values().to_vec(), [200, 200, 200, 200]);
    assert_eq!(out.meta["sent"], 2);
    assert_eq!(out.meta["already_sent"], 2);
}

#[test]
fn a_literal_credential_in_auth_is_refused() {
    let params = Params::new(
        serde_json::from_str::<Json>(
            r#"{"url":"http://x/","auth":{"bearer_env":"sk_live_abc 1"}}"#,
        )
        .unwrap()
        .as_object()
        .unwrap()
        .clone(),
        "/",
    );
    let cx = ConfigureCx {
        node_id: "push",
        kind: NodeKind::Action,
        workflow_dir: std::path::Path::new("/"),
        input_columns: &[],
    };
    let errors = HttpRequest.configure(&params, &cx).err().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("naming environment variables"))
    );
}

#[test]
fn a_literal_authorization_header_is_refused() {
    let params = Params::new(
        serde_json::from_str::<Json>(
            r#"{"url":"http://x/","headers":{"Authorization":"Bearer abc","X-Api-Key":{"env":"K"}}}"#,
        )
        .unwrap()
        .as_object()
        .unwrap()
        .clone(),
        "/",
    );
    let cx = ConfigureCx {
        node_id: "push",
        kind: NodeKind::Action,
        workflow_dir: std::path::Path::new("/"),
        input_columns: &[],
    };
    let errors = HttpRequest.configure(&params, &cx).err().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .message
            .contains("`Authorization` carries a credential")
    );
    assert!(!errors[0].message.contains("abc"));
}
