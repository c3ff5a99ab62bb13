//! The CUDA rows of the `kernels` table: every GPU matmul version (`pretrain::tensor::cuda::matmul`) in
//! fp32 and bf16, with cuBLAS as a row, on a square shape and the matmuls of a GPT-2 124M step,
//! plus `--ptx-report` (registers, shared memory and spills per kernel; needs NVRTC, no GPU).
//!
//! Timing: CUDA events around batches of calls (so launch overhead on the host is not counted
//! when a call is short), after a warm-up call (which compiles the kernel); the median batch.
//! Inputs are uniform in [-1, 1) (rounded to bf16 for bf16 rows), and the error is measured
//! like the CPU rows, max |c − ref| / max |ref| with an f64 reference computed on the CPU from the
//! same (rounded) inputs, but over sampled *rows*: 8 rows of C (first, last, evenly between) are
//! copied back, and up to 4096 of their entries checked (C of the lm head is 1.6 GB in fp32).

use super::{Entry, F32_TOL, Row, Setup, Shape, uniform_vec};
use anyhow::Result;
use cudarc::driver::sys::CUevent_flags;
use half::bf16;
use pretrain::tensor::Rng;
use pretrain::tensor::cuda::matmul::{self, Version};
use pretrain::tensor::cuda::{Buffer, Gpu, GpuFloat, Precision, ptxas, sources};
use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tolerance of a bf16 matmul against the f64 product of the same (bf16-rounded) inputs: the
/// result is rounded once to bf16, 8 bits of mantissa, so up to 2⁻⁹ ≈ 2.0e-3 of its magnitude
/// (measured: 1.7e-3), plus the fp32 sums' rounding (~1e-6). Twice one rounding, 3.9e-3, leaves a
/// margin; a real bug (a wrong tile, a missed edge) is an error of order 1.
const BF16_TOL: f64 = 3.9e-3;

/// One matmul to time: a label for the note, the shape, and the layouts (`ta`, `tb`).
#[derive(Clone, Copy)]
struct Case {
    label: &'static str,
    shape: Shape,
    ta: bool,
    tb: bool,
}

/// The GPU cases: the `--shape` of the CPU rows, then (unless `--shape` was given or the run is
/// quick) 4096³ and the matmuls of a GPT-2 124M training step at B·T = 8·1024 tokens: forward
/// qkv, attention projection, MLP up and down, the tied lm head (vocabulary padded to 50304),
/// and the MLP-up's two backward products (A·Bᵀ for the input gradient, Aᵀ·B for the weight's).
fn cases(shape: Shape, only_shape: bool) -> Vec<Case> {
    let nn = |label, m, k, n| Case {
        label,
        shape: Shape { m, k, n },
        ta: false,
        tb: false,
    };
    let mut out = vec![nn("--shape", shape.m, shape.k, shape.n)];
    if !only_shape {
        let bt = 8 * 1024;
        out.extend([
            nn("square", 4096, 4096, 4096),
            nn("gpt2 qkv", bt, 768, 3 * 768),
            nn("gpt2 attn proj", bt, 768, 768),
            nn("gpt2 mlp up", bt, 768, 4 * 768),
            nn("gpt2 mlp down", bt, 4 * 768, 768),
            nn("gpt2 lm head", bt, 768, 50304),
            Case {
                tb: true,
                ..nn("gpt2 mlp up: dx = dy·Wᵀ", bt, 4 * 768, 768)
            },
            Case {
                ta: true,
                ..nn("gpt2 mlp up: dW = xᵀ·dy", 768, bt, 4 * 768)
            },
        ]);
    }
    out
}

/// The inputs of the case being measured, kept while the versions of one case run one after
/// the other (so each case is generated and uploaded once per precision).
struct Inputs<X> {
    key: (usize, usize, usize, bool, bool),
    a_host: Vec<f32>,
    b_host: Vec<f32>,
    a: Buffer<X>,
    b: Buffer<X>,
    c: Buffer<X>,
}

struct Bench {
    gpu: Arc<Gpu>,
    inputs: Mutex<Option<Box<dyn Any + Send>>>,
}

