//! The node API: what a node type declares, how it is configured, and what it sees when it runs.
//!
//! A [`NodeType`] is registered once (`core.shell`, `pos.extract`, ...). For every node of that
//! type in a workflow the engine type-checks the `with:` parameters against [`NodeType::params`],
//! then calls [`NodeType::configure`], which validates the values and returns a runnable [`Node`].
//! Validation and running use the same `configure`, so a workflow that validates is configured the
//! same way when it runs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

pub use crate::cores::{SideCore, SpareCores};
use crate::data::{Data, Output};
use crate::run_cache::RunCache;
use crate::source::Seg;
use crate::store::StoreError;
pub use crate::table_kind::{InputSpec, TableKind};

/// The four roles a node can play in a workflow.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Starts a run: fired by hand (`flow run`) or by a schedule.
    Trigger,
    /// Does work on its inputs.
    Action,
    /// Partitions its input into named cases; downstream nodes subscribe to one case.
    Decision,
    /// Delivers results (files, endpoints); typically a join of branches.
    Output,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Trigger => "trigger",
            NodeKind::Action => "action",
            NodeKind::Decision => "decision",
            NodeKind::Output => "output",
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type a parameter's value must have (after templates are rendered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Bool,
    /// A duration such as `500ms`, `30s`, `2m`.
    Duration,
    /// A file or directory path; relative paths resolve against the workflow's directory.
    Path,
    List,
    Map,
    /// Any YAML value; the node type checks it in `configure`.
    Any,
    /// A template the node renders itself for each item (e.g. per customer); the engine leaves
    /// it as written instead of rendering it with the run's params.
    Template,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Bool => "boolean",
            ParamType::Duration => "duration",
            ParamType::Path => "path",
            ParamType::List => "list",
            ParamType::Map => "mapping",
            ParamType::Any => "any",
            ParamType::Template => "template",
        }
    }

    /// The type as a message says what a value must be: `an integer`, `a duration such as 30s`.
    pub fn expected(self) -> String {
        match self {
            ParamType::Duration => "a duration such as 30s or 5m".to_string(),
            other => {
                let name = other.as_str();
                format!("{} {name}", crate::plural::article(name))
            }
        }
    }

    /// Whether `value` has this type. Durations and paths are strings at this level.
    pub fn accepts(self, value: &Json) -> bool {
        match self {
            ParamType::String | ParamType::Path | ParamType::Template => value.is_string(),
            ParamType::Duration => match value {
                Json::String(s) => parse_duration(s).is_ok(),
                Json::Number(n) => n.as_f64().is_some_and(|secs| secs >= 0.0),
                _ => false,
            },
            ParamType::Integer => value.is_i64() || value.is_u64(),
            ParamType::Number => value.is_number(),
            ParamType::Bool => value.is_boolean(),
            ParamType::List => value.is_array(),
            ParamType::Map => value.is_object(),
            ParamType::Any => true,
        }
    }

    /// The JSON Schema fragment for editors.
    pub fn json_schema(self) -> Json {
        use serde_json::json;
        match self {
            ParamType::String | ParamType::Path | ParamType::Duration | ParamType::Template => {
                json!({"type": "string"})
            }
            ParamType::Integer => json!({"type": "integer"}),
            ParamType::Number => json!({"type": "number"}),
            ParamType::Bool => json!({"type": "boolean"}),
            ParamType::List => json!({"type": "array"}),
            ParamType::Map => json!({"type": "object"}),
            ParamType::Any => json!({}),
        }
    }
}

/// A declared parameter of a node type.
#[derive(Debug, Clone, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub ty: ParamType,
    pub required: bool,
    /// The default, shown by `flow nodes`; applied by the node type itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

impl ParamSpec {
    pub const fn required(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        ParamSpec {
            name,
            ty,
            required: true,
            default: None,
            doc,
        }
    }

    pub const fn optional(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        ParamSpec {
            name,
            ty,
            required: false,
            default: None,
            doc,
        }
    }

    pub const fn with_default(
        name: &'static str,
        ty: ParamType,
        default: &'static str,
        doc: &'static str,
    ) -> Self {
        ParamSpec {
            name,
            ty,
            required: false,
            default: Some(default),
            doc,
        }
    }
}

/// A problem with a node's parameters, located by its path under `with:`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    /// Path under `with:` (empty for the node as a whole).
    pub path: Vec<Seg>,
    pub message: String,
}

