//! Every GPU matmul version against an f64 reference computed on the CPU from the same inputs
//! (rounded to bf16 first in bf16 mode): every layout (ta, tb), with and without accumulate and
//! bias, on odd sizes that leave partial tiles on every edge. Runs on a GPU, and without one on
//! the CPU emulator of `tools/cuda-emu` (`scripts/gpu-check.sh` runs them on a real one).
//!
//! Tolerances, relative to the scale of the case, max over C of |op(A)·op(B)| + |bias| + |C₀|
//! (= max|ref| unless the terms cancel; cuBLAS with accumulate and bias rounds C₀ + bias to
//! bf16 before adding the product, an error on the scale of the terms, not of their sum):
//! - fp32: max |c - ref| ≤ 1e-5 · max(1, √k / 4) · scale (fp32 sums of k terms round about
//!   √k times more than one product; the actual errors are ~1e-7 · √k);
//! - bf16: max |c - ref| ≤ 3.9e-3 · scale: the output itself is rounded to bf16's 8-bit
//!   mantissa (at most 2⁻⁹ ≈ 1.95e-3 of it); twice that is the bound.
//!
//! Before a non-accumulating call C is filled with NaN, so an element a kernel forgot to write, or
//! one it read before writing, fails the test.

use half::bf16;
use pretrain::tensor::cuda::device::for_tests;
use std::sync::Arc;

/// Every version the device has: all of them on a GPU; ours only on the CPU emulator (no cuBLAS).
fn versions(gpu: &Gpu) -> Vec<Version> {
    let all = Version::all().iter().copied();
    all.filter(|&v| !(gpu.is_emulated() && v == Version::Cublas))
        .collect()
}
use pretrain::tensor::Rng;
use pretrain::tensor::cuda::matmul::{self, Gemm, Operand, Version};
use pretrain::tensor::cuda::{Buffer, Gpu, GpuFloat, Precision, ptxas, sources};

/// (m, k, n): single elements, odd sizes around the tile sizes (32, 128), sizes that are
/// multiples of 8 (the vector paths), and a GPT-2 layer scaled down (B·T = 128 rows, C = 96:
/// the qkv, attention-projection, and MLP matmuls).
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (7, 33, 1),
    (1, 7, 33),
    (33, 7, 127),
    (127, 129, 33),
    (129, 257, 7),
    (257, 127, 129),
    (136, 264, 200),
    (128, 96, 288),
    (128, 96, 96),
    (128, 96, 384),
    (128, 384, 96),
];

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// The inputs of one case, as stored on the GPU and as the f64 the reference uses.
struct Case<X> {
    a: Vec<X>,
    b: Vec<X>,
    c0: Vec<X>,
    bias: Vec<X>,
}

impl<X: GpuFloat> Case<X> {
    fn new(rng: &mut Rng, m: usize, k: usize, n: usize) -> Case<X> {
        let mut v = |len| -> Vec<X> { random(rng, len).into_iter().map(X::from_f32).collect() };
        Case {
            a: v(m * k),
            b: v(k * n),
            c0: v(m * n),
            bias: v(n),
        }
    }
}

/// op(A)·op(B) in f64, from the stored values.
fn product<X: GpuFloat>(
    m: usize,
    k: usize,
    n: usize,
    a: &[X],
    ta: bool,
    b: &[X],
    tb: bool,
) -> Vec<f64> {
    let mut out = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let x = if ta { a[p * m + i] } else { a[i * k + p] };
                let y = if tb { b[j * k + p] } else { b[p * n + j] };
                s += x.to_f32() as f64 * y.to_f32() as f64;
            }
            out[i * n + j] = s;
        }
    }
    out
}

fn tolerance(p: Precision, k: usize) -> f64 {
    match p {
        Precision::F32 => 1e-5 * ((k as f64).sqrt() / 4.0).max(1.0),
        Precision::Bf16 => 3.9e-3,
    }
}

