//! The machine's cores as slots that nodes' CPU-bound work takes in turn (see
//! [`crate::node::spawn_compute`]). A workflow's `concurrency` bounds how many nodes run at
//! once; without this, six CPU-heavy nodes on two cores would all hold their working memory
//! while sharing the cores, and finish no sooner than taking turns.

use std::cell::Cell;
use std::sync::{Condvar, LazyLock, Mutex};

pub(crate) struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A slot taken; dropping it (also when the work panics) frees it.
pub(crate) struct Slot<'a>(&'a Slots);

impl Slots {
    pub(crate) fn new(n: usize) -> Self {
        Slots {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot and takes it.
    pub(crate) fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// One slot per core of the machine, shared by every run in the process.
pub(crate) static CORES: LazyLock<Slots> = LazyLock::new(|| Slots::new(count()));

thread_local! {
    /// Whether this thread holds one of [`CORES`].
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` holding one of [`CORES`], or just runs it on a thread that holds one already
/// (work that holds a core and asks for more would wait for itself).
pub(crate) fn with_core<R>(work: impl FnOnce() -> R) -> R {
    if HOLDING.get() {
        return work();
    }
    let _slot = CORES.take();
    /// Clears the mark when the work returns or panics, before the slot is freed.
    struct Held;
    impl Drop for Held {
        fn drop(&mut self) {
            HOLDING.set(false);
        }
    }
    HOLDING.set(true);
    let _held = Held;
    work()
}

/// The cores this process may use.
pub(crate) fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn no_more_work_runs_at_once_than_there_are_slots_and_all_of_it_runs() {
        let slots = Arc::new(Slots::new(2));
        let (running, most, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (slots, running, most, done) =
                    (slots.clone(), running.clone(), most.clone(), done.clone());
                std::thread::spawn(move || {
                    let _slot = slots.take();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                    // A panic in the work still frees the slot.
                    assert!(i != 3, "work 3 fails");
                })
            })
            .collect();
        let failed = threads
            .into_iter()
            .map(|t| t.join())
            .filter(Result::is_err)
            .count();
        assert_eq!(failed, 1);
        assert_eq!(done.load(Ordering::SeqCst), 8);
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn work_that_holds_a_core_and_asks_for_one_again_runs_on_the_one_it_holds() {
        // On a machine of one core, taking a second slot would wait forever.
        let nested = with_core(|| {
            assert!(HOLDING.get());
            with_core(|| HOLDING.get())
        });
        assert!(nested);
        assert!(!HOLDING.get());
        // A panic in the work lets go of the mark as well as the slot.
        let panicked = std::panic::catch_unwind(|| with_core(|| panic!("work fails")));
        assert!(panicked.is_err());
        assert!(!HOLDING.get());
    }
}
