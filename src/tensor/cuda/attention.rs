//! Launchers for the fused causal attention (`kernels/attention.cu`: v1, scalar fp32;
//! `kernels/attention_v2.cu`: v2, tensor cores, bf16; both forward and backward).
//!
//! Layouts follow GPT-2 (see `crate::model::gpt`): `qkv` is the `c_attn` output `[B, T, 3C]`
//! (q | k | v along the last axis, head `h` in columns `h*hs .. (h+1)*hs` of each third,
//! `C = NH*hs`), `out` is `[B, T, C]` with the heads side by side, `lse` is `[B, NH, T]`.

use super::device::launch_config;
use super::{DevPtr, Gpu, GpuFloat, Precision};
use crate::kargs;
use anyhow::{Result, ensure};

/// Rows a block owns and rows of a staged tile (`ATT_BQ`, `ATT_BK` in the kernel file).
const BQ: usize = 16;
const BK: usize = 32;
/// The same for v2 (`V2_BQ`, `V2_BK` in `attention_v2.cu`).
const V2_BQ: usize = 64;
const V2_BK: usize = 64;
/// Threads per attention block (4 warps).
const ATT_THREADS: u32 = 128;
/// The largest head size the kernels handle (32 lanes × 4 dimensions each).
pub const MAX_HEAD_SIZE: usize = 128;

/// The odd row stride of tiles that each lane reads along its own row (bank-conflict free).
fn odd_stride(hs: usize) -> usize {
    if hs.is_multiple_of(2) { hs + 1 } else { hs }
}

/// The shape of a multi-head attention: `b` sequences of `t` tokens, `nh` heads of `hs` each
/// (C = nh·hs channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    pub b: usize,
    pub t: usize,
    pub nh: usize,
    pub hs: usize,
}

impl Heads {
    /// Channels: `nh · hs`.
    pub fn c(&self) -> usize {
        self.nh * self.hs
    }

    /// The shape as the kernels' four `int` arguments (b, t, nh, hs).
    fn ints(&self) -> [i32; 4] {
        [self.b, self.t, self.nh, self.hs].map(|x| x as i32)
    }
}

fn check_shape(what: &str, h: Heads) -> Result<()> {
    let Heads { b, t, nh, hs } = h;
    ensure!(
        b > 0 && t > 0 && nh > 0 && (1..=MAX_HEAD_SIZE).contains(&hs),
        "{what}: need B, T, NH > 0 and 1 <= hs <= {MAX_HEAD_SIZE}, got B={b} T={t} NH={nh} hs={hs}"
    );
    // Offsets are size_t inside the kernels; grids have up to one block per 8 rows.
    ensure!(
        b * nh * t.div_ceil(8) <= i32::MAX as usize && 3 * nh * hs <= i32::MAX as usize,
        "{what}: B={b} T={t} NH={nh} hs={hs} is too large for one launch"
    );
    Ok(())
}

/// The attention kernels (forward and backward), slowest first (the lesson's progression).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `attention.cu`: scalar fp32 FMAs, any storage type and head size up to 128.
    V1Scalar,
    /// `attention_v2.cu`: tensor cores through wmma; bf16 only, head size a multiple of 16.
    /// The backward shares v1's preprocess kernel (D = Σ dout·out).
    V2TensorCore,
}

/// The fastest version for storage type `X` (head sizes v2 cannot take fall back to v1).
pub fn best<X: GpuFloat>() -> Version {
    match X::PRECISION {
        Precision::Bf16 => Version::V2TensorCore,
        Precision::F32 => Version::V1Scalar,
    }
}

/// Whether `v` can run this shape on these inputs (v2: bf16, hs a multiple of 16, every
/// input that it reads with 16-byte loads starting on a 16-byte boundary).
pub fn supports<X: GpuFloat>(v: Version, hs: usize, inputs: &[DevPtr<X>]) -> bool {
    match v {
        Version::V1Scalar => true,
        Version::V2TensorCore => {
            X::PRECISION == Precision::Bf16
                && hs.is_multiple_of(16)
                && inputs.iter().all(|p| p.addr.is_multiple_of(16))
        }
    }
}