impl ParamError {
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        ParamError {
            path: vec![Seg::key(param)],
            message: message.into(),
        }
    }

    pub fn at(path: Vec<Seg>, message: impl Into<String>) -> Self {
        ParamError {
            path,
            message: message.into(),
        }
    }

    /// An error about the node as a whole rather than one parameter.
    pub fn node(message: impl Into<String>) -> Self {
        ParamError {
            path: Vec::new(),
            message: message.into(),
        }
    }
}

/// The rendered `with:` parameters of one node, with typed accessors whose errors name the
/// parameter. Types of declared parameters were already checked by the engine.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: serde_json::Map<String, Json>,
    base_dir: PathBuf,
}

impl Params {
    pub fn new(values: serde_json::Map<String, Json>, base_dir: impl Into<PathBuf>) -> Self {
        Params {
            values,
            base_dir: base_dir.into(),
        }
    }

    pub fn raw(&self) -> &serde_json::Map<String, Json> {
        &self.values
    }

    pub fn get(&self, name: &str) -> Option<&Json> {
        self.values.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Result<&str, ParamError> {
        self.opt_str(name)?
            .ok_or_else(|| ParamError::new(name, "is required"))
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, ParamError> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(other) => Err(ParamError::new(
                name,
                format!("must be a string, got {other}"),
            )),
        }
    }

    pub fn str_or<'a>(&'a self, name: &str, default: &'a str) -> Result<&'a str, ParamError> {
        Ok(self.opt_str(name)?.unwrap_or(default))
    }

    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, ParamError> {
        match self.get(name) {
            None => Ok(default),
            Some(Json::Bool(b)) => Ok(*b),
            Some(other) => Err(ParamError::new(
                name,
                format!("must be true or false, got {other}"),
            )),
        }
    }

    pub fn f64_or(&self, name: &str, default: f64) -> Result<f64, ParamError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| ParamError::new(name, format!("must be a number, got {v}"))),
        }
    }

    pub fn u64_or(&self, name: &str, default: u64) -> Result<u64, ParamError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.as_u64().ok_or_else(|| {
                ParamError::new(name, format!("must be a whole number >= 0, got {v}"))
            }),
        }
    }

    /// A whole number in `min..=max`; `default` when the parameter is absent.
    pub fn u64_between(
        &self,
        name: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ParamError> {
        match self.u64_or(name, default)? {
            v if (min..=max).contains(&v) => Ok(v),
            v => Err(ParamError::new(
                name,
                format!("must be between {min} and {max}, got {v}"),
            )),
        }
    }

    /// A duration; `default` when the parameter is absent.
    pub fn duration_or(&self, name: &str, default: Duration) -> Result<Duration, ParamError> {
        Ok(self.duration(name)?.unwrap_or(default))
    }

    pub fn duration(&self, name: &str) -> Result<Option<Duration>, ParamError> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Number(n)) => match n.as_f64() {
                Some(secs) if secs >= 0.0 && secs.is_finite() => {
                    Ok(Some(Duration::from_secs_f64(secs)))
                }
                _ => Err(ParamError::new(name, format!("`{n}` is not a duration"))),
            },
            Some(Json::String(s)) => parse_duration(s)
                .map(Some)
                .map_err(|e| ParamError::new(name, e)),
            Some(other) => Err(ParamError::new(
                name,
                format!("`{other}` is not a duration"),
            )),
        }
    }

    /// A path parameter resolved against the workflow's directory.
    pub fn path(&self, name: &str) -> Result<Option<PathBuf>, ParamError> {
        Ok(self.opt_str(name)?.map(|p| self.resolve(p)))
    }

    /// Resolves a relative path against the workflow's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Deserializes a structured parameter; serde's message is located at the parameter.
    pub fn parse<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ParamError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| ParamError::new(name, e.to_string())),
        }
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h 30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>()
        && secs >= 0.0
        && secs.is_finite()
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); use e.g. 500ms, 30s, 5m, 1h"))
}

/// What `configure` may look at besides the parameters.
#[derive(Debug, Clone)]
pub struct ConfigureCx<'a> {
    pub node_id: &'a str,
    pub kind: NodeKind,
    pub workflow_dir: &'a Path,
    /// Per input (in `needs` order): the columns the upstream node declares it produces, when
    /// it declares them. Lets a node reject a column that cannot exist at validation time.
    pub input_columns: &'a [Option<Vec<String>>],
}

