//! Matrix multiplication on the GPU: our four kernels, from naive to tensor cores, and cuBLAS.
//!
//! Every version computes the same thing as the CPU's `cpu::matmul::gemm`:
//! `C[m,n] = (accumulate ? C : 0) + op(A)·op(B) (+ bias[n] on every row)`, where op(A) is `[m,k]`
//! (A stored `[m,k]`, or `[k,m]` when [`Operand::transposed`]) and op(B) is `[k,n]` (B stored
//! `[k,n]`, or `[n,k]` when transposed); all row-major; sums in fp32 whatever the storage type.
//! [`gemm`] takes one [`Gemm`] that names all of that.
//!
//! | version | file | idea |
//! |---|---|---|
//! | v1 | `kernels/matmul_v1_naive.cu` | one thread per output, straight from global memory |
//! | v2 | `kernels/matmul_v2_tiled.cu` | 32×32 tiles shared by a block (32× less traffic) |
//! | v3 | `kernels/matmul_v3_register.cu` | 8×8 outputs per thread in registers, 128×128 per block |
//! | v4 | `kernels/matmul_v4_tensorcore.cu` | tensor cores (wmma, bf16 only), 3-stage cp.async pipeline |
//! | cublas | NVIDIA's library | the bar to beat |

use super::device::Gpu;
use super::device::launch_config;
use super::{DevPtr, GpuFloat, Precision};
use crate::kargs;
use anyhow::{Context, Result, bail, ensure};
use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::driver::LaunchConfig;

/// One implementation of [`gemm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V1Naive,
    V2Tiled,
    V3Register,
    /// Tensor cores; bf16 storage only.
    V4TensorCore,
    /// cuBLAS (`sgemm` for fp32, `gemmEx` bf16 in/out with fp32 compute for bf16).
    Cublas,
}

/// How one of our kernels is launched: file, kernel name, the C tile a block computes, threads,
/// and dynamic shared memory in bytes.
struct Launch {
    file: &'static str,
    kernel: &'static str,
    rows: u32,
    cols: u32,
    threads: u32,
    smem: u32,
}

/// v4's dynamic shared memory: `SMEM_BYTES` in `kernels/matmul_v4_tensorcore.cu`, 3 pipeline
/// stages of a 128×32 bf16 tile of A and one of B, rows padded to 40 (or 136) elements.
const V4_SMEM: u32 = 3 * (128 * 40 + 128 * 40) * 2;

impl Version {
    /// Every version, slowest first, cuBLAS last.
    pub fn all() -> &'static [Version] {
        &[
            Version::V1Naive,
            Version::V2Tiled,
            Version::V3Register,
            Version::V4TensorCore,
            Version::Cublas,
        ]
    }

    /// The short name used in tables and test messages: "v1" … "v4", "cublas".
    pub fn name(self) -> &'static str {
        match self {
            Version::V1Naive => "v1",
            Version::V2Tiled => "v2",
            Version::V3Register => "v3",
            Version::V4TensorCore => "v4",
            Version::Cublas => "cublas",
        }
    }

    /// Whether this version exists for storage `p` (tensor cores need bf16).
    pub fn supports(self, p: Precision) -> bool {
        self != Version::V4TensorCore || p == Precision::Bf16
    }

    fn launch(self) -> Option<Launch> {
        let (file, kernel, rows, cols, threads, smem) = match self {
            Version::V1Naive => ("matmul_v1_naive.cu", "matmul_v1", 8, 32, 256, 0),
            Version::V2Tiled => ("matmul_v2_tiled.cu", "matmul_v2", 32, 32, 1024, 0),
            Version::V3Register => ("matmul_v3_register.cu", "matmul_v3", 128, 128, 256, 0),
            Version::V4TensorCore => {
                let f = "matmul_v4_tensorcore.cu";
                (f, "matmul_v4", 128, 128, 256, V4_SMEM)
            }
            Version::Cublas => return None,
        };
        Some(Launch {
            file,
            kernel,
            rows,
            cols,
            threads,
            smem,
        })
    }
}

/// The fastest of our own versions for storage `X`: tensor cores for bf16, v3 for fp32.
pub fn best<X: GpuFloat>() -> Version {
    match X::PRECISION {
        Precision::Bf16 => Version::V4TensorCore,
        Precision::F32 => Version::V3Register,
    }
}

/// The version tensor matmuls use, when one was chosen (`None`: [`best`]).
static PREFERRED: std::sync::Mutex<Option<Version>> = std::sync::Mutex::new(None);

