//! flow: a workflow engine for pipelines you can read, edit and trust.
//!
//! A workflow is a YAML DAG of trigger, action, decision and output nodes. [`compile`] turns the
//! file into a validated graph (reporting every error with its line), [`executor`] runs the nodes
//! as concurrent tokio tasks and checkpoints each result in a [`store`], and [`runs`] plans
//! resuming a failed or interrupted run from those checkpoints; [`serve`] fires runs on their
//! cron schedules. The generic node types (triggers, shell, switch, files) live in [`nodes`];
//! domain node types live in other crates and register into a [`node::Registry`].

pub mod compile;
pub mod data;
pub mod executor;
pub mod expr;
#[cfg(any(test, feature = "testing"))]
pub mod fuzz;
pub mod model;
pub mod node;
pub mod nodes;
pub mod params;
pub mod plural;
pub mod redact;
pub mod run_cache;
pub mod run_id;
pub mod runs;
pub mod schedule;
pub mod serve;
pub mod source;
pub mod spreadsheet;
pub mod store;
pub mod table_kind;
pub mod template;
pub mod template_limits;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trigger_rule;
