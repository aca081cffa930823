//! Test support in the style of casey/just's integration tests: a [`Workspace`] is a temporary
//! directory holding a workflow (and any fixture files), and [`Flow`] is a builder that runs the
//! real `flow` binary in it with `--state <workspace>/.flow` and returns stdout, stderr and the
//! exit code.
//!
//! Shell nodes in the fixtures call `sh record.sh` (written into every workspace) to append one
//! line per execution to `exec.log`: the node id, the attempt and the names of the inputs the
//! node received. [`Workspace::counts`] and [`Workspace::log`] read it back, so tests can count
//! executions per node and see which inputs a join was given.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use tempfile::TempDir;

/// The workflow file every workspace uses.
pub const WORKFLOW: &str = "flow.yaml";

/// Appends `NODE ATTEMPT INPUT...` to `exec.log` (the workflow's directory is the cwd).
const RECORD_SH: &str = r#"# One line per node execution: node id, attempt, names of the input files.
names=""
old_ifs=$IFS
IFS=:
for f in $FLOW_INPUTS; do
  n=${f##*/}
  names="$names ${n%.*}"
done
IFS=$old_ifs
echo "$FLOW_NODE_ID $FLOW_ATTEMPT$names" >> exec.log
"#;

/// The `flow` binary under test.
pub fn flow_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_flow"))
}

/// A temporary directory with a workflow, fixture files and a state store (sled in `.flow`, or
/// a PostgreSQL database given by [`Workspace::on_postgres`]).
pub struct Workspace {
    tmp: TempDir,
    store: Option<String>,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("flow-cli-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::write(tmp.path().join("record.sh"), RECORD_SH).expect("write record.sh");
        Workspace { tmp, store: None }
    }

    /// Every command of this workspace uses the PostgreSQL store at `url` (`FLOW_STORE`).
    pub fn on_postgres(mut self, url: &str) -> Self {
        self.store = Some(url.to_string());
        self
    }

    /// A workspace whose `flow.yaml` is `yaml`.
    pub fn with_workflow(yaml: &str) -> Self {
        let ws = Self::new();
        ws.workflow(yaml);
        ws
    }

    /// (Re)writes `flow.yaml`.
    pub fn workflow(&self, yaml: &str) -> &Self {
        self.write(WORKFLOW, yaml)
    }

    /// Writes a fixture file (parent directories are created).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create fixture dir");
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// The state store every command of this workspace uses.
    pub fn state_dir(&self) -> PathBuf {
        self.path(".flow")
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    pub fn read(&self, rel: &str) -> String {
        let path = self.path(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// `flow --state <ws>/.flow` with no further arguments.
    pub fn flow(&self) -> Flow<'_> {
        Flow {
            ws: self,
            bin: flow_bin().to_path_buf(),
            args: Vec::new(),
            expected: Some(0),
            timeout: Duration::from_secs(60),
            envs: self
                .store
                .iter()
                .map(|url| (OsString::from("FLOW_STORE"), OsString::from(url)))
                .collect(),
        }
    }

    /// `flow run flow.yaml`.
    pub fn run(&self) -> Flow<'_> {
        self.flow().args(["run", WORKFLOW])
    }

    /// `flow resume RUN`.
    pub fn resume(&self, run: &str) -> Flow<'_> {
        self.flow().args(["resume", run])
    }

    /// A plain `std::process::Command` for `flow --state <ws>/.flow ARGS`, for tests that
    /// spawn the binary and signal it.
    pub fn command<I, S>(&self, args: I) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut cmd = std::process::Command::new(flow_bin());
        cmd.current_dir(self.dir())
            .arg("--state")
            .arg(self.state_dir())
            .args(args.into_iter().map(Into::into))
            .env_remove("FLOW_STATE")
            .env_remove("FLOW_STORE")
            .env_remove("RUST_LOG");
        if let Some(url) = &self.store {
            cmd.env("FLOW_STORE", url);
        }
        cmd
    }

    /// `flow runs show RUN --json`, parsed.
    pub fn show(&self, run: &str) -> Json {
        self.flow()
            .args(["runs", "show", run, "--json"])
            .run()
            .json()
    }

    /// Node id -> status of a run, from `flow runs show RUN --json`.
    pub fn statuses(&self, run: &str) -> BTreeMap<String, String> {
        node_statuses(&self.show(run))
    }

    /// The node records of a run, by node id.
    pub fn node_records(&self, run: &str) -> BTreeMap<String, Json> {
        self.show(run)["nodes"]
            .as_array()
            .expect("nodes array")
            .iter()
            .map(|n| {
                (
                    n["node_id"].as_str().expect("node_id").to_string(),
                    n.clone(),
                )
            })
            .collect()
    }

    /// Every line `record.sh` appended to `exec.log`, in order.
    pub fn log(&self) -> Vec<Exec> {
        if !self.exists("exec.log") {
            return Vec::new();
        }
        self.read("exec.log").lines().map(Exec::parse).collect()
    }

    /// Executions per node, from `exec.log`.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        count(&self.log())
    }

    /// Every file under `rel` (recursively) with its bytes, by path relative to `rel`.
    pub fn snapshot(&self, rel: &str) -> BTreeMap<PathBuf, Vec<u8>> {
        let root = self.path(rel);
        let mut files = BTreeMap::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).expect("read file");
                    files.insert(
                        path.strip_prefix(&root).expect("under root").to_path_buf(),
                        bytes,
                    );
                }
            }
        }
        files
    }
}