/// One entry per (precision, case, version). Kernel names: `cuda_f32`, `cuda_bf16`, with `_nt`
/// or `_tn` for the transposed layouts; versions `v1` … `v4`, `cublas`.
pub(super) fn entries(gpu: Arc<Gpu>, shape: Shape, only_shape: bool) -> Vec<Entry> {
    let bench = Arc::new(Bench {
        gpu,
        inputs: Mutex::new(None),
    });
    let mut out = Vec::new();
    for precision in [Precision::F32, Precision::Bf16] {
        for case in cases(shape, only_shape) {
            let layout = match (case.ta, case.tb) {
                (false, false) => "",
                (false, true) => "_nt",
                (true, false) => "_tn",
                (true, true) => "_tt",
            };
            let kernel: &'static str =
                Box::leak(format!("cuda_{}{layout}", precision.name()).into_boxed_str());
            for &v in Version::all().iter().filter(|v| v.supports(precision)) {
                let bench = bench.clone();
                out.push(Entry {
                    kernel,
                    version: v.name(),
                    run: Box::new(move |s: &Setup| match precision {
                        Precision::F32 => measure::<f32>(&bench, s, kernel, case, v),
                        Precision::Bf16 => measure::<bf16>(&bench, s, kernel, case, v),
                    }),
                });
            }
        }
    }
    out
}

/// Times one version on one case; a failure becomes a row whose note says what went wrong.
fn measure<X: GpuFloat>(b: &Bench, s: &Setup, kernel: &str, case: Case, v: Version) -> Row {
    let Shape { m, k, n } = case.shape;
    let mut row = Row {
        kernel: kernel.into(),
        version: v.name().into(),
        shape: case.shape.to_string(),
        ms: f64::NAN,
        gflops: f64::NAN,
        cpu_ms: f64::NAN,
        unit: "TFLOP/s",
        max_rel_err: f64::NAN,
        tolerance: match X::PRECISION {
            Precision::F32 => F32_TOL,
            Precision::Bf16 => BF16_TOL,
        },
        threads: 0,
        note: case.label.into(),
    };
    match run::<X>(b, s.budget, case, v) {
        Ok((secs, err)) => {
            row.ms = secs * 1e3;
            row.cpu_ms = row.ms;
            row.gflops = 2.0 * (m * k * n) as f64 / secs / 1e12;
            row.max_rel_err = err;
        }
        Err(e) => {
            // cuBLAS does not exist on the emulator: that row is skipped, not failed.
            let missing = format!("{e:#}").contains("not available on the CUDA emulator");
            if missing {
                row.tolerance = f64::NAN;
            }
            row.note = format!("{}: error: {e:#}", case.label)
        }
    }
    row
}

/// Returns (median seconds per call, max relative error).
fn run<X: GpuFloat>(bench: &Bench, budget: Duration, case: Case, v: Version) -> Result<(f64, f64)> {
    let gpu = &bench.gpu;
    let Shape { m, k, n } = case.shape;
    let key = (m, k, n, case.ta, case.tb);
    let mut slot = bench.inputs.lock().unwrap();
    let fresh = !matches!(slot.as_ref().and_then(|i| i.downcast_ref::<Inputs<X>>()), Some(i) if i.key == key);
    if fresh {
        *slot = None; // free the previous case's buffers first
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (m * 31 + k * 17 + n) as u64);
        let round =
            |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|x| X::from_f32(x).to_f32()).collect() };
        let a_host = round(uniform_vec(&mut rng, m * k));
        let b_host = round(uniform_vec(&mut rng, k * n));
        let to_x = |v: &[f32]| -> Vec<X> { v.iter().map(|&x| X::from_f32(x)).collect() };
        let inputs = Inputs::<X> {
            key,
            a: Buffer::from_host(gpu, &to_x(&a_host))?,
            b: Buffer::from_host(gpu, &to_x(&b_host))?,
            c: Buffer::zeros(gpu, m * n)?,
            a_host,
            b_host,
        };
        *slot = Some(Box::new(inputs));
    }
    let inputs = slot
        .as_ref()
        .and_then(|i| i.downcast_ref::<Inputs<X>>())
        .expect("inputs were just stored");
    let (a, b, c) = (inputs.a.ptr(), inputs.b.ptr(), inputs.c.ptr());
    let g = matmul::Gemm {
        m,
        k,
        n,
        a: matmul::Operand {
            ptr: a,
            transposed: case.ta,
        },
        b: matmul::Operand {
            ptr: b,
            transposed: case.tb,
        },
        c,
        bias: None,
        accumulate: false,
    };
    let call = || matmul::gemm(gpu, v, &g);
    let secs = time_gpu(gpu, budget, call)?;
    // Copy back 8 rows of C (first, last, and evenly between): C can be 1.6 GB (lm head).
    let rows: Vec<usize> = if m <= 8 {
        (0..m).collect()
    } else {
        (0..8).map(|i| i * (m - 1) / 7).collect()
    };
    let mut got = Vec::new();
    for &r in &rows {
        let row = inputs.c.range_to_host(r * n, n)?;
        got.push(row.iter().map(|x| x.to_f32()).collect::<Vec<f32>>());
    }
    gpu.sync()?;
    let err = sampled_error(case, &inputs.a_host, &inputs.b_host, &rows, &got);
    Ok((secs, err))
}

