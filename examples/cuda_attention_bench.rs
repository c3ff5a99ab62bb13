//! Times the CUDA attention (each version) and the cross-entropy over the logits at GPT-2 124M's
//! shapes (B=8, T=1024, 12 heads of 64; 8,192 rows of 50,257 classes), on random inputs, after
//! a warm-up, with the GPU synchronised around the timed loop. Needs a GPU; `scripts/gpu-check.sh`
//! runs it:
//!
//! ```sh
//! cargo run --release --example cuda_attention_bench
//! ```

use half::bf16;
use pretrain::tensor::Rng;
use pretrain::tensor::cuda::attention::{
    AttentionBackward, Heads, Version, attention_backward_version, attention_forward_version,
    attention_scratch_len,
};
use pretrain::tensor::cuda::cross_entropy::{
    Logits, cross_entropy_backward, cross_entropy_forward,
};
use pretrain::tensor::cuda::{Buffer, Gpu, GpuFloat};
use std::sync::Arc;

fn random<X: GpuFloat>(gpu: &Arc<Gpu>, rng: &mut Rng, n: usize) -> Buffer<X> {
    let v: Vec<X> = (0..n).map(|_| X::from_f32(rng.normal() as f32)).collect();
    Buffer::from_host(gpu, &v).unwrap()
}

/// Mean milliseconds of `f` over `reps` runs, after one warm-up run.
fn time_ms(gpu: &Gpu, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    gpu.sync().unwrap();
    let start = std::time::Instant::now();
    for _ in 0..reps {
        f();
    }
    gpu.sync().unwrap();
    start.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn time_attention<X: GpuFloat>(gpu: &Arc<Gpu>, version: Version) {
    let (b, t, nh, hs) = (8, 1024, 12, 64);
    let c = nh * hs;
    let mut rng = Rng::new(1);
    let qkv = random::<X>(gpu, &mut rng, b * t * 3 * c);
    let out = Buffer::<X>::zeros(gpu, b * t * c).unwrap();
    let dout = random::<X>(gpu, &mut rng, b * t * c);
    let dqkv = Buffer::<X>::zeros(gpu, b * t * 3 * c).unwrap();
    let lse = Buffer::<f32>::zeros(gpu, b * nh * t).unwrap();
    let heads = Heads { b, t, nh, hs };
    let scratch = Buffer::<f32>::zeros(gpu, attention_scratch_len(heads)).unwrap();
    let fwd = time_ms(gpu, 10, || {
        attention_forward_version(gpu, version, out.ptr(), lse.ptr(), qkv.ptr(), heads).unwrap()
    });
    let bufs = AttentionBackward {
        dqkv: dqkv.ptr(),
        dout: dout.ptr(),
        out: out.ptr(),
        qkv: qkv.ptr(),
        lse: lse.ptr(),
        scratch: scratch.ptr(),
    };
    let bwd = time_ms(gpu, 10, || {
        attention_backward_version(gpu, version, &bufs, heads).unwrap()
    });
    // Useful work of causal attention: q·kᵀ and p·v over half the T×T matrix forward, and
    // 2.5 times that backward (five products).
    let flop = 2.0 * (b * nh * t * t * hs) as f64;
    eprintln!(
        "attention {version:?} {} B={b} T={t} NH={nh} hs={hs}: forward {fwd:.3} ms \
         ({:.1} TFLOP/s), backward {bwd:.3} ms ({:.1} TFLOP/s)",
        X::PRECISION.name(),
        flop / fwd * 1e-9,
        2.5 * flop / bwd * 1e-9
    );
}

/// Cross-entropy forward (loss and log-sum-exp per row) and backward (the logits' gradient,
/// written in place over the logits, as the tensor engine does).
fn time_cross_entropy<X: GpuFloat>(gpu: &Arc<Gpu>) {
    let (rows, cols) = (8 * 1024, 50257);
    let mut rng = Rng::new(2);
    let logits = random::<X>(gpu, &mut rng, rows * cols);
    let losses = Buffer::<f32>::zeros(gpu, rows).unwrap();
    let lse = Buffer::<f32>::zeros(gpu, rows).unwrap();
    let dloss = Buffer::from_host(gpu, &[1.0f32]).unwrap();
    let t: Vec<i32> = (0..rows).map(|_| rng.below(cols as u64) as i32).collect();
    let targets = Buffer::from_host(gpu, &t).unwrap();
    let x = Logits {
        logits: logits.ptr(),
        targets: targets.ptr(),
        rows,
        cols,
    };
    let fwd = time_ms(gpu, 10, || {
        cross_entropy_forward(gpu, losses.ptr(), lse.ptr(), x).unwrap()
    });
    let scale = 1.0 / rows as f32;
    let bwd = time_ms(gpu, 10, || {
        cross_entropy_backward(gpu, x.logits, x, lse.ptr(), dloss.ptr(), scale).unwrap()
    });
    // The forward reads the logits once; the backward reads them and writes the gradient.
    let bytes = (rows * cols * std::mem::size_of::<X>()) as f64;
    eprintln!(
        "cross_entropy {} rows={rows} cols={cols}: forward {fwd:.3} ms ({:.0} GB/s), \
         backward {bwd:.3} ms ({:.0} GB/s), forward+backward {:.3} ms",
        X::PRECISION.name(),
        bytes / fwd * 1e-6,
        2.0 * bytes / bwd * 1e-6,
        fwd + bwd
    );
}

fn main() {
    let gpu = match Gpu::open(0) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cuda_attention_bench: needs a GPU: {e:#}");
            std::process::exit(2);
        }
    };
    eprintln!("{}", gpu.describe());
    time_attention::<f32>(&gpu, Version::V1Scalar);
    time_attention::<bf16>(&gpu, Version::V1Scalar);
    time_attention::<bf16>(&gpu, Version::V2TensorCore);
    time_cross_entropy::<f32>(&gpu);
    time_cross_entropy::<bf16>(&gpu);
}
