//! The fused attention kernels (`kernels/attention.cu`, `kernels/attention_v2.cu`) against the
//! CPU kernels in f64 (`cpu::attention`) on random inputs, odd sizes included. They run on a GPU,
//! and without one on the CPU emulator of `tools/cuda-emu`.
//!
//! Tolerances, relative to the largest reference value of each output: fp32 1e-5; bf16 3.9e-3
//! for the forward (the output rounded once to bf16: at most 2⁻⁹ ≈ 1.95e-3, doubled) and 7.8e-3
//! for the gradients, which pass through a second rounded intermediate (v2 rounds P and dS to
//! bf16 for the tensor cores; the CPU emulator, `tools/cuda-emu/tests/attention.cpp`, measures
//! about 2e-3). The bf16 inputs are rounded to bf16 first, so the reference
//! sees exactly what the GPU sees.

use half::bf16;
use pretrain::tensor::cpu::attention::{causal_attention_backward, causal_attention_forward};
use pretrain::tensor::cuda::attention::{
    AttentionBackward, Heads, Version, attention_backward, attention_backward_version,
    attention_forward, attention_forward_version, attention_scratch_len, best,
};
use pretrain::tensor::cuda::device::for_tests;
use std::sync::Arc;

use pretrain::tensor::Rng;
use pretrain::tensor::cuda::{Buffer, Gpu, GpuFloat};

/// Random normal values, rounded through the storage type `X`.
fn random<X: GpuFloat>(rng: &mut Rng, n: usize, std: f64) -> Vec<X> {
    (0..n)
        .map(|_| X::from_f32((rng.normal() * std) as f32))
        .collect()
}

fn to_f64<X: GpuFloat>(x: &[X]) -> Vec<f64> {
    x.iter().map(|v| v.to_f32() as f64).collect()
}

/// Fails with the worst element unless every `|got − want| <= tol · max|want|`.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs())).max(1e-30);
    let (mut worst, mut at) = (0.0f64, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (g - w).abs();
        if e > worst || e.is_nan() {
            (worst, at) = (if e.is_nan() { f64::INFINITY } else { e }, i);
        }
    }
    assert!(
        worst <= tol * scale,
        "{what}: element {at}: got {} want {} (error {worst:e} > {tol:e} · max|ref| {scale:e})",
        got[at],
        want[at]
    );
}

/// GPT-2's packed qkv `[B, T, 3C]` → one of q, k, v as `[B·NH, T, hs]` (part 0, 1 or 2).
fn split(qkv: &[f64], part: usize, b: usize, t: usize, nh: usize, hs: usize) -> Vec<f64> {
    let c = nh * hs;
    let mut out = vec![0.0; b * nh * t * hs];
    for bi in 0..b {
        for h in 0..nh {
            for i in 0..t {
                for d in 0..hs {
                    out[((bi * nh + h) * t + i) * hs + d] =
                        qkv[(bi * t + i) * 3 * c + part * c + h * hs + d];
                }
            }
        }
    }
    out
}

/// `[B·NH, T, hs]` → `[B, T, C]` (heads side by side), or into part `part` of `[B, T, 3C]`.
fn merge_into(dst: &mut [f64], src: &[f64], parts: usize, part: usize, dims: [usize; 4]) {
    let [b, t, nh, hs] = dims;
    let c = nh * hs;
    for bi in 0..b {
        for h in 0..nh {
            for i in 0..t {
                for d in 0..hs {
                    dst[(bi * t + i) * parts * c + part * c + h * hs + d] =
                        src[((bi * nh + h) * t + i) * hs + d];
                }
            }
        }
    }
}

/// The shapes (B, T, NH, hs): T = 1, odd T and head sizes, T past one tile, hs = 128.
const SHAPES: &[(usize, usize, usize, usize)] = &[
    (1, 1, 1, 8),
    (2, 7, 3, 16),
    (2, 33, 2, 7),
    (1, 65, 2, 64),
    (1, 256, 2, 64),
    (2, 47, 1, 128),
    (1, 100, 3, 40),
    (2, 130, 2, 48),
];

