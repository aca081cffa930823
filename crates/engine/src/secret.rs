//! Credentials: read from an environment variable, or from a secrets file readable only by its
//! owner, never from the workflow file.
//!
//! A node names where its secret lives (`token_env: SHOPIFY_TOKEN`); [`require`] looks the
//! name up in the environment first, then in the secrets file the CLI set with
//! [`set_secrets_file`] (`flow --secrets FILE`, or `FLOW_SECRETS_FILE`). The file holds
//! `NAME=value` lines (`#` comments, blank lines, optional `export ` and quotes, as a `.env`
//! file) and is refused when its mode lets anyone but its owner read it.
//!
//! Errors name the variable, the parameter and the file, never a value. A literal secret
//! written in a workflow is a validation error (see [`literal_secret`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value as Json;

static SECRETS_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Sets the secrets file for the process (once; later calls are ignored).
pub fn set_secrets_file(path: PathBuf) {
    let _ = SECRETS_FILE.set(path);
}

/// The secrets file the process reads, if one was set.
pub fn secrets_file() -> Option<&'static Path> {
    SECRETS_FILE.get().map(PathBuf::as_path)
}

/// Why a secret could not be read. Never holds a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "`{var}` ({param}) is not set: export it, or add `{var}=...` to the secrets file \
         (flow --secrets FILE, or FLOW_SECRETS_FILE)"
    )]
    NotSet { var: String, param: String },
    #[error("`{var}` ({param}) is empty")]
    Empty { var: String, param: String },
    #[error("the secrets file {path} cannot be read: {reason}")]
    File { path: String, reason: String },
    #[error(
        "the secrets file {path} can be read by others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Exposed { path: String, mode: u32 },
    #[error("the secrets file {path}, line {line}: expected NAME=value")]
    Syntax { path: String, line: usize },
}

/// The secret named `var`, for the parameter `param` (named in errors): from the environment,
/// else from the secrets file. Surrounding whitespace is trimmed.
pub fn require(param: &str, var: &str) -> Result<String, SecretError> {
    match lookup(var)? {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Some(_) => Err(SecretError::Empty {
            var: var.into(),
            param: param.into(),
        }),
        None => Err(SecretError::NotSet {
            var: var.into(),
            param: param.into(),
        }),
    }
}

/// The value of `var` from the environment, else from the secrets file; `None` when neither has
/// it.
pub fn lookup(var: &str) -> Result<Option<String>, SecretError> {
    if let Ok(v) = std::env::var(var) {
        return Ok(Some(v));
    }
    match secrets_file() {
        Some(path) => read_file(path, var),
        None => Ok(None),
    }
}

/// `var`'s value in the secrets file at `path`.
pub fn read_file(path: &Path, var: &str) -> Result<Option<String>, SecretError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| SecretError::File {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Exposed { path: shown, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(SecretError::Syntax {
                path: shown,
                line: i + 1,
            });
        };
        if name.trim() == var {
            return Ok(Some(unquote(value.trim()).to_string()));
        }
    }
    Ok(None)
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// Parameter names that hold a credential: they must not carry a literal value.
const SECRET_KEYS: [&str; 11] = [
    "token",
    "access_token",
    "api_key",
    "apikey",
    "api_token",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "api_secret",
    "private_key",
];

/// Prefixes of vendor tokens (Shopify Admin API, Square, Slack, GitHub, Stripe) recognised
/// wherever they are written.
const TOKEN_PREFIXES: [&str; 9] = [
    "shpat_", "shpca_", "shppa_", "shpss_", "EAAA", "xoxb-", "xoxp-", "ghp_", "sk_live_",
];

/// Why `value` under `key` looks like a literal secret, if it does: a credential parameter
/// (`password`, `token`, `smtp_password`, ...) with a value, or a value shaped like a vendor
/// token. `*_env` parameters name a variable and are fine.
pub fn literal_secret(key: &str, value: &Json) -> Option<String> {
    let Json::String(s) = value else {
        return None;
    };
    let k = key.to_ascii_lowercase();
    let named = SECRET_KEYS
        .iter()
        .any(|s| k == *s || k.ends_with(&format!("_{s}")));
    if named && !s.trim().is_empty() && !s.contains("{{") {
        return Some(format!(
            "`{key}` holds a literal secret; put it in an environment variable or the secrets \
             file and name it with `{key}_env`"
        ));
    }
    if TOKEN_PREFIXES
        .iter()
        .any(|p| s.starts_with(p) && s.len() >= p.len() + 16 && !s.contains(' '))
    {
        return Some(format!(
            "`{key}` looks like an access token; put it in an environment variable or the \
             secrets file and name the variable instead"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literal_secrets_are_recognised_by_name_and_shape() {
        assert!(literal_secret("password", &json!("hunter2")).is_some());
        assert!(literal_secret("smtp_password", &json!("hunter2")).is_some());
        assert!(literal_secret("access_token", &json!("abc")).is_some());
        assert!(literal_secret("url", &json!("shpat_0123456789abcdef0123")).is_some());
        assert!(literal_secret("password_env", &json!("SMTP_PASSWORD")).is_none());
        assert!(literal_secret("token_env", &json!("SHOPIFY_TOKEN")).is_none());
        assert!(literal_secret("password", &json!("")).is_none());
        assert!(literal_secret("max_tokens", &json!("12")).is_none());
        assert!(literal_secret("subject", &json!("EAAA is our brand")).is_none());
    }

    #[test]
    fn the_secrets_file_is_read_only_when_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.env");
        std::fs::write(
            &path,
            "# shop\nexport SHOP_TOKEN=\"abc def\"\nSMTP_PASSWORD = p=q\n\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = read_file(&path, "SHOP_TOKEN").unwrap_err();
            assert!(
                matches!(err, SecretError::Exposed { mode: 0o644, .. }),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(
            read_file(&path, "SHOP_TOKEN").unwrap().as_deref(),
            Some("abc def")
        );
        assert_eq!(
            read_file(&path, "SMTP_PASSWORD").unwrap().as_deref(),
            Some("p=q")
        );
        assert_eq!(read_file(&path, "OTHER").unwrap(), None);
        std::fs::write(&path, "not a pair\n").unwrap();
        let err = read_file(&path, "X").unwrap_err();
        assert_eq!(
            err,
            SecretError::Syntax {
                path: path.display().to_string(),
                line: 1
            }
        );
    }

    #[test]
    fn errors_name_the_variable_and_parameter_never_a_value() {
        let err = require("token_env", "FLOW_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("FLOW_TEST_SURELY_UNSET_VARIABLE") && text.contains("token_env"));
    }
}
