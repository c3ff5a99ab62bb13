//! The launchers of the tensor engine's generic CUDA ops (`tensor::cuda::{elementwise, reduce,
//! softmax, embedding, cross_entropy}`) against the CPU arm of the same op
//! (`tensor::backend`, which runs `tensor::cpu`) on small, odd shapes, strided views included.
//! Without a GPU they run on the CPU emulator (`tools/cuda-emu`), so sizes stay tiny.
//!
//! Tolerances, relative to the largest |reference| of each output:
//! - fp32, exact (0) where both sides do the same single IEEE operation or none: copies,
//!   broadcasting add/sub/mul/div, masks, maxima and their gradient, the embedding lookup.
//! - fp32, 1e-5 elsewhere: library `exp`/`log`/`tanh`/`powf` may differ by an ulp or two, and
//!   sums run in a different order (warp trees versus the CPU's SIMD lanes), which moves the
//!   last bits of a sum of up to a few thousand terms by well under 1e-6 of the largest output.
//! - bf16, 3.9e-3: the inputs are rounded to bf16 first, so both sides see the same values and
//!   the CPU then computes in f32; the GPU computes in fp32 too and rounds the output once to
//!   bf16's 8-bit mantissa (at most 2⁻⁹ ≈ 1.95e-3 of the value); twice that is the bound. Statistics (lse, losses, the sum to a scalar) are
//!   fp32 in both modes and use the fp32 tolerance.
//!
//! Outputs that a kernel overwrites start as NaN, so an element it forgets fails.

use half::bf16;
use pretrain::tensor::backend::{self, Binary, Unary};
use pretrain::tensor::cuda::cross_entropy::{self as ce, Logits};
use pretrain::tensor::cuda::device::{Arg, for_tests, launch_config};
use pretrain::tensor::cuda::elementwise::{self as ew, BinaryOp, UnaryOp};
use pretrain::tensor::cuda::embedding::{self as emb, EmbeddingBuckets};
use pretrain::tensor::cuda::reduce;
use pretrain::tensor::cuda::softmax::{self as sm, Causal};
use pretrain::tensor::cuda::strided::contiguous_strides;
use pretrain::tensor::cuda::{Axis, Buffer, DevPtr, Gpu, GpuFloat, Precision, Rows, Strided};
use pretrain::tensor::shape::{broadcast_shapes, broadcast_strides};
use pretrain::tensor::{Rng, Tensor};
use std::sync::Arc;

/// The tolerance for outputs stored as `X`: `fp32` in fp32, 3.9e-3 in bf16 (see the top).
fn tol<X: GpuFloat>(fp32: f64) -> f64 {
    match X::PRECISION {
        Precision::F32 => fp32,
        Precision::Bf16 => 3.9e-3,
    }
}

/// `n` values uniform in [lo, hi), rounded to `X`: the device values and the same as f32.
fn rand_x<X: GpuFloat>(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> (Vec<X>, Vec<f32>) {
    let x: Vec<X> = (0..n)
        .map(|_| X::from_f32((lo + (hi - lo) * rng.uniform()) as f32))
        .collect();
    let f = x.iter().map(|v| v.to_f32()).collect();
    (x, f)
}

fn up<X: GpuFloat>(gpu: &Arc<Gpu>, x: &[X]) -> Buffer<X> {
    Buffer::from_host(gpu, x).unwrap()
}

fn ints(gpu: &Arc<Gpu>, x: &[i32]) -> Buffer<i32> {
    Buffer::from_host(gpu, x).unwrap()
}

fn nan<X: GpuFloat>(gpu: &Arc<Gpu>, n: usize) -> Buffer<X> {
    up(gpu, &vec![X::from_f32(f32::NAN); n])
}

fn down<X: GpuFloat>(b: &Buffer<X>) -> Vec<f64> {
    b.to_host()
        .unwrap()
        .iter()
        .map(|v| v.to_f32() as f64)
        .collect()
}

/// The f32 values of a CPU tensor as f64.
fn want(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64()
}

/// Every `|got − want| <= tol · max|want|`; a NaN fails (unless both are NaN).
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want
        .iter()
        .filter(|w| w.is_finite())
        .fold(0f64, |m, w| m.max(w.abs()))
        .max(1e-30);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * scale;
        assert!(
            ok,
            "{what}: element {i}: got {g}, want {w} (tolerance {tol:e} × {scale:e})"
        );
    }
}

