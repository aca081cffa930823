//! The built-in node library. Every type registers through [`builtin_registry`], the same way a
//! third-party node type would.

pub mod core;

use crate::node::Registry;

/// A registry with every built-in node type.
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    core::register(&mut registry);
    registry
}
