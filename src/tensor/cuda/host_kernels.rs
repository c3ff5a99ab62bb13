//! Unit tests only: every launcher `GpuGpt` calls, as naive host loops written from the API
//! contract (see the CUDA brief), on memory of `Exec::Host`. Values are read as f32 and stored
//! back in `X`, so the storage rounding of bf16 is there too.

use super::exec::AdamwArgs;
use super::{DevPtr, GpuFloat};
use std::cell::Cell;

/// The host cells behind a view of `Exec::Host` memory.
fn cells<T>(p: DevPtr<T>) -> &'static [Cell<T>] {
    // SAFETY: in unit tests every DevPtr handed to these functions comes from `Mem::Host`, a live
    // `Box<[Cell<T>]>` (checked sub-ranges of it); Cells may be written through shared refs.
    unsafe { std::slice::from_raw_parts(p.addr as *const Cell<T>, p.len) }
}

fn rd<X: GpuFloat>(p: DevPtr<X>, n: usize) -> Vec<f32> {
    assert!(p.len >= n, "host kernel: read {n} of {}", p.len);
    cells(p)[..n].iter().map(|c| c.get().to_f32()).collect()
}

fn wr<X: GpuFloat>(p: DevPtr<X>, data: &[f32]) {
    assert!(
        p.len >= data.len(),
        "host kernel: write {} into {}",
        data.len(),
        p.len
    );
    for (c, &x) in cells(p).iter().zip(data) {
        c.set(X::from_f32(x));
    }
}

fn ids(p: DevPtr<i32>, n: usize) -> Vec<i32> {
    assert!(p.len >= n);
    cells(p)[..n].iter().map(|c| c.get()).collect()
}

pub fn cast_to_floatx<X: GpuFloat>(out: DevPtr<X>, inp: DevPtr<f32>) {
    wr(out, &rd(inp, inp.len));
}

#[allow(clippy::too_many_arguments)]
pub fn gemm<X: GpuFloat>(
    m: usize,
    k: usize,
    n: usize,
    a: DevPtr<X>,
    ta: bool,
    b: DevPtr<X>,
    tb: bool,
    c: DevPtr<X>,
    bias: Option<DevPtr<X>>,
    accumulate: bool,
) {
    let (av, bv) = (rd(a, m * k), rd(b, k * n));
    let mut cv = if accumulate {
        rd(c, m * n)
    } else {
        vec![0.0; m * n]
    };
    let biasv = bias.map(|p| rd(p, n));
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f32;
            for p in 0..k {
                let x = if ta { av[p * m + i] } else { av[i * k + p] };
                let y = if tb { bv[j * k + p] } else { bv[p * n + j] };
                s += x * y;
            }
            cv[i * n + j] += s + biasv.as_ref().map_or(0.0, |bb| bb[j]);
        }
    }
    wr(c, &cv);
}

#[allow(clippy::too_many_arguments)]
pub fn encoder_forward<X: GpuFloat>(
    out: DevPtr<X>,
    tokens: DevPtr<i32>,
    wte: DevPtr<X>,
    wpe: DevPtr<X>,
    b: usize,
    t: usize,
    c: usize,
) {
    let v = wte.len / c;
    let (te, pe, tok) = (rd(wte, v * c), rd(wpe, t * c), ids(tokens, b * t));
    let mut o = vec![0.0; b * t * c];
    for (r, &id) in tok.iter().enumerate() {
        let id = id as usize;
        assert!(id < v);
        for i in 0..c {
            o[r * c + i] = te[id * c + i] + pe[(r % t) * c + i];
        }
    }
    wr(out, &o);
}

#[allow(clippy::too_many_arguments)]
pub fn encoder_backward<X: GpuFloat>(
    dwte: DevPtr<X>,
    dwpe: DevPtr<X>,
    dout: DevPtr<X>,
    tokens: DevPtr<i32>,
    b: usize,
    t: usize,
    c: usize,
    scratch: DevPtr<f32>,
) {
    let v = dwte.len / c;
    assert!(scratch.len >= v * c, "encoder_backward: scratch");
    let (mut te, mut pe) = (rd(dwte, v * c), rd(dwpe, t * c));
    let (g, tok) = (rd(dout, b * t * c), ids(tokens, b * t));
    for (r, &id) in tok.iter().enumerate() {
        for i in 0..c {
            te[id as usize * c + i] += g[r * c + i];
            pe[(r % t) * c + i] += g[r * c + i];
        }
    }
    wr(dwte, &te);
    wr(dwpe, &pe);
}

#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward<X: GpuFloat>(
    out: DevPtr<X>,
    mean: DevPtr<f32>,
    rstd: DevPtr<f32>,
    inp: DevPtr<X>,
    weight: DevPtr<X>,
    bias: DevPtr<X>,
    n: usize,
    c: usize,
) {
    let (x, w, bb) = (rd(inp, n * c), rd(weight, c), rd(bias, c));
    let (mut o, mut mu, mut rs) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
    for r in 0..n {
        let row = &x[r * c..(r + 1) * c];
        let m = row.iter().sum::<f32>() / c as f32;
        let var = row.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / c as f32;
        let s = 1.0 / (var + 1e-5).sqrt();
        for i in 0..c {
            o[r * c + i] = (row[i] - m) * s * w[i] + bb[i];
        }
        (mu[r], rs[r]) = (m, s);
    }
    wr(out, &o);
    wr(mean, &mu);
    wr(rstd, &rs);
}

