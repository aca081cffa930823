//! The `email:` block of deploy: which SMTP server sends the campaign messages, how securely, as
//! whom, and how fast. Sending itself is in [`super::smtp_send`].
//!
//! ```yaml
//! email:
//!   host: smtp.example.com
//!   port: 587                  # default: 587 (starttls), 465 (tls), 25 (none)
//!   tls: starttls              # starttls | tls | none (none: localhost only)
//!   username_env: SMTP_USER    # credentials: environment or secrets file, never the YAML
//!   password_env: SMTP_PASSWORD
//!   rate: 10/s                 # or 600/m
//!   timeout: 30s               # per message
//!   retries: 3                 # of a transient failure (4xx, connection), with backoff
//!   backoff: 1s
//! ```

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{PoolConfig, SmtpTransport};
use serde::Deserialize;

use flow_engine::node::{NodeError, ParamError, Params};

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a server on this machine (tests, a local relay).
    None,
}

/// The `email:` block as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    host: Option<String>,
    port: Option<u16>,
    #[serde(default = "default_tls")]
    tls: TlsMode,
    username_env: Option<String>,
    password_env: Option<String>,
    rate: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
    backoff: Option<String>,
    helo: Option<String>,
    ca_file: Option<String>,
}

fn default_tls() -> TlsMode {
    TlsMode::Starttls
}

/// The checked `email:` block.
#[derive(Debug, Clone)]
pub(crate) struct EmailConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: TlsMode,
    /// `(username_env, password_env)`: the variables' names, never their values.
    pub(crate) auth: Option<(String, String)>,
    /// The pause between two sends.
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) helo: Option<String>,
    /// An extra trusted root certificate (PEM), for a relay with a private CA.
    pub(crate) ca_file: Option<PathBuf>,
}

impl EmailConfig {
    /// The server as messages name it.
    pub(crate) fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The username and password from the environment or the secrets file; an error names the
    /// variable, never a value.
    pub(crate) fn credentials(&self) -> Result<Option<(String, String)>, NodeError> {
        let Some((user_var, pass_var)) = &self.auth else {
            return Ok(None);
        };
        let user = flow_engine::secret::require("email.username_env", user_var)
            .map_err(|e| NodeError::msg(format!("SMTP server {}: {e}", self.server())))?;
        let pass = flow_engine::secret::require("email.password_env", pass_var)
            .map_err(|e| NodeError::msg(format!("SMTP server {}: {e}", self.server())))?;
        Ok(Some((user, pass)))
    }

    /// The TLS setting of the transport.
    pub(crate) fn tls(&self) -> Result<Tls, NodeError> {
        if self.tls == TlsMode::None {
            return Ok(Tls::None);
        }
        let mut params = TlsParameters::builder(self.host.clone());
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| NodeError::io(format!("cannot read {}", path.display()), e))?;
            let not_pem = |why: String| {
                NodeError::msg(format!("{} is not a PEM certificate{why}", path.display()))
            };
            // The parser accepts a file without any certificate in it: that is a mistake here.
            if !pem
                .windows(b"-----BEGIN CERTIFICATE-----".len())
                .any(|w| w == b"-----BEGIN CERTIFICATE-----")
            {
                return Err(not_pem(String::new()));
            }
            let cert = Certificate::from_pem(&pem).map_err(|e| not_pem(format!(": {e}")))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| NodeError::msg(format!("SMTP server {}: TLS: {e}", self.server())))?;
        Ok(match self.tls {
            TlsMode::Starttls => Tls::Required(params),
            _ => Tls::Wrapper(params),
        })
    }

    /// The transport: one pooled connection reused from message to message.
    pub(crate) fn transport(
        &self,
        credentials: Option<(String, String)>,
        sender_domain: &str,
    ) -> Result<SmtpTransport, NodeError> {
        let helo = self
            .helo
            .clone()
            .unwrap_or_else(|| sender_domain.to_string());
        let mut builder = SmtpTransport::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(self.tls()?)
            .timeout(Some(self.timeout))
            .hello_name(ClientId::Domain(helo))
            .pool_config(PoolConfig::new().max_size(1));
        if let Some((user, pass)) = credentials {
            builder = builder.credentials(Credentials::new(user, pass));
        }
        Ok(builder.build())
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "::1" || host == "[::1]"
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `10/s`, `600/m`, `3600/h` as the pause between two sends.
pub(crate) fn parse_rate(rate: &str) -> Result<Duration, String> {
    let (n, per) = rate
        .split_once('/')
        .ok_or_else(|| format!("`{rate}` is not a rate: write 10/s, 600/m or 3600/h"))?;
    let n: f64 = n
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| *n > 0.0 && n.is_finite())
        .ok_or_else(|| format!("`{rate}`: the count must be a positive number"))?;
    let secs = match per.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => return Err(format!("`{rate}`: the unit `{other}` is not s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs / n))
}

fn duration(text: Option<&str>, default: Duration, name: &str) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(t) => humantime_like(t)
            .ok_or_else(|| format!("{name}: `{t}` is not a duration (write 500ms, 30s, 2m)")),
    }
}

