//! `core.shell`: runs a command with `sh -c`.
//!
//! Inputs are written to files whose paths are in the environment (`FLOW_INPUT_<ID>`, and all of
//! them in `FLOW_INPUTS`, separated by `:`); stdout is the output, parsed as a table when
//! `output: csv` or `jsonl`. A non-zero exit fails the attempt with the end of stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value as Json;
use tokio::io::AsyncReadExt;

use crate::data::{self, Data, Output};
use crate::node::{
    ConfigureCx, Input, Inputs, Node, NodeContext, NodeError, NodeKind, NodeType, ParamError,
    ParamSpec, ParamType, Params,
};

#[derive(Debug)]
pub struct Shell;

const OUTPUTS: &[&str] = &["text", "lines", "json", "csv", "jsonl", "none"];
const INPUT_FORMATS: &[&str] = &["csv", "jsonl"];
/// How much of stderr an error message carries.
const STDERR_TAIL_LINES: usize = 20;

struct Configured {
    command: String,
    output: String,
    input_format: String,
    env: BTreeMap<String, String>,
    dir: PathBuf,
}

impl NodeType for Shell {
    fn name(&self) -> &'static str {
        "core.shell"
    }
    fn summary(&self) -> &'static str {
        "Runs a shell command; inputs arrive as files named in its environment, stdout is its output."
    }
    fn kinds(&self) -> &'static [NodeKind] {
        &[NodeKind::Action, NodeKind::Output]
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required(
                "command",
                ParamType::String,
                "the command, run with `sh -c` in the workflow's directory",
            ),
            ParamSpec::with_default(
                "output",
                ParamType::String,
                "text",
                "how stdout is read: text, lines, json, csv, jsonl or none",
            ),
            ParamSpec::with_default(
                "input_format",
                ParamType::String,
                "csv",
                "how table inputs are written: csv or jsonl",
            ),
            ParamSpec::optional("env", ParamType::Map, "extra environment variables"),
            ParamSpec::optional(
                "dir",
                ParamType::Path,
                "working directory (default: the workflow's directory)",
            ),
        ]
    }
    fn configure(
        &self,
        params: &Params,
        _: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>> {
        let mut errors = Vec::new();
        let command = params
            .str("command")
            .map(str::to_string)
            .unwrap_or_else(|e| {
                errors.push(e);
                String::new()
            });
        let mut one_of = |name: &str, allowed: &[&str], default: &str| -> String {
            match params.str_or(name, default) {
                Ok(v) if allowed.contains(&v) => v.to_string(),
                Ok(v) => {
                    errors.push(ParamError::new(
                        name,
                        format!("`{name}` must be one of {}, got `{v}`", allowed.join(", ")),
                    ));
                    default.to_string()
                }
                Err(e) => {
                    errors.push(e);
                    default.to_string()
                }
            }
        };
        let output = one_of("output", OUTPUTS, "text");
        let input_format = one_of("input_format", INPUT_FORMATS, "csv");
        let mut env = BTreeMap::new();
        if let Some(Json::Object(map)) = params.get("env") {
            for (k, v) in map {
                match v {
                    Json::String(s) => {
                        env.insert(k.clone(), s.clone());
                    }
                    Json::Number(_) | Json::Bool(_) => {
                        env.insert(k.clone(), v.to_string());
                    }
                    _ => errors.push(ParamError::at(
                        vec![
                            crate::source::Seg::key("env"),
                            crate::source::Seg::key(k.clone()),
                        ],
                        "environment values must be strings, numbers or booleans",
                    )),
                }
            }
        }
        let dir = params
            .path("dir")
            .ok()
            .flatten()
            .unwrap_or_else(|| params.base_dir().to_path_buf());
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Arc::new(Configured {
            command,
            output,
            input_format,
            env,
            dir,
        }))
    }
}

