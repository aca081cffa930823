//! The built-in node library. Every type registers through [`builtin_registry`], the same way a
//! third-party node type would. [`analytics`] holds the retail models the segmentation nodes use.

pub mod analytics;
pub mod core;

use crate::node::Registry;

/// A registry with every built-in node type.
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    core::register(&mut registry);
    registry
}