/// A view of a device buffer starting at element `offset` (a tensor view's offset).
fn at<X>(p: DevPtr<X>, offset: usize) -> DevPtr<X> {
    p.slice(offset, p.len - offset)
}

// ---- strided copies and adds --------------------------------------------------------------

/// `contiguous()` of transposed, permuted, broadcast and narrowed views, `cat` by copies into
/// windows, and a transposed gradient added into a window, against the CPU.
fn strided_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng) {
    let p = X::PRECISION.name();
    let (data, f) = rand_x::<X>(rng, 3 * 4 * 5, -3.0, 3.0);
    let base = Tensor::from_vec(f, &[3, 4, 5]);
    let buf = up(gpu, &data);
    let views = [
        ("transpose", base.transpose(1, 2)),
        ("permute", base.permute(&[2, 0, 1])),
        ("narrow", base.narrow(1, 1, 2).narrow(2, 2, 3)),
        ("expand", base.narrow(0, 1, 1).expand(&[2, 3, 4, 5])),
        (
            "scalar",
            base.narrow(0, 2, 1).narrow(1, 3, 1).narrow(2, 4, 1),
        ),
    ];
    for (name, v) in &views {
        let out = nan::<X>(gpu, v.numel());
        let layout = Strided::new(v.shape(), &[&contiguous_strides(v.shape()), v.strides()]);
        ew::copy_strided(gpu, out.ptr(), at(buf.ptr(), v.offset()), &layout).unwrap();
        assert_close(
            &format!("copy_strided {name} {p}"),
            &down(&out),
            &want(&v.contiguous()),
            0.0,
        );
    }

    // cat along axis 1: each part copied into its window of the output; the middle part is a
    // permuted view of a tensor of its own.
    let (other, of) = rand_x::<X>(rng, 5 * 3 * 2, -3.0, 3.0);
    let obuf = up(gpu, &other);
    let parts = [
        (base.narrow(1, 0, 3), &buf),
        (Tensor::from_vec(of, &[5, 3, 2]).permute(&[1, 2, 0]), &obuf),
        (base.narrow(1, 2, 1), &buf),
    ];
    let refs: Vec<&Tensor> = parts.iter().map(|(t, _)| t).collect();
    let cat = Tensor::cat(&refs, 1);
    let out = nan::<X>(gpu, cat.numel());
    let cs = contiguous_strides(cat.shape());
    let mut start = 0;
    for (t, b) in &parts {
        let layout = Strided::new(t.shape(), &[&cs, t.strides()]);
        let window = at(out.ptr(), start * cs[1]);
        ew::copy_strided(gpu, window, at(b.ptr(), t.offset()), &layout).unwrap();
        start += t.shape()[1];
    }
    assert_close(&format!("cat {p}"), &down(&out), &want(&cat), 0.0);

    // dst[:, 1..4, :] += src, src a transposed [3, 3, 5] view: the CPU's add_into.
    let (d0, df) = rand_x::<X>(rng, 3 * 6 * 5, -1.0, 1.0);
    let dst = Tensor::from_vec(df, &[3, 6, 5]);
    let (s0, sf) = rand_x::<X>(rng, 3 * 5 * 3, -1.0, 1.0);
    let src = Tensor::from_vec(sf, &[3, 5, 3]).transpose(1, 2);
    let dbuf = up(gpu, &d0);
    let sbuf = up(gpu, &s0);
    let layout = Strided::new(src.shape(), &[dst.strides(), src.strides()]);
    ew::add_strided(gpu, at(dbuf.ptr(), 5), sbuf.ptr(), &layout).unwrap();
    backend::add_into(&dst, &src, Some((1, 1)));
    assert_close(
        &format!("add_strided {p}"),
        &down(&dbuf),
        &want(&dst),
        tol::<X>(0.0),
    );
}

