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
//!
//! SIGUSR1 asks for the same clean stop. It is how `train --nproc N` passes a Ctrl-C on to its
//! ranks: `mpirun` would answer a SIGINT by terminating them (and killing them a second later,
//! whatever they were writing), but it forwards SIGUSR1 to every rank untouched. So the
//! launcher keeps `mpirun` out of the terminal's reach and [forwards](forward_to) the request.

use anyhow::{Context, Result};
use rustix::process::{Pid, Signal, kill_process};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The first stop signal received, 0 before one.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// A child process that stop requests are passed on to (0: none).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// Set on the ranks of a distributed run other than rank 0: they stop without a word.
static QUIET: AtomicBool = AtomicBool::new(false);

/// From now on SIGINT, SIGTERM and SIGUSR1 set `stop` (and print `"{signal}: {what}"`); a
/// second one exits at once with 128 + its number.
pub fn on_stop_signals(stop: &'static AtomicBool, what: &'static str) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1])
        .context("installing the SIGINT, SIGTERM and SIGUSR1 handlers")?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            let quiet = QUIET.load(Ordering::SeqCst);
            if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
                if !quiet {
                    eprintln!("\n{}: quitting at once, without saving", describe(sig));
                }
                // The child (mpirun) ends its ranks on SIGTERM.
                signal_child(Signal::TERM);
                std::process::exit(128 + sig);
            }
            stop.store(true, Ordering::SeqCst);
            signal_child(Signal::USR1);
            if !quiet {
                eprintln!("\n{}: {what} (the same again quits at once)", describe(sig));
            }
        }
    });
    Ok(())
}

/// From now on a stop signal is passed on to process `pid` as SIGUSR1 (a second one as
/// SIGTERM, before this process exits).
pub fn forward_to(pid: u32) {
    CHILD.store(pid as i32, Ordering::SeqCst);
}

/// Stop requests are obeyed without a message (the ranks of a run other than rank 0).
pub fn quiet() {
    QUIET.store(true, Ordering::SeqCst);
}

fn signal_child(sig: Signal) {
    if let Some(pid) = Pid::from_raw(CHILD.load(Ordering::SeqCst)) {
        // The child may have exited already: nothing to stop then.
        let _ = kill_process(pid, sig);
    }
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
        SIGUSR1 => "asked to stop (SIGUSR1)",
        _ => "signal",
    }
}
