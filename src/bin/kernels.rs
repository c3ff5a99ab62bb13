//! `kernels`: time every version of every kernel, check it against a reference, print a table.
//!
//! Rows come from a registry (`registry()`): each entry names a kernel and a version and knows
//! how to produce one measured [`Row`]. Other ops (softmax, layernorm, …) join by adding entries
//! there; the CUDA rows (and `--ptx-report`) live in `kernels/cuda_rows.rs`.

#[path = "kernels/cuda_rows.rs"]
mod cuda_rows;
#[path = "kernels/memory.rs"]
mod memory;
#[path = "kernels/reference.rs"]
mod reference;

use anyhow::{Context, bail};
use clap::Parser;
use pretrain::cli::{self, Common};
use pretrain::tensor::Rng;
use pretrain::tensor::cpu::matmul::v4_simd::Isa;
use pretrain::tensor::cpu::matmul::{self, GemmFn, Layout};
use pretrain::tensor::cpu::{self, float::Float};
use pretrain::tensor::cuda::{DeviceArg, Gpu};
use std::time::{Duration, Instant};

/// Time every kernel version, check it against an f64 reference, print one table.
///
/// Columns: kernel, version, shape, best time in ms, GFLOP/s (GB/s for memory-bound ops, TFLOP/s
/// for GPU rows), percent of the best version of the same kernel (GPU rows: of cuBLAS on the
/// same shape), the max relative error (max |c - ref| / max |ref| over up to 4096 sampled
/// entries, against a plain f64 reference that shares no code with the kernel) and the row's
/// tolerance. Exits with status 1 when a row's error is above its tolerance.
///
/// Kernels: matmul (C = A·B), matmul_nt (A·Bᵀ, B stored n×k), matmul_tn (Aᵀ·B, A stored k×m).
/// Versions: v1–v5 (src/tensor/cpu/matmul/) and gemm, the entry point the tensor engine calls.
/// v1 and v2 run on at most 256×256×256 (they are slow); the row's note says so.
///
/// With a GPU: cuda_fp32 and cuda_bf16 (cuda_*_nt, cuda_*_tn: transposed operands), versions
/// v1–v4 of src/tensor/cuda/matmul.rs and cublas, on --shape, 4096³ and the matmuls of a GPT-2 124M
/// step (only --shape when it is given). Median of CUDA-event timings.
#[derive(Parser, Debug)]
#[command(name = "kernels", version)]
struct Args {
    /// Keep only the rows whose kernel or version contains TEXT (e.g. `v5`, `matmul_nt`).
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Matmul shape MxKxN [default: 1024x1024x1024; quick: 128x128x128].
    #[arg(long, value_name = "MxKxN", value_parser = parse_shape)]
    shape: Option<Shape>,
    /// Threads for the multi-threaded versions [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Print one JSON object per row (kernel, version, shape, ms, gflops, max_rel_err, …).
    #[arg(long)]
    json: bool,
    /// cpu: CPU rows only; cuda: GPU rows only; auto: CPU rows, and GPU rows when there is a GPU.
    /// Without a GPU, cuda and auto print the CPU rows and say why there are no GPU rows.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Instead of timing: compile every CUDA kernel file (fp32 and bf16) with NVRTC and print
    /// registers, shared memory and spills per kernel, from ptxas. Needs no GPU.
    #[arg(long)]
    ptx_report: bool,
    /// Compute capability for --ptx-report (90 = sm_90: H100/H200; 80 = A100).
    #[arg(long, value_name = "N", default_value_t = 90)]
    arch: u32,
    #[command(flatten)]
    common: Common,
}
pretrain::has_common!(Args);

#[derive(Clone, Copy, Debug)]
struct Shape {
    m: usize,
    k: usize,
    n: usize,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.m, self.k, self.n)
    }
}

