//! The workflow-level `on_failure` and `on_success` lists: each entry checked on its own, every
//! problem reported at its line.

use std::time::Duration;

use serde_json::Value as Json;

use super::{Compiler, suggest};
use crate::model::{NOTIFICATION_KEYS, NotifyFormat};
use crate::node::parse_duration;
use crate::notify::{DEFAULT_TIMEOUT, Notification, Notifications, Secret, Target};
use crate::source::Seg;

impl Compiler<'_> {
    pub(super) fn notifications(&mut self, root: &serde_json::Map<String, Json>) -> Notifications {
        Notifications {
            on_failure: self.notification_list(root, "on_failure"),
            on_success: self.notification_list(root, "on_success"),
        }
    }

    fn notification_list(
        &mut self,
        root: &serde_json::Map<String, Json>,
        key: &str,
    ) -> Vec<Notification> {
        let items = match root.get(key) {
            None | Some(Json::Null) => return Vec::new(),
            Some(Json::Array(items)) => items,
            Some(_) => {
                self.error(
                    &[Seg::key(key)],
                    None,
                    format!("`{key}` must be a list of notifications (`- post: URL` or `- command: [PROGRAM, ARG...]`)"),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = vec![Seg::key(key), Seg::Index(i)];
            if let Some(n) = self.notification(item, &at, key) {
                out.push(n);
            }
        }
        out
    }

    fn notification(&mut self, item: &Json, at: &[Seg], list: &str) -> Option<Notification> {
        let field = |k: &str| {
            let mut p = at.to_vec();
            p.push(Seg::key(k));
            p
        };
        let Json::Object(map) = item else {
            self.error(
                at,
                None,
                format!("a `{list}` item must be a mapping: `post: URL`, `post_env: VAR` or `command: [PROGRAM, ARG...]`"),
            );
            return None;
        };
        let before = self.diags.len();
        self.unknown_keys(map, at, NOTIFICATION_KEYS, None, "notification");
        let given: Vec<&str> = ["post", "post_env", "command"]
            .into_iter()
            .filter(|k| map.contains_key(*k))
            .collect();
        match given.as_slice() {
            [] => self.error(
                at,
                None,
                "a notification needs one of `post: URL`, `post_env: VAR` or `command: [PROGRAM, ARG...]`",
            ),
            [_] => {}
            [first, second, ..] => self.error(
                &field(second),
                None,
                format!("a notification takes one of `post`, `post_env` or `command`, not `{first}` and `{second}`; write two entries"),
            ),
        }
        let is_command = given.first() == Some(&"command");

        let url = if let Some(v) = map.get("post") {
            match v {
                Json::String(url) => match check_url(url) {
                    Ok(()) => Some(Secret::Text(url.clone())),
                    Err(msg) => {
                        self.error(&field("post"), None, format!("`post`: {msg}"));
                        None
                    }
                },
                other => {
                    self.error(
                        &field("post"),
                        None,
                        format!("`post` must be a URL, got {}", kind(other)),
                    );
                    None
                }
            }
        } else if let Some(v) = map.get("post_env") {
            match v {
                Json::String(var) if valid_env_name(var) => Some(Secret::Env(var.clone())),
                _ => {
                    self.error(
                        &field("post_env"),
                        None,
                        "`post_env` must name an environment variable (letters, digits and `_`, not starting with a digit)",
                    );
                    None
                }
            }
        } else {
            None
        };

        let format = match map.get("format") {
            None | Some(Json::Null) => NotifyFormat::default(),
            Some(Json::String(s)) => {
                match NotifyFormat::ALL.into_iter().find(|f| f.as_str() == s) {
                    Some(f) => f,
                    None => {
                        let names = NotifyFormat::ALL.map(NotifyFormat::as_str);
                        let hint = suggest(s, names.iter().copied())
                            .map(|n| format!("did you mean `{n}`? "))
                            .unwrap_or_default();
                        self.error(
                            &field("format"),
                            None,
                            format!(
                                "unknown format `{s}` ({hint}expected one of: {})",
                                names.join(", ")
                            ),
                        );
                        NotifyFormat::default()
                    }
                }
            }
            Some(other) => {
                self.error(
                    &field("format"),
                    None,
                    format!("`format` must be slack, teams or json, got {}", kind(other)),
                );
                NotifyFormat::default()
            }
        };
        if is_command && map.contains_key("format") {
            self.error(
                &field("format"),
                None,
                "`format` applies to `post`; a command always gets the JSON message",
            );
        }

        let mut headers = Vec::new();
        match map.get("headers") {
            None | Some(Json::Null) => {}
            Some(Json::Object(h)) if !is_command => {
                for (name, value) in h {
                    let mut p = field("headers");
                    p.push(Seg::KeyName(name.clone()));
                    if !valid_header_name(name) {
                        self.error(&p, None, format!("`{name}` is not a valid header name"));
                        continue;
                    }
                    match value {
                        Json::String(text) if !text.contains(['\r', '\n']) => {
                            headers.push((name.clone(), Secret::Text(text.clone())))
                        }
                        Json::Object(m) if m.len() == 1 && m.get("env").and_then(Json::as_str).is_some_and(valid_env_name) => {
                            let var = m["env"].as_str().unwrap_or_default().to_string();
                            headers.push((name.clone(), Secret::Env(var)));
                        }
                        _ => self.error(
                            &p,
                            None,
                            format!("header `{name}` must be a one-line text or `{{ env: VAR }}` (the value read from an environment variable)"),
                        ),
                    }
                }
            }
            Some(Json::Object(_)) => self.error(
                &field("headers"),
                None,
                "`headers` applies to `post`, not to a command",
            ),
            Some(other) => self.error(
                &field("headers"),
                None,
                format!(
                    "`headers` must be a mapping of header names to values, got {}",
                    kind(other)
                ),
            ),
        }

        let argv = match map.get("command") {
            None => None,
            Some(Json::Array(items)) if items.is_empty() => {
                self.error(
                    &field("command"),
                    None,
                    "`command` is empty; give the program and its arguments: [PROGRAM, ARG...]",
                );
                None
            }
            Some(Json::Array(items)) => {
                let argv: Option<Vec<String>> = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect();
                match argv {
                    Some(argv) if !argv[0].trim().is_empty() => Some(argv),
                    Some(_) => {
                        self.error(
                            &field("command"),
                            None,
                            "`command` must start with the program to run",
                        );
                        None
                    }
                    None => {
                        self.error(&field("command"), None, "`command` items must be strings (it runs without a shell; write numbers in quotes)");
                        None
                    }
                }
            }
            Some(other) => {
                self.error(
                    &field("command"),
                    None,
                    format!("`command` must be a list: [PROGRAM, ARG...] (it runs without a shell), got {}", kind(other)),
                );
                None
            }
        };

        let timeout = match map.get("timeout") {
            None | Some(Json::Null) => DEFAULT_TIMEOUT,
            Some(Json::String(s)) => match parse_duration(s) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    self.error(
                        &field("timeout"),
                        None,
                        "`timeout` must be longer than zero",
                    );
                    DEFAULT_TIMEOUT
                }
                Err(e) => {
                    self.error(&field("timeout"), None, format!("`timeout`: {e}"));
                    DEFAULT_TIMEOUT
                }
            },
            Some(Json::Number(n)) => match n.as_f64() {
                Some(secs) if secs > 0.0 && secs.is_finite() && secs <= 86_400.0 => {
                    Duration::from_secs_f64(secs)
                }
                _ => {
                    self.error(
                        &field("timeout"),
                        None,
                        "`timeout` must be longer than zero (and at most a day)",
                    );
                    DEFAULT_TIMEOUT
                }
            },
            Some(other) => {
                self.error(
                    &field("timeout"),
                    None,
                    format!("`timeout` must be a duration like 10s, got {}", kind(other)),
                );
                DEFAULT_TIMEOUT
            }
        };

        if self.diags.len() > before {
            return None;
        }
        let target = match (url, argv) {
            (Some(url), None) => Target::Post {
                url,
                format,
                headers,
            },
            (None, Some(argv)) => Target::Command { argv },
            _ => return None,
        };
        Some(Notification { target, timeout })
    }
}

/// Whether `url` is an http(s) URL with a host. The error quotes it without credentials.
fn check_url(url: &str) -> Result<(), String> {
    let uri = url.parse::<ureq::http::Uri>();
    let shown = crate::redact::url(url);
    let uri = uri.map_err(|e| format!("`{shown}` is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{shown}` must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{shown}` has no host"));
    }
    Ok(())
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// RFC 9110 token characters.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// A JSON value's kind, for "got ..." in messages (never the value: it may be a secret).
fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "nothing",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}