/// The shapes to check on `gpu`: all of them, or on the (slow) CPU emulator those with T < 100.
fn shapes(gpu: &Gpu) -> impl Iterator<Item = (usize, &'static (usize, usize, usize, usize))> {
    let emulated = gpu.is_emulated();
    SHAPES
        .iter()
        .enumerate()
        .filter(move |(_, d)| !emulated || d.1 < 100)
}

/// One attention case: forward and backward with `version` (the backward uses the forward's
/// `out` and `lse`, as in training).
fn attention_case<X: GpuFloat>(
    gpu: &Arc<Gpu>,
    version: Version,
    dims: (usize, usize, usize, usize),
    seed: u64,
) {
    let (b, t, nh, hs) = dims;
    let c = nh * hs;
    let bf = X::PRECISION == pretrain::tensor::cuda::Precision::Bf16;
    let (tol_fwd, tol_bwd) = if bf { (3.9e-3, 7.8e-3) } else { (1e-5, 1e-5) };
    let what = format!(
        "{version:?} B={b} T={t} NH={nh} hs={hs} {}",
        X::PRECISION.name()
    );
    let mut rng = Rng::new(seed);
    let qkv = random::<X>(&mut rng, b * t * 3 * c, 1.0);
    let dout = random::<X>(&mut rng, b * t * c, 1.0);

    // The CPU reference in f64, on the same (rounded) inputs.
    let (qkv64, dout64) = (to_f64(&qkv), to_f64(&dout));
    let (q, k, v) = (
        split(&qkv64, 0, b, t, nh, hs),
        split(&qkv64, 1, b, t, nh, hs),
        split(&qkv64, 2, b, t, nh, hs),
    );
    let scale = 1.0 / (hs as f64).sqrt();
    let mut y = vec![0.0; q.len()];
    let mut lse_ref = vec![0.0; b * nh * t];
    causal_attention_forward(&q, &k, &v, &mut y, &mut lse_ref, t, hs, scale);
    let mut out_ref = vec![0.0; b * t * c];
    merge_into(&mut out_ref, &y, 1, 0, [b, t, nh, hs]);
    let dy = reshape_heads(&dout64, b, t, nh, hs);
    let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; q.len()], vec![0.0; q.len()]);
    causal_attention_backward(
        &q, &k, &v, &y, &lse_ref, &dy, &mut dq, &mut dk, &mut dv, t, hs, scale,
    );
    let mut dqkv_ref = vec![0.0; b * t * 3 * c];
    for (part, g) in [&dq, &dk, &dv].into_iter().enumerate() {
        merge_into(&mut dqkv_ref, g, 3, part, [b, t, nh, hs]);
    }

    // The GPU.
    let qkv_d = Buffer::from_host(gpu, &qkv).unwrap();
    let out_d = Buffer::<X>::zeros(gpu, b * t * c).unwrap();
    let lse_d = Buffer::<f32>::zeros(gpu, b * nh * t).unwrap();
    let heads = Heads { b, t, nh, hs };
    attention_forward_version(gpu, version, out_d.ptr(), lse_d.ptr(), qkv_d.ptr(), heads).unwrap();
    let dout_d = Buffer::from_host(gpu, &dout).unwrap();
    // Filled with NaN-free garbage: the backward must overwrite every element.
    let dqkv_d = Buffer::from_host(gpu, &vec![X::from_f32(7.0); b * t * 3 * c]).unwrap();
    let scratch = Buffer::<f32>::zeros(gpu, attention_scratch_len(heads)).unwrap();
    let bufs = AttentionBackward {
        dqkv: dqkv_d.ptr(),
        dout: dout_d.ptr(),
        out: out_d.ptr(),
        qkv: qkv_d.ptr(),
        lse: lse_d.ptr(),
        scratch: scratch.ptr(),
    };
    attention_backward_version(gpu, version, &bufs, heads).unwrap();
    gpu.sync().unwrap();

    let out = to_f64(&out_d.to_host().unwrap());
    let lse: Vec<f64> = lse_d.to_host().unwrap().iter().map(|&x| x as f64).collect();
    let dqkv = to_f64(&dqkv_d.to_host().unwrap());
    assert_close(&format!("{what}: out"), &out, &out_ref, tol_fwd);
    assert_close(&format!("{what}: lse"), &lse, &lse_ref, tol_fwd);
    assert_close(&format!("{what}: dqkv"), &dqkv, &dqkv_ref, tol_bwd);
}

