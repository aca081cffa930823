//! Work on a thread beside the caller's when a core is free for it.

use flow_engine::node::SideCore;

/// Work started on a thread of a scope, or done on the spot when there is no core for one.
pub(crate) enum Beside<'scope, T> {
    Thread(std::thread::ScopedJoinHandle<'scope, T>),
    Done(T),
}

impl<'scope, T: Send + 'scope> Beside<'scope, T> {
    pub(crate) fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        on_a_thread: bool,
        work: impl FnOnce() -> T + Send + 'scope,
    ) -> Self {
        if on_a_thread {
            Beside::Thread(scope.spawn(work))
        } else {
            Beside::Done(work())
        }
    }

    /// `work` on a thread that holds `core` until the work ends, or on the spot without one.
    pub(crate) fn on_core<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        core: Option<SideCore>,
        work: impl FnOnce() -> T + Send + 'scope,
    ) -> Self {
        match core {
            Some(core) => Beside::Thread(scope.spawn(move || {
                let _core = core;
                work()
            })),
            None => Beside::Done(work()),
        }
    }

    pub(crate) fn join(self) -> T {
        match self {
            Beside::Thread(thread) => thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Beside::Done(value) => value,
        }
    }
}