#[test]
fn strided_copies_and_adds_match_the_cpu() {
    let Some(gpu) = for_tests("strided_copies_and_adds_match_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(21);
    strided_case::<f32>(&gpu, &mut rng);
    strided_case::<bf16>(&gpu, &mut rng);
}

/// The emulator checks a by-value `Strided` argument like any other: a launcher passing
/// something else in its place is an error that names both types.
#[test]
fn the_emulator_checks_the_struct_argument() {
    let Some(gpu) = for_tests("the_emulator_checks_the_struct_argument") else {
        return;
    };
    if !gpu.is_emulated() {
        return;
    }
    let b = Buffer::<f32>::zeros(&gpu, 4).unwrap();
    let args = [
        Arg::from(b.ptr()),
        Arg::from(b.ptr()),
        Arg::U64(4),
        Arg::U64(4),
    ];
    // SAFETY: the emulator rejects the argument list before running anything.
    let err = unsafe {
        gpu.launch(
            "copy.cu",
            Precision::F32,
            "strided_copy",
            launch_config(1, 32, 0),
            &args,
        )
    }
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("argument 2 has type letter 's'") && err.contains("Strided of 264 bytes"),
        "{err}"
    );
}

/// A buffer shorter than its layout spans, or an output layout that visits an element twice
/// (a race between threads), is refused before anything is launched.
#[test]
fn strided_launchers_check_the_layouts() {
    let Some(gpu) = for_tests("strided_launchers_check_the_layouts") else {
        return;
    };
    let panic_text = |f: &dyn Fn()| -> String {
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let (short, long) = (nan::<f32>(&gpu, 5), nan::<f32>(&gpu, 12));
    let transpose = Strided::new(&[3, 4], &[&[4, 1], &[1, 3]]);
    let msg = panic_text(&|| {
        ew::copy_strided(&gpu, long.ptr(), short.ptr(), &transpose).unwrap();
    });
    assert!(
        msg.contains("operand 1: needs 12 elements, buffer has 5"),
        "{msg}"
    );
    let overlapping = Strided::new(&[3, 4], &[&[0, 1], &[4, 1]]);
    let msg = panic_text(&|| {
        ew::add_strided(&gpu, long.ptr(), long.ptr(), &overlapping).unwrap();
    });
    assert!(msg.contains("visits an element twice"), "{msg}");
}

// ---- element-wise ops ---------------------------------------------------------------------

fn unary_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng) {
    let p = X::PRECISION.name();
    let ops = [
        (Unary::Neg, -3.0, 3.0),
        (Unary::Exp, -3.0, 3.0),
        (Unary::Log, 0.1, 3.0),
        (Unary::Sqrt, 0.1, 3.0),
        (Unary::Tanh, -3.0, 3.0),
        (Unary::Relu, -3.0, 3.0),
        (Unary::Powf(2.5), 0.1, 3.0),
        (Unary::Powf(2.0), -3.0, 3.0),
        (Unary::AddScalar(-1.25), -3.0, 3.0),
        (Unary::MulScalar(0.75), -3.0, 3.0),
    ];
    for n in [1, 7, 33] {
        for (op, lo, hi) in ops {
            let what = |s: &str| format!("{s} {op:?} n={n} {p}");
            let kop = kernel_op(op);
            let (x, xf) = rand_x::<X>(rng, n, lo, hi);
            let xt = Tensor::from_vec(xf, &[n]);
            let y_cpu = backend::unary(op, &xt);
            let (xb, yb) = (up(gpu, &x), nan::<X>(gpu, n));
            ew::unary_forward(gpu, kop, yb.ptr(), xb.ptr()).unwrap();
            assert_close(
                &what("unary_forward"),
                &down(&yb),
                &want(&y_cpu),
                tol::<X>(1e-5),
            );

            // Backward, both sides from the same y (the CPU's, rounded to X).
            let ys: Vec<X> = y_cpu.to_vec().iter().map(|&v| X::from_f32(v)).collect();
            let yt = Tensor::from_vec(ys.iter().map(|v| v.to_f32()).collect(), &[n]);
            let (g, gf) = rand_x::<X>(rng, n, -1.0, 1.0);
            let dx_cpu = backend::unary_backward(op, &xt, &yt, &Tensor::from_vec(gf, &[n]));
            let (yb, gb, dxb) = (up(gpu, &ys), up(gpu, &g), nan::<X>(gpu, n));
            ew::unary_backward(gpu, kop, dxb.ptr(), xb.ptr(), yb.ptr(), gb.ptr()).unwrap();
            assert_close(
                &what("unary_backward"),
                &down(&dxb),
                &want(&dx_cpu),
                tol::<X>(1e-5),
            );
        }
    }
}