fn parse_shape(s: &str) -> Result<Shape, String> {
    let dims: Vec<usize> = s
        .split(['x', 'X'])
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("expected MxKxN with positive integers, got '{s}'"))?;
    // The product is checked without overflow: 2^32 × 2^32 × 16 must not wrap around to 16.
    let volume = |m: usize, k: usize, n: usize| m.checked_mul(k).and_then(|mk| mk.checked_mul(n));
    match dims[..] {
        [m, k, n] if m > 0 && k > 0 && n > 0 && volume(m, k, n).is_some_and(|v| v <= 1 << 36) => {
            Ok(Shape { m, k, n })
        }
        [_, _, _] => Err(format!("'{s}': each dimension must be ≥ 1, product ≤ 2^36")),
        _ => Err(format!("expected MxKxN (three dimensions), got '{s}'")),
    }
}

/// What every row needs: the requested shape and the time budget per row.
struct Setup {
    shape: Shape,
    budget: Duration,
}

/// One measured line of the table.
#[derive(serde::Serialize)]
struct Row {
    kernel: String,
    version: String,
    shape: String,
    ms: f64,
    gflops: f64,
    /// Mean CPU time of one call, all threads together (JSON only; see `time_best`).
    cpu_ms: f64,
    /// "GFLOP/s" for compute-bound kernels, "GB/s" for memory-bound ones, "TFLOP/s" for GPU
    /// matmuls: `gflops` holds the rate in this unit.
    unit: &'static str,
    max_rel_err: f64,
    /// The largest `max_rel_err` this row accepts (see [`F32_TOL`], `cuda_rows::BF16_TOL`);
    /// NaN for a row that could not run (its note says why).
    tolerance: f64,
    threads: usize,
    note: String,
}

/// Tolerance of an f32 result against the f64 reference. Measured on these rows: 1e-7 to 5e-7
/// (f32 keeps 24 bits, 6e-8 relative per rounding; a k-term sum in random order grows about
/// √k roundings). 1e-5 leaves a margin of 20 over the worst measured, and is still far below
/// what a wrong index or a missed tile edge gives (1e-2 and up).
const F32_TOL: f64 = 1e-5;

/// A registry entry: a kernel/version pair and the function that measures it.
struct Entry {
    kernel: &'static str,
    version: &'static str,
    run: Box<dyn Fn(&Setup) -> Row + Send + Sync>,
}

/// Every row the binary can print, in table order. To add an op (softmax, layernorm, a CUDA
/// kernel, …): write `fn NAME_entries() -> Vec<Entry>` whose `run` closures time each version
/// with [`time_best`] on the shape from `Setup`, compare it with a reference, and fill a [`Row`]
/// (unit "GB/s" for memory-bound ops); then append it here.
fn registry() -> Vec<Entry> {
    let mut rows = matmul_entries();
    rows.extend(op_entries());
    rows
}

/// The memory-bound ops of a training step on an `[M, N]` activation (M and N from `--shape`),
/// each timed in f32 and checked against its formula in f64 (`reference.rs`). GB/s counts the
/// bytes each op must read and write once.
fn op_entries() -> Vec<Entry> {
    ["softmax", "layernorm", "gelu", "cross_entropy"]
        .into_iter()
        .map(|kernel| Entry {
            kernel,
            version: "cpu",
            run: Box::new(move |s: &Setup| measure_op(s, kernel)),
        })
        .collect()
}

/// Run one op on `x` (`[rows, cols]`) into `y`; cross-entropy writes one value per row.
fn run_op<T: Float>(kernel: &str, x: &[T], targets: &[u32], cols: usize, y: &mut [T]) {
    let rows = targets.len();
    match kernel {
        "softmax" => cpu::softmax::softmax(x, y, cols),
        "layernorm" => {
            let (w, b) = (vec![T::ONE; cols], vec![T::ZERO; cols]);
            let (mut mean, mut rstd) = (vec![T::ZERO; rows], vec![T::ZERO; rows]);
            let eps = T::from_f64(1e-5);
            cpu::layernorm::layernorm(x, &w, &b, eps, cols, y, &mut mean, &mut rstd)
        }
        "gelu" => cpu::gelu::gelu(x, y),
        "cross_entropy" => {
            cpu::cross_entropy::cross_entropy(x, targets, None, cols, &mut y[..rows]);
        }
        other => unreachable!("no op {other}"),
    }
}

