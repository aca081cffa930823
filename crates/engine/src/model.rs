//! The workflow file format: the plain model users edit, before validation.
//!
//! These types define the contract of a workflow file and its JSON Schema (`flow schema`).
//! [`crate::compile`] turns them into a validated [`crate::compile::Workflow`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::node::NodeKind;
use crate::trigger_rule::TriggerRule;

/// A workflow file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// A short name, shown in `flow runs`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Run parameters: `NAME: DEFAULT` (the type is inferred from the default) or
    /// `NAME: { type, default, description, allowed, min, max }`. Override with
    /// `flow run FILE --param NAME=VALUE`; templates and rules refer to them as `params.NAME`.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, ParamDef>,
    /// The most nodes that run at the same time (default: `--concurrency` or 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// The nodes. The graph is defined by each node's `needs`.
    pub nodes: Vec<NodeDef>,
    /// Notifications sent once when a run ends failed: a POST to a URL (JSON, Slack or Teams
    /// incoming webhook) or a command. They never change the run's status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<NotificationDef>,
    /// Notifications sent once when a run ends succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_success: Vec<NotificationDef>,
}

/// One notification: `post` (or `post_env`) a message to a URL, or run a `command`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NotificationDef {
    Post(PostNotificationDef),
    Command(CommandNotificationDef),
}

/// `{ post: URL, format: slack }` or `{ post_env: VAR, format: teams, headers: {...} }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostNotificationDef {
    /// The http(s) URL the message is POSTed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
    /// The environment variable holding the URL, read when the message is sent (for webhook
    /// URLs that are secrets). Give `post` or `post_env`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_env: Option<String>,
    /// The body: `json` (the message object, the default), `slack` or `teams` (their
    /// incoming-webhook formats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<NotifyFormat>,
    /// Extra request headers; a value may be `{ env: VAR }` to read it from the environment.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, HeaderValueDef>,
    /// The longest one attempt may take (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `{ command: [prog, arg, ...] }`: run without a shell, the JSON message on stdin.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandNotificationDef {
    /// The program and its arguments. It gets the message as JSON on stdin and FLOW_RUN_ID,
    /// FLOW_WORKFLOW, FLOW_STATUS, FLOW_FAILED_NODE and FLOW_RESUME_COMMAND in its environment.
    pub command: Vec<String>,
    /// The longest one attempt may take (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// The body format of a `post` notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// The message object as JSON.
    #[default]
    Json,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
    /// A Microsoft Teams incoming-webhook message with an Adaptive Card.
    Teams,
}

impl NotifyFormat {
    pub const ALL: [NotifyFormat; 3] =
        [NotifyFormat::Json, NotifyFormat::Slack, NotifyFormat::Teams];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyFormat::Json => "json",
            NotifyFormat::Slack => "slack",
            NotifyFormat::Teams => "teams",
        }
    }
}

/// A header value: the text, or `{ env: VAR }` for a secret read when the message is sent.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HeaderValueDef {
    Text(String),
    Env(EnvRef),
}

/// `{ env: VAR }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvRef {
    /// The environment variable's name.
    pub env: String,
}

/// A param declaration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamDef {
    /// The long form.
    Declared(ParamSpecDef),
    /// The short form: the default, whose type is the param's (any number is `number`).
    Default(ShortDefault),
}

/// A short-form default. A mapping default needs the long form.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ShortDefault {
    Boolean(bool),
    Number(f64),
    String(String),
    List(Vec<Json>),
}

/// `NAME: { type: number, default: 300, description: ..., min: 0 }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpecDef {
    /// string, integer (whole numbers only), number, boolean, list or mapping; inferred from
    /// `default` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<crate::params::ParamKind>,
    /// The value runs use unless `--param NAME=VALUE` is given.
    pub default: Json,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The only values the param may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Json>>,
    /// The smallest value (integer and number params).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest value (integer and number params).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// One node of a workflow.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    /// Unique id: letters, digits, `_` and `-`.
    pub id: String,
    /// The node's role.
    pub kind: NodeKind,
    /// A registered node type (`flow nodes` lists them), such as `core.shell`.
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The nodes this one needs; `DECISION.CASE` subscribes to one case of a decision.
    #[serde(default)]
    pub needs: Needs,
    /// When the node runs, given how its inputs ended: `all_success` (the default for actions
    /// and decisions: skipped when an input was skipped or a subscribed case is empty),
    /// `none_failed_min_one_success` (the default for outputs: a join of branches),
    /// `none_failed`, `all_done` or `one_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_rule: Option<TriggerRule>,
    /// The node type's parameters; strings may use `{{ params.NAME }}` and `{{ run.* }}`.
    #[serde(default, rename = "with")]
    pub with: serde_json::Map<String, Json>,
    /// Retry policy: a number of attempts, or the full form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    /// The longest one attempt may take, e.g. `30s`, `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// With `flow run --workers`: only workers started with all these labels
    /// (`flow worker --labels`) run this node, e.g. `[pos]` for the hosts with the POS
    /// credentials. Letters, digits, `_` and `-`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// `needs: a` or `needs: [a, b.case, { node: c, as: ROLE }]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
#[serde(untagged)]
pub enum Needs {
    #[default]
    None,
    One(String),
    Many(Vec<Need>),
}

/// One item of `needs`: a node id (`DECISION.CASE` for one case of a decision), or that with
/// the role its output fills in this node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Need {
    Node(String),
    WithRole(NeedWithRole),
}

/// `{ node: my_catalog, as: catalog }`: the input from `node` fills the role `as` (the node
/// type's roles are listed by `flow nodes TYPE`). Needed where the role cannot be told from
/// the upstream node's type.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NeedWithRole {
    /// The node id, or `DECISION.CASE`.
    pub node: String,
    /// The role this input fills.
    #[serde(rename = "as")]
    pub role: String,
}

impl Needs {
    /// The node ids (with their case), in order.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Needs::None => Vec::new(),
            Needs::One(s) => vec![s.clone()],
            Needs::Many(v) => v
                .iter()
                .map(|n| match n {
                    Need::Node(s) => s.clone(),
                    Need::WithRole(r) => r.node.clone(),
                })
                .collect(),
        }
    }
}

/// Keys of a `needs` item written as a mapping.
pub const NEED_KEYS: &[&str] = &["node", "as"];

/// `retry: 3` or `retry: { max_attempts: 3, backoff: 2s, max_backoff: 1m, factor: 2 }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RetryDef {
    Attempts(u32),
    Policy(RetryPolicyDef),
}

/// The full retry policy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicyDef {
    /// Attempts in all, including the first (default 3).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The wait before the first retry (default `1s`).
    #[serde(default)]
    pub backoff: Option<String>,
    /// The longest wait between attempts (default `5m`).
    #[serde(default)]
    pub max_backoff: Option<String>,
    /// The wait grows by this factor after each attempt (default 2).
    #[serde(default)]
    pub factor: Option<f64>,
}

/// Top-level keys of a workflow file.
pub const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "params",
    "concurrency",
    "nodes",
    "on_failure",
    "on_success",
];
/// Keys of a notification (`on_failure` and `on_success` items).
pub const NOTIFICATION_KEYS: &[&str] = &[
    "post", "post_env", "format", "headers", "timeout", "command",
];
/// Keys of a node.
pub const NODE_KEYS: &[&str] = &[
    "id",
    "kind",
    "type",
    "description",
    "needs",
    "trigger_rule",
    "with",
    "retry",
    "timeout",
    "labels",
];
