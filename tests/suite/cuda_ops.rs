//! The CUDA kernels against the CPU on random inputs. They run on a GPU, and without one on the
//! CPU emulator of `tools/cuda-emu` (`scripts/gpu-check.sh` runs them on a real one).
//!
//! Tolerances: the reference is computed in f64 from the very values the GPU received (rounded
//! to the storage type first). fp32 results must agree within 1e-5 of the largest |reference|
//! value of the tensor; bf16 results within 3.9e-3: one bf16 rounding of the output is at most
//! 2⁻⁹ ≈ 1.95e-3 of its size and everything inside the kernels is fp32, so two roundings' worth
//! is a bound with room, not a guess. Outputs that a kernel overwrites start as
//! NaN, so an element it forgets fails; outputs it adds into (`+=`) start random.

use half::bf16;
use pretrain::tensor::Rng;
use pretrain::tensor::cpu;
use pretrain::tensor::cuda::device::for_tests;
use pretrain::tensor::cuda::ops::{self, AdamwArgs, LayerNormGrads, LayerNormShape, RowStats};
use pretrain::tensor::cuda::reduce;
use pretrain::tensor::cuda::{Axis, Buffer, DevPtr, Gpu, GpuFloat, Precision};
use pretrain::train::optim::AdamWConfig;
use std::sync::Arc;

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// fp32 → bf16 → fp32 on the GPU equals `half`'s round-to-nearest-even on the host, exactly.
#[test]
fn cast_round_trip_matches_half() {
    let Some(gpu) = for_tests("cast_round_trip_matches_half") else {
        return;
    };
    let mut rng = Rng::new(7);
    for n in [1, 255, 256, 1023, 100_003] {
        let x = random(&mut rng, n);
        let src = Buffer::from_host(&gpu, &x).unwrap();
        let mid = Buffer::<bf16>::zeros(&gpu, n).unwrap();
        let back = Buffer::<f32>::zeros(&gpu, n).unwrap();
        ops::cast_to_floatx(&gpu, mid.ptr(), src.ptr()).unwrap();
        ops::cast_to_float::<bf16>(&gpu, back.ptr(), mid.ptr()).unwrap();
        let got = back.to_host().unwrap();
        for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
            assert_eq!(g, bf16::from_f32(v).to_f32(), "n {n} element {i}");
        }
    }
}

/// `Buffer::zeros` clears the block it gets, though the caching allocator hands freed blocks
/// out again as the last user left them.
#[test]
fn zeros_clear_a_used_block() {
    let Some(gpu) = for_tests("zeros_clear_a_used_block") else {
        return;
    };
    for n in [1, 777, 100_003] {
        drop(Buffer::from_host(&gpu, &vec![7i32; n]).unwrap());
        // The block just freed, unless a test running beside this one took it first.
        let zeros = Buffer::<i32>::zeros(&gpu, n).unwrap();
        assert!(zeros.to_host().unwrap().iter().all(|&v| v == 0), "n {n}");
    }
}

/// The tolerance for results stored as `X` (see the top of the file).
fn tol<X: GpuFloat>() -> f64 {
    match X::PRECISION {
        Precision::F32 => 1e-5,
        Precision::Bf16 => 3.9e-3,
    }
}

/// `n` values from N(mean, std²) rounded to `X`, and the same values as f64.
fn rand_x<X: GpuFloat>(rng: &mut Rng, n: usize, mean: f64, std: f64) -> (Vec<X>, Vec<f64>) {
    let x: Vec<X> = (0..n)
        .map(|_| X::from_f32((mean + std * rng.normal()) as f32))
        .collect();
    let f = x.iter().map(|v| v.to_f32() as f64).collect();
    (x, f)
}

/// Every element of `got` within `tol · max|want|` of `want`; a NaN fails.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        assert!(
            err <= tol * scale,
            "{what}: element {i}: got {g}, want {w} (tolerance {tol} × {scale})"
        );
    }
}

/// A GPU copy of `data` placed `off` elements into its buffer. With `off` = 1 no pointer is
/// 16-byte aligned, so the kernels take their one-element path instead of 16-byte loads.
struct Dev<X> {
    buf: Buffer<X>,
    off: usize,
    len: usize,
}

