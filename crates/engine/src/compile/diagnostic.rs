//! Validation problems: what one says and where, how the compiler records them, and the
//! "did you mean" hint many of them carry.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::Compiler;
use crate::source::Seg;

/// How bad a diagnostic is: errors make the file invalid, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Error,
    Warning,
}

/// One validation problem.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(col)) = (self.line, self.column) {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": ")?;
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        if let Some(node) = &self.node {
            write!(f, "node `{node}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a workflow could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read workflow {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", display_all(.0))]
    Invalid(Vec<Diagnostic>),
}

pub fn display_all(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Compiler<'_> {
    pub(super) fn error(&mut self, at: &[Seg], node: Option<&str>, message: impl Into<String>) {
        let d = self.diagnostic(Severity::Error, at, node, message.into());
        self.diags.push(d);
    }

    pub(super) fn warning(&mut self, at: &[Seg], node: Option<&str>, message: impl Into<String>) {
        let d = self.diagnostic(Severity::Warning, at, node, message.into());
        self.warnings.push(d);
    }

    fn diagnostic(
        &self,
        severity: Severity,
        at: &[Seg],
        node: Option<&str>,
        message: String,
    ) -> Diagnostic {
        let pos = self.map.pos(at);
        Diagnostic {
            severity,
            file: self.path.clone(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.col),
            node: node.map(str::to_string),
            message,
        }
    }
}

/// The closest candidate within a small edit distance, for "did you mean".
pub fn suggest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