/// Makes tensor matmuls use `v` where it supports the storage type (`None`: back to [`best`]).
/// For benchmarks: `train_bench --matmul cublas` times the same model on cuBLAS.
pub fn set_preferred(v: Option<Version>) {
    *PREFERRED.lock().unwrap() = v;
}

/// The version tensor matmuls of storage `X` run: the one set by [`set_preferred`] if it
/// supports `X`, else [`best`].
pub fn preferred<X: GpuFloat>() -> Version {
    match *PREFERRED.lock().unwrap() {
        Some(v) if v.supports(X::PRECISION) => v,
        _ => best::<X>(),
    }
}

/// A matrix operand of [`gemm`]: where it is, and whether it is stored transposed (A stored
/// `[k,m]` rather than `[m,k]`, B stored `[n,k]` rather than `[k,n]`).
#[derive(Clone, Copy, Debug)]
pub struct Operand<X> {
    pub ptr: DevPtr<X>,
    pub transposed: bool,
}

impl<X> Operand<X> {
    /// Stored as used: A `[m,k]`, B `[k,n]`.
    pub fn n(ptr: DevPtr<X>) -> Operand<X> {
        Operand {
            ptr,
            transposed: false,
        }
    }
    /// Stored transposed: A `[k,m]`, B `[n,k]`.
    pub fn t(ptr: DevPtr<X>) -> Operand<X> {
        Operand {
            ptr,
            transposed: true,
        }
    }
}

/// One matrix product `C[m,n] = (accumulate ? C : 0) + op(A)·op(B) (+ bias[n] on every row)`:
/// `a` holds m·k elements, `b` k·n, `c` m·n, `bias` n.
#[derive(Clone, Copy, Debug)]
pub struct Gemm<X> {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: Operand<X>,
    pub b: Operand<X>,
    pub c: DevPtr<X>,
    pub bias: Option<DevPtr<X>>,
    pub accumulate: bool,
}

/// Runs `g` (see [`Gemm`] and the module doc) with version `v`. Queued on `gpu.stream`; does
/// not wait.
pub fn gemm<X: GpuFloat>(gpu: &Gpu, v: Version, g: &Gemm<X>) -> Result<()> {
    let Gemm {
        m,
        k,
        n,
        a,
        b,
        c,
        bias,
        accumulate,
    } = *g;
    a.ptr.expect("gemm: a", m * k);
    b.ptr.expect("gemm: b", k * n);
    c.expect("gemm: c", m * n);
    if let Some(bias) = bias {
        bias.expect("gemm: bias", n);
    }
    ensure!(
        [m, k, n].iter().all(|&d| d <= i32::MAX as usize),
        "gemm: {m}x{k}x{n} does not fit the kernels' int sizes"
    );
    ensure!(
        v.supports(X::PRECISION),
        "matmul {} needs bf16 storage (tensor cores), not {}",
        v.name(),
        X::PRECISION.name()
    );
    if m == 0 || n == 0 {
        return Ok(());
    }
    let Some(l) = v.launch() else {
        return cublas(gpu, g);
    };
    // Blocks: x walks row tiles (up to 2^31 - 1 of them), y column tiles (at most 65535).
    let grid = (m.div_ceil(l.rows as usize), n.div_ceil(l.cols as usize));
    ensure!(
        grid.1 <= 65535,
        "gemm: n = {n} needs more than 65535 column tiles"
    );
    let cfg = LaunchConfig {
        grid_dim: (grid.0 as u32, grid.1 as u32, 1),
        block_dim: (l.threads, 1, 1),
        shared_mem_bytes: l.smem,
    };
    // A null bias (0) means none.
    let bias = bias.unwrap_or(DevPtr::from_raw_parts(0, 0));
    let (mi, ki, ni) = (m as i32, k as i32, n as i32);
    let (ta, tb, acc) = (a.transposed as i32, b.transposed as i32, accumulate as i32);
    // SAFETY: a, b, c and bias hold m·k, k·n, m·n and n elements (checked above), the kernel's
    // signature is (floatX* c, const floatX* a, const floatX* b, const floatX* bias, int m, int k,
    // int n, int ta, int tb, int accumulate), and every kernel checks its indices against m, k, n
    // before touching memory; it reads bias only when it is not null.
    unsafe {
        gpu.launch(
            l.file,
            X::PRECISION,
            l.kernel,
            cfg,
            &kargs![c, a.ptr, b.ptr, bias, mi, ki, ni, ta, tb, acc],
        )
    }
    .with_context(|| format!("launching {}", l.kernel))?;
    Ok(())
}

