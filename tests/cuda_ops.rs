//! The CUDA kernels against the CPU on random inputs. These need a GPU: without one each test
//! prints why it skips and passes (CI has no GPU; `scripts/gpu-check.sh` runs them on one).
//!
//! Tolerances: the reference is computed in f64 from the very values the GPU received (rounded
//! to the storage type first). fp32 results must agree within 1e-5 of the largest |reference|
//! value of the tensor; bf16 results within 1e-2 (one bf16 rounding of the output is 2⁻⁹
//! relative; everything inside the kernels is fp32). Outputs that a kernel overwrites start as
//! NaN, so an element it forgets fails; outputs it adds into (`+=`) start random.

use half::bf16;
use pretrain::tensor::Rng;
use pretrain::tensor::cpu;
use pretrain::tensor::cuda::device::for_tests;
use pretrain::tensor::cuda::ops::{
    self, AdamwArgs, EncoderShape, LayerNormGrads, LayerNormShape, RowStats,
};
use pretrain::tensor::cuda::{Buffer, DevPtr, Gpu, GpuFloat, Precision};
use pretrain::train::optim::AdamWConfig;

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
        let got = back.to_host(&gpu).unwrap();
        for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
            assert_eq!(g, bf16::from_f32(v).to_f32(), "n {n} element {i}");
        }
    }
}

