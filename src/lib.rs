//! The `flow` command line as a library, so a program can run it with its own node types.
//!
//! The `flow` binary is [`main`]: every built-in node type. A binary of your own adds its types
//! to [`builtin_registry`] and calls [`main_with`]; see docs/adding-a-node.md.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut registry = flow::builtin_registry();
//!     // registry.register(MyNodeType);
//!     flow::main_with(registry)
//! }
//! ```

mod cli;

use std::process::ExitCode;

pub use cli::main_with;
pub use flow_engine as engine;
pub use flow_engine::node::Registry;

/// A registry with every node type that ships with flow: the engine's generic types and the
/// retail types.
pub fn builtin_registry() -> Registry {
    let mut registry = flow_engine::nodes::core_registry();
    flow_retail::register(&mut registry);
    registry
}

/// The `flow` command line with the built-in node types.
pub fn main() -> ExitCode {
    main_with(builtin_registry())
}

#[cfg(test)]
mod tests {
    /// docs/nodes.md must stay true: every registered type, parameter and input role is
    /// documented there.
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
            for input in node_type.inputs() {
                assert!(
                    section.contains(&format!("| `{}` | {} |", input.role, input.kind_name())),
                    "docs/nodes.md: `{}` does not document input role `{}` ({})",
                    node_type.name(),
                    input.role,
                    input.kind_name()
                );
            }
        }
    }
}
