//! v1: the textbook triple loop.
//!
//! Idea: every output `C[i][j]` is the dot product of row `i` of `A` and column `j` of `B`.
//! The inner loop walks `B` down a column, `n` floats apart, so almost every load misses the
//! cache line it just used, and the running sum is one serial chain of adds that the compiler
//! may not reorder (float addition is not associative), so nothing vectorises.
//!
//! Measured (lesson 04, AMD EPYC Zen 4, 1 thread, 256×256×256): 2–2.5 GFLOP/s, 1/50 of v4.

use super::{Layout, View, check_shapes};

/// v1: `C = op(A)·op(B)` (or `+=`), one dot product per output element.
#[allow(clippy::too_many_arguments)]
pub fn gemm_v1(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ta: Layout,
    b: &[f32],
    tb: Layout,
    c: &mut [f32],
    accumulate: bool,
) {
    check_shapes("gemm_v1", m, k, n, a, b, c);
    let a = View::new(a, m, k, ta);
    let b = View::new(b, k, n, tb);
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f32;
            for p in 0..k {
                sum += a.get(i, p) * b.get(p, j);
            }
            let out = &mut c[i * n + j];
            *out = if accumulate { *out + sum } else { sum };
        }
    }
}