/// Causal self-attention forward: `out = softmax(mask(q·kᵀ/√hs))·v` per (batch, head), and the
/// row log-sum-exp `lse[(b*NH + h)*T + i]` that [`attention_backward`] needs. Runs [`best`]
/// when it supports the shape, else v1.
pub fn attention_forward<X: GpuFloat>(
    gpu: &Gpu,
    out: DevPtr<X>,
    lse: DevPtr<f32>,
    qkv: DevPtr<X>,
    heads: Heads,
) -> Result<()> {
    let v = if supports(best::<X>(), heads.hs, &[qkv]) {
        best::<X>()
    } else {
        Version::V1Scalar
    };
    attention_forward_version(gpu, v, out, lse, qkv, heads)
}

/// [`attention_forward`] with a chosen kernel version (an error if it cannot run the shape).
pub fn attention_forward_version<X: GpuFloat>(
    gpu: &Gpu,
    v: Version,
    out: DevPtr<X>,
    lse: DevPtr<f32>,
    qkv: DevPtr<X>,
    heads: Heads,
) -> Result<()> {
    check_shape("attention_forward", heads)?;
    let Heads { b, t, nh, hs } = heads;
    ensure!(
        supports(v, hs, &[qkv]),
        "attention_forward: {v:?} needs bf16 storage, hs % 16 == 0 and aligned rows (hs={hs})"
    );
    let c = heads.c();
    out.expect("attention_forward: out", b * t * c);
    lse.expect("attention_forward: lse", b * nh * t);
    qkv.expect("attention_forward: qkv", b * t * 3 * c);
    let (file, name, rows, smem) = match v {
        Version::V1Scalar => (
            "attention.cu",
            "attention_forward",
            BQ,
            4 * (BQ * hs + BK * odd_stride(hs) + BK * hs),
        ),
        Version::V2TensorCore => (
            "attention_v2.cu",
            "attention_forward_v2",
            V2_BQ,
            2 * 3 * V2_BQ * hs + 4 * V2_BQ * V2_BK + 2 * V2_BQ * V2_BK + 4 * V2_BQ * hs,
        ),
    };
    let grid = (b * nh * t.div_ceil(rows)) as u32;
    let [bi, ti, nhi, hsi] = heads.ints();
    let cfg = launch_config(grid, ATT_THREADS, smem as u32);
    // SAFETY: the buffers hold the sizes checked above; each block reads the rows of its own
    // (b, h) below T and writes its own query rows of `out` and `lse` only.
    unsafe {
        gpu.launch(
            file,
            X::PRECISION,
            name,
            cfg,
            &kargs![out, lse, qkv, bi, ti, nhi, hsi],
        )
    }?;
    Ok(())
}

/// f32 elements of scratch [`attention_backward`] needs: `D_i = Σ dout·out`, one per
/// (batch, head, row).
pub fn attention_scratch_len(heads: Heads) -> usize {
    heads.b * heads.nh * heads.t
}

/// The buffers of an attention backward pass: it overwrites `dqkv` (`[B, T, 3C]`, the layout
/// of `qkv`) from `dout` and the forward's `out`, `qkv` and `lse`; `scratch` holds
/// [`attention_scratch_len`] floats.
#[derive(Clone, Copy, Debug)]
pub struct AttentionBackward<X> {
    pub dqkv: DevPtr<X>,
    pub dout: DevPtr<X>,
    pub out: DevPtr<X>,
    pub qkv: DevPtr<X>,
    pub lse: DevPtr<f32>,
    pub scratch: DevPtr<f32>,
}

