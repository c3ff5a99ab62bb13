//! Fuzz and property tests of every reader of outside data: `clean`'s JSONL, HTML and text
//! inputs, the four tokenizer formats, token shards, safetensors, `config.json` and
//! `trainer_state.json`.
//!
//! Each target starts from valid files, mutates them with the tests' seeded generator (bit
//! flips, truncations, huge numbers, wrong types, deep nesting, random bytes; see [`mutate`]) or
//! draws random input, and feeds the result to the reader. Every input must either load or give
//! an error whose message is one line. Anything else fails:
//! - a panic is caught (`catch_unwind`) and reported with the input;
//! - an allocation on the reader's thread above [`alloc_bound`] (16 bytes per input byte plus
//!   16 MiB) makes the counting allocator below print the input and refuse, which aborts the
//!   run: an allocation sized by a number in the file instead of by the file;
//! - a hang shows as a test that never ends (every loop in the readers is bounded by the input).
//!
//! The inputs are a fixed function of the seed: a failure reproduces with the same iteration
//! count. `PRETRAIN_FUZZ_ITERS=N` sets the inputs per target (default [`DEFAULT_ITERS`], a few
//! seconds in all); CI runs a longer, still bounded, round with e.g.
//! `PRETRAIN_FUZZ_ITERS=20000 cargo test --release --test suite fuzz`.
//! The minimal inputs of every bug found this way are kept as regression tests
//! ([`regressions`]). [`binaries`] runs `tokenize` and `train` on damaged files, for the other
//! half of the promise: exit code 0, or 2 with one error line.
//!
//! The bound holds on the thread that calls the reader; work a reader hands to the thread pool
//! (as `clean` does) is checked for panics and errors but not for its allocations.

mod binaries;
mod binary_files;
mod json_files;
mod mutate;
mod regressions;
mod structured;
mod text_inputs;
mod tokenizer_files;

use crate::common::Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Inputs per target when `PRETRAIN_FUZZ_ITERS` is not set.
pub const DEFAULT_ITERS: usize = 200;

/// Inputs per target: `PRETRAIN_FUZZ_ITERS`, else [`DEFAULT_ITERS`].
pub fn iters() -> usize {
    std::env::var("PRETRAIN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ITERS)
}

/// The largest single allocation a reader may make for an input of `len` bytes.
pub fn alloc_bound(len: usize) -> usize {
    16 * len + (16 << 20)
}

thread_local! {
    /// Allocations above this many bytes on this thread are refused (while a reader runs).
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// What to print when that happens: the description of the input being read.
    static INPUT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The system allocator, refusing the allocations above a thread's [`LIMIT`] after printing
/// that thread's [`INPUT`]. (The refusal aborts the process: there is no way to turn a failed
/// allocation into an error in stable Rust, so the report comes first.)
struct Bounded;

// SAFETY: every call goes to the system allocator unchanged, or returns null (a refusal the
// caller must handle, as from any allocator).
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if refused(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Bounded = Bounded;

/// Whether an allocation of `size` bytes breaks this thread's limit; if so, prints the input.
fn refused(size: usize) -> bool {
    let limit = LIMIT.try_with(Cell::get).unwrap_or(usize::MAX);
    if size <= limit {
        return false;
    }
    LIMIT.with(|l| l.set(usize::MAX));
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"\nfuzz: an allocation above the bound");
    let _ = INPUT.try_with(|input| match input.try_borrow() {
        Ok(desc) if !desc.is_empty() => err.write_all(desc.as_bytes()),
        _ => Ok(()),
    });
    let _ = writeln!(err, " ({size} bytes asked, bound {limit})");
    true
}

/// Feeds `input` to `read` with the allocation bound in force and checks the outcome: a load
/// (true) or a one-line error (false). `what` names the target and the iteration, for the report.
pub fn check(what: &str, input: &[u8], read: impl FnOnce(&[u8]) -> anyhow::Result<()>) -> bool {
    let desc = format!("{what}: {}", describe(input));
    INPUT.with(|c| c.replace(format!(", reading {desc}")));
    LIMIT.with(|l| l.set(alloc_bound(input.len())));
    let outcome = catch_unwind(AssertUnwindSafe(|| read(input)));
    LIMIT.with(|l| l.set(usize::MAX));
    INPUT.with(|c| c.borrow_mut().clear());
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "not a one-line error: {msg:?}\n{desc}"
            );
            false
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("the reader panicked ({msg})\n{desc}");
        }
    }
}

/// An input as a reader of the report can rebuild it: text (escaped) or hex, cut at 4 KB.
pub fn describe(input: &[u8]) -> String {
    const SHOWN: usize = 4096;
    let head = &input[..input.len().min(SHOWN)];
    let more = if input.len() > SHOWN { " …" } else { "" };
    match std::str::from_utf8(head) {
        Ok(s) => format!("{} bytes of text: {s:?}{more}", input.len()),
        Err(_) => {
            let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
            format!("{} bytes, hex: {hex}{more}", input.len())
        }
    }
}

/// Runs `case(rng, name)` [`iters`] times with a generator seeded from `seed`; `name` says the
/// target and the iteration; `case` returns whether the input loaded. Prints how many did.
pub fn each_input(target: &str, seed: u64, mut case: impl FnMut(&mut Rng, &str) -> bool) {
    let mut rng = Rng::new(seed);
    let n = iters();
    let loaded = (0..n)
        .filter(|i| case(&mut rng, &format!("{target} (seed {seed}, input {i})")))
        .count();
    eprintln!("{target}: {loaded} of {n} inputs loaded, the others were refused");
}

#[test]
fn the_harness_refuses_large_allocations_and_fails_panics_and_long_errors() {
    // Above a thread's limit an allocation is refused (the limit then lifts, so that the report
    // can be printed); at or below it, and on other threads, it passes.
    LIMIT.with(|l| l.set(1000));
    assert!(!refused(1000));
    std::thread::spawn(|| assert!(!refused(1 << 40)))
        .join()
        .unwrap();
    assert!(refused(1001));
    assert!(!refused(1 << 40), "the limit lifts after a refusal");
    // Inside `check`, a small allocation passes; a one-line error passes.
    check("self-test", b"abc", |b| {
        let v = vec![0u8; b.len() * 100];
        anyhow::ensure!(v.len() == 300, "one line");
        Err(anyhow::anyhow!("just one line"))
    });
    let multi = catch_unwind(|| check("self-test", b"", |_| anyhow::bail!("two\nlines")));
    assert!(multi.is_err(), "a two-line error must fail the check");
    let panics = catch_unwind(|| check("self-test", b"", |_| panic!("boom")));
    assert!(panics.is_err(), "a panic must fail the check");
}
