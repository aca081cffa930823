//! The machine's cores as slots that nodes' CPU-bound work takes in turn (see
//! [`crate::node::spawn_compute`]). A workflow's `concurrency` bounds how many nodes run at
//! once; without this, six CPU-heavy nodes on two cores would all hold their working memory
//! while sharing the cores, and finish no sooner than taking turns. Work that can use more
//! threads takes the slots no other work holds ([`spare`]), so its threads are counted too.

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

    /// Takes up to `n` free slots without waiting; returns how many it took.
    fn try_take(&self, n: usize) -> usize {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let took = n.min(*free);
        *free -= took;
        took
    }

    /// Frees `n` slots.
    fn give_back(&self, n: usize) {
        if n == 0 {
            return;
        }
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += n;
        // One waiter per freed slot: waking all of a thousand waiting nodes for one slot
        // would cost a thousand wake-ups each time.
        for _ in 0..n {
            self.freed.notify_one();
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.give_back(1);
    }
}

/// Cores taken for more threads of one piece of work, beside the one it runs on; dropping
/// this (also when the work panics) frees them.
#[must_use = "the cores are freed when this is dropped"]
pub struct SpareCores {
    slots: &'static Slots,
    held: usize,
}

impl SpareCores {
    /// The threads the work may keep busy: its own and one per spare core.
    pub fn threads(&self) -> usize {
        1 + self.held
    }

    /// Moves one of these cores, if there is one, to a task of its own (a thread beside the
    /// work), for as long as the returned value lives.
    pub fn split_one(&mut self) -> Option<SideCore> {
        (self.held > 0).then(|| {
            self.held -= 1;
            SideCore { slots: self.slots }
        })
    }
}

impl Drop for SpareCores {
    fn drop(&mut self) {
        self.slots.give_back(self.held);
    }
}

/// One core split off [`SpareCores`] for a thread of its own; dropping it frees the core.
#[must_use = "the core is freed when this is dropped"]
pub struct SideCore {
    slots: &'static Slots,
}

impl Drop for SideCore {
    fn drop(&mut self) {
        self.slots.give_back(1);
    }
}

impl Slots {
    /// Up to `max_threads - 1` of the slots free now, without waiting for any.
    fn spare(&'static self, max_threads: usize) -> SpareCores {
        SpareCores {
            slots: self,
            held: self.try_take(max_threads.saturating_sub(1)),
        }
    }
}

/// The cores no other work holds now, for more threads of work running on this one, so that
/// work which can use several threads uses the cores other nodes leave free and no more:
/// however many threads it starts, the threads busy at once stay at most the cores. Up to
/// `max_threads - 1` are taken, without waiting; when none is free the work runs on its own
/// thread alone. Meant for threads that hold a core (in [`crate::node::spawn_compute`]); a
/// thread that does not only counts the spare cores it takes.
pub fn spare(max_threads: usize) -> SpareCores {
    CORES.spare(max_threads)
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

    #[test]
    fn spare_cores_are_the_free_ones_taken_without_waiting_and_freed_on_drop() {
        let slots: &'static Slots = Box::leak(Box::new(Slots::new(4)));
        let held = slots.take();
        let mut spare = slots.spare(8);
        assert_eq!(spare.threads(), 4, "its own thread and the 3 free cores");
        // Nothing is free now: more spare cores are none, not a wait.
        assert_eq!(slots.spare(8).threads(), 1);
        let side = spare.split_one().expect("a core to split off");
        assert_eq!(spare.threads(), 3);
        drop(side);
        assert_eq!(slots.spare(2).threads(), 2, "the side core was freed");
        drop(spare);
        // At most `max_threads - 1` are taken.
        let two = slots.spare(2);
        assert_eq!(two.threads(), 2);
        assert_eq!(slots.spare(8).threads(), 3, "the 2 cores left");
        drop(two);
        drop(held);
        assert_eq!(*slots.free.lock().unwrap(), 4, "every core is free again");
        // One thread alone has none to split off.
        let mut alone = slots.spare(1);
        assert!(alone.split_one().is_none());
        // A panic in the work frees its spare cores.
        let panicked = std::panic::catch_unwind(|| {
            let _spare = slots.spare(8);
            panic!("work fails");
        });
        assert!(panicked.is_err());
        assert_eq!(*slots.free.lock().unwrap(), 4);
    }

    #[test]
    fn work_waiting_for_a_core_starts_when_spare_cores_are_freed() {
        let slots: &'static Slots = Box::leak(Box::new(Slots::new(2)));
        let spare = slots.spare(8);
        assert_eq!(
            spare.threads(),
            3,
            "both cores, taken by a thread that holds none"
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _slot = slots.take();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        drop(spare);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the waiting work took a freed core");
        waiter.join().unwrap();
    }
}