/// Causal self-attention backward: overwrites `bufs.dqkv` with the gradients of q, k and v
/// (see [`AttentionBackward`]). Deterministic: no atomics (dk/dv and dq come from two kernels
/// that each recompute the attention weights). Runs [`best`] when it supports the shape, else
/// v1.
pub fn attention_backward<X: GpuFloat>(
    gpu: &Gpu,
    bufs: &AttentionBackward<X>,
    heads: Heads,
) -> Result<()> {
    let v = if supports(best::<X>(), heads.hs, &[bufs.qkv, bufs.dout]) {
        best::<X>()
    } else {
        Version::V1Scalar
    };
    attention_backward_version(gpu, v, bufs, heads)
}

/// [`attention_backward`] with a chosen kernel version (an error if it cannot run the shape).
pub fn attention_backward_version<X: GpuFloat>(
    gpu: &Gpu,
    v: Version,
    bufs: &AttentionBackward<X>,
    heads: Heads,
) -> Result<()> {
    check_shape("attention_backward", heads)?;
    let Heads { b, t, nh, hs } = heads;
    let AttentionBackward {
        dqkv,
        dout,
        out,
        qkv,
        lse,
        scratch,
    } = *bufs;
    ensure!(
        supports(v, hs, &[qkv, dout]),
        "attention_backward: {v:?} needs bf16 storage, hs % 16 == 0 and aligned rows (hs={hs})"
    );
    let c = heads.c();
    dqkv.expect("attention_backward: dqkv", b * t * 3 * c);
    dout.expect("attention_backward: dout", b * t * c);
    out.expect("attention_backward: out", b * t * c);
    qkv.expect("attention_backward: qkv", b * t * 3 * c);
    lse.expect("attention_backward: lse", b * nh * t);
    scratch.expect("attention_backward: scratch", attention_scratch_len(heads));
    let [bi, ti, nhi, hsi] = heads.ints();

    // D_i = dout_i · out_i (both versions).
    let rows = b * nh * t;
    let cfg = launch_config(rows.div_ceil(8) as u32, 256, 0);
    let name = "attention_backward_preprocess";
    // SAFETY: one warp per row below B*NH*T; reads `dout`/`out` rows, writes `scratch[row]`.
    unsafe {
        gpu.launch(
            "attention.cu",
            X::PRECISION,
            name,
            cfg,
            &kargs![scratch, dout, out, bi, ti, nhi, hsi],
        )
    }?;

    // (file, kernel, rows per block, shared memory) for dk/dv, then for dq.
    let kernels = match v {
        Version::V1Scalar => [
            (
                "attention.cu",
                "attention_backward_dkdv",
                BQ,
                4 * (2 * BQ * hs + 2 * BK * odd_stride(hs) + 2 * BK),
            ),
            (
                "attention.cu",
                "attention_backward_dq",
                BQ,
                4 * (2 * BQ * hs + 2 * BK * odd_stride(hs)),
            ),
        ],
        // k, v, q, dout tiles (bf16), S and dP (fp32, 4 warps × 16 × 64 each), P and dS
        // (bf16), lse and D of a tile; dq needs no P, lse or D in shared memory.
        Version::V2TensorCore => [
            (
                "attention_v2.cu",
                "attention_backward_dkdv_v2",
                V2_BK,
                2 * 4 * V2_BQ * hs + 2 * 4 * 16 * 64 * 4 + 2 * 4 * 16 * 64 * 2 + 2 * V2_BQ * 4,
            ),
            (
                "attention_v2.cu",
                "attention_backward_dq_v2",
                V2_BQ,
                2 * 4 * V2_BQ * hs + 2 * 4 * 16 * 64 * 4 + 4 * 16 * 64 * 2,
            ),
        ],
    };
    for (file, name, rows, smem) in kernels {
        let grid = (b * nh * t.div_ceil(rows)) as u32;
        // SAFETY: sizes checked above; each block reads the rows of its own (b, h) below T and
        // writes the k and v (dkdv) or q (dq) columns of its own rows of `dqkv` only.
        unsafe {
            gpu.launch(
                file,
                X::PRECISION,
                name,
                launch_config(grid, ATT_THREADS, smem as u32),
                &kargs![dqkv, dout, qkv, lse, scratch, bi, ti, nhi, hsi],
            )
        }?;
    }
    Ok(())
}
