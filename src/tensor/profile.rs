//! An opt-in op profiler: total time and call count per backend op, split into forward and
//! backward. Off by default (one relaxed atomic load per op when off).
//!
//! ```no_run
//! use pretrain::tensor::profile;
//! profile::enable(true);
//! // ... a training step ...
//! eprintln!("{}", profile::report());
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// (op, in backward) → (calls, seconds).
type Table = HashMap<(&'static str, bool), (u64, f64)>;
static TABLE: Mutex<Option<Table>> = Mutex::new(None);

thread_local! {
    static IN_BACKWARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Turns the profiler on or off (clears nothing).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Forgets every recorded time.
pub fn reset() {
    *TABLE.lock().unwrap() = None;
}

pub(crate) fn set_in_backward(on: bool) -> bool {
    IN_BACKWARD.with(|b| b.replace(on))
}

/// Runs `f`, charging its time to `name` when profiling.
#[inline]
pub(crate) fn time<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    // Only the outermost op is charged, so nested calls (a copy inside an op) count once.
    if !ENABLED.load(Ordering::Relaxed) || DEPTH.with(|d| d.get()) > 0 {
        return f();
    }
    DEPTH.with(|d| d.set(1));
    let t = Instant::now();
    let r = f();
    let secs = t.elapsed().as_secs_f64();
    DEPTH.with(|d| d.set(0));
    let bwd = IN_BACKWARD.with(|b| b.get());
    let mut table = TABLE.lock().unwrap();
    let e = table
        .get_or_insert_with(HashMap::new)
        .entry((name, bwd))
        .or_insert((0, 0.0));
    e.0 += 1;
    e.1 += secs;
    r
}

/// The table so far: op, pass, calls, total ms, share of the total; slowest first.
pub fn report() -> String {
    let table = TABLE.lock().unwrap();
    let Some(t) = table.as_ref() else {
        return "profile: nothing recorded (call profile::enable(true) first)".into();
    };
    let mut rows: Vec<_> = t.iter().collect();
    rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    let total: f64 = rows.iter().map(|r| r.1.1).sum();
    let mut s = format!(
        "{:<22} {:<8} {:>7} {:>10} {:>6}\n",
        "op", "pass", "calls", "ms", "%"
    );
    for ((name, bwd), (calls, secs)) in rows {
        s += &format!(
            "{:<22} {:<8} {:>7} {:>10.2} {:>5.1}%\n",
            name,
            if *bwd { "backward" } else { "forward" },
            calls,
            secs * 1e3,
            100.0 * secs / total.max(1e-12)
        );
    }
    s += &format!(
        "{:<22} {:<8} {:>7} {:>10.2}\n",
        "total",
        "",
        "",
        total * 1e3
    );
    s
}
