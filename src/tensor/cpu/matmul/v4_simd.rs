//! v4: v3's loop nest with a hand-written SIMD micro-kernel, chosen at run time.
//!
//! Idea: the micro-kernel is where all the arithmetic happens, so it is the one place worth
//! writing with intrinsics. On x86-64 we check the CPU once (`is_x86_feature_detected!`) and use
//! - AVX-512: a 6×64 tile = 24 zmm accumulators (of 32 registers), 4 loads of B and 6 broadcasts
//!   of A per step for 24 fused multiply-adds (16 floats each);
//! - AVX2+FMA: a 6×16 tile = 12 ymm accumulators (of 16 registers);
//! - otherwise (and on aarch64 or any other target) v3's portable kernel.
//!
//! Cache blocking for the AVX-512 kernel (AMD EPYC here: 32 KiB L1d, 1 MiB L2 per core):
//! an A panel is 6×KC floats = 9 KiB with KC = 384, so it and the streaming B lines fit in L1;
//! a packed B block is KC×NC = 384×512 floats = 768 KiB and stays in L2 while every A panel of
//! the MC rows (up to 2016, in L3) meets it. The AVX-512 kernel also packs a transposed B with
//! 16×16 register transposes (`interleave64`), so `A·Bᵀ` costs no more than `A·B`.
//!
//! Measured (lesson 04, AMD EPYC Zen 4, 1 thread, 1024³): 108 GFLOP/s, 3× v3, and 1.00–1.09×
//! numpy's OpenBLAS on one thread on every benchmark shape and layout (`benches/README.md`).
//! The AVX2 kernel reaches 103 on the same CPU: Zen 4 splits 512-bit FMAs into 256-bit halves.

use super::v3_blocked::{MicroKernel, blocked};
use super::{Layout, View, check_shapes};

/// v4: `C = op(A)·op(B)` (or `+=`) on one thread with the best micro-kernel this CPU supports.
#[allow(clippy::too_many_arguments)]
pub fn gemm_v4(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ta: Layout,
    b: &[f32],
    tb: Layout,
    c: &mut [f32],
    accumulate: bool,
) {
    gemm_v4_isa(Isa::best(), m, k, n, a, ta, b, tb, c, accumulate);
}

/// v4 with a chosen micro-kernel (tests and `kernels` use it to run every one this CPU has).
/// Panics if the CPU lacks `isa`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_v4_isa(
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ta: Layout,
    b: &[f32],
    tb: Layout,
    c: &mut [f32],
    accumulate: bool,
) {
    check_shapes("gemm_v4", m, k, n, a, b, c);
    assert!(
        Isa::available().contains(&isa),
        "gemm_v4: this CPU has no {isa:?}"
    );
    let (a, b) = (View::new(a, m, k, ta), View::new(b, k, n, tb));
    with_kernel!(isa, kern => blocked(kern, m, k, n, a, b, c, n, accumulate));
}

/// The micro-kernels v4 can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 6×64 tile of 512-bit registers (x86-64 with AVX-512F).
    Avx512,
    /// 6×16 tile of 256-bit registers (x86-64 with AVX2 and FMA).
    Avx2,
    /// v3's 4×8 tile in plain Rust (every target).
    Portable,
}

impl Isa {
    /// The micro-kernels this CPU supports, best first.
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|isa| isa.supported())
            .collect()
    }

    fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::Avx512::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::Avx2::detect().is_some(),
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The one v4 uses.
    pub fn best() -> Isa {
        Isa::available()[0]
    }

    /// A short name with the tile size, e.g. `avx512 6x64`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512 6x64",
            Isa::Avx2 => "avx2 6x16",
            Isa::Portable => "portable 4x8",
        }
    }
}