#[test]
fn unary_ops_match_the_cpu() {
    let Some(gpu) = for_tests("unary_ops_match_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(22);
    unary_case::<f32>(&gpu, &mut rng);
    unary_case::<bf16>(&gpu, &mut rng);
}

fn binary_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng) {
    let p = X::PRECISION.name();
    // (a's shape, b's shape, whether a is a transposed view)
    let cases: [(&[usize], &[usize], bool); 4] = [
        (&[37], &[37], false),
        (&[4, 5, 3], &[5, 1], false),
        (&[2, 1, 3], &[4, 1], false),
        (&[6, 7], &[7], true),
    ];
    for (sa, sb, transposed) in cases {
        let what = |s: &str| format!("{s} {sa:?} {sb:?} transposed={transposed} {p}");
        let na: usize = sa.iter().product();
        let (a, af) = rand_x::<X>(rng, na, -2.0, 2.0);
        let (b, bf) = rand_x::<X>(rng, sb.iter().product(), 0.5, 2.0);
        let at_ = if transposed {
            // The same values stored transposed: a [7, 6] tensor viewed as [6, 7].
            Tensor::from_vec(af, &[sa[1], sa[0]]).t()
        } else {
            Tensor::from_vec(af, sa)
        };
        let bt = Tensor::from_vec(bf, sb);
        let shape = broadcast_shapes("test", at_.shape(), bt.shape());
        let layout = Strided::new(
            &shape,
            &[
                &contiguous_strides(&shape),
                &broadcast_strides(at_.shape(), at_.strides(), &shape),
                &broadcast_strides(bt.shape(), bt.strides(), &shape),
            ],
        );
        let (ab, bb) = (up(gpu, &a), up(gpu, &b));
        let n: usize = shape.iter().product();
        for op in [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div] {
            let out = nan::<X>(gpu, n);
            ew::binary(
                gpu,
                kernel_binary(op),
                out.ptr(),
                ab.ptr(),
                bb.ptr(),
                &layout,
            )
            .unwrap();
            let cpu = backend::binary(op, &at_, &bt);
            assert_close(&what(op.name()), &down(&out), &want(&cpu), tol::<X>(0.0));
        }

        // masked_fill with b's layout as the mask (0 or 1), when it broadcasts to a's shape.
        if shape == at_.shape() {
            let m: Vec<X> = (0..bt.numel())
                .map(|_| X::from_f32(rng.below(2) as f32))
                .collect();
            let mt = Tensor::from_vec(m.iter().map(|v| v.to_f32()).collect(), sb);
            let mb = up(gpu, &m);
            let out = nan::<X>(gpu, n);
            ew::masked_fill(gpu, out.ptr(), ab.ptr(), mb.ptr(), &layout, -4096.0).unwrap();
            let cpu = backend::masked_fill(&at_, &mt, -4096.0);
            assert_close(&what("masked_fill"), &down(&out), &want(&cpu), 0.0);
        }
    }
    for dims in [[2, 3, 5], [1, 4, 4], [3, 1, 1]] {
        let n = dims.iter().product();
        let (x, xf) = rand_x::<X>(rng, n, -1.0, 1.0);
        let cpu = backend::causal_fill(&Tensor::from_vec(xf, &dims), -8.0);
        let (xb, out) = (up(gpu, &x), nan::<X>(gpu, n));
        ew::causal_fill(gpu, out.ptr(), xb.ptr(), dims[1], dims[2], -8.0).unwrap();
        let what = format!("causal_fill {dims:?} {p}");
        assert_close(&what, &down(&out), &want(&cpu), 0.0);
        ew::causal_fill(gpu, xb.ptr(), xb.ptr(), dims[1], dims[2], -8.0).unwrap();
        assert_close(&(what + " in place"), &down(&xb), &want(&cpu), 0.0);
    }
}

