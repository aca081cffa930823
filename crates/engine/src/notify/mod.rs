//! Workflow-level notifications: `on_failure` and `on_success` send a message about a finished
//! run to a URL (JSON, Slack or Teams incoming webhook) or to a command.
//!
//! A run that ends failed sends its `on_failure` entries, one that ends succeeded its
//! `on_success` entries, once per execution; an interrupted run sends nothing. Each entry is
//! tried up to three times; a notification that cannot be delivered is logged as a warning and
//! never changes the run's status or the exit code.
//!
//! | file | what |
//! | --- | --- |
//! | `model` | the validated notifications a compiled workflow carries |
//! | `message` | the message, built once from a finished run |
//! | `formats` | the message as a JSON, Slack or Teams body, data escaped per format |
//! | `send` | delivery with retries: HTTP POST or a command |

mod formats;
mod message;
mod model;
mod send;
#[cfg(test)]
mod tests;

pub use formats::{render, slack_escape};
pub use message::{FailedNode, Message, MessageContext, excerpt, resume_command};
pub use model::{DEFAULT_TIMEOUT, Notification, Notifications, NotifyFormat, Secret, Target};
pub use send::{Delivery, EnvLookup, SendError, SendOptions, deliver};

use crate::executor::RunOutcome;
use crate::store::RunStatus;

/// The notifications a run that ended with `status` sends: none for a run that did not finish.
pub fn for_status(notifications: &Notifications, status: RunStatus) -> &[Notification] {
    match status {
        RunStatus::Failed => &notifications.on_failure,
        RunStatus::Succeeded => &notifications.on_success,
        RunStatus::Queued | RunStatus::Running | RunStatus::Interrupted => &[],
    }
}

/// Sends the notifications a finished run calls for, all at once; returns how each went (in
/// the order they are written). Failures are logged, never returned as errors.
pub async fn notify_run(
    notifications: &Notifications,
    outcome: &RunOutcome,
    cx: &MessageContext,
    opts: &SendOptions,
) -> Vec<Delivery> {
    let list = for_status(notifications, outcome.run.status);
    if list.is_empty() {
        return Vec::new();
    }
    let message = Message::build(outcome, cx);
    send_all(list, &message, opts).await
}

/// Sends each of `list` concurrently; results in the order of `list`.
pub async fn send_all(
    list: &[Notification],
    message: &Message,
    opts: &SendOptions,
) -> Vec<Delivery> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, notification) in list.iter().enumerate() {
        let (n, m, o) = (notification.clone(), message.clone(), opts.clone());
        tasks.spawn(async move { (i, deliver(&n, &m, &o).await) });
    }
    let mut done: Vec<Option<Delivery>> = vec![None; list.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, delivery)) => done[i] = Some(delivery),
            Err(e) => tracing::warn!("a notification task failed: {e}"),
        }
    }
    done.into_iter()
        .zip(list)
        .map(|(d, n)| {
            d.unwrap_or_else(|| Delivery {
                target: n.target.describe(),
                attempts: 0,
                error: Some("the notification task stopped".into()),
            })
        })
        .collect()
}
