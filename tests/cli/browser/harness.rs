//! Headless Chromium driven over WebDriver: installs the browser once per test binary when it
//! is missing, starts a chromedriver per test on a free port, and offers the few waits and
//! reads the browser tests need.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Installs Chromium with `scripts/chromium` when chromedriver is missing. Under `CI=true` a
/// failed install fails the test; elsewhere the test is skipped with a message.
pub fn chromium_available() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        if Path::new(CHROMEDRIVER).exists() {
            return Ok(());
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/chromium");
        let out = Command::new(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() && Path::new(CHROMEDRIVER).exists() {
            Ok(())
        } else {
            Err(format!(
                "scripts/chromium failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    match ready {
        Ok(()) => true,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{e}"),
        Err(e) => {
            eprintln!("skipping a browser test: {e}");
            false
        }
    }
}

/// One browser session with its own chromedriver and profile; both end when it drops.
pub struct Browser {
    pub client: Client,
    pub base: String,
    driver: Child,
    driver_port: u16,
    _profile: TempDir,
}

impl Browser {
    /// A 1366×768 headless Chromium whose relative URLs resolve against `base`.
    pub async fn start(base: &str) -> Browser {
        // chromedriver picks its own free port and says which: a port chosen here and handed
        // over could be taken by another test in between.
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let port = match driver_port(&mut driver) {
            Some(port) => port,
            None => {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not say which port it listens on");
            }
        };
        let profile = tempfile::Builder::new()
            .prefix("flow-chromium-")
            .tempdir()
            .unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.path().display()),
            "--window-size=1366,768",
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "args": args, "binary": "/usr/bin/chromium" }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                stop_driver(&mut driver, port);
                panic!("no WebDriver session: {e}");
            }
        };
        Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            driver,
            driver_port: port,
            _profile: profile,
        }
    }

    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Waits for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => panic!(
                "no element `{css}` within {PATIENCE:?}: {e}\npage text:\n{}",
                self.body_text().await
            ),
        }
    }

    /// Clicks the element; one the live page re-rendered between finding and clicking is found
    /// again.
    pub async fn click(&self, css: &str) {
        let mut tries = 0;
        loop {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(e) if tries < 5 && e.to_string().contains("stale element") => tries += 1,
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    pub async fn body_text(&self) -> String {
        self.js("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The visible text of the first element matching `css` ("" when there is none).
    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "const el = document.querySelector({}); return el ? el.innerText : ''",
            json!(css)
        );
        self.js(&script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the text of `css` contains `needle`; panics with the page text if not.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "`{css}` never showed {needle:?} within {PATIENCE:?}; it shows {text:?}\npage:\n{}",
                    self.body_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Marks the current document; [`Browser::assert_not_reloaded`] fails if it was replaced.
    pub async fn mark_document(&self) {
        self.js("window.__flowMark = 'kept'; return null").await;
    }

    pub async fn assert_not_reloaded(&self) {
        let mark = self.js("return window.__flowMark || null").await;
        assert_eq!(mark, json!("kept"), "the page was reloaded");
    }

    /// Elements a hostile value would have created had it become markup.
    pub async fn injected_elements(&self) -> u64 {
        self.js(
            "return document.querySelectorAll('img[src=x], script:not([src]), [onerror], [onload]').length \
             + (window.__flowPwned ? 1000 : 0)",
        )
        .await
        .as_u64()
        .unwrap()
    }

    /// Saves a screenshot of the viewport at `width`×`height` to target/ui-screenshots/.
    pub async fn screenshot(&self, name: &str, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Wide content (graphs, tables) scrolls inside its box; the page itself never does.
        let overflow = self
            .js("return document.documentElement.scrollWidth - window.innerWidth")
            .await;
        assert!(
            overflow.as_i64().unwrap_or(0) <= 1,
            "{name} at {width}x{height} is {overflow} px wider than the window"
        );
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}-{width}x{height}.png")), png).unwrap();
    }

    /// Both standard sizes, returning to the desktop size.
    pub async fn screenshots(&self, name: &str) {
        self.screenshot(name, 390, 844).await;
        self.screenshot(name, 1366, 768).await;
    }

    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        stop_driver(&mut self.driver, self.driver_port);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked before `close` still stops its chromedriver and Chromium.
        stop_driver(&mut self.driver, self.driver_port);
    }
}

/// Reads chromedriver's "started successfully on port N" line; its output keeps draining in
/// a thread so that it never blocks on a full pipe.
fn driver_port(driver: &mut Child) -> Option<u16> {
    let stdout = driver.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.trim().trim_end_matches('.').parse::<u16>().ok())
            {
                let _ = tx.send(port);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(15)).ok()
}

/// Asks chromedriver to shut down, which also quits the browsers it started (a killed
/// chromedriver would leave them running), then makes sure it is gone.
fn stop_driver(child: &mut Child, port: u16) {
    if let Ok(None) = child.try_wait() {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = format!(
                "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots")
}