impl<X: GpuFloat> Dev<X> {
    fn new(gpu: &Arc<Gpu>, data: &[X], off: usize) -> Dev<X> {
        let mut all = vec![X::from_f32(-7.0); off];
        all.extend_from_slice(data);
        Dev {
            buf: Buffer::from_host(gpu, &all).unwrap(),
            off,
            len: data.len(),
        }
    }
    fn nan(gpu: &Arc<Gpu>, n: usize, off: usize) -> Dev<X> {
        Dev::new(gpu, &vec![X::from_f32(f32::NAN); n], off)
    }
    fn ptr(&self) -> DevPtr<X> {
        self.buf.ptr().slice(self.off, self.len)
    }
    /// The contents as f64; checks that the padding in front was left alone.
    fn get(&self) -> Vec<f64> {
        let all = self.buf.to_host().unwrap();
        for v in &all[..self.off] {
            assert_eq!(v.to_f32(), -7.0, "a kernel wrote before its range");
        }
        all[self.off..].iter().map(|v| v.to_f32() as f64).collect()
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn elementwise_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng, n: usize, off: usize) {
    let t = tol::<X>();
    let what = |op: &str| format!("{op} {} n={n} off={off}", X::PRECISION.name());
    let (x, xf) = rand_x::<X>(rng, n, 0.0, 2.0);
    let (g, gf) = rand_x::<X>(rng, n, 0.0, 1.0);
    let (xd, gd) = (Dev::new(gpu, &x, off), Dev::new(gpu, &g, off));

    let out = Dev::<X>::nan(gpu, n, off);
    ops::gelu_forward(gpu, out.ptr(), xd.ptr()).unwrap();
    let mut want = vec![0.0; n];
    cpu::gelu::gelu(&xf, &mut want);
    assert_close(&what("gelu_forward"), &out.get(), &want, t);

    let dinp = Dev::<X>::nan(gpu, n, off);
    ops::gelu_backward(gpu, dinp.ptr(), xd.ptr(), gd.ptr()).unwrap();
    cpu::gelu::gelu_backward(&xf, &gf, &mut want);
    assert_close(&what("gelu_backward"), &dinp.get(), &want, t);
    // In place: dinp is dout.
    let inplace = Dev::new(gpu, &g, off);
    ops::gelu_backward(gpu, inplace.ptr(), xd.ptr(), inplace.ptr()).unwrap();
    assert_close(&what("gelu_backward in place"), &inplace.get(), &want, t);

    let dst = Dev::<X>::nan(gpu, n, off);
    ops::fill(gpu, dst.ptr(), 2.5).unwrap();
    assert!(dst.get().iter().all(|&v| v == 2.5), "{}", what("fill"));
}

#[test]
fn elementwise_ops_match_the_cpu() {
    let Some(gpu) = for_tests("elementwise_ops_match_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(11);
    for n in [1, 3, 7, 8, 33, 65, 769, 100_003] {
        for off in [0, 1] {
            elementwise_case::<f32>(&gpu, &mut rng, n, off);
            elementwise_case::<bf16>(&gpu, &mut rng, n, off);
        }
    }
}

/// Sizes (rows, columns): a single column, odd widths (one-element path) and multiples of 8
/// (16-byte path), up to GPT-2's 768 and beyond.
const LAYERNORM_SIZES: [(usize, usize); 9] = [
    (1, 1),
    (3, 7),
    (7, 12),
    (65, 33),
    (2, 32),
    (4, 768),
    (3, 769),
    (5, 1024),
    (300, 64),
];

fn layernorm_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng, (n, c): (usize, usize), off: usize) {
    let t = tol::<X>();
    let what = |op: &str| format!("{op} {} n={n} c={c} off={off}", X::PRECISION.name());
    let (x, xf) = rand_x::<X>(rng, n * c, 0.5, 2.0);
    let (w, wf) = rand_x::<X>(rng, c, 1.0, 0.5);
    let (bias, bf) = rand_x::<X>(rng, c, 0.0, 0.5);
    let (xd, wd, bd) = (
        Dev::new(gpu, &x, off),
        Dev::new(gpu, &w, off),
        Dev::new(gpu, &bias, off),
    );
    let out = Dev::<X>::nan(gpu, n * c, off);
    let mean = Dev::<f32>::nan(gpu, n, 0);
    let rstd = Dev::<f32>::nan(gpu, n, 0);
    // GPT-2's eps, and a large one that changes every output (eps is the kernel's argument).
    let eps = if (n * c) % 2 == 1 { 1e-5 } else { 0.25 };
    let shape = LayerNormShape { n, c, eps };
    let stats = RowStats {
        mean: mean.ptr(),
        rstd: rstd.ptr(),
    };
    ops::layernorm_forward(gpu, out.ptr(), stats, xd.ptr(), wd.ptr(), bd.ptr(), shape).unwrap();
    let (mut y, mut m, mut r) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n]);
    cpu::layernorm::layernorm(&xf, &wf, &bf, eps as f64, c, &mut y, &mut m, &mut r);
    assert_close(&what("layernorm_forward out"), &out.get(), &y, t);
    // The statistics are fp32 in both modes.
    assert_close(&what("layernorm_forward mean"), &mean.get(), &m, 1e-5);
    assert_close(&what("layernorm_forward rstd"), &rstd.get(), &r, 1e-5);

    let (g, gf) = rand_x::<X>(rng, n * c, 0.0, 1.0);
    let (dx0, dx0f) = rand_x::<X>(rng, n * c, 0.0, 1.0);
    let (dw0, dw0f) = rand_x::<X>(rng, c, 0.0, 1.0);
    let (db0, db0f) = rand_x::<X>(rng, c, 0.0, 1.0);
    let gd = Dev::new(gpu, &g, off);
    let (dxd, dwd, dbd) = (
        Dev::new(gpu, &dx0, off),
        Dev::new(gpu, &dw0, off),
        Dev::new(gpu, &db0, off),
    );
    let grads = LayerNormGrads {
        dinp: dxd.ptr(),
        dweight: dwd.ptr(),
        dbias: dbd.ptr(),
    };
    ops::layernorm_backward(gpu, grads, gd.ptr(), xd.ptr(), wd.ptr(), stats, shape).unwrap();
    let (mut dx, mut dw, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
    cpu::layernorm::layernorm_backward(&xf, &wf, &m, &r, &gf, c, &mut dx, &mut dw, &mut db);
    let add = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + y).collect::<Vec<f64>>();
    assert_close(
        &what("layernorm_backward dinp"),
        &dxd.get(),
        &add(&dx0f, &dx),
        t,
    );
    assert_close(
        &what("layernorm_backward dweight"),
        &dwd.get(),
        &add(&dw0f, &dw),
        t,
    );
    assert_close(
        &what("layernorm_backward dbias"),
        &dbd.get(),
        &add(&db0f, &db),
        t,
    );
}

