//! A small buffer pool. A training step allocates and frees the same large buffers every step
//! (activations, gradients, logits); a fresh large allocation costs page faults and zeroing by
//! the kernel (filling a fresh 64 MB logits buffer took 43–58 ms here, a reused one 4–8 ms), so
//! freed buffers of 64 KiB or more are kept,
//! keyed by length, and handed out again. The pool holds at most [`MAX_POOLED_BYTES`].

use super::storage::Element;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Buffers smaller than this are left to the allocator.
pub const MIN_POOLED_BYTES: usize = 64 << 10;
/// The pool never holds more than this.
pub const MAX_POOLED_BYTES: usize = 4 << 30;

static POOLED: AtomicUsize = AtomicUsize::new(0);

/// Free buffers of one element type, by length.
pub struct Pool<T>(Mutex<Option<HashMap<usize, Vec<Vec<T>>>>>);

impl<T> Pool<T> {
    pub const fn new() -> Pool<T> {
        Pool(Mutex::new(None))
    }
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A buffer of `n` elements with unspecified contents: the caller must overwrite every element.
pub fn take<T: Element>(n: usize) -> Vec<T> {
    let bytes = n * std::mem::size_of::<T>();
    if bytes >= MIN_POOLED_BYTES {
        let mut map = T::pool().0.lock().unwrap();
        if let Some(v) = map
            .as_mut()
            .and_then(|m| m.get_mut(&n))
            .and_then(|l| l.pop())
        {
            POOLED.fetch_sub(bytes, Ordering::Relaxed);
            return v;
        }
    }
    vec![T::ZERO; n]
}

/// A zero-filled buffer of `n` elements.
pub fn take_zeroed<T: Element>(n: usize) -> Vec<T> {
    let mut v = take::<T>(n);
    v.fill(T::ZERO);
    v
}

/// Returns a buffer to the pool (or frees it when small or when the pool is full).
pub fn give<T: Element>(v: Vec<T>) {
    let bytes = v.len() * std::mem::size_of::<T>();
    if bytes < MIN_POOLED_BYTES || POOLED.load(Ordering::Relaxed) + bytes > MAX_POOLED_BYTES {
        return;
    }
    POOLED.fetch_add(bytes, Ordering::Relaxed);
    let mut map = T::pool().0.lock().unwrap();
    map.get_or_insert_with(HashMap::new)
        .entry(v.len())
        .or_default()
        .push(v);
}

/// Frees every pooled buffer.
pub fn clear() {
    *f32::pool().0.lock().unwrap() = None;
    *f64::pool().0.lock().unwrap() = None;
    POOLED.store(0, Ordering::Relaxed);
}

/// Bytes currently held by the pool.
pub fn pooled_bytes() -> usize {
    POOLED.load(Ordering::Relaxed)
}
