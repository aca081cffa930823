//! flow's engine: a YAML DAG of trigger, action, decision and output nodes, run durably.
//!
//! A workflow is a YAML DAG of trigger, action, decision and output nodes. [`compile`] turns the
//! file into a validated graph (reporting every error with its line), [`executor`] runs the nodes
//! as concurrent tokio tasks and checkpoints each result in a [`store`], and [`runs`] plans
//! resuming a failed or interrupted run from those checkpoints; [`serve`] fires runs on their
//! schedules. The generic node types (triggers, shell, switch, files) live in [`nodes`]; domain
//! node types live in other crates and register into a [`node::Registry`].
//!
//! What it offers:
//!
//! | module | what |
//! | --- | --- |
//! | [`model`] | the workflow file as written (`WorkflowDef`), and its JSON Schema |
//! | [`compile`] | reading and validating a workflow into a [`compile::Workflow`], every error located |
//! | [`node`] | the node API: [`node::NodeType`], [`node::Node`], params, inputs, the registry |
//! | [`table_kind`] | named table schemas and the input roles node types declare |
//! | [`data`] | what flows between nodes: Arrow tables or JSON, with metadata |
//! | [`nodes`] | the generic node types (`core.*`, triggers, files) |
//! | [`executor`] | running a compiled workflow: concurrency, retries, timeouts, checkpoints |
//! | [`notify`] | `on_failure` / `on_success` notifications: messages, formats, delivery |
//! | [`run_cache`] | values the nodes of one run share |
//! | [`runs`] | starting runs, run parameters, planning a resume |
//! | [`store`] | the durable state trait and its sled, in-memory and remote implementations |
//! | [`schedule`] | cron schedules and what to do with missed or overlapping firings |
//! | [`sync`] | synced histories: keyed columnar copies of remote records, with their cursor |
//! | [`secret`] | credentials from the environment or a private secrets file, never the YAML |
//! | [`serve`] | the scheduler behind `flow serve` |
//! | [`expr`], [`trigger_rule`], [`template_limits`] | row expressions, when a node runs, template limits |
//! | [`http_agent`] | the HTTP client the nodes share: no redirects, no proxy for loopback |
//! | [`source`], [`plural`], [`redact`], [`spreadsheet`] | located errors, message wording, secret redaction, CSV safe for spreadsheets |
//! | `testing` (feature `testing`) | a [`node::NodeContext`] for running a node in a test, and the workflow fuzzer |

pub mod compile;
mod cores;
pub mod data;
pub mod executor;
pub mod expr;
#[cfg(any(test, feature = "testing"))]
pub mod fuzz;
pub mod html;
pub mod http_agent;
pub mod model;
pub mod node;
pub mod node_log;
pub mod nodes;
pub mod notify;
mod params;
pub mod plural;
pub mod redact;
pub mod run_cache;
pub mod run_id;
pub mod runs;
pub mod schedule;
pub mod secret;
pub mod serve;
pub mod source;
pub mod spreadsheet;
pub mod store;
pub mod sync;
pub mod table_kind;
mod template;
pub mod template_limits;
#[cfg(any(test, feature = "testing"))]
pub mod test_postgres;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trigger_rule;
pub mod webhook;
pub mod worker;

pub use params::{ParamDecl, ParamKind};