#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward<X: GpuFloat>(
    dinp: DevPtr<X>,
    dweight: DevPtr<X>,
    dbias: DevPtr<X>,
    dout: DevPtr<X>,
    inp: DevPtr<X>,
    weight: DevPtr<X>,
    mean: DevPtr<f32>,
    rstd: DevPtr<f32>,
    n: usize,
    c: usize,
) {
    let (x, g, w) = (rd(inp, n * c), rd(dout, n * c), rd(weight, c));
    let (mu, rs) = (rd(mean, n), rd(rstd, n));
    let (mut dx, mut dw, mut db) = (rd(dinp, n * c), rd(dweight, c), rd(dbias, c));
    for r in 0..n {
        let norm: Vec<f32> = (0..c).map(|i| (x[r * c + i] - mu[r]) * rs[r]).collect();
        let dnorm: Vec<f32> = (0..c).map(|i| g[r * c + i] * w[i]).collect();
        let m1 = dnorm.iter().sum::<f32>() / c as f32;
        let m2 = dnorm.iter().zip(&norm).map(|(a, b)| a * b).sum::<f32>() / c as f32;
        for i in 0..c {
            dx[r * c + i] += (dnorm[i] - m1 - norm[i] * m2) * rs[r];
            dw[i] += g[r * c + i] * norm[i];
            db[i] += g[r * c + i];
        }
    }
    wr(dinp, &dx);
    wr(dweight, &dw);
    wr(dbias, &db);
}

const GELU_S: f32 = 0.797_884_6; // √(2/π)

pub fn gelu_forward<X: GpuFloat>(out: DevPtr<X>, inp: DevPtr<X>) {
    let x = rd(inp, inp.len);
    let o: Vec<f32> = x
        .iter()
        .map(|&x| 0.5 * x * (1.0 + (GELU_S * (x + 0.044715 * x * x * x)).tanh()))
        .collect();
    wr(out, &o);
}

pub fn gelu_backward<X: GpuFloat>(dinp: DevPtr<X>, inp: DevPtr<X>, dout: DevPtr<X>) {
    let (x, g) = (rd(inp, inp.len), rd(dout, inp.len));
    let d: Vec<f32> = x
        .iter()
        .zip(&g)
        .map(|(&x, &g)| {
            let th = (GELU_S * (x + 0.044715 * x * x * x)).tanh();
            let du = GELU_S * (1.0 + 3.0 * 0.044715 * x * x);
            g * (0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * du)
        })
        .collect();
    wr(dinp, &d);
}

pub fn residual_forward<X: GpuFloat>(out: DevPtr<X>, a: DevPtr<X>, b: DevPtr<X>) {
    let n = out.len;
    let s: Vec<f32> = rd(a, n).iter().zip(rd(b, n)).map(|(x, y)| x + y).collect();
    wr(out, &s);
}

pub fn bias_backward<X: GpuFloat>(dbias: DevPtr<X>, dout: DevPtr<X>, n: usize, oc: usize) {
    let (mut db, g) = (rd(dbias, oc), rd(dout, n * oc));
    for r in 0..n {
        for j in 0..oc {
            db[j] += g[r * oc + j];
        }
    }
    wr(dbias, &db);
}

pub fn adamw_update<X: GpuFloat>(
    params: DevPtr<X>,
    master: DevPtr<f32>,
    grads: DevPtr<X>,
    m: DevPtr<f32>,
    v: DevPtr<f32>,
    h: &AdamwArgs,
) {
    let n = params.len;
    let (mut p, g, mut mm, mut vv) = (rd(master, n), rd(grads, n), rd(m, n), rd(v, n));
    let bc1 = 1.0 - h.beta1.powi(h.step as i32);
    let bc2 = 1.0 - h.beta2.powi(h.step as i32);
    for i in 0..n {
        let gi = g[i] * h.grad_scale;
        let pi = p[i] * (1.0 - h.lr * h.weight_decay);
        mm[i] = h.beta1 * mm[i] + (1.0 - h.beta1) * gi;
        vv[i] = h.beta2 * vv[i] + (1.0 - h.beta2) * gi * gi;
        p[i] = pi - h.lr * (mm[i] / bc1) / ((vv[i] / bc2).sqrt() + h.eps);
    }
    wr(master, &p);
    wr(params, &p);
    wr(m, &mm);
    wr(v, &vv);
}

pub fn grad_norm_squared<X: GpuFloat>(out: DevPtr<f32>, grads: DevPtr<X>) {
    let s: f64 = rd(grads, grads.len)
        .iter()
        .map(|&x| x as f64 * x as f64)
        .sum();
    let old = rd(out, 1)[0];
    wr(out, &[old + s as f32]);
}

