//! A full disk under the state store: the run fails within a bounded time with "No space left on
//! device" and the store's path (it never hangs), read-only commands work (reading a copy of the store on another disk),
//! and once space is freed the run resumes from its checkpoints.
//!
//! The store lives on a small tmpfs each test mounts (these tests need root, as CI has; without
//! it they fail with a message saying so rather than pass without testing anything).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Workspace, counts_of, sigterm, wait_until};

/// A tmpfs mounted for one test, unmounted when dropped (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("flow-full-disk-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "these tests mount a small tmpfs to fill it and need root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a flow process a failed test left behind must not keep the mount.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A workspace whose state store (`.flow`) lives on `fs`.
fn workspace_on(fs: &Tmpfs, yaml: &str) -> Workspace {
    let ws = Workspace::with_workflow(yaml);
    let state = fs.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::symlink(&state, ws.state_dir()).unwrap();
    ws
}

/// `first` succeeds; `fill` fills the store's disk the first time it runs (as another program
/// writing to the same disk would), so its own checkpoint cannot be written; `last` needs it.
/// `output` is what `fill` prints: small outputs go into the database, large ones into files.
fn filling_workflow(filler: &Path, output: &str) -> String {
    format!(
        r#"
name: full
nodes:
  - id: first
    kind: action
    type: core.shell
    with: {{ command: "sh record.sh && echo first" }}
  - id: fill
    kind: action
    type: core.shell
    needs: [first]
    with:
      command: 'sh record.sh && if [ ! -e filled ]; then touch filled; cat /dev/zero > {filler} 2>/dev/null; fi; {output}'
  - id: last
    kind: action
    type: core.shell
    needs: [fill]
    with: {{ command: "sh record.sh && echo last" }}
"#,
        filler = filler.display(),
    )
}

/// The first line saying which run started (`run ID of ...`).
fn started_run(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("run ") && l.contains(" of `"))
        .unwrap_or_else(|| panic!("no `run ID of` line in\n{stderr}"));
    line.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn a_full_disk_fails_the_run_in_bounded_time_and_the_run_resumes_once_space_is_freed() {
    // About 170 kB: kept in the database.
    full_disk_then_resume("seq 1 30000", None);
}

#[test]
fn a_full_disk_while_writing_an_output_file_fails_the_run_naming_the_file() {
    // About 590 kB: written to a file of its own beside the database.
    full_disk_then_resume("seq 1 100000", Some("cannot write the output file"));
}

fn full_disk_then_resume(output: &str, expected: Option<&str>) {
    let fs = Tmpfs::mount("8m");
    let filler: PathBuf = fs.path().join("filler");
    let ws = workspace_on(&fs, &filling_workflow(&filler, output));
    let state = ws.state_dir().display().to_string();

    let start = Instant::now();
    let out = ws
        .run()
        .env("FLOW_CHECKPOINT_TIMEOUT", "3s")
        .timeout(Duration::from_secs(45))
        .expect_exit(1)
        .run();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}\n{out}");
    out.assert_stderr_contains("No space left on device")
        .assert_stderr_contains(&state)
        .assert_stderr_contains("flow resume");
    if let Some(expected) = expected {
        out.assert_stderr_contains(expected);
    }
    // A partly written output file is not left behind to take the space.
    let partial: Vec<_> = walk(&fs.path().join("state"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
    let run = started_run(&out.stderr);
    assert!(filler.exists(), "the disk was not filled\n{out}");

    // Read-only commands work on the full disk (from a copy in the temporary directory, on
    // another disk) and change no file of the store.
    let before = contents_of(&fs.path().join("state"));
    let temp = tempfile::tempdir().unwrap();
    let read = |args: &[&str]| {
        ws.flow()
            .args(args)
            .env("TMPDIR", temp.path())
            .timeout(Duration::from_secs(30))
            .run()
    };
    let listed = read(&["runs", "--json"]);
    listed
        .assert_stderr_contains("is full: read it from a copy")
        .assert_stderr_contains(&state);
    let ids: Vec<_> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, [run.as_str()], "{listed}");
    let show = read(&["runs", "show", "last", "--json"]).json();
    assert_eq!(show["run"]["id"], run.as_str(), "{show:#}");
    assert_ne!(show["run"]["status"], "succeeded", "{show:#}");
    assert_eq!(
        crate::support::node_statuses(&show)["first"],
        "succeeded",
        "{show:#}"
    );
    let first = read(&["runs", "output", &run, "first"]);
    assert!(first.stdout.contains("first"), "{first}");
    read(&["runs", "size"]);
    assert_eq!(contents_of(&fs.path().join("state")), before);
    // The copies are deleted.
    let left: Vec<_> = std::fs::read_dir(temp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    // A command that writes still fails, saying why.
    ws.resume(&run)
        .timeout(Duration::from_secs(30))
        .expect_exit(2)
        .run()
        .assert_stderr_contains("No space left on device")
        .assert_stderr_contains("free space");
    assert_eq!(contents_of(&fs.path().join("state")), before);

    std::fs::remove_file(&filler).unwrap();
    let out = ws.resume(&run).timeout(Duration::from_secs(45)).run();
    out.assert_stderr_contains("succeeded earlier");
    let show = ws.show(&run);
    assert_eq!(show["run"]["status"], "succeeded", "{show:#}");
    // `first` was durable before the disk filled: it is reused, not run again.
    assert_eq!(
        ws.counts(),
        counts_of(&[("first", 1), ("fill", 2), ("last", 1)])
    );
}

#[test]
fn a_store_write_that_never_ends_fails_the_run_within_the_deadline() {
    let ws = Workspace::with_workflow(
        r#"
name: stalled
nodes:
  - id: only
    kind: action
    type: core.shell
    with: { command: "sh record.sh && echo only" }
"#,
    );
    let start = Instant::now();
    let out = ws
        .run()
        .env("FLOW_CHECKPOINT_TIMEOUT", "2s")
        .env("FLOW_FAULT_STALL_WRITES", "1")
        .timeout(Duration::from_secs(45))
        .expect_exit(1)
        .run();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}\n{out}");
    out.assert_stderr_contains("did not finish within 2s")
        .assert_stderr_contains(&ws.state_dir().display().to_string())
        .assert_stderr_contains("FLOW_CHECKPOINT_TIMEOUT");
}