/// The f64 reference of op `kernel` on `x` (`[rows, cols]`): per element, or per row for
/// cross-entropy (the row's log-sum-exp).
fn reference_op(kernel: &str, x: &[f64], cols: usize) -> Vec<f64> {
    match kernel {
        "softmax" => reference::softmax(x, cols),
        "layernorm" => reference::layernorm(x, cols, 1e-5),
        "gelu" => reference::gelu(x),
        "cross_entropy" => reference::row_logsumexp(x, cols),
        other => unreachable!("no op {other}"),
    }
}

fn measure_op(s: &Setup, kernel: &str) -> Row {
    let (rows, cols) = (s.shape.m, s.shape.n);
    let mut rng = Rng::new(0x5eed ^ (rows * 131 + cols) as u64);
    let targets: Vec<u32> = (0..rows)
        .map(|_| (rng.next_u64() % cols as u64) as u32)
        .collect();
    let x = uniform_vec(&mut rng, rows * cols);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut y = vec![0.0f32; rows * cols];
    let (secs, cpu_secs) = time_best(s.budget, || run_op(kernel, &x, &targets, cols, &mut y));
    let want = reference_op(kernel, &x64, cols);
    // Bytes that must move: read the input, write the output (cross-entropy writes per row).
    let bytes = match kernel {
        "cross_entropy" => 4 * rows * (cols + 1),
        _ => 8 * rows * cols,
    };
    let got: Vec<f64> = y[..want.len()].iter().map(|&v| v as f64).collect();
    Row {
        kernel: kernel.into(),
        version: "cpu".into(),
        shape: format!("{rows}x{cols}"),
        ms: secs * 1e3,
        gflops: bytes as f64 / secs / 1e9,
        cpu_ms: cpu_secs * 1e3,
        unit: "GB/s",
        max_rel_err: rel_error(&got, &want),
        tolerance: F32_TOL,
        threads: rayon::current_num_threads(),
        note: "[M, N] of --shape".into(),
    }
}

/// `max |got − want| / max |want|` (`max |got − want|` when the reference is all zeros).
fn rel_error(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "rel_error: lengths differ");
    let max_ref = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    if max_ref > 0.0 {
        max_err / max_ref
    } else {
        max_err
    }
}

fn matmul_entries() -> Vec<Entry> {
    let variants = [
        (
            "matmul",
            Layout::N,
            Layout::N,
            &["v1", "v2", "v3", "v4", "v5"][..],
        ),
        ("matmul_nt", Layout::N, Layout::T, &["v1", "v4", "v5"][..]),
        ("matmul_tn", Layout::T, Layout::N, &["v1", "v4", "v5"][..]),
    ];
    let mut out = Vec::new();
    for (kernel, ta, tb, versions) in variants {
        // `gemm` is the entry point the tensor engine calls (v5, or a matrix-vector loop).
        let entry: (&str, GemmFn) = ("gemm", matmul::gemm);
        // v4 with the AVX2 kernel too, when the CPU has it but prefers AVX-512.
        let avx2: (&str, GemmFn) = ("v4-avx2", |m, k, n, a, ta, b, tb, c, acc| {
            matmul::v4_simd::gemm_v4_isa(Isa::Avx2, m, k, n, a, ta, b, tb, c, acc)
        });
        let extra = (kernel == "matmul" && Isa::best() != Isa::Avx2)
            .then_some(&avx2)
            .filter(|_| Isa::available().contains(&Isa::Avx2));
        let chosen = matmul::VERSIONS
            .iter()
            .filter(|(v, _)| versions.contains(v));
        for &(version, f) in chosen.chain(extra).chain([&entry]) {
            out.push(Entry {
                kernel,
                version,
                run: Box::new(move |s: &Setup| measure_matmul(s, kernel, version, f, ta, tb)),
            });
        }
    }
    out
}