#[test]
fn layernorm_matches_the_cpu() {
    let Some(gpu) = for_tests("layernorm_matches_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(13);
    for size in LAYERNORM_SIZES {
        for off in [0, 1] {
            layernorm_case::<f32>(&gpu, &mut rng, size, off);
            layernorm_case::<bf16>(&gpu, &mut rng, size, off);
        }
    }
}

/// The column sums (LayerNorm parameter gradients, and `sum_axis` over many rows: a bias
/// gradient) give the same bits every time.
#[test]
fn reductions_are_deterministic() {
    let Some(gpu) = for_tests("reductions_are_deterministic") else {
        return;
    };
    let mut rng = Rng::new(17);
    let (n, c) = (4096, 768);
    let (g, _) = rand_x::<bf16>(&mut rng, n * c, 0.0, 1.0);
    let (x, _) = rand_x::<bf16>(&mut rng, n * c, 0.0, 1.0);
    let (w, _) = rand_x::<bf16>(&mut rng, c, 1.0, 0.1);
    let (g, x, w) = (
        Dev::new(&gpu, &g, 0),
        Dev::new(&gpu, &x, 0),
        Dev::new(&gpu, &w, 0),
    );
    let mean = Buffer::<f32>::zeros(&gpu, n).unwrap();
    let rstd = Buffer::from_host(&gpu, &vec![1.0f32; n]).unwrap();
    let mut first = None;
    for _ in 0..3 {
        let dinp = Buffer::<bf16>::zeros(&gpu, n * c).unwrap();
        let dw = Buffer::<bf16>::zeros(&gpu, c).unwrap();
        let db = Buffer::<bf16>::zeros(&gpu, c).unwrap();
        let colsum = Buffer::<bf16>::zeros(&gpu, c).unwrap();
        let grads = LayerNormGrads {
            dinp: dinp.ptr(),
            dweight: dw.ptr(),
            dbias: db.ptr(),
        };
        let stats = RowStats {
            mean: mean.ptr(),
            rstd: rstd.ptr(),
        };
        let shape = LayerNormShape { n, c, eps: 1e-5 };
        ops::layernorm_backward(&gpu, grads, g.ptr(), x.ptr(), w.ptr(), stats, shape).unwrap();
        let rows = Axis {
            outer: 1,
            n,
            inner: c,
        };
        reduce::sum_axis(&gpu, colsum.ptr(), g.ptr(), rows).unwrap();
        let bits: Vec<Vec<u16>> = [&dw, &db, &colsum]
            .iter()
            .map(|b| b.to_host().unwrap().iter().map(|v| v.to_bits()).collect())
            .collect();
        match &first {
            None => first = Some(bits),
            Some(f) => assert_eq!(f, &bits, "results differ between runs"),
        }
    }
}

/// Three AdamW steps on the GPU against `adamw_step` on the CPU, with and without decay and
/// with a clipping factor: master weights and moments within 1e-5 relative (fp32 arithmetic on
/// both sides, in the same order), and `params` exactly the master weights rounded to `X`.
fn adamw_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng, n: usize, decay: bool) {
    let cfg = AdamWConfig::default();
    let (lr, grad_scale) = (1e-2f32, 0.5f32);
    let p0: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let params =
        Buffer::from_host(gpu, &p0.iter().map(|&p| X::from_f32(p)).collect::<Vec<X>>()).unwrap();
    let master = Buffer::from_host(gpu, &p0).unwrap();
    let m = Buffer::<f32>::zeros(gpu, n).unwrap();
    let v = Buffer::<f32>::zeros(gpu, n).unwrap();
    let (mut cp, mut cm, mut cv) = (p0.clone(), vec![0.0f32; n], vec![0.0f32; n]);
    let h_cpu = pretrain::tensor::AdamwHyper {
        lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        weight_decay: if decay { cfg.weight_decay } else { 0.0 },
        grad_scale,
        step: 1,
    };
    for step in 1..=3u32 {
        let (g, gf) = rand_x::<X>(rng, n, 0.0, 1.0);
        let grads = Buffer::from_host(gpu, &g).unwrap();
        let h = AdamwArgs {
            lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: if decay { cfg.weight_decay } else { 0.0 },
            grad_scale,
            step,
        };
        ops::adamw_update(
            gpu,
            params.ptr(),
            master.ptr(),
            grads.ptr(),
            m.ptr(),
            v.ptr(),
            &h,
        )
        .unwrap();
        let gf: Vec<f32> = gf.iter().map(|&x| x as f32).collect();
        let hc = pretrain::tensor::AdamwHyper {
            step: step as u64,
            ..h_cpu
        };
        pretrain::tensor::cpu::adamw::adamw(&hc, &mut cp, &gf, &mut cm, &mut cv);
    }
    let what = |t: &str| format!("adamw {t} {} n={n} decay={decay}", X::PRECISION.name());
    let got = master.to_host().unwrap();
    assert_close(&what("master"), &f64s(&got), &f64s(&cp), 1e-5);
    assert_close(&what("m"), &f64s(&m.to_host().unwrap()), &f64s(&cm), 1e-5);
    assert_close(&what("v"), &f64s(&v.to_host().unwrap()), &f64s(&cv), 1e-5);
    let p = params.to_host().unwrap();
    for (i, (q, w)) in p.iter().zip(&got).enumerate() {
        assert_eq!(
            q.to_f32(),
            X::from_f32(*w).to_f32(),
            "{}: element {i}",
            what("params")
        );
    }
}