/// `[B, T, C]` → `[B·NH, T, hs]`.
fn reshape_heads(x: &[f64], b: usize, t: usize, nh: usize, hs: usize) -> Vec<f64> {
    let c = nh * hs;
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for h in 0..nh {
            for i in 0..t {
                for d in 0..hs {
                    out[((bi * nh + h) * t + i) * hs + d] = x[(bi * t + i) * c + h * hs + d];
                }
            }
        }
    }
    out
}

#[test]
fn attention_fp32_matches_cpu() {
    let Some(gpu) = for_tests("attention_fp32_matches_cpu") else {
        return;
    };
    for (i, &dims) in shapes(&gpu) {
        attention_case::<f32>(&gpu, Version::V1Scalar, dims, 10 + i as u64);
    }
}

#[test]
fn attention_bf16_matches_cpu() {
    let Some(gpu) = for_tests("attention_bf16_matches_cpu") else {
        return;
    };
    for (i, &dims) in shapes(&gpu) {
        attention_case::<bf16>(&gpu, Version::V1Scalar, dims, 50 + i as u64);
    }
}

#[test]
fn attention_v2_bf16_matches_cpu() {
    let Some(gpu) = for_tests("attention_v2_bf16_matches_cpu") else {
        return;
    };
    for (i, &dims) in shapes(&gpu) {
        if dims.3 % 16 == 0 {
            attention_case::<bf16>(&gpu, Version::V2TensorCore, dims, 80 + i as u64);
        }
    }
}

/// `attention_forward` / `attention_backward` run `best` when it fits (bf16, hs = 64: v2) and
/// v1 otherwise (bf16, hs = 40), bit for bit the same as asking for that version.
#[test]
fn attention_dispatch_runs_the_expected_version() {
    let Some(gpu) = for_tests("attention_dispatch_runs_the_expected_version") else {
        return;
    };
    assert_eq!(best::<bf16>(), Version::V2TensorCore);
    assert_eq!(best::<f32>(), Version::V1Scalar);
    for (hs, expected) in [(64, Version::V2TensorCore), (40, Version::V1Scalar)] {
        let (b, t, nh) = (2, 37, 2);
        let c = nh * hs;
        let mut rng = Rng::new(hs as u64);
        let qkv = Buffer::from_host(&gpu, &random::<bf16>(&mut rng, b * t * 3 * c, 1.0)).unwrap();
        let dout = Buffer::from_host(&gpu, &random::<bf16>(&mut rng, b * t * c, 1.0)).unwrap();
        let heads = Heads { b, t, nh, hs };
        let scratch = Buffer::<f32>::zeros(&gpu, attention_scratch_len(heads)).unwrap();
        let run = |version: Option<Version>| {
            let out = Buffer::<bf16>::zeros(&gpu, b * t * c).unwrap();
            let lse = Buffer::<f32>::zeros(&gpu, b * nh * t).unwrap();
            let dqkv = Buffer::<bf16>::zeros(&gpu, b * t * 3 * c).unwrap();
            let (o, l, x) = (out.ptr(), lse.ptr(), qkv.ptr());
            let bufs = AttentionBackward {
                dqkv: dqkv.ptr(),
                dout: dout.ptr(),
                out: o,
                qkv: x,
                lse: l,
                scratch: scratch.ptr(),
            };
            match version {
                None => {
                    attention_forward(&gpu, o, l, x, heads).unwrap();
                    attention_backward(&gpu, &bufs, heads).unwrap();
                }
                Some(v) => {
                    attention_forward_version(&gpu, v, o, l, x, heads).unwrap();
                    attention_backward_version(&gpu, v, &bufs, heads).unwrap();
                }
            }
            (
                out.to_host().unwrap(),
                lse.to_host().unwrap(),
                dqkv.to_host().unwrap(),
            )
        };
        assert_eq!(run(None), run(Some(expected)), "hs={hs}: not {expected:?}");
    }
}
