//! Validated notifications, as the compiler produces them from `on_failure` and `on_success`.

use std::time::Duration;

pub use crate::model::NotifyFormat;

/// The longest one attempt may take unless `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A workflow's notifications.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notifications {
    pub on_failure: Vec<Notification>,
    pub on_success: Vec<Notification>,
}

impl Notifications {
    pub fn is_empty(&self) -> bool {
        self.on_failure.is_empty() && self.on_success.is_empty()
    }
}

/// One notification: where it goes, and how long one attempt may take.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub target: Target,
    pub timeout: Duration,
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An HTTP POST of the message in `format`.
    Post {
        url: Secret,
        format: NotifyFormat,
        headers: Vec<(String, Secret)>,
    },
    /// A program run without a shell, the JSON message on its stdin.
    Command { argv: Vec<String> },
}

/// A value written in the file, or the name of the environment variable that holds it (read
/// when the notification is sent, and never shown).
#[derive(Debug, Clone, PartialEq)]
pub enum Secret {
    Text(String),
    Env(String),
}

impl Target {
    /// How the notification is named in log lines: a URL by its host only (its path and query
    /// often are the secret), a URL from the environment by the variable's name, a command by
    /// its program.
    pub fn describe(&self) -> String {
        match self {
            Target::Post {
                url: Secret::Text(url),
                format,
                ..
            } => format!("{} POST to {}", format.as_str(), host_of(url)),
            Target::Post {
                url: Secret::Env(var),
                format,
                ..
            } => format!("{} POST to the URL in ${var}", format.as_str()),
            Target::Command { argv } => {
                format!("command `{}`", argv.first().map_or("", String::as_str))
            }
        }
    }
}

/// The host (and port) of a URL, without credentials, path or query.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() {
        "(no host)".into()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_described_without_its_secret_parts() {
        let post = Target::Post {
            url: Secret::Text(
                "https://user:pw@hooks.example.com:8443/services/T0/B0/XYZ?k=v".into(),
            ),
            format: NotifyFormat::Slack,
            headers: vec![],
        };
        assert_eq!(post.describe(), "slack POST to hooks.example.com:8443");
        let env = Target::Post {
            url: Secret::Env("SLACK_URL".into()),
            format: NotifyFormat::Json,
            headers: vec![],
        };
        assert_eq!(env.describe(), "json POST to the URL in $SLACK_URL");
        let cmd = Target::Command {
            argv: vec!["notify-send".into(), "secret-arg".into()],
        };
        assert_eq!(cmd.describe(), "command `notify-send`");
    }
}
