//! The POS endpoint: a local server (127.0.0.1 only) that fails midway, retries and resumes.

use super::*;

/// One request the local server received.
#[derive(Debug, Clone)]
struct Received {
    key: String,
    authorization: Option<String>,
    body: Json,
    status: u16,
}

/// A local HTTP server on 127.0.0.1 answering each request with `respond(key, nth time this key
/// is seen)`. It serves at most 100 requests for at most 60 s, and stops when dropped.
struct PosServer {
    url: String,
    log: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PosServer {
    fn start(respond: impl Fn(&str, usize) -> u16 + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/pos/updates", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::<Received>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut served = 0;
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline && served < 100 {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        serve(stream, &log2, &respond);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break,
                }
            }
        });
        PosServer {
            url,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for PosServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Received>>, respond: &dyn Fn(&str, usize) -> u16) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut line = String::new();
    let _ = reader.read_line(&mut line); // request line
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let key = headers.get("idempotency-key").cloned().unwrap_or_default();
    let mut log = log.lock().unwrap();
    let nth = 1 + log.iter().filter(|r| r.key == key).count();
    let status = respond(&key, nth);
    log.push(Received {
        key,
        authorization: headers.get("authorization").cloned(),
        body: serde_json::from_slice(&body).unwrap_or(Json::Null),
        status,
    });
    drop(log);
    let text = if status < 300 {
        "{\"ok\":true}"
    } else {
        "{\"error\":\"try later\"}"
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

/// Five customers over two branches: batches of 2 make three batches.
fn five_customers() -> Inputs {
    inputs(vec![
        (
            "campaign_vip",
            campaign_table(&[
                ("C5", "vip", "e@example.com", "Eve", true, 5.0, 5.0, 1, 0.5),
                ("C1", "vip", "a@example.com", "Ada", true, 1.0, 1.0, 1, 0.5),
                ("C3", "vip", "c@example.com", "Cy", false, 3.0, 3.0, 1, 0.5),
            ]),
        ),
        (
            "campaign_new",
            campaign_table(&[
                ("C2", "new", "b@example.com", "Bob", true, 2.0, 2.0, 1, 0.5),
                ("C4", "new", "d@example.com", "Dan", true, 4.0, 4.0, 1, 0.5),
            ]),
        ),
        (
            "rec_vip",
            recommendation_table(&[("C1", "vip", 2, "P2"), ("C1", "vip", 1, "P1")]),
        ),
    ])
}

fn pos_node(dir: &Path, url: &str, extra: &str) -> Arc<dyn Node> {
    configure(&format!(
        "out_dir: {}\nmessages: none\npos_url: {url}\npos_token_env: PATH\nbatch_size: 2\npos_backoff: 1ms\npos_timeout: 10s\n{extra}",
        dir.display()
    ))
    .unwrap()
}

#[test]
fn pos_batches_failing_midway_are_sent_exactly_once_across_a_resume() {
    // The second batch fails with a 500 the first time it arrives.
    let server = PosServer::start(|key, nth| {
        if key.ends_with("pos-batch-2") && nth == 1 {
            500
        } else {
            200
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let node = pos_node(dir.path(), &server.url, "pos_retries: 0\n");
    let stores = Stores::new();

    let err = run(&node, stores.ctx("run-7"), five_customers())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("batch 2 of 3 failed: HTTP 500"), "{err}");
    assert!(err.contains("1 earlier batch was acknowledged"), "{err}");
    assert!(
        dir.path().join("segments.csv").exists(),
        "files are written before the POS update"
    );
    assert_eq!(server.received().len(), 2);

    // Resume: the same run, the same ledger.
    let out = run(&node, stores.ctx("run-7"), five_customers()).unwrap();
    assert_eq!(out.meta["pos_batches"], 3);
    assert_eq!(out.meta["pos_batches_sent"], 2);
    assert_eq!(out.meta["pos_batches_already_sent"], 1);

    let received = server.received();
    let keys: Vec<&str> = received.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "run-7/deploy/pos-batch-1",
            "run-7/deploy/pos-batch-2",
            "run-7/deploy/pos-batch-2",
            "run-7/deploy/pos-batch-3"
        ],
        "batch 1 was not sent again"
    );
    let mut acknowledged: BTreeMap<&str, usize> = BTreeMap::new();
    for r in received.iter().filter(|r| r.status == 200) {
        *acknowledged.entry(&r.key).or_default() += 1;
    }
    assert_eq!(acknowledged.len(), 3);
    assert!(acknowledged.values().all(|&n| n == 1), "{acknowledged:?}");

    // The payloads: customers sorted by id across branches, with their recommendations.
    let token = std::env::var("PATH").unwrap();
    let mut customers = Vec::new();
    for r in received.iter().filter(|r| r.status == 200) {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {}", token.trim()).as_str())
        );
        assert_eq!(r.body["batches"], 3);
        for c in r.body["customers"].as_array().unwrap() {
            customers.push(c["customer_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(customers, ["C1", "C2", "C3", "C4", "C5"]);
    let c1 = &received[0].body["customers"][0];
    assert_eq!(c1["segment"], "vip");
    assert_eq!(c1["clv"], 1.0);
    assert_eq!(c1["recommendations"][0]["product_id"], "P1");
    assert_eq!(c1["recommendations"][1]["product_id"], "P2");
    assert!(
        c1.get("body_html").is_none(),
        "message bodies are not sent to the POS"
    );

    // Running the finished run once more sends nothing.
    let out = run(&node, stores.ctx("run-7"), five_customers()).unwrap();
    assert_eq!(out.meta["pos_batches_sent"], 0);
    assert_eq!(server.received().len(), 4);
}

#[test]
fn pos_retries_server_errors_with_backoff_but_not_client_errors() {
    let server = PosServer::start(|key, nth| match key {
        k if k.ends_with("pos-batch-2") && nth <= 2 => 503,
        k if k.starts_with("bad/") => 400,
        _ => 200,
    });
    let dir = tempfile::tempdir().unwrap();
    let node = pos_node(dir.path(), &server.url, "pos_retries: 2\n");
    let out = run(&node, Stores::new().ctx("good"), five_customers()).unwrap();
    assert_eq!(out.meta["pos_batches_sent"], 3);
    let attempts = server
        .received()
        .iter()
        .filter(|r| r.key == "good/deploy/pos-batch-2")
        .count();
    assert_eq!(attempts, 3, "two 503s, then success");

    let err = run(&node, Stores::new().ctx("bad"), five_customers())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("HTTP 400") && err.contains("not retried"),
        "{err}"
    );
    let bad = server
        .received()
        .iter()
        .filter(|r| r.key.starts_with("bad/"))
        .count();
    assert_eq!(bad, 1, "a 4xx is not retried");
}

#[test]
fn pos_connection_errors_fail_after_the_retries() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let node = pos_node(
        dir.path(),
        &format!("http://127.0.0.1:{port}/x"),
        "pos_retries: 1\n",
    );
    let err = run(&node, Stores::new().ctx("r"), five_customers())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("batch 1 of 3 failed") && err.contains("after 2 attempts"),
        "{err}"
    );
}

#[test]
fn the_pos_push_marks_the_control_group_without_the_offer_and_a_resume_records_the_send_once() {
    use super::outcomes::holdout_campaign;
    // The second batch fails once: the run fails after its files and ledger are written.
    let server = PosServer::start(|key, nth| {
        if key.ends_with("pos-batch-2") && nth == 1 {
            500
        } else {
            200
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let node = configure(&format!(
        "out_dir: {}\nmessages: none\npos_url: {}\npos_token_env: PATH\nbatch_size: 100\n\
         pos_backoff: 1ms\npos_timeout: 10s\npos_retries: 0\nsent_on: 2024-04-01\n",
        dir.path().display(),
        server.url
    ))
    .unwrap();
    let stores = Stores::new();
    let camp_inputs = || {
        let mut meta = serde_json::Map::new();
        meta.insert("holdout_key".into(), json!("campaign_vip"));
        meta.insert("holdout_share".into(), json!(0.2));
        Inputs(vec![Input {
            from: "campaign_vip".into(),
            case: None,
            role: Some("campaign".into()),
            data: Data::Table(holdout_campaign(300)),
            meta,
        }])
    };
    assert!(run(&node, stores.ctx("run-9"), camp_inputs()).is_err());
    run(&node, stores.ctx("run-9"), camp_inputs()).unwrap();

    let summary: Json = serde_json::from_str(&read(&dir.path().join("summary.json"))).unwrap();
    let sends = summary["outcomes"]["segments"][0]["sends"]
        .as_array()
        .unwrap();
    assert_eq!(
        sends.len(),
        1,
        "the resumed run recorded its send once: {sends:#?}"
    );

    let mut control = 0;
    for r in server.received().iter().filter(|r| r.status == 200) {
        for c in r.body["customers"].as_array().unwrap() {
            let id = c["customer_id"].as_str().unwrap();
            let held = flow_analytics::holdout::is_control("campaign_vip", id, 0.2);
            assert_eq!(c["group"], if held { "control" } else { "treated" }, "{c}");
            if held {
                control += 1;
                assert_eq!(c["offer"], "no offer (control group)", "{c}");
                assert_eq!(c["recommended_action"], "Control group: no campaign offer");
                assert_eq!(c["message_sent"], false, "{c}");
            } else {
                assert_eq!(c["offer"], "early access", "{c}");
            }
            assert!(c.get("eligible").is_none(), "internal column: {c}");
        }
    }
    assert!(control > 20, "{control}");
}
