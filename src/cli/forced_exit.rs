//! Ending the process when a stop request cannot be honoured in time.
//!
//! After the second Ctrl-C or SIGTERM flow cancels running nodes and records them as
//! interrupted, which normally takes milliseconds. Something that cannot be cancelled (a store
//! write the disk never finishes) must not keep the process alive: after a grace period, or at a
//! third signal, the process exits without waiting. Checkpoints already durable are kept (sled
//! recovers them as after a crash); `flow resume` continues the run.

use std::time::Duration;

/// How long cancelling may take before the process exits anyway.
pub(super) const GRACE: Duration = Duration::from_secs(5);

/// The exit code for a process ended by signal `signal` (the shell's convention: 128 + number).
pub(super) fn code(signal: i32) -> i32 {
    128 + signal
}

/// Exits with `code` after [`GRACE`], unless the process ends first. A plain thread, so a
/// runtime whose workers are all blocked still exits.
pub(super) fn after_grace(code: i32) {
    let spawned = std::thread::Builder::new()
        .name("flow-forced-exit".into())
        .spawn(move || {
            std::thread::sleep(GRACE);
            now(
                code,
                &format!(
                    "still not stopped {} after cancelling",
                    humantime::format_duration(GRACE)
                ),
            );
        });
    if spawned.is_err() {
        now(code, "cannot wait for cancelling to finish");
    }
}

/// Exits at once with `code`, saying why.
pub(super) fn now(code: i32, why: &str) -> ! {
    eprintln!(
        "{why}; exiting without waiting. Checkpoints saved so far are kept; continue with `flow resume`"
    );
    std::process::exit(code)
}