#[test]
fn binary_ops_and_masks_match_the_cpu() {
    let Some(gpu) = for_tests("binary_ops_and_masks_match_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(23);
    binary_case::<f32>(&gpu, &mut rng);
    binary_case::<bf16>(&gpu, &mut rng);
}

// ---- reductions ---------------------------------------------------------------------------

fn reduce_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng) {
    let p = X::PRECISION.name();
    // Every kernel: rows by warps ([3, 7] axis 1), a long row by a block ([2, 8200] axis 1),
    // column sums over many blocks ([70, 5] axis 0), one thread per lane (the others).
    let cases: [(&[usize], usize); 6] = [
        (&[3, 7], 1),
        (&[2, 8200], 1),
        (&[70, 5], 0),
        (&[2, 9, 7], 1),
        (&[4, 3, 2], 0),
        (&[1], 0),
    ];
    for (shape, a) in cases {
        let what = |s: &str| format!("{s} {shape:?} axis {a} {p}");
        let n: usize = shape.iter().product();
        let axis = Axis::of(shape, a);
        let lanes = axis.outer * axis.inner;
        for ties in [false, true] {
            let (mut x, _) = rand_x::<X>(rng, n, -2.0, 2.0);
            if ties {
                x.iter_mut()
                    .for_each(|v| *v = X::from_f32(v.to_f32().round()));
            }
            let xt = Tensor::from_vec(x.iter().map(|v| v.to_f32()).collect(), shape);
            let xb = up(gpu, &x);
            if !ties {
                let out = nan::<X>(gpu, lanes);
                reduce::sum_axis(gpu, out.ptr(), xb.ptr(), axis).unwrap();
                let cpu = backend::sum_axis(&xt, a);
                assert_close(&what("sum_axis"), &down(&out), &want(&cpu), tol::<X>(1e-5));
            }
            let y = nan::<X>(gpu, lanes);
            reduce::max_axis(gpu, y.ptr(), xb.ptr(), axis).unwrap();
            let ycpu = backend::max_axis(&xt, a);
            let what = |s: &str| what(s) + if ties { " ties" } else { "" };
            assert_close(&what("max_axis"), &down(&y), &want(&ycpu), 0.0);

            let (g, gf) = rand_x::<X>(rng, lanes, -1.0, 1.0);
            let gt = Tensor::from_vec(gf, ycpu.shape());
            let (gb, dx) = (up(gpu, &g), nan::<X>(gpu, n));
            reduce::max_axis_backward(gpu, dx.ptr(), xb.ptr(), y.ptr(), gb.ptr(), axis).unwrap();
            let cpu = backend::max_axis_backward(&xt, &ycpu, &gt, a);
            assert_close(&what("max_axis_backward"), &down(&dx), &want(&cpu), 0.0);
        }
    }
}