#[test]
fn adamw_matches_the_cpu() {
    let Some(gpu) = for_tests("adamw_matches_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(15);
    for n in [1, 7, 1000, 65_537] {
        for decay in [false, true] {
            adamw_case::<f32>(&gpu, &mut rng, n, decay);
            adamw_case::<bf16>(&gpu, &mut rng, n, decay);
        }
    }
}

/// Two tensors added into one running sum that starts at 1.5.
fn norm_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng, n: usize, off: usize) {
    let (a, af) = rand_x::<X>(rng, n, 0.0, 1.0);
    let (b, bf) = rand_x::<X>(rng, n + 3, 0.0, 2.0);
    let (ad, bd) = (Dev::new(gpu, &a, off), Dev::new(gpu, &b, off));
    let out = Buffer::from_host(gpu, &[1.5f32]).unwrap();
    ops::grad_norm_squared(gpu, out.ptr(), ad.ptr()).unwrap();
    ops::grad_norm_squared(gpu, out.ptr(), bd.ptr()).unwrap();
    let want = 1.5 + af.iter().chain(&bf).map(|x| x * x).sum::<f64>();
    let got = out.to_host().unwrap()[0] as f64;
    let what = format!("grad_norm_squared {} n={n} off={off}", X::PRECISION.name());
    assert_close(&what, &[got], &[want], 1e-5);
}

#[test]
fn grad_norm_squared_matches_f64() {
    let Some(gpu) = for_tests("grad_norm_squared_matches_f64") else {
        return;
    };
    let mut rng = Rng::new(16);
    for n in [1, 7, 1000, 100_003, 1_000_003] {
        for off in [0, 1] {
            norm_case::<f32>(&gpu, &mut rng, n, off);
            norm_case::<bf16>(&gpu, &mut rng, n, off);
        }
    }
}
