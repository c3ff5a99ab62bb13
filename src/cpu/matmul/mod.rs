//! Matrix multiplication on the CPU, from a naive triple loop to a multi-threaded SIMD kernel.
//!
//! Every version computes the same thing: `C = op(A) · op(B)` (or `C += …`), where `C` is `m×n`
//! row-major and each operand is either stored as written (`Layout::N`) or stored transposed
//! (`Layout::T`), so backward's `A·Bᵀ` and `Aᵀ·B` need no materialised transpose.

/// How an operand of `gemm` is stored in its slice (row-major, contiguous).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `A` (m×k) is stored as m rows of k.
    N,
    /// `A` (m×k) is stored transposed: k rows of m.
    T,
}

/// `C = op(A)·op(B)`, or `C += op(A)·op(B)` when `accumulate`. `C` is m×n row-major.
/// Uses the fastest version available.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
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
    assert_eq!(
        a.len(),
        m * k,
        "gemm: A has {} elements, expected {m}x{k}",
        a.len()
    );
    assert_eq!(
        b.len(),
        k * n,
        "gemm: B has {} elements, expected {k}x{n}",
        b.len()
    );
    assert_eq!(
        c.len(),
        m * n,
        "gemm: C has {} elements, expected {m}x{n}",
        c.len()
    );
    let at = |i: usize, p: usize| {
        if ta == Layout::N {
            a[i * k + p]
        } else {
            a[p * m + i]
        }
    };
    let bt = |p: usize, j: usize| {
        if tb == Layout::N {
            b[p * n + j]
        } else {
            b[j * k + p]
        }
    };
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f32;
            for p in 0..k {
                s += at(i, p) * bt(p, j);
            }
            let out = &mut c[i * n + j];
            *out = if accumulate { *out + s } else { s };
        }
    }
}
