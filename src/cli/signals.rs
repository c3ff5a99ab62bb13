//! Stopping cleanly on Ctrl-C (SIGINT) and on SIGTERM, what `kill` and job schedulers send.
//!
//! The first signal sets a flag that a long loop checks between its steps (`train` then saves a
//! checkpoint and stops); the binary then exits with 128 + the signal's number, the code a
//! shell reports for a process the signal killed: 130 for SIGINT, 143 for SIGTERM. So a script
//! or a scheduler can tell a run that was stopped from one that finished (0) or failed (2). A
//! second signal quits at once without waiting; whatever write it cuts short is repaired on the
//! next start (see [`atomic`](super::atomic)).
//!
//! A thread waits for the signals (signal-hook's iterator), so the message appears the moment
//! the key is pressed, not when the current step ends.

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The first stop signal received, 0 before one.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// From now on SIGINT and SIGTERM set `stop` (and print `"{signal}: {what}"`); a second one
/// exits at once with 128 + its number.
pub fn on_stop_signals(stop: &'static AtomicBool, what: &'static str) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing the SIGINT and SIGTERM handlers")?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
                eprintln!("\n{}: quitting at once, without saving", describe(sig));
                std::process::exit(128 + sig);
            }
            stop.store(true, Ordering::SeqCst);
            eprintln!("\n{}: {what} (the same again quits at once)", describe(sig));
        }
    });
    Ok(())
}

/// The signal that asked to stop, if one did.
pub fn stop_signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// The exit code of a process stopped by `sig`: 128 + its number (130 for SIGINT, 143 for
/// SIGTERM).
pub fn exit_code(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

fn describe(sig: i32) -> &'static str {
    match sig {
        SIGINT => "interrupted (SIGINT)",
        SIGTERM => "terminated (SIGTERM)",
        _ => "signal",
    }
}