/// Index of q (`part` 0), k (1) or v (2), head `h`, dimension `d` of row `r` in `qkv`.
fn qkv_at(r: usize, part: usize, h: usize, d: usize, c: usize, hs: usize) -> usize {
    r * 3 * c + part * c + h * hs + d
}

#[allow(clippy::too_many_arguments)]
pub fn attention_forward<X: GpuFloat>(
    out: DevPtr<X>,
    lse: DevPtr<f32>,
    qkv: DevPtr<X>,
    b: usize,
    t: usize,
    nh: usize,
    hs: usize,
) {
    let c = nh * hs;
    let x = rd(qkv, b * t * 3 * c);
    let (mut o, mut l) = (vec![0.0; b * t * c], vec![0.0; b * nh * t]);
    let scale = 1.0 / (hs as f32).sqrt();
    for bi in 0..b {
        for h in 0..nh {
            for i in 0..t {
                let ri = bi * t + i;
                let s: Vec<f32> = (0..=i)
                    .map(|j| {
                        let rj = bi * t + j;
                        (0..hs)
                            .map(|d| x[qkv_at(ri, 0, h, d, c, hs)] * x[qkv_at(rj, 1, h, d, c, hs)])
                            .sum::<f32>()
                            * scale
                    })
                    .collect();
                let mx = s.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let z: f32 = s.iter().map(|v| (v - mx).exp()).sum();
                let lse_i = mx + z.ln();
                l[(bi * nh + h) * t + i] = lse_i;
                for d in 0..hs {
                    o[ri * c + h * hs + d] = (0..=i)
                        .map(|j| (s[j] - lse_i).exp() * x[qkv_at(bi * t + j, 2, h, d, c, hs)])
                        .sum();
                }
            }
        }
    }
    wr(out, &o);
    wr(lse, &l);
}

#[allow(clippy::too_many_arguments)]
pub fn attention_backward<X: GpuFloat>(
    dqkv: DevPtr<X>,
    dout: DevPtr<X>,
    out: DevPtr<X>,
    qkv: DevPtr<X>,
    lse: DevPtr<f32>,
    _scratch: DevPtr<f32>,
    b: usize,
    t: usize,
    nh: usize,
    hs: usize,
) {
    let c = nh * hs;
    let (x, g, o, l) = (
        rd(qkv, b * t * 3 * c),
        rd(dout, b * t * c),
        rd(out, b * t * c),
        rd(lse, b * nh * t),
    );
    let mut dx = vec![0.0f32; b * t * 3 * c];
    let scale = 1.0 / (hs as f32).sqrt();
    for bi in 0..b {
        for h in 0..nh {
            for i in 0..t {
                let ri = bi * t + i;
                let big_d: f32 = (0..hs)
                    .map(|d| g[ri * c + h * hs + d] * o[ri * c + h * hs + d])
                    .sum();
                for j in 0..=i {
                    let rj = bi * t + j;
                    let s: f32 = (0..hs)
                        .map(|d| x[qkv_at(ri, 0, h, d, c, hs)] * x[qkv_at(rj, 1, h, d, c, hs)])
                        .sum::<f32>()
                        * scale;
                    let p = (s - l[(bi * nh + h) * t + i]).exp();
                    let dp: f32 = (0..hs)
                        .map(|d| g[ri * c + h * hs + d] * x[qkv_at(rj, 2, h, d, c, hs)])
                        .sum();
                    let ds = p * (dp - big_d);
                    for d in 0..hs {
                        dx[qkv_at(ri, 0, h, d, c, hs)] +=
                            ds * scale * x[qkv_at(rj, 1, h, d, c, hs)];
                        dx[qkv_at(rj, 1, h, d, c, hs)] +=
                            ds * scale * x[qkv_at(ri, 0, h, d, c, hs)];
                        dx[qkv_at(rj, 2, h, d, c, hs)] += p * g[ri * c + h * hs + d];
                    }
                }
            }
        }
    }
    wr(dqkv, &dx);
}

#[allow(clippy::too_many_arguments)]
pub fn classifier_forward_backward<X: GpuFloat>(
    logits: DevPtr<X>,
    losses: DevPtr<f32>,
    targets: DevPtr<i32>,
    n: usize,
    v: usize,
    vp: usize,
    dloss: f32,
) {
    let (x, tg) = (rd(logits, n * vp), ids(targets, n));
    let (mut d, mut loss) = (vec![0.0f32; n * vp], vec![0.0f32; n]);
    for r in 0..n {
        if tg[r] < 0 {
            continue;
        }
        let row = &x[r * vp..r * vp + v];
        let mx = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let lse = mx + row.iter().map(|z| (z - mx).exp()).sum::<f32>().ln();
        let t = tg[r] as usize;
        loss[r] = lse - row[t];
        for j in 0..v {
            let onehot = if j == t { 1.0 } else { 0.0 };
            d[r * vp + j] = ((row[j] - lse).exp() - onehot) * dloss;
        }
    }
    wr(logits, &d);
    wr(losses, &loss);
}