/// Run `$body` with `$kern` bound to the micro-kernel value for `$isa` (each arm has its own
/// type, so `$body` is compiled once per kernel). The caller checks that the CPU has `$isa`.
macro_rules! with_kernel {
    ($isa:expr, $kern:ident => $body:expr) => {
        match $isa {
            #[cfg(target_arch = "x86_64")]
            $crate::tensor::cpu::matmul::v4_simd::Isa::Avx512 => {
                let $kern = $crate::tensor::cpu::matmul::v4_simd::x86::Avx512::detect()
                    .expect("checked by the caller");
                $body
            }
            #[cfg(target_arch = "x86_64")]
            $crate::tensor::cpu::matmul::v4_simd::Isa::Avx2 => {
                let $kern = $crate::tensor::cpu::matmul::v4_simd::x86::Avx2::detect()
                    .expect("checked by the caller");
                $body
            }
            _ => {
                let $kern = $crate::tensor::cpu::matmul::v3_blocked::Portable;
                $body
            }
        }
    };
}
pub(crate) use with_kernel;

/// v4 on strided views, writing `C` with row stride `ldc`: what v5 calls for each thread's part.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_view(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: View,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    with_kernel!(Isa::best(), kern => blocked(kern, m, k, n, a, b, c, ldc, accumulate))
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::MicroKernel;
    use std::arch::x86_64::*;

    /// The AVX-512 micro-kernel. Only [`Avx512::detect`] makes one, so holding it proves the
    /// CPU has AVX-512F.
    #[derive(Clone, Copy, Debug)]
    pub struct Avx512(());

    impl Avx512 {
        pub fn detect() -> Option<Self> {
            is_x86_feature_detected!("avx512f").then_some(Avx512(()))
        }
    }

    impl MicroKernel for Avx512 {
        const MR: usize = 6;
        const NR: usize = 64;
        const KC: usize = 384;
        const MC: usize = 2016;
        const NC: usize = 512;

        fn run(&self, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, add: bool) {
            assert!(a.len() >= kc * Self::MR && b.len() >= kc * Self::NR);
            assert!(c.len() >= (Self::MR - 1) * ldc + Self::NR);
            // SAFETY: `self` exists only if AVX-512F was detected; the asserts above keep every
            // pointer the kernel touches inside `a`, `b` and `c`.
            unsafe { kernel_avx512::<6, 4>(kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, add) }
        }

        fn interleave64(&self, lines: &[&[f32]; 64], kc: usize, out: &mut [f32]) -> bool {
            assert!(lines.iter().all(|l| l.len() >= kc) && out.len() >= 64 * kc);
            // SAFETY: `self` exists only if AVX-512F was detected; the assert keeps every read
            // inside `lines` and every write inside `out`.
            unsafe { interleave64_avx512(lines, kc, out.as_mut_ptr()) };
            true
        }
    }

    /// `out[p*64 + i] = lines[i][p]`: 16×16 blocks transposed in registers, the rest scalar.
    #[target_feature(enable = "avx512f")]
    unsafe fn interleave64_avx512(lines: &[&[f32]; 64], kc: usize, out: *mut f32) {
        let full = kc / 16 * 16;
        // SAFETY (whole block): the caller guarantees each line has kc floats and out 64·kc.
        unsafe {
            for p0 in (0..full).step_by(16) {
                for g in 0..4 {
                    let mut r = [_mm512_setzero_ps(); 16];
                    for (j, x) in r.iter_mut().enumerate() {
                        *x = _mm512_loadu_ps(lines[g * 16 + j].as_ptr().add(p0));
                    }
                    transpose16(&mut r);
                    for (q, &x) in r.iter().enumerate() {
                        _mm512_storeu_ps(out.add((p0 + q) * 64 + g * 16), x);
                    }
                }
            }
            for p in full..kc {
                for (i, line) in lines.iter().enumerate() {
                    *out.add(p * 64 + i) = line[p];
                }
            }
        }
    }

    /// Transpose 16 rows of 16 floats in registers: `r[q][j]` becomes the old `r[j][q]`.
    #[target_feature(enable = "avx512f")]
    fn transpose16(r: &mut [__m512; 16]) {
        let lo_pd = |a: __m512, b: __m512| {
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
        };
        let hi_pd = |a: __m512, b: __m512| {
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
        };
        // Pairs of rows interleaved, then pairs of pairs: u[4g + c] holds, in each 128-bit lane
        // L, column 4L + c of rows 4g..4g+4.
        let mut t = [_mm512_setzero_ps(); 16];
        for j in 0..8 {
            t[2 * j] = _mm512_unpacklo_ps(r[2 * j], r[2 * j + 1]);
            t[2 * j + 1] = _mm512_unpackhi_ps(r[2 * j], r[2 * j + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            u[4 * g] = lo_pd(t[4 * g], t[4 * g + 2]);
            u[4 * g + 1] = hi_pd(t[4 * g], t[4 * g + 2]);
            u[4 * g + 2] = lo_pd(t[4 * g + 1], t[4 * g + 3]);
            u[4 * g + 3] = hi_pd(t[4 * g + 1], t[4 * g + 3]);
        }
        // Then gather lane L of u[c], u[4 + c], u[8 + c], u[12 + c] into output row 4L + c.
        for c in 0..4 {
            let x = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
            let y = _mm512_shuffle_f32x4::<0xEE>(u[c], u[4 + c]);
            let x2 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
            let y2 = _mm512_shuffle_f32x4::<0xEE>(u[8 + c], u[12 + c]);
            r[c] = _mm512_shuffle_f32x4::<0x88>(x, x2);
            r[4 + c] = _mm512_shuffle_f32x4::<0xDD>(x, x2);
            r[8 + c] = _mm512_shuffle_f32x4::<0x88>(y, y2);
            r[12 + c] = _mm512_shuffle_f32x4::<0xDD>(y, y2);
        }
    }

    /// `MR` rows × `NV` vectors of 16 floats.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel_avx512<const MR: usize, const NV: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        add: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        // SAFETY (whole block): the caller guarantees `a` holds kc·MR floats, `b` kc·NV·16, and
        // `c` MR rows of NV·16 floats spaced `ldc` apart.
        unsafe {
            // Ask for this tile of C now, so it is in L1 by the time the loop ends.
            for i in 0..MR {
                for v in 0..NV {
                    _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + v * 16) as *const i8);
                }
            }
            for p in 0..kc {
                let bp = b.add(p * NV * 16);
                let mut bv = [_mm512_setzero_ps(); NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(bp.add(v * 16));
                }
                let ap = a.add(p * MR);
                for (i, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*ap.add(i));
                    for (x, &bx) in row.iter_mut().zip(&bv) {
                        *x = _mm512_fmadd_ps(av, bx, *x);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    let cp = c.add(i * ldc + v * 16);
                    let out = if add {
                        _mm512_add_ps(_mm512_loadu_ps(cp), x)
                    } else {
                        x
                    };
                    _mm512_storeu_ps(cp, out);
                }
            }
        }
    }

    /// The AVX2+FMA micro-kernel, for x86-64 CPUs without AVX-512.
    #[derive(Clone, Copy, Debug)]
    pub struct Avx2(());

    impl Avx2 {
        pub fn detect() -> Option<Self> {
            (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
                .then_some(Avx2(()))
        }
    }

    impl MicroKernel for Avx2 {
        const MR: usize = 6;
        const NR: usize = 16;
        const KC: usize = 256;
        const MC: usize = 1008;
        const NC: usize = 512;

        fn run(&self, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, add: bool) {
            assert!(a.len() >= kc * Self::MR && b.len() >= kc * Self::NR);
            assert!(c.len() >= (Self::MR - 1) * ldc + Self::NR);
            // SAFETY: `self` exists only if AVX2 and FMA were detected; the asserts above keep
            // every pointer the kernel touches inside `a`, `b` and `c`.
            unsafe { kernel_avx2::<6, 2>(kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, add) }
        }
    }

    /// `MR` rows × `NV` vectors of 8 floats.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel_avx2<const MR: usize, const NV: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        add: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        // SAFETY (whole block): as for `kernel_avx512`, with vectors of 8 floats.
        unsafe {
            for p in 0..kc {
                let bp = b.add(p * NV * 8);
                let mut bv = [_mm256_setzero_ps(); NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm256_loadu_ps(bp.add(v * 8));
                }
                let ap = a.add(p * MR);
                for (i, row) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(*ap.add(i));
                    for (x, &bx) in row.iter_mut().zip(&bv) {
                        *x = _mm256_fmadd_ps(av, bx, *x);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    let cp = c.add(i * ldc + v * 8);
                    let out = if add {
                        _mm256_add_ps(_mm256_loadu_ps(cp), x)
                    } else {
                        x
                    };
                    _mm256_storeu_ps(cp, out);
                }
            }
        }
    }
}
