//! Source positions for a workflow file.
//!
//! `serde_yaml` gives values without spans, so semantic errors (an unknown `needs`, a bad cron
//! expression) are located by walking a second, position-carrying parse of the same text
//! (`marked-yaml`) along the path of the offending value.

use std::fmt;

use marked_yaml::Node as MarkedNode;

/// A 1-based line and column in a workflow file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One step of a path into the YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// The value under a mapping key.
    Key(String),
    /// The key itself (to point at a misspelt or unknown key rather than its value).
    KeyName(String),
    /// An item of a sequence.
    Index(usize),
}

impl Seg {
    pub fn key(k: impl Into<String>) -> Self {
        Seg::Key(k.into())
    }
}

/// Renders a path like `with.rules[2].when` for messages.
pub fn path_to_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) | Seg::KeyName(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Looks up the position of a value in a YAML text by path.
pub struct SourceMap {
    root: Option<MarkedNode>,
}

impl fmt::Debug for SourceMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceMap")
            .field("parsed", &self.root.is_some())
            .finish()
    }
}

impl SourceMap {
    /// Parses `text` for positions. Constructs the parser cannot follow (anchors, tags) leave
    /// the map empty: errors are then reported without a line rather than not at all.
    pub fn new(text: &str) -> Self {
        SourceMap {
            root: marked_yaml::parse_yaml(0, text).ok(),
        }
    }

    /// An empty map, for workflows built in code.
    pub fn empty() -> Self {
        SourceMap { root: None }
    }

    /// The position of the value (or key) at `path`; falls back to the deepest existing ancestor
    /// so an error about a missing field still points at the enclosing mapping.
    pub fn pos(&self, path: &[Seg]) -> Option<Pos> {
        let mut node = self.root.as_ref()?;
        let mut best = start_of(node);
        for seg in path {
            match seg {
                Seg::Key(k) => {
                    let Some(next) = node.as_mapping().and_then(|m| m.get_node(k)) else {
                        break;
                    };
                    node = next;
                    best = start_of(node).or(best);
                }
                Seg::KeyName(k) => {
                    if let Some(map) = node.as_mapping()
                        && let Some((key, _)) = map.iter().find(|(key, _)| key.as_str() == k)
                    {
                        let span = key.span();
                        return span.start().map(|m| Pos {
                            line: m.line(),
                            col: m.column(),
                        });
                    }
                    break;
                }
                Seg::Index(i) => {
                    let Some(next) = node.as_sequence().and_then(|s| s.get(*i)) else {
                        break;
                    };
                    node = next;
                    best = start_of(node).or(best);
                }
            }
        }
        best
    }
}

fn start_of(node: &MarkedNode) -> Option<Pos> {
    node.span().start().map(|m| Pos {
        line: m.line(),
        col: m.column(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_keys_and_items() {
        let text = "name: x\nnodes:\n  - id: a\n    needs: [b, c]\n";
        let map = SourceMap::new(text);
        let p = |path: &[Seg]| map.pos(path).map(|p| (p.line, p.col));
        assert_eq!(p(&[Seg::key("name")]), Some((1, 7)));
        assert_eq!(
            p(&[
                Seg::key("nodes"),
                Seg::Index(0),
                Seg::KeyName("needs".into())
            ]),
            Some((4, 5))
        );
        let needs_c = [
            Seg::key("nodes"),
            Seg::Index(0),
            Seg::key("needs"),
            Seg::Index(1),
        ];
        assert_eq!(p(&needs_c), Some((4, 16)));
        // A missing key falls back to the enclosing node.
        assert_eq!(
            p(&[Seg::key("nodes"), Seg::Index(0), Seg::key("with")]),
            Some((3, 7))
        );
    }
}