/// Time one matmul version. v1/v2 run on at most 256×256×256 unless the shape is small.
fn measure_matmul(
    s: &Setup,
    kernel: &str,
    version: &str,
    f: GemmFn,
    ta: Layout,
    tb: Layout,
) -> Row {
    let slow = matches!(version, "v1" | "v2");
    let mut shape = s.shape;
    let mut note = String::new();
    if slow && shape.m * shape.k * shape.n > 256 * 256 * 256 {
        shape = Shape {
            m: shape.m.min(256),
            k: shape.k.min(256),
            n: shape.n.min(256),
        };
        note = "smaller shape (too slow)".into();
    }
    if matches!(version, "v4" | "v5" | "gemm") {
        note = Isa::best().name().into();
    } else if version == "v4-avx2" {
        note = Isa::Avx2.name().into();
    }
    let Shape { m, k, n } = shape;
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (m * 31 + k * 17 + n) as u64);
    let a = uniform_vec(&mut rng, m * k);
    let b = uniform_vec(&mut rng, k * n);
    let mut c = vec![0.0f32; m * n];
    let (secs, cpu_secs) = time_best(s.budget, || f(m, k, n, &a, ta, &b, tb, &mut c, false));
    let err = matmul_error(shape, &a, ta, &b, tb, &c);
    let threads = if version == "v5" || version == "gemm" {
        rayon::current_num_threads()
    } else {
        1
    };
    Row {
        kernel: kernel.into(),
        version: version.into(),
        shape: shape.to_string(),
        ms: secs * 1e3,
        gflops: 2.0 * (m * k * n) as f64 / secs / 1e9,
        cpu_ms: cpu_secs * 1e3,
        unit: "GFLOP/s",
        max_rel_err: err,
        tolerance: F32_TOL,
        threads,
        note,
    }
}

/// max |c − ref| / max |ref| over (up to 4096 sampled) entries, with an f64 reference.
fn matmul_error(shape: Shape, a: &[f32], ta: Layout, b: &[f32], tb: Layout, c: &[f32]) -> f64 {
    let Shape { m, k, n } = shape;
    let total = m * n;
    let samples = total.min(4096);
    let mut rng = Rng::new(5);
    let (mut max_err, mut max_ref) = (0.0f64, 0.0f64);
    for s in 0..samples {
        let idx = if samples == total {
            s
        } else {
            (rng.next_u64() % total as u64) as usize
        };
        let (i, j) = (idx / n, idx % n);
        let mut want = 0.0f64;
        for p in 0..k {
            let x = match ta {
                Layout::N => a[i * k + p],
                Layout::T => a[p * m + i],
            };
            let y = match tb {
                Layout::N => b[p * n + j],
                Layout::T => b[j * k + p],
            };
            want += x as f64 * y as f64;
        }
        max_err = max_err.max((c[idx] as f64 - want).abs());
        max_ref = max_ref.max(want.abs());
    }
    if max_ref == 0.0 {
        max_err
    } else {
        max_err / max_ref
    }
}

/// Run `f` once to warm up, then repeatedly until `budget` is spent (at least twice more).
/// Returns the best wall time and the mean process CPU time per call, in seconds. The best wall
/// time, not the mean: on a shared machine, noise only ever adds time. CPU time (all threads,
/// from Linux's schedstat, which advances in scheduler ticks, hence the mean over the whole
/// loop) leaves out the time other programs held the cores; elsewhere it equals wall time.
fn time_best(budget: Duration, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let cpu0 = process_cpu_seconds();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut reps = 0;
    while reps < 2 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        reps += 1;
    }
    let total = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds()
        .zip(cpu0)
        .map_or(total, |(b, a)| b - a);
    (best, cpu / reps as f64)
}