#[test]
fn reductions_match_the_cpu() {
    let Some(gpu) = for_tests("reductions_match_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(24);
    reduce_case::<f32>(&gpu, &mut rng);
    reduce_case::<bf16>(&gpu, &mut rng);

    // The sum to a scalar is fp32 in, fp32 out: against f64.
    for n in [1, 37, 2000] {
        let x: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        let out = nan::<f32>(&gpu, 1);
        let scale = 1.0 / n as f32;
        reduce::sum_to_scalar(&gpu, out.ptr(), up(&gpu, &x).ptr(), scale).unwrap();
        let sum: f64 = x.iter().map(|&v| v as f64).sum();
        let what = format!("sum_to_scalar n={n}");
        let want = [sum * scale as f64];
        // Relative to Σ|x|·scale, the size of the terms (the sum itself may cancel).
        let size: f64 = x.iter().map(|&v| v.abs() as f64).sum::<f64>() * scale as f64;
        let got = down(&out)[0];
        assert!(
            (got - want[0]).abs() <= 1e-6 * size,
            "{what}: {got} vs {want:?}"
        );
    }
}

// ---- softmax ------------------------------------------------------------------------------

fn softmax_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng) {
    let p = X::PRECISION.name();
    for shape in [[3, 7], [2, 33], [4, 130]] {
        let n = shape[0] * shape[1];
        let rows = Rows::of(&shape);
        for log in [false, true] {
            let what = |s: &str| format!("{s} {shape:?} log={log} {p}");
            let (x, xf) = rand_x::<X>(rng, n, -4.0, 4.0);
            let cpu = backend::softmax(&Tensor::from_vec(xf, &shape), log);
            let (xb, yb) = (up(gpu, &x), nan::<X>(gpu, n));
            sm::softmax_forward(gpu, yb.ptr(), xb.ptr(), rows, log).unwrap();
            let y = down(&yb);
            assert_close(&what("softmax_forward"), &y, &want(&cpu), tol::<X>(1e-5));

            // Backward from the GPU's own y, on both sides; in place (dx = g).
            let yt = Tensor::from_vec(y.iter().map(|&v| v as f32).collect(), &shape);
            let (g, gf) = rand_x::<X>(rng, n, -1.0, 1.0);
            let cpu = backend::softmax_backward(&yt, &Tensor::from_vec(gf, &shape), log);
            let gb = up(gpu, &g);
            sm::softmax_backward(gpu, gb.ptr(), yb.ptr(), gb.ptr(), rows, log).unwrap();
            assert_close(
                &what("softmax_backward"),
                &down(&gb),
                &want(&cpu),
                tol::<X>(1e-5),
            );
        }
    }
    let scale = 0.35;
    for dims in [[2, 3, 5], [1, 4, 4], [2, 1, 1], [1, 2, 70]] {
        let what = |s: &str| format!("{s} {dims:?} {p}");
        let n = dims.iter().product();
        let shape = Causal::of(&dims);
        let (x, xf) = rand_x::<X>(rng, n, -6.0, 6.0);
        let cpu = backend::causal_softmax(&Tensor::from_vec(xf, &dims), scale as f64);
        let (xb, yb) = (up(gpu, &x), nan::<X>(gpu, n));
        sm::causal_softmax_forward(gpu, yb.ptr(), xb.ptr(), shape, scale).unwrap();
        let y = down(&yb);
        assert_close(
            &what("causal_softmax_forward"),
            &y,
            &want(&cpu),
            tol::<X>(1e-5),
        );

        let yt = Tensor::from_vec(y.iter().map(|&v| v as f32).collect(), &dims);
        let (g, gf) = rand_x::<X>(rng, n, -1.0, 1.0);
        let cpu = backend::causal_softmax_backward(&yt, &Tensor::from_vec(gf, &dims), scale as f64);
        let (gb, dx) = (up(gpu, &g), nan::<X>(gpu, n));
        sm::causal_softmax_backward(gpu, dx.ptr(), yb.ptr(), gb.ptr(), shape, scale).unwrap();
        assert_close(
            &what("causal_softmax_backward"),
            &down(&dx),
            &want(&cpu),
            tol::<X>(1e-5),
        );
    }
}

#[test]
fn softmax_matches_the_cpu() {
    let Some(gpu) = for_tests("softmax_matches_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(25);
    softmax_case::<f32>(&gpu, &mut rng);
    softmax_case::<bf16>(&gpu, &mut rng);
}

// ---- embedding ----------------------------------------------------------------------------

fn embedding_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng) {
    let p = X::PRECISION.name();
    for (rows, dim, vocab) in [(1, 1, 1), (7, 3, 5), (40, 33, 6), (9, 300, 11)] {
        let what = |s: &str| format!("{s} rows={rows} dim={dim} vocab={vocab} {p}");
        // Ids from all but the last row of the table (a row that gets no gradient).
        let ids: Vec<u32> = (0..rows)
            .map(|_| rng.below(vocab.max(2) as u64 - 1) as u32)
            .collect();
        let (w, wf) = rand_x::<X>(rng, vocab * dim, -1.0, 1.0);
        let wt = Tensor::from_vec(wf, &[vocab, dim]);
        let cpu = backend::embedding(&wt, &ids, &[rows]);
        let ids_i32: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
        let (wb, idb, out) = (up(gpu, &w), ints(gpu, &ids_i32), nan::<X>(gpu, rows * dim));
        emb::embedding_forward(gpu, out.ptr(), wb.ptr(), idb.ptr(), dim).unwrap();
        assert_close(&what("embedding_forward"), &down(&out), &want(&cpu), 0.0);

        let (g, gf) = rand_x::<X>(rng, rows * dim, -1.0, 1.0);
        let cpu = Tensor::zeros(&[vocab, dim]);
        backend::add_rows(&cpu, &Tensor::from_vec(gf, &[rows, dim]), &ids);
        let buckets = EmbeddingBuckets::new(&ids, vocab).upload(gpu).unwrap();
        let (gb, dw) = (up(gpu, &g), nan::<X>(gpu, vocab * dim));
        emb::embedding_backward(gpu, dw.ptr(), gb.ptr(), &buckets, dim).unwrap();
        assert_close(
            &what("embedding_backward"),
            &down(&dw),
            &want(&cpu),
            tol::<X>(1e-5),
        );
    }
}

