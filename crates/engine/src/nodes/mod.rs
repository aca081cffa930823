//! Engine-level node types: triggers, shell commands, a generic switch, files, HTTP requests,
//! a no-op.

mod file;
mod http_request;
mod noop;
mod shell;
mod switch;
mod trigger;
mod webhook;

pub use file::{ReadFile, WriteFile};
pub use http_request::HttpRequest;
pub use noop::Noop;
pub use shell::Shell;
pub use switch::{RuleSet, Switch};
pub use trigger::{ManualTrigger, ScheduleTrigger};
pub use webhook::WebhookTriggerType;

use crate::node::Registry;

/// A registry with the generic node types.
pub fn core_registry() -> Registry {
    let mut registry = Registry::new();
    register(&mut registry);
    registry
}

/// Registers the generic node types.
pub fn register(registry: &mut Registry) {
    registry
        .register(ManualTrigger)
        .register(ScheduleTrigger)
        .register(WebhookTriggerType)
        .register(Shell)
        .register(Switch)
        .register(ReadFile)
        .register(WriteFile)
        .register(HttpRequest)
        .register(Noop);
}