/// CPU time used so far by all threads of this process, from `/proc/self/task/*/schedstat`
/// (nanoseconds on the CPU), or None where that does not exist.
fn process_cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

/// `len` values uniform in [-1, 1) from the engine's seeded generator.
fn uniform_vec(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| 2.0 * rng.uniform() as f32 - 1.0).collect()
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<13} {:<7} {:<16} {:>10} {:>12} {:>7} {:>11} {:>7}  note",
        "kernel", "version", "shape", "ms", "GFLOP/s", "% best", "max_rel_err", "tol"
    );
    let best = best_per_kernel(rows);
    for (r, b) in rows.iter().zip(best) {
        let rate = match r.unit {
            "GB/s" => format!("{:.1} GB/s", r.gflops),
            "TFLOP/s" => format!("{:.1} TF/s", r.gflops),
            _ => format!("{:.1}", r.gflops),
        };
        println!(
            "{:<13} {:<7} {:<16} {:>10.3} {:>12} {:>6.1}% {:>11.2e} {:>7.1e}  {}",
            r.kernel,
            r.version,
            r.shape,
            r.ms,
            rate,
            100.0 * r.gflops / b,
            r.max_rel_err,
            r.tolerance,
            r.note
        );
    }
}

/// For each row, the best rate among the rows of the same kernel; for GPU rows (`cuda_*`), the
/// rate of cuBLAS on the same kernel and shape (or the best there when cuBLAS was filtered out
/// or could not run).
fn best_per_kernel(rows: &[Row]) -> Vec<f64> {
    rows.iter()
        .map(|r| {
            let gpu = r.kernel.starts_with("cuda_");
            let peers = rows
                .iter()
                .filter(|o| o.kernel == r.kernel && (!gpu || o.shape == r.shape));
            let cublas = peers
                .clone()
                .find(|o| gpu && o.version == "cublas" && o.gflops.is_finite());
            cublas.map_or_else(|| peers.map(|o| o.gflops).fold(0.0, f64::max), |c| c.gflops)
        })
        .collect()
}

/// The GPU for the CUDA rows, or why there is none (printed under the table).
/// `PRETRAIN_GPU_EMU=1` takes the CPU emulator instead (tiny shapes only: it checks the rows'
/// code and the kernels' results, and its times mean nothing).
fn open_gpu(device: DeviceArg) -> Result<std::sync::Arc<Gpu>, String> {
    if device == DeviceArg::Cpu {
        return Err("--device cpu".into());
    }
    let gpu = if std::env::var("PRETRAIN_GPU_EMU").is_ok_and(|v| v == "1") {
        Gpu::emulated()
    } else {
        Gpu::open(0)
    }
    .map_err(|e| format!("{e:#}"))?;
    pretrain::info!("device: {}", gpu.describe());
    Ok(gpu)
}

fn main() -> std::process::ExitCode {
    cli::run::<Args, _>("kernels", |args| {
        if args.ptx_report {
            return cuda_rows::ptx_report(args.arch, args.filter.as_deref(), args.json);
        }
        let quick = cli::quick();
        let setup = Setup {
            shape: args.shape.unwrap_or(if quick {
                Shape {
                    m: 128,
                    k: 128,
                    n: 128,
                }
            } else {
                Shape {
                    m: 1024,
                    k: 1024,
                    n: 1024,
                }
            }),
            budget: Duration::from_millis(if quick { 20 } else { 400 }),
        };
        let gpu = open_gpu(args.device);
        let mut all = Vec::new();
        if args.device != DeviceArg::Cuda || gpu.is_err() {
            all = registry();
        }
        if let Ok(gpu) = &gpu {
            let only_shape = args.shape.is_some() || quick;
            all.extend(cuda_rows::entries(gpu.clone(), setup.shape, only_shape));
        }
        let filter = args.filter.clone().unwrap_or_default();
        let entries: Vec<Entry> = all
            .into_iter()
            .filter(|e| e.kernel.contains(&filter) || e.version.contains(&filter))
            .collect();
        if entries.is_empty() {
            bail!("--filter '{filter}' matches no kernel or version");
        }
        memory::check(&entries, setup.shape, gpu.as_deref().ok())?;
        let mut pool = rayon::ThreadPoolBuilder::new();
        if let Some(t) = args.threads {
            pool = pool.num_threads(t as usize);
        }
        let pool = pool.build().context("starting the thread pool")?;
        pretrain::info!(
            "kernels: {} rows, matmul shape {}, {} threads, micro-kernel {}",
            entries.len(),
            setup.shape,
            pool.current_num_threads(),
            Isa::best().name()
        );
        let bar = cli::progress(entries.len() as u64, "kernels");
        let mut rows = Vec::new();
        for e in &entries {
            bar.set_message(format!("{} {}", e.kernel, e.version));
            rows.push(pool.install(|| (e.run)(&setup)));
            bar.inc(1);
        }
        bar.finish_and_clear();
        if args.json {
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
        } else {
            print_report(&rows, &gpu);
        }
        check_tolerances(&rows)
    })
}