/// Runs version `v` on one case and checks every element.
fn check_one<X: GpuFloat>(
    gpu: &Arc<Gpu>,
    v: Version,
    (m, k, n): (usize, usize, usize),
    case: &Case<X>,
    prod: &[f64],
    (ta, tb): (bool, bool),
    (accumulate, with_bias): (bool, bool),
) {
    let a = Buffer::from_host(gpu, &case.a).unwrap();
    let b = Buffer::from_host(gpu, &case.b).unwrap();
    let bias = Buffer::from_host(gpu, &case.bias).unwrap();
    let start: Vec<X> = if accumulate {
        case.c0.clone()
    } else {
        vec![X::from_f32(f32::NAN); m * n]
    };
    let c = Buffer::from_host(gpu, &start).unwrap();
    let what = format!(
        "{} {} {m}x{k}x{n} ta={ta} tb={tb} accumulate={accumulate} bias={with_bias}",
        v.name(),
        X::PRECISION.name()
    );
    let g = Gemm {
        m,
        k,
        n,
        a: Operand {
            ptr: a.ptr(),
            transposed: ta,
        },
        b: Operand {
            ptr: b.ptr(),
            transposed: tb,
        },
        c: c.ptr(),
        bias: with_bias.then(|| bias.ptr()),
        accumulate,
    };
    matmul::gemm(gpu, v, &g).unwrap_or_else(|e| panic!("{what}: {e:#}"));
    gpu.sync().unwrap_or_else(|e| panic!("{what}: {e:#}"));
    let got = c.to_host().unwrap();
    // (reference, |terms|) per element of C.
    let want: Vec<(f64, f64)> = (0..m * n)
        .map(|idx| {
            let (mut w, mut size) = (prod[idx], prod[idx].abs());
            if with_bias {
                let x = case.bias[idx % n].to_f32() as f64;
                (w, size) = (w + x, size + x.abs());
            }
            if accumulate {
                let x = case.c0[idx].to_f32() as f64;
                (w, size) = (w + x, size + x.abs());
            }
            (w, size)
        })
        .collect();
    let scale = want.iter().fold(1e-30f64, |acc, w| acc.max(w.1));
    let tol = tolerance(X::PRECISION, k) * scale;
    for (idx, (g, (w, _))) in got.iter().zip(&want).enumerate() {
        let g = g.to_f32() as f64;
        assert!(
            (g - w).abs() <= tol,
            "{what}: C[{}, {}] = {g}, want {w} (tolerance {tol:.3e})",
            idx / n,
            idx % n
        );
    }
}

/// Every version for storage X, on every shape, layout, accumulate and bias setting.
fn check_all<X: GpuFloat>(gpu: &Arc<Gpu>, versions: &[Version]) {
    let mut rng = Rng::new(0x6d61_746d);
    for &(m, k, n) in SHAPES {
        let case = Case::<X>::new(&mut rng, m, k, n);
        for layout in [(false, false), (false, true), (true, false), (true, true)] {
            let prod = product(m, k, n, &case.a, layout.0, &case.b, layout.1);
            for &v in versions.iter().filter(|v| v.supports(X::PRECISION)) {
                for accumulate in [false, true] {
                    for bias in [false, true] {
                        let flags = (accumulate, bias);
                        check_one(gpu, v, (m, k, n), &case, &prod, layout, flags);
                    }
                }
            }
        }
    }
}

#[test]
fn fp32_versions_match_the_f64_reference() {
    let Some(gpu) = for_tests("fp32_versions_match_the_f64_reference") else {
        return;
    };
    check_all::<f32>(&gpu, &versions(&gpu));
}

#[test]
fn bf16_versions_match_the_f64_reference() {
    let Some(gpu) = for_tests("bf16_versions_match_the_f64_reference") else {
        return;
    };
    check_all::<bf16>(&gpu, &versions(&gpu));
}

