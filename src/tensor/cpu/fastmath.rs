//! Fast, branch-free `exp` and `tanh` for `f32`, and lane-wise sums, so that the row loops of
//! softmax, cross-entropy, GELU and LayerNorm vectorise. `f32::exp`/`tanh` call libm one value
//! at a time (≈ 4 ns and ≈ 30 ns here); these are a handful of multiply-adds per value.
//!
//! [`simd`] runs a closure in a function compiled for AVX2+FMA when the CPU has them (checked at
//! run time), so the same loops get 8-wide vectors without a `target-cpu` flag.

use super::float::Float;

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so that n·ln2 is exact in the high part (Cody–Waite range reduction).
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// `e^x` for f32, within 2 ulp on its whole range; 0 below −87, +inf above 88.72, NaN kept.
///
/// `x = n·ln2 + r` with `|r| ≤ ln2/2`, `e^r` by a degree-7 Taylor polynomial (truncation
/// ≤ 5e-9 relative), and `2^n` built directly in the exponent bits.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let xc = x.clamp(-87.0, 88.72);
    // Round x·log2(e) to the nearest integer n with the 1.5·2^23 trick: after the add, n sits in
    // the low mantissa bits, so it is read as an integer without a float→int conversion.
    let t = xc * LOG2E + 12_582_912.0;
    let n_int = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let n = t - 12_582_912.0;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^n as two factors so that n = 128 (x near ln f32::MAX) and n = −126 stay representable.
    let (n1, n2) = (n_int >> 1, n_int - (n_int >> 1));
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let y = p * pow2(n1) * pow2(n2);
    // Selects, not branches: they vectorise.
    let y = if x < -87.0 { 0.0 } else { y };
    let y = if x > 88.72 { f32::INFINITY } else { y };
    if x.is_nan() { x } else { y }
}

/// `tanh(x)` for f32, absolute error ≤ 2e-7: an odd Taylor polynomial near 0, else
/// `1 − 2/(e^{2|x|} + 1)` with the sign restored.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let e = exp_f32(2.0 * a.min(10.0));
    let big = 1.0 - 2.0 / (e + 1.0);
    let x2 = x * x;
    let small = x
        * (1.0
            + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0)))));
    if a < 0.3 { small } else { big.copysign(x) }
}

/// Σ xs, with 8 independent accumulators so the loop vectorises.
#[inline(always)]
pub fn sum<T: Float>(xs: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    let mut s = rest.iter().fold(T::ZERO, |a, &v| a + v);
    for a in acc {
        s += a;
    }
    s
}

/// max xs (−inf for an empty slice), 8 accumulators.
#[inline(always)]
pub fn max<T: Float>(xs: &[T]) -> T {
    let mut acc = [T::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    let mut m = rest
        .iter()
        .fold(T::NEG_INFINITY, |a, &v| if v > a { v } else { a });
    for a in acc {
        m = if a > m { a } else { m };
    }
    m
}

/// Σ (xs − c)², 8 accumulators.
#[inline(always)]
pub fn sum_sq_dev<T: Float>(xs: &[T], c: T) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for i in 0..8 {
            let d = ch[i] - c;
            acc[i] += d * d;
        }
    }
    let mut s = rest.iter().fold(T::ZERO, |a, &v| a + (v - c) * (v - c));
    for a in acc {
        s += a;
    }
    s
}

/// Σ a·b, 8 accumulators.
#[inline(always)]
pub fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::ZERO; 8];
    let split = n - n % 8;
    for (ca, cb) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut s = T::ZERO;
    for i in split..n {
        s += a[i] * b[i];
    }
    for v in acc {
        s += v;
    }
    s
}

/// Σ a·b·c, 8 accumulators.
#[inline(always)]
pub fn dot3<T: Float>(a: &[T], b: &[T], c: &[T]) -> T {
    let n = a.len().min(b.len()).min(c.len());
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    let mut acc = [T::ZERO; 8];
    let split = n - n % 8;
    for ((ca, cb), cc) in a[..split]
        .chunks_exact(8)
        .zip(b[..split].chunks_exact(8))
        .zip(c[..split].chunks_exact(8))
    {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i] * cc[i];
        }
    }
    let mut s = T::ZERO;
    for i in split..n {
        s += a[i] * b[i] * c[i];
    }
    for v in acc {
        s += v;
    }
    s
}

/// Σ e^(x − m), 8 accumulators (the denominator of a softmax).
#[inline(always)]
pub fn sum_exp<T: Float>(xs: &[T], m: T) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += (c[i] - m).exp();
        }
    }
    let mut s = rest.iter().fold(T::ZERO, |a, &v| a + (v - m).exp());
    for a in acc {
        s += a;
    }
    s
}

/// True when the CPU has AVX2 and FMA (cached by std after the first call).
#[inline(always)]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2<R, F: FnOnce() -> R>(f: F) -> R {
    f()
}

/// Runs `f` compiled for AVX2+FMA when available (the closure is inlined into a function with
/// those features enabled), else as is.
#[inline(always)]
pub fn simd<R, F: FnOnce() -> R>(f: F) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: `run_avx2` only needs AVX2 and FMA, which the CPU was just checked to have.
        return unsafe { run_avx2(f) };
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_tanh_accuracy() {
        // exp: relative error ≤ 3e-7 (≈ 2 ulp) over the whole finite range.
        let mut worst: f64 = 0.0;
        for i in 0..400_000 {
            let v = -87.0 + i as f32 * (175.72 / 400_000.0);
            let r = (v as f64).exp();
            worst = worst.max(((exp_f32(v) as f64 - r) / r).abs());
        }
        assert!(worst <= 3e-7, "exp worst relative error {worst:e}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        // tanh: absolute error ≤ 2e-7.
        let mut worst: f64 = 0.0;
        for i in 0..200_000 {
            let v = -12.0 + i as f32 * (24.0 / 200_000.0);
            worst = worst.max((tanh_f32(v) as f64 - (v as f64).tanh()).abs());
        }
        assert!(worst <= 2e-7, "tanh worst absolute error {worst:e}");
        assert_eq!(tanh_f32(0.0), 0.0);
    }

    #[test]
    fn lane_sums() {
        let v: Vec<f64> = (0..37).map(|i| i as f64 - 10.0).collect();
        assert_eq!(sum(&v), v.iter().sum::<f64>());
        assert_eq!(max(&v), 26.0);
        assert_eq!(dot(&v, &v), v.iter().map(|x| x * x).sum::<f64>());
        assert_eq!(dot3(&v, &v, &v), v.iter().map(|x| x * x * x).sum::<f64>());
        assert_eq!(sum_exp(&[0.0f64, 0.0], 0.0), 2.0);
        assert_eq!(sum_sq_dev(&[1.0f64, 3.0], 2.0), 2.0);
        assert_eq!(max::<f64>(&[]), f64::NEG_INFINITY);
    }
}