impl ConfigureCx<'_> {
    /// The columns of the inputs when every input declares them (union, in order).
    pub fn known_columns(&self) -> Option<Vec<&str>> {
        if self.input_columns.is_empty() {
            return None;
        }
        let mut out: Vec<&str> = Vec::new();
        for cols in self.input_columns {
            for c in cols.as_ref()? {
                if !out.contains(&c.as_str()) {
                    out.push(c);
                }
            }
        }
        Some(out)
    }
}

/// A registered node type.
pub trait NodeType: Send + Sync + 'static {
    /// The name used in `type:`, such as `core.shell`.
    fn name(&self) -> &'static str;
    /// One line for `flow nodes`.
    fn summary(&self) -> &'static str;
    /// The kinds a node of this type may be declared as.
    fn kinds(&self) -> &'static [NodeKind];
    /// Declared parameters; any other key under `with:` is an error.
    fn params(&self) -> Vec<ParamSpec>;
    /// Checks the parameter values and builds the runnable node. Report every problem found.
    fn configure(
        &self,
        params: &Params,
        cx: &ConfigureCx<'_>,
    ) -> Result<Arc<dyn Node>, Vec<ParamError>>;
    /// The roles its inputs fill. Empty (the default): the node takes any inputs and reads them
    /// without roles. Otherwise every input gets one of these roles at validation time (an
    /// input from a trigger gets none: it only starts the node).
    fn inputs(&self) -> Vec<InputSpec> {
        Vec::new()
    }
    /// The kind of table it produces, when it always produces one kind. Downstream nodes use it
    /// to give the input its role and to check the columns the role needs.
    fn output_kind(&self) -> Option<TableKind> {
        None
    }
}

/// A configured node, ready to run.
#[async_trait]
pub trait Node: Send + Sync + 'static {
    /// The cases a decision node routes to, in order. Empty for other kinds.
    fn cases(&self) -> Vec<String> {
        Vec::new()
    }

    /// The columns of the table this node produces, when known before it runs (given its
    /// inputs' columns). Downstream nodes use it to check column names at validation time.
    fn output_columns(&self, input_columns: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        let _ = input_columns;
        None
    }

    /// The row expressions among this node's parameters, each with its path under `with:`,
    /// so validation can check the params they use.
    fn expressions(&self) -> Vec<(Vec<Seg>, &crate::expr::RowExpr)> {
        Vec::new()
    }

    /// Roles that are optional in the type's declaration but that this configuration needs
    /// (for example a strategy that reads an optional table); validation reports them missing.
    fn required_inputs(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// For a trigger that fires on a schedule: the schedule, which `flow serve` follows.
    fn schedule(&self) -> Option<&crate::schedule::Schedule> {
        None
    }

    /// For a trigger fired by HTTP requests: what the server must check and answer.
    fn webhook(&self) -> Option<&crate::webhook::WebhookSpec> {
        None
    }

    /// Whether an attempt only computes the output from the inputs and parameters: no side
    /// effects (files, requests, messages, commands), no node state, no effect ledger. Such a
    /// node may start from an input held in memory before that input's checkpoint is durable
    /// (its own checkpoint never becomes durable before its inputs'); any other node starts
    /// only once the checkpoints of its inputs are durable. Say `true` only when it holds.
    fn effect_free(&self) -> bool {
        false
    }

    /// Runs one attempt. Returning an error fails the attempt (it may be retried).
    async fn run(&self, ctx: NodeContext, inputs: Inputs) -> Result<Output, NodeError>;
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Failed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("state store: {0}")]
    Store(#[from] StoreError),
}

