//! Matrix multiplication on the CPU, from a naive triple loop to a multi-threaded SIMD kernel.
//!
//! Every version computes the same thing: `C = op(A) · op(B)` (or `C += …`), where `C` is `m×n`
//! row-major and each operand is either stored as written (`Layout::N`) or stored transposed
//! (`Layout::T`), so backward's `A·Bᵀ` and `Aᵀ·B` need no materialised transpose.
//!
//! The versions, each in its own file and each faster than the last (lesson 04 has the table):
//!
//! | file              | idea                                                        |
//! |-------------------|-------------------------------------------------------------|
//! | `v1_naive.rs`     | the textbook triple loop, one dot product per output        |
//! | `v2_loop_order.rs`| `i, p, j` order: the inner loop walks rows, so it vectorises|
//! | `v3_blocked.rs`   | cache blocking, packed panels, a register-tile micro-kernel |
//! | `v4_simd.rs`      | the same loops with an AVX-512 / AVX2+FMA micro-kernel      |
//! | `v5_threads.rs`   | v4 on every core, with rayon                                |
//!
//! [`gemm`] is the entry point the tensor engine calls; it routes to v5 (which itself stays on
//! one thread for small problems).

mod gemv;
pub mod v1_naive;
pub mod v2_loop_order;
pub mod v3_blocked;
pub mod v4_simd;
pub mod v5_threads;

pub use v1_naive::gemm_v1;
pub use v2_loop_order::gemm_v2;
pub use v3_blocked::gemm_v3;
pub use v4_simd::gemm_v4;
pub use v5_threads::gemm_v5;

/// How an operand of `gemm` is stored in its slice (row-major, contiguous).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `A` (m×k) is stored as m rows of k.
    N,
    /// `A` (m×k) is stored transposed: k rows of m.
    T,
}

/// The signature every version shares, so tests and benchmarks can loop over them.
pub type GemmFn = fn(usize, usize, usize, &[f32], Layout, &[f32], Layout, &mut [f32], bool);

/// Every version, slowest first, with a short name: `("v1", gemm_v1)`, ….
pub const VERSIONS: [(&str, GemmFn); 5] = [
    ("v1", gemm_v1),
    ("v2", gemm_v2),
    ("v3", gemm_v3),
    ("v4", gemm_v4),
    ("v5", gemm_v5),
];

/// `C = op(A)·op(B)`, or `C += op(A)·op(B)` when `accumulate`. `C` is m×n row-major.
/// Uses the fastest version available: v5 (which stays on one thread for small problems), or a
/// plain matrix-vector loop when `m == 1` or `n == 1`.
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
    check_shapes("gemm", m, k, n, a, b, c);
    if m == 1 && n > 0 {
        // One row of A: c = a · op(B). A 1×k operand is k contiguous floats in either layout.
        gemv::gemv(k, n, a, View::new(b, k, n, tb), c, accumulate);
    } else if n == 1 && m > 0 {
        // One column of C: cᵀ = op(B)ᵀ · op(A)ᵀ, and a k×1 operand is k contiguous floats.
        gemv::gemv(k, m, b, View::new(a, k, m, flip(ta)), c, accumulate);
    } else {
        gemm_v5(m, k, n, a, ta, b, tb, c, accumulate);
    }
}

/// The other layout: the storage of `op(X)` read as `op(X)ᵀ`.
fn flip(l: Layout) -> Layout {
    match l {
        Layout::N => Layout::T,
        Layout::T => Layout::N,
    }
}

/// Panic with the op name and the shapes when the slices do not match `m×k`, `k×n`, `m×n`.
pub(crate) fn check_shapes(
    op: &str,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &[f32],
) {
    assert!(
        a.len() == m * k && b.len() == k * n && c.len() == m * n,
        "{op}: shape mismatch: A has {} elements (expected {m}x{k}), B has {} (expected {k}x{n}), \
         C has {} (expected {m}x{n})",
        a.len(),
        b.len(),
        c.len()
    );
}

/// A read-only strided view of `op(X)`: element `(r, c)` lives at `data[r * rs + c * cs]`.
/// Layouts and sub-blocks are both just strides, so packing code handles every case at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// The view of an operand that is `rows×cols` after applying its layout.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, layout: Layout) -> Self {
        match layout {
            Layout::N => View {
                data,
                rs: cols,
                cs: 1,
            },
            Layout::T => View {
                data,
                rs: 1,
                cs: rows,
            },
        }
    }

    /// The same view starting at element `(r0, c0)`.
    pub fn at(self, r0: usize, c0: usize) -> Self {
        let start = (r0 * self.rs + c0 * self.cs).min(self.data.len());
        View {
            data: &self.data[start..],
            ..self
        }
    }

    /// Element `(r, c)`.
    #[inline(always)]
    pub fn get(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }
}