#[test]
fn a_checkpoint_timeout_that_is_not_a_duration_is_refused() {
    let ws = Workspace::with_workflow(
        r#"
name: t
nodes:
  - id: only
    kind: action
    type: core.shell
    with: { command: "sh record.sh && echo only" }
"#,
    );
    let out = ws
        .run()
        .env("FLOW_CHECKPOINT_TIMEOUT", "soon")
        .any_exit()
        .run();
    assert_ne!(out.code, 0, "{out}");
    out.assert_stderr_contains("FLOW_CHECKPOINT_TIMEOUT=\"soon\" is not a duration");
    assert!(ws.counts().is_empty(), "a node ran\n{out}");
}

/// Spawns `flow run` with every store write hanging, as on a disk that never answers.
fn spawn_stalled(ws: &Workspace) -> std::process::Child {
    ws.command(["run", crate::support::WORKFLOW])
        .env("FLOW_FAULT_STALL_WRITES", "1")
        .env("FLOW_CHECKPOINT_TIMEOUT", "600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow")
}

const SLEEPER: &str = r#"
name: sleeper
nodes:
  - id: nap
    kind: action
    type: core.shell
    with: { command: "sh record.sh && sleep 30" }
"#;

/// Waits for `child` to exit within `limit` (killing it and failing if it does not); returns
/// its exit code and stderr.
fn exit_within(mut child: std::process::Child, limit: Duration) -> (i32, String) {
    let exited = wait_until(limit, || child.try_wait().unwrap().is_some());
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(exited, "flow did not exit within {limit:?}\n{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_second_sigterm_ends_the_process_even_when_a_store_write_never_finishes() {
    let ws = Workspace::with_workflow(SLEEPER);
    let child = spawn_stalled(&ws);
    std::thread::sleep(Duration::from_millis(800));
    sigterm(&child);
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    let start = Instant::now();
    let (code, stderr) = exit_within(child, Duration::from_secs(30));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}\n{stderr}");
    assert_eq!(code, 143, "{stderr}");
    assert!(stderr.contains("cancelling running nodes"), "{stderr}");
    assert!(stderr.contains("exiting without waiting"), "{stderr}");
    assert!(stderr.contains("flow resume"), "{stderr}");
}

#[test]
fn a_third_signal_ends_the_process_at_once() {
    let ws = Workspace::with_workflow(SLEEPER);
    let child = spawn_stalled(&ws);
    std::thread::sleep(Duration::from_millis(800));
    for _ in 0..3 {
        sigterm(&child);
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = Instant::now();
    let (code, stderr) = exit_within(child, Duration::from_secs(30));
    // Well before the grace period after the second signal runs out.
    assert!(start.elapsed() < Duration::from_secs(3), "{stderr}");
    assert_eq!(code, 143, "{stderr}");
    assert!(stderr.contains("stopped a third time"), "{stderr}");
}

/// Every file under `dir` with its bytes.
fn contents_of(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_write_through_flow_serve_that_never_ends_fails_the_client_run_within_the_deadline() {
    let ws = Workspace::with_workflow(
        r#"
name: by-hand
nodes:
  - id: go
    kind: trigger
    type: manual
  - id: only
    kind: action
    type: core.shell
    needs: [go]
    with: { command: "sh record.sh && echo only" }
"#,
    );
    // The server's writes hang; the client's own deadline is far off, so only the server's
    // can end the client's write in time.
    let server = ws
        .command(["serve", crate::support::WORKFLOW])
        .env("FLOW_FAULT_STALL_WRITES", "1")
        .env("FLOW_CHECKPOINT_TIMEOUT", "2s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flow serve");
    let socket = ws.state_dir().join("serve.sock");
    let serving = wait_until(Duration::from_secs(30), || socket.exists());

    let start = Instant::now();
    let out = ws
        .run()
        .env("FLOW_CHECKPOINT_TIMEOUT", "600")
        .timeout(Duration::from_secs(60))
        .any_exit()
        .run();
    let took = start.elapsed();
    sigterm(&server);
    let (code, log) = exit_within(server, Duration::from_secs(30));

    assert!(serving, "flow serve did not start\n{log}");
    assert!(took < Duration::from_secs(20), "took {took:?}\n{out}");
    assert_ne!(out.code, 0, "{out}");
    out.assert_stderr_contains("did not finish within 2s")
        .assert_stderr_contains(&ws.state_dir().display().to_string());
    assert_eq!(code, 0, "{log}");
}
