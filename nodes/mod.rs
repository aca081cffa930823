//! The built-in node library. Every type registers through [`builtin_registry`], the same way a
//! third-party node type would. [`analytics`] holds the retail models the segmentation nodes use.

pub mod analytics;
pub mod core;
pub mod pos;
pub mod segmentation;

use crate::node::Registry;

/// A registry with every built-in node type.
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    core::register(&mut registry);
    pos::register(&mut registry);
    segmentation::register(&mut registry);
    registry
}

#[cfg(test)]
mod tests {
    /// docs/nodes.md must stay true: every registered type and parameter is documented there.
    #[test]
    fn every_node_type_and_parameter_is_documented() {
        let docs = include_str!("../docs/nodes.md");
        for node_type in super::builtin_registry().iter() {
            let heading = format!("### `{}`", node_type.name());
            let Some(start) = docs.find(&heading) else {
                panic!("docs/nodes.md has no section `{heading}`");
            };
            let section = &docs[start + heading.len()..];
            let section = &section[..section.find("\n### ").unwrap_or(section.len())];
            for param in node_type.params() {
                assert!(
                    section.contains(&format!("| `{}` |", param.name)),
                    "docs/nodes.md: `{}` does not document parameter `{}`",
                    node_type.name(),
                    param.name
                );
            }
        }
    }
}
