//! Sending over SMTP to a real server (aiosmtpd, `tests/smtp/server.py`, in the Python
//! environment of `scripts/python-env`): what arrives is parsed as a mail reader would.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::*;
use untrusted::deploy_to;

/// A running test SMTP server; killed when dropped.
pub(super) struct SmtpServer {
    child: Child,
    pub(super) port: u16,
    pub(super) dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, or why there is none.
fn python() -> Result<PathBuf, String> {
    let out = Command::new(repo().join("scripts/python-env"))
        .output()
        .map_err(|e| format!("could not start scripts/python-env: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/python-env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

impl SmtpServer {
    /// Starts the server with `args`; `None` (test skipped) only outside CI when Python or
    /// aiosmtpd cannot be set up.
    pub(super) fn start(args: &[&str]) -> Option<SmtpServer> {
        let python = match python() {
            Ok(p) => p,
            Err(why) if std::env::var_os("CI").is_none() => {
                eprintln!("skipping the SMTP test: {why}");
                return None;
            }
            Err(why) => panic!("CI must run the SMTP tests: {why}"),
        };
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(python)
            .arg(repo().join("tests/smtp/server.py"))
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("the SMTP server did not start: {line:?}"))
            .parse()
            .unwrap();
        Some(SmtpServer { child, port, dir })
    }

    /// The messages that arrived, in order: (recipient, raw text).
    pub(super) fn received(&self) -> Vec<(String, String)> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let rcpt = n.split_once('-').unwrap().1.trim_end_matches(".eml");
                (rcpt.to_string(), read(&self.dir.path().join(&n)))
            })
            .collect()
    }
}

fn email_block(port: u16, extra: &str) -> String {
    format!(
        "email: {{host: 127.0.0.1, port: {port}, tls: none, rate: 1000/s, backoff: 10ms{extra}}}\n"
    )
}

fn customers(n: usize, bad: &[usize]) -> Inputs {
    let rows: Vec<Row<'static>> = (0..n)
        .map(|i| {
            let id: &'static str = Box::leak(format!("C{i}").into_boxed_str());
            let email: &'static str = Box::leak(format!("c{i}@example.com").into_boxed_str());
            let consent = !bad.contains(&i);
            (
                id,
                "vip",
                email,
                "Ada\r\nBcc: victim@example.com",
                consent,
                1.0,
                1.0,
                1,
                0.5,
            )
        })
        .collect();
    inputs(vec![("campaign_vip", campaign_table(&rows))])
}

