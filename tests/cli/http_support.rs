//! `flow serve --http` as a test fixture: the real binary on a free port, found from its log,
//! and an HTTP client that returns every status instead of failing on 4xx/5xx.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;

use crate::support::{Workspace, sigterm, wait_until};

/// A running `flow serve --http 127.0.0.1:0`.
pub struct Served {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `flow serve ARGS --http 127.0.0.1:0` (with `envs`) and waits until it listens.
    pub fn start(ws: &Workspace, args: &[&str], envs: &[(&str, &str)]) -> Served {
        let mut cmd = ws.command(
            ["serve"]
                .iter()
                .chain(args)
                .chain(&["--http", "127.0.0.1:0"]),
        );
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn flow serve");
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut served = Served {
            child: Some(child),
            base: String::new(),
            log,
        };
        let found = wait_until(Duration::from_secs(30), || {
            let log = served.log();
            match log.split("HTTP API and web UI on ").nth(1) {
                Some(rest) => {
                    served.base = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches('/')
                        .to_string();
                    true
                }
                None => false,
            }
        });
        assert!(
            found,
            "flow serve did not start listening; log:\n{}",
            served.log()
        );
        served
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops it with SIGTERM; its exit code and log.
    pub fn stop(mut self) -> (i32, String) {
        let child = self.child.take().expect("running");
        sigterm(&child);
        let status = child
            .wait_with_output()
            .expect("wait for flow serve")
            .status;
        // The reader thread has the rest of the log once the pipe closes.
        std::thread::sleep(Duration::from_millis(50));
        (status.code().unwrap_or(-1), self.log())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A response: status, headers and body text.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn reply(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut resp = resp.expect("the request reached the server");
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    Reply {
        status: resp.status().as_u16(),
        body: resp.body_mut().read_to_string().unwrap_or_default(),
        headers,
    }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.call())
}

pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.send(body))
}