/// Node id -> status from a `flow runs show --json` document.
pub fn node_statuses(show: &Json) -> BTreeMap<String, String> {
    show["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .map(|n| {
            (
                n["node_id"].as_str().expect("node_id").to_string(),
                n["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

/// Executions per node.
pub fn count(log: &[Exec]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for exec in log {
        *counts.entry(exec.node.clone()).or_insert(0) += 1;
    }
    counts
}

/// A `BTreeMap<String, usize>` from pairs, for comparing with [`Workspace::counts`].
pub fn counts_of(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A `BTreeMap<String, String>` from pairs, for comparing with [`Workspace::statuses`].
pub fn statuses_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One line of `exec.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub node: String,
    pub attempt: u32,
    /// Input names (`node` or `decision.case`) in the order of the node's `needs`.
    pub inputs: Vec<String>,
}

impl Exec {
    fn parse(line: &str) -> Exec {
        let mut words = line.split_whitespace();
        let node = words
            .next()
            .unwrap_or_else(|| panic!("empty exec.log line"))
            .to_string();
        let attempt = words
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("exec.log line without an attempt: {line:?}"));
        Exec {
            node,
            attempt,
            inputs: words.map(str::to_string).collect(),
        }
    }
}

/// A `flow` invocation being built.
pub struct Flow<'a> {
    ws: &'a Workspace,
    /// The binary to run: `flow`, or another built on the library.
    bin: PathBuf,
    args: Vec<OsString>,
    /// `None`: any exit code is fine.
    expected: Option<i32>,
    timeout: Duration,
    /// Extra environment variables for the `flow` process.
    envs: Vec<(OsString, OsString)>,
}

impl Flow<'_> {
    /// Runs `bin` (a binary built on the flow library) instead of `flow`.
    pub fn binary(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = bin.into();
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the `flow` process.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((name.into(), value.into()));
        self
    }

    /// `--param NAME=VALUE`.
    pub fn param(self, name: &str, value: &str) -> Self {
        self.arg("--param").arg(format!("{name}={value}"))
    }

    /// The exit code the command must end with (default 0).
    pub fn expect_exit(mut self, code: i32) -> Self {
        self.expected = Some(code);
        self
    }

    /// Accept any exit code.
    pub fn any_exit(mut self) -> Self {
        self.expected = None;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the command; panics (showing its output) on an unexpected exit code or on panic
    /// text in stderr.
    pub fn run(self) -> Output {
        let mut cmd = assert_cmd::Command::new(&self.bin);
        cmd.current_dir(self.ws.dir())
            .arg("--state")
            .arg(self.ws.state_dir())
            .args(&self.args)
            .env_remove("FLOW_STATE")
            .env_remove("RUST_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .timeout(self.timeout);
        let out = cmd.output().expect("run flow");
        let output = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            command: format!(
                "flow {}",
                self.args
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        };
        if let Some(code) = self.expected
            && output.code != code
        {
            panic!("expected exit code {code}, got {}\n{output}", output.code);
        }
        assert!(
            !output.stderr.contains("panicked"),
            "panic text in stderr\n{output}"
        );
        output
    }
}

/// What a `flow` invocation printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub command: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {} (exit {})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl Output {
    /// The run id from the first stderr line, `run <ID> of ...`.
    pub fn run_id(&self) -> String {
        let first = self.stderr.lines().next().unwrap_or_default();
        let id = first
            .strip_prefix("run ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no `run <ID> of ...` line first in stderr\n{self}"));
        assert!(
            first.contains(" of `"),
            "unexpected first line {first:?}\n{self}"
        );
        id.to_string()
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"))
    }

    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{self}"
        );
        self
    }

    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{self}"
        );
        self
    }

    /// The plan lines `will run `NODE`: REASON` a resume printed, in order.
    pub fn plan(&self) -> Vec<(String, String)> {
        self.stderr
            .lines()
            .filter_map(|l| l.trim().strip_prefix("will run `"))
            .map(|rest| {
                let (node, reason) = rest.split_once("`: ").expect("`NODE`: REASON");
                (node.to_string(), reason.to_string())
            })
            .collect()
    }
}

/// The seeded generator, so randomised tests replay exactly.
pub use flow_analytics::rng::Rng;

/// `n` seeded random bytes (garbage files).
pub fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// Sends SIGTERM to a spawned `flow`.
pub fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