/// Kills the command's whole process group if the attempt is dropped (timeout, cancel).
struct GroupGuard {
    pid: Option<u32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // `kill` the binary: signalling a process group needs no unsafe code this way.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `classify.vip` -> `CLASSIFY_VIP`.
fn env_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl Configured {
    fn write_inputs(
        &self,
        dir: &Path,
        inputs: &Inputs,
    ) -> Result<Vec<(String, PathBuf)>, NodeError> {
        let mut files = Vec::new();
        for input in inputs.iter() {
            let name = input.name();
            let (ext, bytes) = encode_input(input, &self.input_format)?;
            let path = dir.join(format!("{name}.{ext}"));
            std::fs::write(&path, bytes)
                .map_err(|e| NodeError::io(format!("writing input {}", path.display()), e))?;
            files.push((name, path));
        }
        Ok(files)
    }
}

fn encode_input(input: &Input, format: &str) -> Result<(&'static str, Vec<u8>), NodeError> {
    let mut buf = Vec::new();
    Ok(match &input.data {
        Data::Table(batch) if format == "jsonl" => {
            data::write_jsonl(batch, &mut buf)?;
            ("jsonl", buf)
        }
        Data::Table(batch) => {
            data::write_csv(batch, &mut buf)?;
            ("csv", buf)
        }
        Data::Json(Json::String(s)) => {
            // A text file ends with a newline, so `cat`-ing several inputs keeps lines apart.
            let mut text = s.clone();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            ("txt", text.into_bytes())
        }
        Data::Json(v) => ("json", serde_json::to_vec_pretty(v).unwrap_or_default()),
        Data::Empty => ("txt", Vec::new()),
    })
}

#[async_trait]
impl Node for Configured {
    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError> {
        let tmp = tempfile::Builder::new()
            .prefix("flow-shell-")
            .tempdir()
            .map_err(|e| NodeError::io("creating a directory for the inputs", e))?;
        let files = self.write_inputs(tmp.path(), &inputs)?;

        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .env("FLOW_RUN_ID", &ctx.run_id)
            .env("FLOW_NODE_ID", &ctx.node_id)
            .env("FLOW_ATTEMPT", ctx.attempt.to_string())
            .env("FLOW_WORKFLOW_DIR", &ctx.workflow_dir)
            .env("FLOW_IDEMPOTENCY_KEY", ctx.idempotency_key("shell"))
            .env(
                "FLOW_INPUTS",
                files
                    .iter()
                    .map(|(_, p)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            );
        for (name, value) in &ctx.params {
            let text = match value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            cmd.env(format!("FLOW_PARAM_{}", env_name(name)), text);
        }
        for (name, path) in &files {
            cmd.env(format!("FLOW_INPUT_{}", env_name(name)), path);
        }
        cmd.envs(&self.env);
        let mut child = cmd
            .spawn()
            .map_err(|e| NodeError::io(format!("starting `sh -c {}`", self.command), e))?;
        let mut guard = GroupGuard { pid: child.id() };
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (r1, r2, status) = tokio::join!(
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err),
            child.wait()
        );
        guard.pid = None;
        r1.map_err(|e| NodeError::io("reading stdout", e))?;
        r2.map_err(|e| NodeError::io("reading stderr", e))?;
        let status = status.map_err(|e| NodeError::io("waiting for the command", e))?;
        let stderr_text = String::from_utf8_lossy(&err);
        if !stderr_text.trim().is_empty() {
            // Kept in the node's log; printed with `-v`.
            tracing::info!(stderr = stderr_text.trim_end(), "command stderr");
        }
        if !status.success() {
            let code = status
                .code()
                .map(|c| format!("exit code {c}"))
                .unwrap_or_else(|| "a signal".into());
            let lines: Vec<&str> = stderr_text.trim_end().lines().collect();
            let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
            return Err(NodeError::msg(if tail.is_empty() {
                format!("command failed with {code}")
            } else {
                format!("command failed with {code}; stderr:\n{tail}")
            }));
        }
        parse_stdout(&out, &self.output).map(Output::data)
    }
}

fn parse_stdout(out: &[u8], format: &str) -> Result<Data, NodeError> {
    let text = || String::from_utf8_lossy(out).into_owned();
    Ok(match format {
        "none" => Data::Empty,
        "lines" => Data::Json(Json::Array(
            text()
                .lines()
                .map(|l| Json::String(l.to_string()))
                .collect(),
        )),
        "json" => Data::Json(
            serde_json::from_slice(out)
                .map_err(|e| NodeError::msg(format!("stdout is not JSON: {e}")))?,
        ),
        "csv" if out.iter().all(u8::is_ascii_whitespace) => Data::Empty,
        "csv" => Data::Table(
            data::read_csv(out, b',')
                .map_err(|e| NodeError::msg(format!("stdout is not CSV: {e}")))?,
        ),
        "jsonl" if out.iter().all(u8::is_ascii_whitespace) => Data::Empty,
        "jsonl" => Data::Table(
            data::read_jsonl(out)
                .map_err(|e| NodeError::msg(format!("stdout is not JSON Lines: {e}")))?,
        ),
        _ => Data::Json(Json::String(text().trim_end_matches('\n').to_string())),
    })
}