#[test]
fn embedding_matches_the_cpu() {
    let Some(gpu) = for_tests("embedding_matches_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(26);
    embedding_case::<f32>(&gpu, &mut rng);
    embedding_case::<bf16>(&gpu, &mut rng);

    // An id outside the table gives a NaN row forward and no gradient backward.
    let (dim, vocab) = (4, 3);
    let w = up(&gpu, &vec![1.0f32; vocab * dim]);
    let ids = ints(&gpu, &[0, 7, 2]);
    let out = Buffer::<f32>::zeros(&gpu, 3 * dim).unwrap();
    emb::embedding_forward(&gpu, out.ptr(), w.ptr(), ids.ptr(), dim).unwrap();
    let got = out.to_host().unwrap();
    assert!(got[..dim].iter().all(|&v| v == 1.0) && got[dim..2 * dim].iter().all(|v| v.is_nan()));
    let buckets = EmbeddingBuckets::new(&[0, 7, 2], vocab)
        .upload(&gpu)
        .unwrap();
    let dw = nan::<f32>(&gpu, vocab * dim);
    emb::embedding_backward(&gpu, dw.ptr(), up(&gpu, &[1.0f32; 12]).ptr(), &buckets, dim).unwrap();
    let rows: Vec<f32> = dw.to_host().unwrap().chunks(dim).map(|r| r[0]).collect();
    assert_eq!(rows, [1.0, 0.0, 1.0]);
}

// ---- cross-entropy ------------------------------------------------------------------------

fn cross_entropy_case<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng) {
    let p = X::PRECISION.name();
    const IGNORE: u32 = u32::MAX;
    for (rows, cols) in [(1, 1), (6, 7), (9, 300)] {
        let what = |s: &str| format!("{s} rows={rows} cols={cols} {p}");
        let (x, xf) = rand_x::<X>(rng, rows * cols, -5.0, 5.0);
        let targets: Vec<u32> = (0..rows)
            .map(|r| {
                if r % 3 == 1 {
                    IGNORE
                } else {
                    rng.below(cols as u64) as u32
                }
            })
            .collect();
        let xt = Tensor::from_vec(xf, &[rows, cols]);
        let t = backend::Targets {
            ids: &targets,
            ignore: Some(IGNORE),
        };
        let (loss, lse, count) = backend::cross_entropy(&xt, t);
        let upstream = Tensor::scalar(0.7);
        let dx_cpu = backend::cross_entropy_backward(&xt, &lse, t, &upstream);

        let tb = ints(gpu, &ce::device_targets(&targets, Some(IGNORE)));
        let xb = up(gpu, &x);
        let logits = Logits {
            logits: xb.ptr(),
            targets: tb.ptr(),
            rows,
            cols,
        };
        let (losses, lse_d) = (nan::<f32>(gpu, rows), nan::<f32>(gpu, rows));
        ce::cross_entropy_forward(gpu, losses.ptr(), lse_d.ptr(), logits).unwrap();
        assert_close(&what("lse"), &down(&lse_d), &want(&lse), 1e-5);
        let mean = nan::<f32>(gpu, 1);
        let scale = 1.0 / count.max(1) as f32;
        reduce::sum_to_scalar(gpu, mean.ptr(), losses.ptr(), scale).unwrap();
        assert_close(&what("mean loss"), &down(&mean), &want(&loss), 1e-5);

        let dloss = up(gpu, &[0.7f32]);
        let dx = nan::<X>(gpu, rows * cols);
        ce::cross_entropy_backward(gpu, dx.ptr(), logits, lse_d.ptr(), dloss.ptr(), scale).unwrap();
        let dx_got = down(&dx);
        assert_close(&what("dlogits"), &dx_got, &want(&dx_cpu), tol::<X>(1e-5));
        // In place over the logits: the same bits.
        ce::cross_entropy_backward(gpu, xb.ptr(), logits, lse_d.ptr(), dloss.ptr(), scale).unwrap();
        assert_eq!(down(&xb), dx_got, "{}", what("in place"));
    }
}