/// The tolerance for results stored as `X` (see the top of the file).
fn tol<X: GpuFloat>() -> f64 {
    match X::PRECISION {
        Precision::F32 => 1e-5,
        Precision::Bf16 => 1e-2,
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
    fn new(gpu: &Gpu, data: &[X], off: usize) -> Dev<X> {
        let mut all = vec![X::from_f32(-7.0); off];
        all.extend_from_slice(data);
        Dev {
            buf: Buffer::from_host(gpu, &all).unwrap(),
            off,
            len: data.len(),
        }
    }
    fn nan(gpu: &Gpu, n: usize, off: usize) -> Dev<X> {
        Dev::new(gpu, &vec![X::from_f32(f32::NAN); n], off)
    }
    fn ptr(&self) -> DevPtr<X> {
        self.buf.ptr().slice(self.off, self.len)
    }
    /// The contents as f64; checks that the padding in front was left alone.
    fn get(&self, gpu: &Gpu) -> Vec<f64> {
        let all = self.buf.to_host(gpu).unwrap();
        for v in &all[..self.off] {
            assert_eq!(v.to_f32(), -7.0, "a kernel wrote before its range");
        }
        all[self.off..].iter().map(|v| v.to_f32() as f64).collect()
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn elementwise_case<X: GpuFloat>(gpu: &Gpu, rng: &mut Rng, n: usize, off: usize) {
    let t = tol::<X>();
    let what = |op: &str| format!("{op} {} n={n} off={off}", X::PRECISION.name());
    let (x, xf) = rand_x::<X>(rng, n, 0.0, 2.0);
    let (g, gf) = rand_x::<X>(rng, n, 0.0, 1.0);
    let (xd, gd) = (Dev::new(gpu, &x, off), Dev::new(gpu, &g, off));

    let out = Dev::<X>::nan(gpu, n, off);
    ops::gelu_forward(gpu, out.ptr(), xd.ptr()).unwrap();
    let mut want = vec![0.0; n];
    cpu::gelu::gelu(&xf, &mut want);
    assert_close(&what("gelu_forward"), &out.get(gpu), &want, t);

    let dinp = Dev::<X>::nan(gpu, n, off);
    ops::gelu_backward(gpu, dinp.ptr(), xd.ptr(), gd.ptr()).unwrap();
    cpu::gelu::gelu_backward(&xf, &gf, &mut want);
    assert_close(&what("gelu_backward"), &dinp.get(gpu), &want, t);
    // In place: dinp is dout.
    let inplace = Dev::new(gpu, &g, off);
    ops::gelu_backward(gpu, inplace.ptr(), xd.ptr(), inplace.ptr()).unwrap();
    assert_close(&what("gelu_backward in place"), &inplace.get(gpu), &want, t);

    let out = Dev::<X>::nan(gpu, n, off);
    ops::residual_forward(gpu, out.ptr(), xd.ptr(), gd.ptr()).unwrap();
    let sum: Vec<f64> = xf.iter().zip(&gf).map(|(a, b)| a + b).collect();
    assert_close(&what("residual_forward"), &out.get(gpu), &sum, t);

    let dst = Dev::new(gpu, &x, off);
    ops::add_into(gpu, dst.ptr(), gd.ptr()).unwrap();
    assert_close(&what("add_into"), &dst.get(gpu), &sum, t);

    ops::scale(gpu, dst.ptr(), -0.375).unwrap();
    let scaled: Vec<f64> = sum.iter().map(|v| v * -0.375).collect();
    assert_close(&what("scale"), &dst.get(gpu), &scaled, 2.0 * t);

    ops::fill(gpu, dst.ptr(), 2.5).unwrap();
    assert!(dst.get(gpu).iter().all(|&v| v == 2.5), "{}", what("fill"));
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

/// Sizes (b, t, c, vocab, rows of wpe): odd widths, a single column, and many repeats of few
/// tokens (so several positions add into the same row of dwte).
const ENCODER_SIZES: [(usize, usize, usize, usize, usize); 6] = [
    (1, 1, 1, 1, 1),
    (2, 3, 7, 5, 4),
    (3, 5, 33, 11, 8),
    (2, 4, 768, 50, 6),
    (1, 3, 769, 7, 3),
    (4, 65, 8, 3, 65),
];

fn encoder_case<X: GpuFloat>(
    gpu: &Gpu,
    rng: &mut Rng,
    (b, t, c, v, max_t): (usize, usize, usize, usize, usize),
) {
    let what = |op: &str| format!("{op} {} b={b} t={t} c={c} v={v}", X::PRECISION.name());
    let tokens: Vec<i32> = (0..b * t).map(|_| rng.below(v as u64) as i32).collect();
    let (wte, wtef) = rand_x::<X>(rng, v * c, 0.0, 1.0);
    let (wpe, wpef) = rand_x::<X>(rng, max_t * c, 0.0, 1.0);
    let tok = Buffer::from_host(gpu, &tokens).unwrap();
    let (wte_d, wpe_d) = (Dev::new(gpu, &wte, 0), Dev::new(gpu, &wpe, 0));
    let out = Dev::<X>::nan(gpu, b * t * c, 0);
    let shape = EncoderShape { b, t, c };
    ops::encoder_forward(gpu, out.ptr(), tok.ptr(), wte_d.ptr(), wpe_d.ptr(), shape).unwrap();
    let mut want = vec![0.0; b * t * c];
    for (bt, &id) in tokens.iter().enumerate() {
        for j in 0..c {
            want[bt * c + j] = wtef[id as usize * c + j] + wpef[(bt % t) * c + j];
        }
    }
    assert_close(&what("encoder_forward"), &out.get(gpu), &want, tol::<X>());

    // Backward, twice, into random gradients: the scratch must come back to zero in between.
    let (dwte, mut dwte_want) = rand_x::<X>(rng, v * c, 0.0, 1.0);
    let (dwpe, mut dwpe_want) = rand_x::<X>(rng, max_t * c, 0.0, 1.0);
    let (dwte_d, dwpe_d) = (Dev::new(gpu, &dwte, 0), Dev::new(gpu, &dwpe, 0));
    let scratch = Buffer::<f32>::zeros(gpu, ops::encoder_scratch_len(v, c)).unwrap();
    for _ in 0..2 {
        let (dout, doutf) = rand_x::<X>(rng, b * t * c, 0.0, 1.0);
        let dout_d = Dev::new(gpu, &dout, 0);
        ops::encoder_backward(
            gpu,
            dwte_d.ptr(),
            dwpe_d.ptr(),
            dout_d.ptr(),
            tok.ptr(),
            shape,
            scratch.ptr(),
        )
        .unwrap();
        for (bt, &id) in tokens.iter().enumerate() {
            for j in 0..c {
                dwte_want[id as usize * c + j] += doutf[bt * c + j];
                dwpe_want[(bt % t) * c + j] += doutf[bt * c + j];
            }
        }
    }
    // Two rounded += per element in bf16.
    assert_close(
        &what("encoder_backward dwte"),
        &dwte_d.get(gpu),
        &dwte_want,
        2.0 * tol::<X>(),
    );
    assert_close(
        &what("encoder_backward dwpe"),
        &dwpe_d.get(gpu),
        &dwpe_want,
        2.0 * tol::<X>(),
    );
    assert!(
        scratch.to_host(gpu).unwrap().iter().all(|&s| s == 0.0),
        "{}",
        what("scratch left non-zero")
    );
}

#[test]
fn encoder_matches_the_cpu() {
    let Some(gpu) = for_tests("encoder_matches_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(12);
    for size in ENCODER_SIZES {
        encoder_case::<f32>(&gpu, &mut rng, size);
        encoder_case::<bf16>(&gpu, &mut rng, size);
    }
}

/// A token outside the vocabulary gives NaN rows forward and is skipped backward.
#[test]
fn encoder_marks_bad_tokens_with_nan() {
    let Some(gpu) = for_tests("encoder_marks_bad_tokens_with_nan") else {
        return;
    };
    let (t, c, v) = (4, 8, 3);
    let tokens = Buffer::from_host(&gpu, &[0i32, -1, 3, 2]).unwrap();
    let wte = Buffer::from_host(&gpu, &vec![1.0f32; v * c]).unwrap();
    let wpe = Buffer::from_host(&gpu, &vec![0.5f32; t * c]).unwrap();
    let out = Buffer::<f32>::zeros(&gpu, t * c).unwrap();
    let shape = EncoderShape { b: 1, t, c };
    ops::encoder_forward(&gpu, out.ptr(), tokens.ptr(), wte.ptr(), wpe.ptr(), shape).unwrap();
    let got = out.to_host(&gpu).unwrap();
    for (pos, row) in got.chunks(c).enumerate() {
        let bad = pos == 1 || pos == 2;
        assert!(
            row.iter().all(|&x| if bad { x.is_nan() } else { x == 1.5 }),
            "row {pos}: {row:?}"
        );
    }
    let dwte = Buffer::<f32>::zeros(&gpu, v * c).unwrap();
    let dwpe = Buffer::<f32>::zeros(&gpu, t * c).unwrap();
    let dout = Buffer::from_host(&gpu, &vec![1.0f32; t * c]).unwrap();
    let scratch = Buffer::<f32>::zeros(&gpu, ops::encoder_scratch_len(v, c)).unwrap();
    ops::encoder_backward(
        &gpu,
        dwte.ptr(),
        dwpe.ptr(),
        dout.ptr(),
        tokens.ptr(),
        shape,
        scratch.ptr(),
    )
    .unwrap();
    let dwte = dwte.to_host(&gpu).unwrap();
    let rows: Vec<f32> = dwte.chunks(c).map(|r| r[0]).collect();
    assert_eq!(rows, [1.0, 0.0, 1.0]);
    assert!(dwpe.to_host(&gpu).unwrap().iter().all(|&x| x == 1.0));
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

fn layernorm_case<X: GpuFloat>(gpu: &Gpu, rng: &mut Rng, (n, c): (usize, usize), off: usize) {
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
    assert_close(&what("layernorm_forward out"), &out.get(gpu), &y, t);
    // The statistics are fp32 in both modes.
    assert_close(&what("layernorm_forward mean"), &mean.get(gpu), &m, 1e-5);
    assert_close(&what("layernorm_forward rstd"), &rstd.get(gpu), &r, 1e-5);

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
        &dxd.get(gpu),
        &add(&dx0f, &dx),
        t,
    );
    assert_close(
        &what("layernorm_backward dweight"),
        &dwd.get(gpu),
        &add(&dw0f, &dw),
        t,
    );
    assert_close(
        &what("layernorm_backward dbias"),
        &dbd.get(gpu),
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

fn bias_case<X: GpuFloat>(gpu: &Gpu, rng: &mut Rng, n: usize, oc: usize) {
    let (g, gf) = rand_x::<X>(rng, n * oc, 0.0, 1.0);
    let (d0, mut want) = rand_x::<X>(rng, oc, 0.0, 1.0);
    let (gd, dd) = (Dev::new(gpu, &g, 0), Dev::new(gpu, &d0, 0));
    ops::bias_backward(gpu, dd.ptr(), gd.ptr(), n, oc).unwrap();
    for r in 0..n {
        for j in 0..oc {
            want[j] += gf[r * oc + j];
        }
    }
    let what = format!("bias_backward {} n={n} oc={oc}", X::PRECISION.name());
    assert_close(&what, &dd.get(gpu), &want, tol::<X>());
}

#[test]
fn bias_backward_matches_column_sums() {
    let Some(gpu) = for_tests("bias_backward_matches_column_sums") else {
        return;
    };
    let mut rng = Rng::new(14);
    for n in [1, 3, 65, 1000] {
        for oc in [1, 7, 33, 768, 769] {
            bias_case::<f32>(&gpu, &mut rng, n, oc);
            bias_case::<bf16>(&gpu, &mut rng, n, oc);
        }
    }
}

/// The column sums (bias and LayerNorm parameter gradients) and the gradient norm give the same
/// bits every time.
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
        let dbias = Buffer::<bf16>::zeros(&gpu, c).unwrap();
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
        ops::bias_backward(&gpu, dbias.ptr(), g.ptr(), n, c).unwrap();
        let bits: Vec<Vec<u16>> = [&dw, &db, &dbias]
            .iter()
            .map(|b| {
                b.to_host(&gpu)
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            })
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
fn adamw_case<X: GpuFloat>(gpu: &Gpu, rng: &mut Rng, n: usize, decay: bool) {
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
    let got = master.to_host(gpu).unwrap();
    assert_close(&what("master"), &f64s(&got), &f64s(&cp), 1e-5);
    assert_close(
        &what("m"),
        &f64s(&m.to_host(gpu).unwrap()),
        &f64s(&cm),
        1e-5,
    );
    assert_close(
        &what("v"),
        &f64s(&v.to_host(gpu).unwrap()),
        &f64s(&cv),
        1e-5,
    );
    let p = params.to_host(gpu).unwrap();
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
fn norm_case<X: GpuFloat>(gpu: &Gpu, rng: &mut Rng, n: usize, off: usize) {
    let (a, af) = rand_x::<X>(rng, n, 0.0, 1.0);
    let (b, bf) = rand_x::<X>(rng, n + 3, 0.0, 2.0);
    let (ad, bd) = (Dev::new(gpu, &a, off), Dev::new(gpu, &b, off));
    let out = Buffer::from_host(gpu, &[1.5f32]).unwrap();
    ops::grad_norm_squared(gpu, out.ptr(), ad.ptr()).unwrap();
    ops::grad_norm_squared(gpu, out.ptr(), bd.ptr()).unwrap();
    let want = 1.5 + af.iter().chain(&bf).map(|x| x * x).sum::<f64>();
    let got = out.to_host(gpu).unwrap()[0] as f64;
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