/// The table, and the line saying where the CUDA rows ran (or why there are none).
fn print_report(rows: &[Row], gpu: &Result<std::sync::Arc<Gpu>, String>) {
    print_table(rows);
    match gpu {
        Err(why) => println!("no CUDA rows: {why}"),
        Ok(g) => println!(
            "CUDA rows: {}, % best = % of cuBLAS on the same shape and precision (of our best where cuBLAS did not run)",
            g.describe()
        ),
    }
}

/// Fails, naming each, when a row that ran has an error above its tolerance.
fn check_tolerances(rows: &[Row]) -> anyhow::Result<()> {
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| {
            r.tolerance.is_finite() && (r.max_rel_err.is_nan() || r.max_rel_err > r.tolerance)
        })
        .map(|r| {
            format!(
                "{} {} {}: max_rel_err {:.2e} > {:.1e}",
                r.kernel, r.version, r.shape, r.max_rel_err, r.tolerance
            )
        })
        .collect();
    if !bad.is_empty() {
        bail!(
            "{} row(s) above their tolerance: {}",
            bad.len(),
            bad.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(err: f64, tol: f64) -> Row {
        Row {
            kernel: "k".into(),
            version: "v".into(),
            shape: "1x1x1".into(),
            ms: 1.0,
            gflops: 1.0,
            cpu_ms: 1.0,
            unit: "GFLOP/s",
            max_rel_err: err,
            tolerance: tol,
            threads: 1,
            note: String::new(),
        }
    }

    #[test]
    fn rows_above_their_tolerance_fail_the_run() {
        assert!(check_tolerances(&[row(1e-7, F32_TOL)]).is_ok());
        let e = check_tolerances(&[row(1e-7, F32_TOL), row(2e-5, F32_TOL)]).unwrap_err();
        assert!(
            e.to_string().contains("1 row(s) above their tolerance"),
            "{e}"
        );
        assert!(
            check_tolerances(&[row(f64::NAN, F32_TOL)]).is_err(),
            "a NaN error fails"
        );
        assert!(
            check_tolerances(&[row(f64::NAN, f64::NAN)]).is_ok(),
            "a skipped row passes"
        );
    }

    #[test]
    fn references_agree_with_the_cpu_kernels() {
        let x: Vec<f64> = (0..48)
            .map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0)
            .collect();
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let targets = [0u32, 1, 2, 3];
        for kernel in ["softmax", "layernorm", "gelu", "cross_entropy"] {
            let mut y = vec![0.0f32; 48];
            run_op(kernel, &x32, &targets, 12, &mut y);
            let want = reference_op(kernel, &x, 12);
            let got: Vec<f64> = y[..want.len()].iter().map(|&v| v as f64).collect();
            assert!(rel_error(&got, &want) < F32_TOL, "{kernel}");
        }
    }
}
