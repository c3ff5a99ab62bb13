//! Plain f64 references for the memory-bound rows of `kernels`, written from the formulas and
//! sharing no code with the kernels they check (a bug in a kernel cannot hide in its reference).

/// `softmax(x)` per row of `cols`: `exp(x − max) / Σ exp(x − max)`.
pub fn softmax(x: &[f64], cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

/// LayerNorm per row with weight 1 and bias 0: `(x − mean) / √(var + eps)`, var biased.
pub fn layernorm(x: &[f64], cols: usize, eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        out.extend(row.iter().map(|v| (v - mean) / (var + eps).sqrt()));
    }
    out
}

/// GELU, tanh form (GPT-2): `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu(x: &[f64]) -> Vec<f64> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    x.iter()
        .map(|&v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh()))
        .collect()
}

/// The log-sum-exp of each row (what the cross-entropy kernel writes per row).
pub fn row_logsumexp(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_on_known_values() {
        let s = super::softmax(&[0.0, 0.0, 2f64.ln()], 3);
        assert!((s[2] - 0.5).abs() < 1e-15 && (s[0] - 0.25).abs() < 1e-15);
        let l = super::layernorm(&[1.0, 3.0], 2, 0.0);
        assert!((l[0] + 1.0).abs() < 1e-15 && (l[1] - 1.0).abs() < 1e-15);
        assert_eq!(super::gelu(&[0.0])[0], 0.0);
        assert!((super::row_logsumexp(&[0.0, 0.0], 2)[0] - 2f64.ln()).abs() < 1e-15);
    }
}
