//! A POS endpoint on 127.0.0.1 for tests: records every request and answers as the test's rule
//! says, or holds a request unanswered (so a test can kill `flow` while a batch is in flight).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the endpoint answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// Never answered: the connection stays open until the server stops.
    Hold,
}

/// One request the endpoint received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub key: Option<String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
    pub reply: Reply,
    /// The answer was written to the connection.
    pub answered: bool,
}

impl Request {
    /// The status it was answered with (0 while held).
    pub fn status(&self) -> u16 {
        match self.reply {
            Reply::Status(status) => status,
            Reply::Hold => 0,
        }
    }
}

type Rule = Box<dyn FnMut(&Request) -> Reply + Send>;

/// The endpoint; stops when dropped (or after three minutes).
pub struct FakePos {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    rule: Arc<Mutex<Rule>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakePos {
    /// Answers 200 to everything until [`FakePos::set_rule`].
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let rule: Arc<Mutex<Rule>> = Arc::new(Mutex::new(Box::new(|_| Reply::Status(200))));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, rule, stop) = (requests.clone(), rule.clone(), stop.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(180);
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(s) = serve(stream, &rule, &requests) {
                                held.push(s);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        FakePos {
            url: format!("http://127.0.0.1:{port}/updates"),
            requests,
            rule,
            stop,
            thread: Some(thread),
        }
    }

    /// The port, for URLs with credentials in them.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    pub fn set_rule(&self, rule: impl FnMut(&Request) -> Reply + Send + 'static) {
        *self.rule.lock().unwrap() = Box::new(rule);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakePos {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request, records it, answers it as the rule says (recording that it was answered
/// only once the answer is written) and returns the stream when it is held.
fn serve(stream: TcpStream, rule: &Mutex<Rule>, log: &Mutex<Vec<Request>>) -> Option<TcpStream> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_string();
    let path = words.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let mut body = vec![0; headers.get("content-length")?.parse().ok()?];
    reader.read_exact(&mut body).ok()?;
    let mut request = Request {
        method,
        path,
        key: headers.get("idempotency-key").cloned(),
        authorization: headers.get("authorization").cloned(),
        body,
        reply: Reply::Hold,
        answered: false,
    };
    request.reply = (rule.lock().unwrap())(&request);
    let index = {
        let mut log = log.lock().unwrap();
        log.push(request.clone());
        log.len() - 1
    };
    let Reply::Status(status) = request.reply else {
        return Some(stream);
    };
    let text = if status == 200 {
        r#"{"ok":true}"#
    } else {
        r#"{"error":"refused"}"#
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
    log.lock().unwrap()[index].answered = true;
    let _ = stream.shutdown(Shutdown::Write);
    None
}
