//! The small numeric trait every CPU kernel is generic over, so the same kernel runs in `f32`
//! (training) and `f64` (gradient checks).

use super::matmul::{self, Layout};
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point element: `f32` or `f64`.
pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn powf(self, p: Self) -> Self;
    fn max(self, other: Self) -> Self;
    /// `C = op(A)·op(B)` (or `+=`), with the same contract as [`matmul::gemm`].
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        ta: Layout,
        b: &[Self],
        tb: Layout,
        c: &mut [Self],
        accumulate: bool,
    );
}

macro_rules! float_impl {
    ($t:ty) => {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
        #[inline]
        fn from_f64(x: f64) -> Self {
            x as $t
        }
        #[inline]
        fn to_f64(self) -> f64 {
            self as f64
        }
        #[inline]
        fn ln(self) -> Self {
            <$t>::ln(self)
        }
        #[inline]
        fn sqrt(self) -> Self {
            <$t>::sqrt(self)
        }
        #[inline]
        fn powf(self, p: Self) -> Self {
            <$t>::powf(self, p)
        }
        #[inline]
        fn max(self, other: Self) -> Self {
            <$t>::max(self, other)
        }
    };
}

impl Float for f32 {
    float_impl!(f32);
    /// The fast polynomial `exp` (≤ 2 ulp), see `fastmath`.
    #[inline(always)]
    fn exp(self) -> f32 {
        super::fastmath::exp_f32(self)
    }
    /// The fast `tanh` (absolute error ≤ 2e-7), see `fastmath`.
    #[inline(always)]
    fn tanh(self) -> f32 {
        super::fastmath::tanh_f32(self)
    }
    fn gemm(
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
        matmul::gemm(m, k, n, a, ta, b, tb, c, accumulate)
    }
}

impl Float for f64 {
    float_impl!(f64);
    #[inline]
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    #[inline]
    fn tanh(self) -> f64 {
        f64::tanh(self)
    }
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[f64],
        ta: Layout,
        b: &[f64],
        tb: Layout,
        c: &mut [f64],
        accumulate: bool,
    ) {
        gemm_plain(m, k, n, a, ta, b, tb, c, accumulate)
    }
}

/// A plain `i, p, j` loop: the `f64` matmul used by gradient checks (correct, not fast).
#[allow(clippy::too_many_arguments)]
pub fn gemm_plain<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    ta: Layout,
    b: &[T],
    tb: Layout,
    c: &mut [T],
    accumulate: bool,
) {
    assert!(
        a.len() == m * k && b.len() == k * n && c.len() == m * n,
        "gemm_plain: bad sizes"
    );
    if !accumulate {
        c.fill(T::ZERO);
    }
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let aip = if ta == Layout::N {
                a[i * k + p]
            } else {
                a[p * m + i]
            };
            match tb {
                Layout::N => {
                    for (cj, &bj) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                        *cj += aip * bj;
                    }
                }
                Layout::T => {
                    for (j, cj) in row.iter_mut().enumerate() {
                        *cj += aip * b[j * k + p];
                    }
                }
            }
        }
    }
}