impl NodeError {
    pub fn msg(message: impl Into<String>) -> Self {
        NodeError::Failed(message.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        NodeError::Io {
            context: context.into(),
            source,
        }
    }
}

/// One input of a node: the output of a node it needs (or one case of a decision's output).
#[derive(Debug, Clone)]
pub struct Input {
    /// The id of the node it comes from.
    pub from: String,
    /// The decision case, for `needs: [decision.case]`.
    pub case: Option<String>,
    /// The role the input fills (see [`NodeType::inputs`]); `None` for nodes without roles and
    /// for a trigger's firing.
    pub role: Option<String>,
    pub data: Data,
    /// The producing node's output metadata (its [`Output::meta`](crate::data::Output)): facts
    /// such as fitted parameters or a backtest that a consumer may report.
    pub meta: serde_json::Map<String, Json>,
}

impl Input {
    /// `from` or `from.case`: how the node wrote it under `needs`.
    pub fn name(&self) -> String {
        match &self.case {
            Some(case) => format!("{}.{}", self.from, case),
            None => self.from.clone(),
        }
    }
}

/// `tokio::task::spawn_blocking` for a node's CPU-bound work once one of the machine's cores
/// is free for it: however many nodes run at once, at most as many of these run as there are
/// cores, so CPU-heavy nodes take turns rather than share the cores while all holding their
/// working memory. What the work logs is still attributed to the node. Work that waits on the
/// network or another process goes through [`spawn_blocking`] instead.
pub fn spawn_compute<F, R>(work: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || crate::cores::with_core(|| span.in_scope(work)))
}

/// Runs CPU-bound `work` on this thread once one of the machine's cores is free for it, as
/// [`spawn_compute`] does, for work that turns out to be needed on a thread that was waiting
/// without a core: say, a value several nodes share, which the first to ask computes while
/// the others wait for it without taking cores. On a thread that holds a core already (in
/// [`spawn_compute`]) it just runs.
pub fn compute_here<R>(work: impl FnOnce() -> R) -> R {
    crate::cores::with_core(work)
}

/// More cores for CPU-bound work that can use several threads: the ones no other work holds
/// now, up to `max_threads - 1`, taken without waiting and freed when the value is dropped.
/// Run [`SpareCores::threads`] threads (the calling one among them) and give a side task of
/// its own a core with [`SpareCores::split_one`]. Beside other busy nodes it gets fewer or
/// none, so a node's threads and everyone else's never outnumber the cores; work whose result
/// depends on how many threads computed it must not use this.
pub fn spare_cores(max_threads: usize) -> SpareCores {
    crate::cores::spare(max_threads)
}

/// `tokio::task::spawn_blocking` for a node's blocking I/O (a request, a send): what the work
/// logs is still attributed to the node (the caller's tracing span goes with it).
pub fn spawn_blocking<F, R>(work: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
}

/// The inputs of a node, in the order of its `needs`; skipped inputs are absent.
#[derive(Debug, Clone, Default)]
pub struct Inputs(pub Vec<Input>);

impl Inputs {
    pub fn iter(&self) -> impl Iterator<Item = &Input> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The input from node `from` (any case).
    pub fn get(&self, from: &str) -> Option<&Input> {
        self.0.iter().find(|i| i.from == from)
    }

