//! The memory allocator of the `flow` binary.
//!
//! mimalloc, with freed memory handed back to the operating system 250 ms after it is freed
//! instead of mimalloc's default of a second. When a workflow's large nodes run one after
//! another (or side by side), memory a finished node freed otherwise stays in the process
//! while the next node allocates its own, and the peaks add up: at 10 million transaction
//! lines the default workflow peaked about 250 MiB higher. Sooner than that costs speed: memory
//! handed back and touched again is zeroed by the kernel once more (a purge delay of a few
//! milliseconds made the metrics node about a third slower).
//!
//! `MIMALLOC_PURGE_DELAY` (milliseconds) in the environment still wins, as for any mimalloc
//! program.

pub use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_t` (`mimalloc.h`), the same in
/// mimalloc 2 and 3.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays in the process before it goes back to the operating system.
pub const PURGE_DELAY_MS: i64 = 250;

/// Sets the purge delay to [`PURGE_DELAY_MS`] unless `MIMALLOC_PURGE_DELAY` is set. Call it
/// first thing in `main`.
pub fn return_freed_memory_sooner() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets an integer option that mimalloc reads with an atomic load; it may be set
    // at any time, from any thread.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS as std::ffi::c_long)
    };
}

/// mimalloc's current purge delay in milliseconds.
pub fn purge_delay_ms() -> i64 {
    // SAFETY: reads an integer option.
    #[allow(unsafe_code)]
    let value = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    #[allow(
        clippy::useless_conversion,
        reason = "a C long is 32 bits on some platforms"
    )]
    i64::from(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_set_unless_the_environment_set_it() {
        let from_env = std::env::var("MIMALLOC_PURGE_DELAY").ok();
        if from_env.is_none() {
            // mimalloc 3's default purge delay: the option number names that option.
            assert_eq!(purge_delay_ms(), 1000);
        }
        return_freed_memory_sooner();
        match from_env.and_then(|v| v.parse::<i64>().ok()) {
            Some(v) => assert_eq!(purge_delay_ms(), v),
            None => assert_eq!(purge_delay_ms(), PURGE_DELAY_MS),
        }
    }
}
