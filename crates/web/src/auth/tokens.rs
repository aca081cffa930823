//! The bearer tokens that let a caller in when the server listens beyond loopback: one per
//! line of `--http-token-file`, and/or `FLOW_HTTP_TOKEN`. They are never shown, logged or stored.

use std::path::Path;

use crate::hooks::constant_time_eq;

/// Shortest token accepted: a short token can be guessed over the network.
pub const MIN_TOKEN_LEN: usize = 16;

/// The accepted tokens; `Debug` shows how many, never the tokens.
#[derive(Clone, Default)]
pub struct Tokens(Vec<String>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

/// Why the tokens cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "{source_name} line {line}: a token must be at least {MIN_TOKEN_LEN} characters without spaces"
    )]
    Weak { source_name: String, line: usize },
}

impl Tokens {
    /// Tokens from a file (one per line; blank lines and `#` comments skipped) and from the
    /// environment variable's value.
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<Tokens, TokenError> {
        let mut tokens = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| TokenError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                check(line, &path.display().to_string(), i + 1)?;
                tokens.push(line.to_string());
            }
        }
        if let Some(value) = env.map(str::trim).filter(|v| !v.is_empty()) {
            check(value, "FLOW_HTTP_TOKEN", 1)?;
            tokens.push(value.to_string());
        }
        Ok(Tokens(tokens))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Which token `given` is (its position), comparing each in constant time.
    pub(crate) fn find(&self, given: &str) -> Option<usize> {
        let mut found = None;
        for (i, token) in self.0.iter().enumerate() {
            // Every token is compared, so the time does not tell which matched.
            if constant_time_eq(given.as_bytes(), token.as_bytes()) && found.is_none() {
                found = Some(i);
            }
        }
        found
    }
}

fn check(token: &str, source_name: &str, line: usize) -> Result<(), TokenError> {
    if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
        return Err(TokenError::Weak {
            source_name: source_name.to_string(),
            line,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_a_file_and_the_environment_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# ops\nfirst-token-0123456789\n\n").unwrap();
        let tokens = Tokens::load(Some(&file), Some("second-token-0123456789")).unwrap();
        assert_eq!(tokens.find("first-token-0123456789"), Some(0));
        assert_eq!(tokens.find("second-token-0123456789"), Some(1));
        assert_eq!(tokens.find("first-token-012345678"), None);
        assert!(!format!("{tokens:?}").contains("first"));
        std::fs::write(&file, "short\n").unwrap();
        let err = Tokens::load(Some(&file), None).unwrap_err().to_string();
        assert!(err.contains("line 1") && !err.contains("short"), "{err}");
    }
}