/// Views that start one element into their buffer are not 16-byte aligned: the vector loads
/// and stores of v3 and v4 must fall back to element-by-element copies and still be right.
fn misaligned<X: GpuFloat>(gpu: &Arc<Gpu>) {
    let mut rng = Rng::new(99);
    let (m, k, n) = (72, 80, 64); // multiples of 8, so only the addresses are misaligned
    let case = Case::<X>::new(&mut rng, m, k, n);
    let prod = product(m, k, n, &case.a, false, &case.b, false);
    let want: Vec<f64> = (0..m * n)
        .map(|i| prod[i] + case.c0[i].to_f32() as f64)
        .collect();
    let max_ref = want.iter().fold(0.0f64, |acc, w| acc.max(w.abs()));
    let tol = tolerance(X::PRECISION, k) * max_ref;
    // One extra element in front of each matrix.
    let shifted = |data: &[X]| {
        let mut v = vec![X::from_f32(0.0)];
        v.extend_from_slice(data);
        Buffer::from_host(gpu, &v).unwrap()
    };
    let (a, b) = (shifted(&case.a), shifted(&case.b));
    for &v in versions(gpu).iter().filter(|v| v.supports(X::PRECISION)) {
        let c = shifted(&case.c0);
        let g = Gemm {
            m,
            k,
            n,
            a: Operand::n(a.ptr().slice(1, m * k)),
            b: Operand::n(b.ptr().slice(1, k * n)),
            c: c.ptr().slice(1, m * n),
            bias: None,
            accumulate: true,
        };
        matmul::gemm(gpu, v, &g).unwrap();
        let got = c.to_host().unwrap();
        assert_eq!(got[0].to_f32(), 0.0, "{} wrote before C", v.name());
        for (idx, w) in want.iter().enumerate() {
            let g = got[idx + 1].to_f32() as f64;
            assert!(
                (g - w).abs() <= tol,
                "{} {} misaligned: C[{idx}] = {g}, want {w}",
                v.name(),
                X::PRECISION.name()
            );
        }
    }
}

#[test]
fn misaligned_views_take_the_scalar_paths() {
    let Some(gpu) = for_tests("misaligned_views_take_the_scalar_paths") else {
        return;
    };
    misaligned::<f32>(&gpu);
    misaligned::<bf16>(&gpu);
}

/// Asking for tensor cores with fp32 storage is an error, not a wrong answer.
#[test]
fn tensor_cores_refuse_fp32() {
    let Some(gpu) = for_tests("tensor_cores_refuse_fp32") else {
        return;
    };
    let x = Buffer::<f32>::zeros(&gpu, 4).unwrap();
    let g = Gemm {
        m: 2,
        k: 2,
        n: 2,
        a: Operand::n(x.ptr()),
        b: Operand::n(x.ptr()),
        c: x.ptr(),
        bias: None,
        accumulate: false,
    };
    let err = matmul::gemm(&gpu, Version::V4TensorCore, &g).unwrap_err();
    assert!(err.to_string().contains("bf16"), "{err}");
}

/// The version list and names need no GPU.
#[test]
fn versions_are_listed_and_named() {
    let names: Vec<&str> = Version::all().iter().map(|v| v.name()).collect();
    assert_eq!(names, ["v1", "v2", "v3", "v4", "cublas"]);
    assert_eq!(matmul::best::<bf16>(), Version::V4TensorCore);
    assert_eq!(matmul::best::<f32>(), Version::V3Register);
    assert!(!Version::V4TensorCore.supports(Precision::F32));
    assert!(Version::all().iter().all(|v| v.supports(Precision::Bf16)));
}

/// The register-blocked and tensor-core kernels keep their tiles in registers: ptxas must not
/// spill any of them to local memory (a spill in the inner loop costs several times the kernel's
/// speed). Needs NVRTC only; without it the test skips, except under CI (which has it).
#[test]
fn fast_kernels_do_not_spill() {
    if !crate::common::nvrtc_or_skip("fast_kernels_do_not_spill") {
        return;
    }
    let cases = [
        ("matmul_v3_register.cu", Precision::F32, "matmul_v3"),
        ("matmul_v3_register.cu", Precision::Bf16, "matmul_v3"),
        ("matmul_v4_tensorcore.cu", Precision::Bf16, "matmul_v4"),
    ];
    for (file, precision, kernel) in cases {
        let log = sources::compile(file, 90, precision, true).unwrap().log;
        let report = ptxas::parse(&log);
        let r = report
            .iter()
            .find(|r| r.kernel == kernel)
            .unwrap_or_else(|| panic!("{kernel} not in the ptxas report:\n{log}"));
        eprintln!("{file} {}: {r:?}", precision.name());
        assert!(r.registers > 0, "{r:?}");
        assert_eq!(
            (r.spill_stores, r.spill_loads, r.stack_bytes),
            (0, 0, 0),
            "{r:?}"
        );
    }
}
