//! Notifications of served runs: sent from a task of their own, so a slow or unreachable
//! receiver never holds up the scheduler.

use std::path::Path;

use super::Server;
use crate::executor::{ExecError, RunOutcome};
use crate::notify::{self, Message, MessageContext, SendOptions};

impl Server {
    /// Sends what the run's `on_failure` or `on_success` asks for. A run stopped by the server
    /// (interrupted) sends nothing; nor does a run the engine could not carry on (a store
    /// error), which the server reports itself.
    pub(super) fn notify_ended(&self, path: &Path, result: &Result<RunOutcome, ExecError>) {
        let (Ok(outcome), Some(entry)) = (result, self.entries.get(path)) else {
            return;
        };
        let list = notify::for_status(&entry.wf.notifications, outcome.run.status).to_vec();
        if list.is_empty() {
            return;
        }
        let cx = MessageContext {
            state_dir: self.opts.state_dir.clone(),
            ui_base: self.opts.ui_base.clone(),
        };
        let message = Message::build(outcome, &cx);
        tokio::spawn(async move {
            notify::send_all(&list, &message, &SendOptions::default()).await;
        });
    }
}