/// The cuBLAS version. cuBLAS is column-major: it sees our row-major `[m,n]` C as a `[n,m]`
/// column-major matrix, i.e. Cᵀ. Since Cᵀ = op(B)ᵀ·op(A)ᵀ, we ask cuBLAS for that product with the
/// operands swapped: a row-major B stored `[k,n]` *is* op(B)ᵀ in column-major (no transpose,
/// leading dimension n), and a B stored `[n,k]` needs cuBLAS's transpose flag (leading dimension
/// k); A likewise. No data moves.
///
/// Bias: plain GEMM has none, so `bias_broadcast` (in `kernels/matmul_v1_naive.cu`) first writes
/// `C = (accumulate ? C : 0) + bias` and cuBLAS then adds the product with beta = 1.
fn cublas<X: GpuFloat>(gpu: &Gpu, g: &Gemm<X>) -> Result<()> {
    let Gemm {
        m,
        k,
        n,
        a,
        b,
        c,
        bias,
        accumulate,
    } = *g;
    let mut beta = if accumulate { 1.0f32 } else { 0.0 };
    if let Some(bias) = bias {
        bias_broadcast(gpu, c, bias, m, n, accumulate)?;
        beta = 1.0;
    }
    let alpha = 1.0f32;
    let blas_handle = *gpu.blas()?.handle();
    use blas_sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
    let (op_b, ldb) = if b.transposed {
        (CUBLAS_OP_T, k)
    } else {
        (CUBLAS_OP_N, n)
    };
    let (op_a, lda) = if a.transposed {
        (CUBLAS_OP_T, m)
    } else {
        (CUBLAS_OP_N, k)
    };
    let (a, b) = (a.ptr, b.ptr);
    let (mi, ki, ni) = (m as i32, k as i32, n as i32);
    let (lda, ldb) = (lda.max(1) as i32, ldb.max(1) as i32);
    gpu.cuda()?.ctx.bind_to_thread()?;
    match X::PRECISION {
        // SAFETY: the pointers hold k·n, m·k and m·n elements (checked by `gemm`) of f32 (X is f32
        // here); the handle's stream is `gpu.stream`, so this is ordered with our kernels.
        Precision::F32 => unsafe {
            blas::sgemm(
                blas_handle,
                op_b,
                op_a,
                ni,
                mi,
                ki,
                &alpha,
                b.addr as *const f32,
                ldb,
                a.addr as *const f32,
                lda,
                &beta,
                c.addr as *mut f32,
                ni,
            )
        },
        // SAFETY: as above, with bf16 data described to cuBLAS as CUDA_R_16BF and fp32 alpha,
        // beta and sums (CUBLAS_COMPUTE_32F).
        Precision::Bf16 => unsafe {
            use blas_sys::cudaDataType::CUDA_R_16BF;
            blas::gemm_ex(
                blas_handle,
                op_b,
                op_a,
                ni,
                mi,
                ki,
                (&alpha as *const f32).cast(),
                b.addr as *const _,
                CUDA_R_16BF,
                ldb,
                a.addr as *const _,
                CUDA_R_16BF,
                lda,
                (&beta as *const f32).cast(),
                c.addr as *mut _,
                CUDA_R_16BF,
                ni,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        },
    }
    .map_err(|e| anyhow::anyhow!("cuBLAS gemm {m}x{k}x{n}: {e:?}"))
}

/// `c[i,j] = (accumulate ? c[i,j] : 0) + bias[j]` (`bias_broadcast` in `kernels/matmul_v1_naive.cu`).
fn bias_broadcast<X: GpuFloat>(
    gpu: &Gpu,
    c: DevPtr<X>,
    bias: DevPtr<X>,
    m: usize,
    n: usize,
    accumulate: bool,
) -> Result<()> {
    if m * n == 0 {
        bail!("bias_broadcast: empty matrix");
    }
    let (mi, ni, acc) = (m as i32, n as i32, accumulate as i32);
    let cfg = launch_config(gpu.grid_for(m * n, 256), 256, 0);
    // SAFETY: c holds m·n and bias n elements (checked by `gemm`); the grid-stride loop stays
    // below m·n.
    unsafe {
        gpu.launch(
            "matmul_v1_naive.cu",
            X::PRECISION,
            "bias_broadcast",
            cfg,
            &kargs![c, bias, mi, ni, acc],
        )
    }
    .context("launching bias_broadcast")?;
    Ok(())
}