/// A duration such as `500ms`, `30s`, `2m`.
fn humantime_like(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// The `email` parameter; `None` when it is absent, empty or has an empty `host` (a
/// `{{ params.smtp_host }}` left at its empty default), so one workflow serves both setups.
pub(crate) fn parse(params: &Params, errors: &mut Vec<ParamError>) -> Option<EmailConfig> {
    let value = params.get("email")?;
    if value.is_null() || value.as_object().is_some_and(|m| m.is_empty()) {
        return None;
    }
    let raw: Raw = match serde_json::from_value(value.clone()) {
        Ok(r) => r,
        Err(e) => {
            errors.push(ParamError::new("email", e.to_string()));
            return None;
        }
    };
    let host = raw.host.as_deref().map(str::trim).unwrap_or("");
    if host.is_empty() {
        return None;
    }
    let mut err = |m: String| errors.push(ParamError::new("email", m));
    if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        err(format!(
            "host: `{host}` is not a host name (write smtp.example.com)"
        ));
    }
    if raw.tls == TlsMode::None && !is_local(host) {
        err(format!(
            "tls: none sends the password and the messages unencrypted; it is only allowed to \
             localhost, not `{host}` (use starttls or tls)"
        ));
    }
    let auth = match (&raw.username_env, &raw.password_env) {
        (Some(u), Some(p)) => {
            for (name, v) in [("username_env", u), ("password_env", p)] {
                // The value is not quoted: it may be the secret written in by mistake.
                if !is_env_name(v) {
                    err(format!(
                        "{name} is not an environment variable name (letters, digits and _); \
                         give the variable's name, not the value"
                    ));
                }
            }
            Some((u.clone(), p.clone()))
        }
        (None, None) => None,
        _ => {
            err("username_env and password_env go together".into());
            None
        }
    };
    let port = raw.port.unwrap_or(match raw.tls {
        TlsMode::Starttls => 587,
        TlsMode::Tls => 465,
        TlsMode::None => 25,
    });
    let interval = match raw.rate.as_deref().map(parse_rate) {
        None => Duration::from_millis(100),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            err(format!("rate: {e}"));
            Duration::ZERO
        }
    };
    let mut dur = |t: Option<&str>, default: Duration, name: &str| {
        duration(t, default, name).unwrap_or_else(|e| {
            err(e);
            default
        })
    };
    let timeout = dur(raw.timeout.as_deref(), Duration::from_secs(30), "timeout");
    let backoff = dur(raw.backoff.as_deref(), Duration::from_secs(1), "backoff");
    let retries = raw.retries.unwrap_or(3);
    if retries > 20 {
        err(format!("retries: must be at most 20, got {retries}"));
    }
    Some(EmailConfig {
        host: host.to_string(),
        port,
        tls: raw.tls,
        auth,
        interval,
        timeout,
        retries,
        backoff,
        helo: raw.helo.filter(|h| !h.trim().is_empty()),
        ca_file: raw
            .ca_file
            .filter(|p| !p.trim().is_empty())
            .map(|p| params.resolve(&p)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_yaml(yaml: &str) -> (Option<EmailConfig>, Vec<String>) {
        let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        let mut map = serde_json::Map::new();
        map.insert("email".into(), value);
        let params = Params::new(map, "/wf");
        let mut errors = Vec::new();
        let cfg = parse(&params, &mut errors);
        (cfg, errors.iter().map(|e| e.message.clone()).collect())
    }

    #[test]
    fn defaults_follow_the_tls_mode() {
        let (cfg, errors) = parse_yaml("host: smtp.example.com");
        assert!(errors.is_empty(), "{errors:?}");
        let cfg = cfg.unwrap();
        assert_eq!((cfg.port, cfg.tls), (587, TlsMode::Starttls));
        assert_eq!(cfg.interval, Duration::from_millis(100));
        assert!(matches!(cfg.tls().unwrap(), Tls::Required(_)));
        let (cfg, _) = parse_yaml("{host: smtp.example.com, tls: tls, rate: 600/m}");
        let cfg = cfg.unwrap();
        assert_eq!(cfg.port, 465);
        assert_eq!(cfg.interval, Duration::from_millis(100));
        assert!(matches!(cfg.tls().unwrap(), Tls::Wrapper(_)));
        let (cfg, _) = parse_yaml("{host: 127.0.0.1, tls: none, port: 2525}");
        assert!(matches!(cfg.unwrap().tls().unwrap(), Tls::None));
    }

    #[test]
    fn an_empty_host_means_no_email() {
        assert!(parse_yaml("{host: ''}").0.is_none());
        assert!(parse_yaml("{}").0.is_none());
    }

    #[test]
    fn unsafe_or_wrong_settings_are_errors() {
        let cases = [
            (
                "{host: smtp.example.com, tls: none}",
                "only allowed to localhost",
            ),
            ("{host: h, username_env: U}", "go together"),
            (
                "{host: h, username_env: U, password_env: 'hunter 2'}",
                "not an environment",
            ),
            ("{host: h, rate: fast}", "not a rate"),
            ("{host: h, rate: 0/s}", "positive"),
            ("{host: h, timeout: soon}", "not a duration"),
            ("{host: h, password: x}", "unknown field"),
            ("{host: h, tls: ssl}", "unknown variant"),
        ];
        for (yaml, needle) in cases {
            let (_, errors) = parse_yaml(yaml);
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "{yaml}: {errors:?}"
            );
        }
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let (cfg, _) = parse_yaml(&format!("{{host: h, ca_file: '{}'}}", path.display()));
        let err = cfg.unwrap().tls().unwrap_err().to_string();
        assert!(err.contains("ca.pem"), "{err}");
    }
}