#[test]
fn cross_entropy_matches_the_cpu() {
    let Some(gpu) = for_tests("cross_entropy_matches_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(27);
    cross_entropy_case::<f32>(&gpu, &mut rng);
    cross_entropy_case::<bf16>(&gpu, &mut rng);
}

/// The reductions with many partial sums give the same bits every run: the embedding gradient
/// of a batch full of repeats, column sums over several blocks, the loss and its gradient.
#[test]
fn generic_reductions_are_deterministic() {
    let Some(gpu) = for_tests("generic_reductions_are_deterministic") else {
        return;
    };
    let mut rng = Rng::new(28);
    let (rows, dim, vocab) = (300, 40, 5);
    let ids: Vec<u32> = (0..rows).map(|_| rng.below(vocab as u64) as u32).collect();
    let (g, _) = rand_x::<bf16>(&mut rng, rows * dim, -1.0, 1.0);
    let gb = up(&gpu, &g);
    let buckets = EmbeddingBuckets::new(&ids, vocab).upload(&gpu).unwrap();
    let targets = ints(&gpu, &ce::device_targets(&ids, None));
    let logits = Logits {
        logits: gb.ptr(),
        targets: targets.ptr(),
        rows,
        cols: dim,
    };
    let dloss = up(&gpu, &[1.0f32]);
    let run = || {
        let dw = nan::<bf16>(&gpu, vocab * dim);
        emb::embedding_backward(&gpu, dw.ptr(), gb.ptr(), &buckets, dim).unwrap();
        let cols = nan::<bf16>(&gpu, dim);
        let axis = Axis::of(&[rows, dim], 0);
        reduce::sum_axis(&gpu, cols.ptr(), gb.ptr(), axis).unwrap();
        let (losses, lse) = (nan::<f32>(&gpu, rows), nan::<f32>(&gpu, rows));
        ce::cross_entropy_forward(&gpu, losses.ptr(), lse.ptr(), logits).unwrap();
        let mean = nan::<f32>(&gpu, 1);
        reduce::sum_to_scalar(&gpu, mean.ptr(), losses.ptr(), 1.0 / rows as f32).unwrap();
        let dx = nan::<bf16>(&gpu, rows * dim);
        ce::cross_entropy_backward(&gpu, dx.ptr(), logits, lse.ptr(), dloss.ptr(), 0.01).unwrap();
        let bits = |v: Vec<bf16>| v.iter().map(|x| x.to_bits() as u32).collect::<Vec<u32>>();
        [
            bits(dw.to_host().unwrap()),
            bits(cols.to_host().unwrap()),
            vec![mean.to_host().unwrap()[0].to_bits()],
            bits(dx.to_host().unwrap()),
        ]
    };
    let first = run();
    assert_eq!(first, run(), "results differ between runs");
}

/// The kernel op of a backend op (GELU has kernels of its own).
fn kernel_op(op: Unary) -> UnaryOp {
    match op {
        Unary::Neg => UnaryOp::Neg,
        Unary::Exp => UnaryOp::Exp,
        Unary::Log => UnaryOp::Log,
        Unary::Sqrt => UnaryOp::Sqrt,
        Unary::Tanh => UnaryOp::Tanh,
        Unary::Relu => UnaryOp::Relu,
        Unary::Powf(p) => UnaryOp::Powf(p as f32),
        Unary::AddScalar(c) => UnaryOp::AddScalar(c as f32),
        Unary::MulScalar(c) => UnaryOp::MulScalar(c as f32),
        Unary::Gelu => panic!("GELU has its own kernels"),
    }
}

fn kernel_binary(op: Binary) -> BinaryOp {
    match op {
        Binary::Add => BinaryOp::Add,
        Binary::Sub => BinaryOp::Sub,
        Binary::Mul => BinaryOp::Mul,
        Binary::Div => BinaryOp::Div,
    }
}