/// Median GPU seconds per call of `f`, from CUDA events. A warm-up call first (it compiles and
/// loads the kernel); then batches of calls sized to take about a millisecond each, until
/// `budget` is spent (at least 3 batches, at most 50).
fn time_gpu(gpu: &Gpu, budget: Duration, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    gpu.sync()?;
    if gpu.is_emulated() {
        // The CPU emulator has no events (and its times say nothing about a GPU): one timed call.
        let t = Instant::now();
        f()?;
        return Ok(t.elapsed().as_secs_f64());
    }
    let start = gpu
        .cuda()?
        .ctx
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
    let end = gpu
        .cuda()?
        .ctx
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
    let mut batch = |reps: usize| -> Result<f64> {
        start.record(&gpu.cuda()?.stream)?;
        for _ in 0..reps {
            f()?;
        }
        end.record(&gpu.cuda()?.stream)?;
        Ok(start.elapsed_ms(&end)? as f64 / 1e3 / reps as f64)
    };
    let once = batch(1)?;
    let reps = ((1e-3 / once.max(1e-9)).ceil() as usize).clamp(1, 1000);
    let clock = Instant::now();
    let mut times = Vec::new();
    while times.len() < 3 || (times.len() < 50 && clock.elapsed() < budget) {
        times.push(batch(reps)?);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// max |c − ref| / max |ref| over up to 4096 entries sampled from the copied rows of C
/// (`got[q]` is row `rows[q]`), with an f64 reference.
fn sampled_error(case: Case, a: &[f32], b: &[f32], rows: &[usize], got: &[Vec<f32>]) -> f64 {
    let Shape { m, k, n } = case.shape;
    let total = rows.len() * n;
    let samples = total.min(4096);
    let mut rng = Rng::new(5);
    let (mut max_err, mut max_ref) = (0.0f64, 0.0f64);
    for s in 0..samples {
        let idx = if samples == total {
            s
        } else {
            (rng.next_u64() % total as u64) as usize
        };
        let (q, j) = (idx / n, idx % n);
        let i = rows[q];
        let mut want = 0.0f64;
        for p in 0..k {
            let x = if case.ta { a[p * m + i] } else { a[i * k + p] };
            let y = if case.tb { b[j * k + p] } else { b[p * n + j] };
            want += x as f64 * y as f64;
        }
        max_err = max_err.max((got[q][j] as f64 - want).abs());
        max_ref = max_ref.max(want.abs());
    }
    if max_ref == 0.0 {
        max_err
    } else {
        max_err / max_ref
    }
}

/// One line of `--ptx-report`.
#[derive(serde::Serialize)]
struct PtxRow {
    file: &'static str,
    precision: &'static str,
    #[serde(flatten)]
    r: ptxas::Resources,
}

/// `--ptx-report`: compiles every kernel file (or those whose name contains `filter`) in both
/// precisions for sm_`arch` with ptxas's resource report and prints one line per kernel. Needs
/// NVRTC only, no GPU.
pub(super) fn ptx_report(arch: u32, filter: Option<&str>, json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for src in sources::SOURCES {
        if filter.is_some_and(|f| !src.file.contains(f)) {
            continue;
        }
        for precision in [Precision::F32, Precision::Bf16] {
            let compiled =
                sources::compile(src.file, arch, precision, true).map_err(anyhow::Error::msg)?;
            for r in ptxas::parse(&compiled.log) {
                rows.push(PtxRow {
                    file: src.file,
                    precision: precision.name(),
                    r,
                });
            }
        }
    }
    if json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    println!("ptxas resource usage, sm_{arch} (static shared memory; stack and spills in bytes)");
    println!(
        "{:<24} {:<30} {:<5} {:>5} {:>7} {:>6} {:>8} {:>8}",
        "file", "kernel", "prec", "regs", "smem", "stack", "spill_st", "spill_ld"
    );
    for p in &rows {
        println!(
            "{:<24} {:<30} {:<5} {:>5} {:>7} {:>6} {:>8} {:>8}",
            p.file,
            p.r.kernel,
            p.precision,
            p.r.registers,
            p.r.shared_bytes,
            p.r.stack_bytes,
            p.r.spill_stores,
            p.r.spill_loads
        );
    }
    Ok(())
}
