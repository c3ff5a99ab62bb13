//! GELU, tanh approximation (GPT-2's): `y = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
//!
//! Computed in the equivalent sigmoid form: with `u = √(2/π)(x + 0.044715x³)`,
//! `½(1 + tanh u) = 1/(1 + e^{−2u}) = σ`, so `y = x·σ`: one `exp` and one division per element,
//! no branch (the `tanh` form needs `exp`, a division, a polynomial near 0 and a sign fix), and no
//! cancellation in `1 + tanh u` for large negative `x`. The derivative in the same terms, from
//! `1 − tanh²u = 4σ(1 − σ)`: `gelu'(x) = σ + 2x·σ(1 − σ)·√(2/π)(1 + 3·0.044715x²)`, where
//! `σ(1 − σ) = e^{−2u}·σ²`.

use super::elementwise::for_rows;
use super::fastmath::simd;
use super::float::Float;

const C: f64 = 0.044_715;
/// √(2/π)
const S: f64 = 0.797_884_560_802_865_4;

/// `(e, σ)` with `e = e^{−2u}` and `σ = 1/(1 + e)` for `x` (see the module comment). The
/// exponent is capped at 80 so that `e` stays finite (then `σ` is about 1e-35 instead of 0).
#[inline(always)]
fn e_sigma<T: Float>(x: T) -> (T, T) {
    let (c, s2, cap) = (T::from_f64(C), T::from_f64(-2.0 * S), T::from_f64(80.0));
    let arg = s2 * (x + c * x * x * x);
    let e = (if arg < cap { arg } else { cap }).exp();
    (e, T::ONE / (T::ONE + e))
}

/// `y = gelu(x)` elementwise.
pub fn gelu<T: Float>(x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "gelu: sizes");
    for_rows(y, 1, |start, chunk| {
        simd(|| {
            for (o, &v) in chunk.iter_mut().zip(&x[start..]) {
                *o = v * e_sigma(v).1;
            }
        })
    });
}

/// `dx = g · gelu'(x)`.
pub fn gelu_backward<T: Float>(x: &[T], g: &[T], dx: &mut [T]) {
    assert!(
        x.len() == dx.len() && g.len() == dx.len(),
        "gelu_backward: sizes"
    );
    let (two_s, c3) = (T::from_f64(2.0 * S), T::from_f64(3.0 * C));
    for_rows(dx, 1, |start, chunk| {
        simd(|| {
            for ((o, &v), &gv) in chunk.iter_mut().zip(&x[start..]).zip(&g[start..]) {
                // σ(1 − σ) = e·σ², which does not cancel when σ is near 1.
                let (e, sg) = e_sigma(v);
                let d = sg + two_s * v * (e * sg * sg) * (T::ONE + c3 * v * v);
                *o = gv * d;
            }
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the tanh form in f64: 1e-6 absolute on `y` and on `dy/dx` for |x| ≤ 12
    /// (f32 `exp` within 2 ulp and one rounding per operation).
    #[test]
    fn matches_the_tanh_form() {
        let xs: Vec<f32> = (0..24001).map(|i| -12.0 + i as f32 * 1e-3).collect();
        let (mut y, mut d) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        gelu(&xs, &mut y);
        gelu_backward(&xs, &vec![1.0; xs.len()], &mut d);
        for ((&x, &yi), &di) in xs.iter().zip(&y).zip(&d) {
            let x = x as f64;
            let t = (S * (x + C * x * x * x)).tanh();
            let want_y = 0.5 * x * (1.0 + t);
            let want_d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * S * (1.0 + 3.0 * C * x * x);
            assert!(
                (yi as f64 - want_y).abs() <= 1e-6,
                "gelu({x}) = {yi}, want {want_y}"
            );
            assert!(
                (di as f64 - want_d).abs() <= 1e-6,
                "gelu'({x}) = {di}, want {want_d}"
            );
        }
    }
}
