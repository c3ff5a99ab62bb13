//! Every matmul version against an f64 reference, on random shapes (1, 7, 33, 127, non-multiples
//! of every tile), all four layout combinations, with and without accumulate.
//!
//! Tolerance: each entry of C is a dot product of length k, so its rounding error is bounded by
//! about `k · u · Σ_p |a_ip·b_pj|` (u = 2⁻²⁴, any summation order). We require
//! `|c - ref| ≤ 2·k·u · Σ_p |a_ip·b_pj| + 1e-30` for every entry, i.e. within the textbook bound.

use crate::common::{Draw, Rng};
use pretrain::tensor::cpu::matmul::v4_simd::{Isa, gemm_v4_isa};
use pretrain::tensor::cpu::matmul::{GemmFn, Layout, VERSIONS, gemm};

/// (A, B) stored with the given layouts, and the f64 reference product with its error scale.
fn reference(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ta: Layout,
    b: &[f32],
    tb: Layout,
) -> (Vec<f64>, Vec<f64>) {
    let at = |i: usize, p: usize| match ta {
        Layout::N => a[i * k + p],
        Layout::T => a[p * m + i],
    } as f64;
    let bt = |p: usize, j: usize| match tb {
        Layout::N => b[p * n + j],
        Layout::T => b[j * k + p],
    } as f64;
    let mut out = vec![0.0; m * n];
    let mut scale = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                out[i * n + j] += at(i, p) * bt(p, j);
                scale[i * n + j] += (at(i, p) * bt(p, j)).abs();
            }
        }
    }
    (out, scale)
}

const LAYOUTS: [(Layout, Layout); 4] = [
    (Layout::N, Layout::N),
    (Layout::N, Layout::T),
    (Layout::T, Layout::N),
    (Layout::T, Layout::T),
];

fn check(rng: &mut Rng, m: usize, k: usize, n: usize, versions: &[&str]) {
    for (ta, tb) in LAYOUTS {
        let a = rng.uniform_vec(m * k);
        let b = rng.uniform_vec(k * n);
        let c0 = rng.uniform_vec(m * n);
        let (prod, scale) = reference(m, k, n, &a, ta, &b, tb);
        let tol = 2.0 * k.max(1) as f64 * f32::EPSILON as f64 / 2.0;
        // Every listed version, plus the `gemm` entry point (with its m == 1 / n == 1 path).
        let entry: (&str, GemmFn) = ("gemm", gemm);
        let chosen = VERSIONS.iter().filter(|(v, _)| versions.contains(v));
        for &(name, f) in chosen.chain([&entry]) {
            for accumulate in [false, true] {
                // Start from garbage (NaN) when overwriting, to prove C is not read.
                let mut c = if accumulate {
                    c0.clone()
                } else {
                    vec![f32::NAN; m * n]
                };
                f(m, k, n, &a, ta, &b, tb, &mut c, accumulate);
                for idx in 0..m * n {
                    let base = if accumulate { c0[idx] as f64 } else { 0.0 };
                    let want = base + prod[idx];
                    let bound = tol * (scale[idx] + base.abs()) + 1e-30;
                    let err = (c[idx] as f64 - want).abs();
                    assert!(
                        err <= bound,
                        "{name} {m}x{k}x{n} {ta:?}{tb:?} acc={accumulate}: C[{},{}] = {} want {want} \
                         (err {err:e} > bound {bound:e})",
                        idx / n,
                        idx % n,
                        c[idx]
                    );
                }
            }
        }
    }
}

const ALL: [&str; 5] = ["v1", "v2", "v3", "v4", "v5"];

#[test]
fn small_and_odd_shapes_every_version() {
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    let sizes = [1, 2, 7, 33];
    for &m in &sizes {
        for &k in &sizes {
            for &n in &sizes {
                check(&mut rng, m, k, n, &ALL);
            }
        }
    }
}

#[test]
fn non_multiples_of_every_tile() {
    let mut rng = Rng::new(42);
    // 127 and 65/129 cross the 6-, 8-, 16- and 64-wide tiles; 1 is a matrix-vector product.
    for (m, k, n) in [
        (127, 33, 65),
        (7, 127, 129),
        (1, 127, 127),
        (127, 1, 7),
        (13, 70, 1),
    ] {
        check(&mut rng, m, k, n, &ALL);
    }
}

#[test]
fn larger_than_one_cache_block() {
    // k > KC, n > NC and m > MC for every micro-kernel, so every blocking loop runs twice or
    // more, plus both of v5's ways of splitting work (by columns when n > m, by rows otherwise).
    let mut rng = Rng::new(7);
    for (m, k, n) in [
        (200, 700, 1100),
        (3, 500, 2100),
        (2100, 500, 3),
        (1100, 700, 200),
    ] {
        check(&mut rng, m, k, n, &["v3", "v4", "v5"]);
    }
}

#[test]
fn v5_parallel_paths_on_three_threads() {
    // Whatever the machine's core count, run v5's two paths (by rows: tall; by columns: wide)
    // on a pool of three threads, with uneven units.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let mut rng = Rng::new(99);
    pool.install(|| {
        for (m, k, n) in [
            (131, 400, 530),
            (5, 300, 1500),
            (530, 400, 131),
            (1500, 300, 5),
        ] {
            check(&mut rng, m, k, n, &["v5"]);
        }
    });
}

#[test]
fn every_micro_kernel_this_cpu_has() {
    // gemm_v4 uses the best kernel; run the others too (AVX2 on an AVX-512 machine, portable).
    let mut rng = Rng::new(5);
    for isa in Isa::available() {
        for (m, k, n) in [(7, 33, 17), (127, 400, 530), (1, 5, 70)] {
            for (ta, tb) in LAYOUTS {
                let a = rng.uniform_vec(m * k);
                let b = rng.uniform_vec(k * n);
                let (prod, scale) = reference(m, k, n, &a, ta, &b, tb);
                let mut c = vec![f32::NAN; m * n];
                gemm_v4_isa(isa, m, k, n, &a, ta, &b, tb, &mut c, false);
                for i in 0..m * n {
                    let bound = k as f64 * f32::EPSILON as f64 * scale[i] + 1e-30;
                    assert!(
                        (c[i] as f64 - prod[i]).abs() <= bound,
                        "{isa:?} {m}x{k}x{n} {ta:?}{tb:?}: entry {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn zero_sized_dimensions() {
    let mut rng = Rng::new(3);
    for (m, k, n) in [(0, 5, 3), (4, 0, 3), (4, 5, 0)] {
        check(&mut rng, m, k, n, &ALL);
    }
}

#[test]
fn gemm_entry_point_matches_reference() {
    let mut rng = Rng::new(11);
    let (m, k, n) = (64, 96, 80);
    let a = rng.uniform_vec(m * k);
    let b = rng.uniform_vec(k * n);
    let (prod, scale) = reference(m, k, n, &a, Layout::N, &b, Layout::T);
    let mut c = vec![0.0; m * n];
    gemm(m, k, n, &a, Layout::N, &b, Layout::T, &mut c, false);
    for i in 0..m * n {
        assert!((c[i] as f64 - prod[i]).abs() <= k as f64 * 6e-8 * scale[i]);
    }
}

#[test]
#[should_panic(expected = "gemm: shape mismatch")]
fn shape_mismatch_panics_with_shapes() {
    let mut c = vec![0.0; 4];
    gemm(
        2,
        3,
        2,
        &[0.0; 5],
        Layout::N,
        &[0.0; 6],
        Layout::N,
        &mut c,
        false,
    );
}