    /// The inputs filling `role`, in `needs` order.
    pub fn role<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a Input> + 'a {
        self.0
            .iter()
            .filter(move |i| i.role.as_deref() == Some(role))
    }

    /// The tables filling `role`, in `needs` order.
    pub fn role_tables<'a>(
        &'a self,
        role: &'a str,
    ) -> impl Iterator<Item = &'a arrow_array::RecordBatch> + 'a {
        self.role(role).filter_map(|i| i.data.as_table())
    }

    /// The only input; an error naming the inputs otherwise.
    pub fn single(&self) -> Result<&Input, NodeError> {
        match self.0.as_slice() {
            [one] => Ok(one),
            [] => Err(NodeError::msg("expects one input but has none")),
            many => Err(NodeError::msg(format!(
                "expects one input but has {} ({})",
                many.len(),
                many.iter().map(Input::name).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// All table inputs.
    pub fn tables(&self) -> impl Iterator<Item = (&Input, &arrow_array::RecordBatch)> {
        self.0
            .iter()
            .filter_map(|i| i.data.as_table().map(|t| (i, t)))
    }

    pub fn rows(&self) -> u64 {
        self.0.iter().map(|i| i.data.rows()).sum()
    }
}

/// Durable record of side effects already performed, so a resumed run does not repeat them.
pub trait EffectLedger: Send + Sync {
    fn is_done(&self, key: &str) -> Result<bool, StoreError>;
    /// Records `key` durably (flushed) before returning.
    fn mark_done(&self, key: &str, detail: &Json) -> Result<(), StoreError>;
}

/// `result`'s value, or `fallback` after noting the error in `errors`: a node reads every
/// parameter and reports all its mistakes at once.
pub fn noted<T>(errors: &mut Vec<ParamError>, result: Result<T, ParamError>, fallback: T) -> T {
    result.unwrap_or_else(|e| {
        errors.push(e);
        fallback
    })
}

/// Durable key-value state a node type keeps across runs (for example the previous run's
/// customer profiles, to report changes).
pub trait NodeState: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// What a running node knows about its run.
#[derive(Clone)]
pub struct NodeContext {
    pub run_id: String,
    pub node_id: String,
    pub attempt: u32,
    pub workflow_dir: PathBuf,
    /// The workflow file of the run (node state that belongs to one workflow is keyed by it).
    pub workflow_path: PathBuf,
    /// The run's parameters after defaults and `--param` overrides.
    pub params: BTreeMap<String, Json>,
    /// The firing that started the run (trigger id, time, how it was fired).
    pub trigger: Json,
    pub effects: Arc<dyn EffectLedger>,
    /// State kept across runs, namespaced by the node type name by the engine.
    pub state: Arc<dyn NodeState>,
    /// What the decisions upstream routed toward this node, so a join can tell whether a branch
    /// lost rows on the way.
    pub routed: Vec<RoutedCase>,
    /// Values shared by the nodes of this execution of the run (see [`crate::run_cache`]).
    pub run_cache: RunCache,
    /// Where the store keeps node types' synced histories (see [`NodeContext::history_place`]);
    /// `None` with stores that keep none.
    pub histories: Option<Arc<dyn crate::sync::Places>>,
}

/// The rows a decision that succeeded routed to one of its cases from which a path leads to
/// the node receiving this.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoutedCase {
    pub decision: String,
    /// The decision's node type, such as `segmentation.classify`.
    pub decision_type: String,
    pub case: String,
    pub rows: u64,
}

impl fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeContext")
            .field("run_id", &self.run_id)
            .field("node_id", &self.node_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl NodeContext {
    /// Where this node keeps its synced history for `purpose` across runs, in the store (see
    /// [`crate::sync::history_name`]).
    pub fn history_place(&self, purpose: &str) -> Result<Box<dyn crate::sync::Place>, NodeError> {
        let places = self.histories.as_ref().ok_or_else(|| {
            NodeError::msg("this state store keeps no histories, so the node cannot keep one")
        })?;
        Ok(places.place(&crate::sync::history_name(
            &self.workflow_path,
            &self.node_id,
            purpose,
        )))
    }

    /// A key that is the same for the same item of the same node in the same run, across
    /// attempts and resumes: send it with a side effect so the receiver can drop repeats.
    pub fn idempotency_key(&self, item: &str) -> String {
        format!("{}/{}/{}", self.run_id, self.node_id, item)
    }

    /// Performs a side effect once per (run, node, item): skipped when a previous attempt or
    /// run already recorded it as done.
    pub async fn once<F, Fut>(&self, item: &str, effect: F) -> Result<bool, NodeError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<Json, NodeError>>,
    {
        let key = self.idempotency_key(item);
        if self.effects.is_done(&key)? {
            return Ok(false);
        }
        let detail = effect(key.clone()).await?;
        self.effects.mark_done(&key, &detail)?;
        Ok(true)
    }
}

/// The registered node types.
#[derive(Default, Clone)]
pub struct Registry {
    types: BTreeMap<&'static str, Arc<dyn NodeType>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.types.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a type; a later registration of the same name replaces the earlier one.
    pub fn register(&mut self, node_type: impl NodeType) -> &mut Self {
        self.types.insert(node_type.name(), Arc::new(node_type));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn NodeType>> {
        self.types.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn NodeType>> {
        self.types.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.types.keys().copied()
    }
}

#[cfg(test)]
mod param_type_tests {
    use super::ParamType;

    #[test]
    fn expected_types_read_as_english() {
        assert_eq!(ParamType::Integer.expected(), "an integer");
        assert_eq!(ParamType::Number.expected(), "a number");
        assert_eq!(ParamType::String.expected(), "a string");
        assert_eq!(ParamType::Bool.expected(), "a boolean");
        assert_eq!(ParamType::Map.expected(), "a mapping");
        assert_eq!(
            ParamType::Duration.expected(),
            "a duration such as 30s or 5m"
        );
    }
}
