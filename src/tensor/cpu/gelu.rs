//! GELU, tanh approximation (GPT-2's): `y = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.

use super::elementwise::for_rows;
use super::fastmath::simd;
use super::float::Float;

const C: f64 = 0.044_715;
/// √(2/π)
const S: f64 = 0.797_884_560_802_865_4;

/// `y = gelu(x)` elementwise.
pub fn gelu<T: Float>(x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "gelu: sizes");
    let (c, s, half) = (T::from_f64(C), T::from_f64(S), T::from_f64(0.5));
    for_rows(y, 1, |start, chunk| {
        simd(|| {
            for (o, &v) in chunk.iter_mut().zip(&x[start..]) {
                let t = (s * (v + c * v * v * v)).tanh();
                *o = half * v * (T::ONE + t);
            }
        })
    });
}

/// `dx = g · gelu'(x)`, with
/// `gelu'(x) = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)`, `t = tanh(√(2/π)(x + 0.044715x³))`.
pub fn gelu_backward<T: Float>(x: &[T], g: &[T], dx: &mut [T]) {
    assert!(
        x.len() == dx.len() && g.len() == dx.len(),
        "gelu_backward: sizes"
    );
    let (c, s, half) = (T::from_f64(C), T::from_f64(S), T::from_f64(0.5));
    let c3 = T::from_f64(3.0 * C);
    for_rows(dx, 1, |start, chunk| {
        simd(|| {
            for ((o, &v), &gv) in chunk.iter_mut().zip(&x[start..]).zip(&g[start..]) {
                let t = (s * (v + c * v * v * v)).tanh();
                let d =
                    half * (T::ONE + t) + half * v * (T::ONE - t * t) * s * (T::ONE + c3 * v * v);
                *o = gv * d;
            }
        })
    });
}
