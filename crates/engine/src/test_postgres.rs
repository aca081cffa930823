//! A fresh PostgreSQL database per test, on the server `scripts/postgres` gives (a private
//! cluster it starts, or `FLOW_TEST_POSTGRES`). No server is a test failure, never a skip.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use postgres::{Client, NoTls};

/// A database that is dropped (with its connections) when this goes.
pub struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database.
    pub fn new() -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = server_url().to_string();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "flow_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin(&server, &format!("CREATE DATABASE {name}"));
        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("the test server's URL {server} names no database"),
        };
        TestDatabase { server, name, url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's URL (its `postgres` database), for statements about the whole server.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// Runs SQL in this database (from a thread of its own, so async tests may call it).
    pub fn execute(&self, sql: &str) {
        admin(&self.url, sql);
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let server = self.server.clone();
        let _ = std::thread::spawn(move || {
            Client::connect(&server, NoTls).and_then(|mut c| c.batch_execute(&sql))
        })
        .join();
    }
}

fn admin(url: &str, sql: &str) {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let mut client = Client::connect(&url, NoTls)
            .unwrap_or_else(|e| panic!("connect to the test PostgreSQL server {url}: {e}"));
        client
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    })
    .join()
    .expect("the PostgreSQL statement ran");
}

/// The test server's URL, started once per test process.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed; the PostgreSQL tests need a server (set FLOW_TEST_POSTGRES to use one):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}