#[test]
fn each_customer_gets_one_multipart_message_with_safe_headers() {
    let Some(server) = SmtpServer::start(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(
        dir.path(),
        &format!(
            "unsubscribe_url: https://shop.example/u?c={{customer_id}}\n{}",
            email_block(server.port, "")
        ),
    );
    // C2 has no consent: no message.
    let out = run(&node, Stores::new().ctx("r1"), customers(4, &[2])).unwrap();
    let got = server.received();
    let rcpts: Vec<&str> = got.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        rcpts,
        ["c0@example.com", "c1@example.com", "c3@example.com"]
    );
    for (rcpt, text) in &got {
        let eml = parse_eml(text);
        assert!(eml.all("Bcc").is_empty(), "{text}");
        assert_eq!(
            decode_words(eml.one("Subject")),
            "Café treats for Ada Bcc: victim@example.com"
        );
        let (name, address) = mailbox_of(eml.one("To"));
        assert_eq!(
            (name.as_str(), address.as_str()),
            ("Ada Bcc: victim@example.com", rcpt.as_str())
        );
        assert!(eml.body.contains("<p>Hi Ada"), "{}", eml.body);
        assert!(eml.text.starts_with("Hi Ada"), "{}", eml.text);
        assert!(!eml.text.contains('<'), "{}", eml.text);
        assert!(
            eml.one("List-Unsubscribe")
                .starts_with("<https://shop.example/u?c=C")
        );
        assert_eq!(
            eml.one("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
    }
    // What was sent is what the .eml file holds.
    let file = read(&dir.path().join("messages/vip/C0.eml"));
    assert_eq!(
        got[0].1.replace("\r\n", "\n").trim_end(),
        file.replace("\r\n", "\n").trim_end()
    );
    let value = json_out(&out);
    assert_eq!(value["email"]["sent"], 3, "{value}");
    assert_eq!(value["email"]["bounced"], 0, "{value}");
}

#[test]
fn a_rejected_recipient_is_a_bounce_and_the_others_are_sent() {
    let Some(server) =
        SmtpServer::start(&["--reject", "c1@example.com", "--tempfail", "c2@example.com"])
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), &email_block(server.port, ""));
    let stores = Stores::new();
    let out = run(&node, stores.ctx("r1"), customers(4, &[])).unwrap();
    let rcpts: Vec<String> = server.received().into_iter().map(|(r, _)| r).collect();
    // c2 was greylisted once (451) and accepted on the retry.
    assert_eq!(
        rcpts,
        ["c0@example.com", "c2@example.com", "c3@example.com"]
    );
    let value = json_out(&out);
    let email = &value["email"];
    assert_eq!(
        (email["sent"].as_u64(), email["bounced"].as_u64()),
        (Some(3), Some(1)),
        "{value}"
    );
    assert_eq!(email["bounces"][0]["customer_id"], "C1");
    assert_eq!(email["bounces"][0]["code"], 550);
    assert!(
        email["bounces"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("User unknown")
    );
    let bounces = read(&dir.path().join("bounces.csv"));
    assert!(
        bounces.starts_with("customer_id,segment,email,code,reason\n"),
        "{bounces}"
    );
    assert!(bounces.contains("C1,vip,c1@example.com,550,"), "{bounces}");

    // Another attempt of the same run sends nothing again and reports the same bounce.
    let again = run(&node, stores.ctx("r1"), customers(4, &[])).unwrap();
    assert_eq!(server.received().len(), 3);
    let value = json_out(&again);
    assert_eq!(value["email"]["already_sent"], 3, "{value}");
    assert_eq!(value["email"]["bounces"][0]["customer_id"], "C1", "{value}");

    // Another run of the same day sends nothing either; a run on a later day sends again.
    let same_day = run(&node, stores.ctx("r2"), customers(4, &[])).unwrap();
    assert_eq!(server.received().len(), 3);
    assert_eq!(json_out(&same_day)["email"]["already_sent"], 3);
    let next_day = deploy_to(
        dir.path(),
        &format!("sent_on: 2099-01-02\n{}", email_block(server.port, "")),
    );
    run(&next_day, stores.ctx("r3"), customers(4, &[])).unwrap();
    assert_eq!(server.received().len(), 6);
}

#[test]
fn every_message_rejected_fails_the_run() {
    let Some(server) = SmtpServer::start(&["--reject", "c0@example.com"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), &email_block(server.port, ""));
    let err = run(&node, Stores::new().ctx("r1"), customers(1, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rejected every message") && err.contains("127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn an_unreachable_server_fails_the_run_and_names_it() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let node = deploy_to(dir.path(), &email_block(port, ", retries: 1"));
    let err = run(&node, Stores::new().ctx("r1"), customers(2, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("SMTP server 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("after 2 attempts"), "{err}");
}

#[test]
fn starttls_with_a_private_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have openssl for the STARTTLS test"
        );
        eprintln!("skipping the STARTTLS test: no openssl");
        return;
    }
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let Some(server) = SmtpServer::start(&["--cert", &c, "--key", &k]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let block = format!(
        "email: {{host: localhost, port: {}, tls: starttls, rate: 1000/s, ca_file: '{c}'}}\n",
        server.port
    );
    let node = deploy_to(dir.path(), &block);
    run(&node, Stores::new().ctx("r1"), customers(2, &[])).unwrap();
    assert_eq!(server.received().len(), 2);

    // Without the certificate trusted, nothing is sent and the error says TLS.
    let node = deploy_to(
        dir.path(),
        &format!(
            "email: {{host: localhost, port: {}, tls: starttls}}\n",
            server.port
        ),
    );
    let err = run(&node, Stores::new().ctx("r2"), customers(2, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    assert_eq!(server.received().len(), 2);
}
