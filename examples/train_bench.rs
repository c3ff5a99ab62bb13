//! Times full training steps (forward, backward, AdamW) of a GPT-2 on random tokens and prints one
//! JSON line. `benches/compare/train_vs_torch.sh` runs it beside the same model in PyTorch.
//!
//! cargo run --release --example train_bench -- L D H T B V STEPS
//! (layers, width, heads, sequence length, batch, vocabulary, timed steps; defaults: 4 256 4 256 8 8192 5)

use pretrain::model::config::GptConfig;
use pretrain::model::gpt::Gpt;
use pretrain::train::optim::{AdamW, AdamWConfig};
use pretrain::train::trainer::{flops_per_token, measured_peak_gflops};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .unwrap_or_else(|_| panic!("train_bench: {a:?} is not a number"))
        })
        .collect();
    let get = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (l, d, h, t, b, v, steps) = (
        get(0, 4),
        get(1, 256),
        get(2, 4),
        get(3, 256),
        get(4, 8),
        get(5, 8192),
        get(6, 5),
    );
    let config = GptConfig {
        n_layer: l,
        n_head: h,
        n_embd: d,
        block_size: t,
        vocab_size: v,
    };
    let model = Gpt::new(config, 1);
    let params: Vec<_> = model.params().into_iter().map(|(_, p)| p.clone()).collect();
    let refs: Vec<_> = params.iter().collect();
    let sizes: Vec<usize> = params.iter().map(|p| p.numel()).collect();
    let mut opt = AdamW::new(AdamWConfig::default(), &sizes);
    let mut x = 12345u64;
    let mut tokens = |n: usize| -> Vec<u32> {
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) as u32 % v as u32
            })
            .collect()
    };
    // PROFILE=1 prints where the time goes, per op (forward and backward).
    let profile = std::env::var("PROFILE").is_ok_and(|v| v == "1");
    pretrain::tensor::profile::enable(profile);
    let mut times = Vec::new();
    for step in 0..steps + 1 {
        let (ids, targets) = (tokens(b * t), tokens(b * t));
        let t0 = Instant::now();
        let loss = model.loss(&ids, &targets, b, t);
        loss.backward();
        opt.update(&refs, 1e-4, 1.0);
        params.iter().for_each(|p| p.zero_grad());
        if step > 0 {
            times.push(t0.elapsed().as_secs_f64()); // step 0 warms up caches and allocations
        }
    }
    if profile {
        eprintln!("{}", pretrain::tensor::profile::report());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let tps = (b * t) as f64 / median;
    let mfu = tps * flops_per_token(&config, t) / (measured_peak_gflops() * 1e9);
    println!(
        "{{\"impl\":\"pretrain\",\"config\":\"L{l} d{d} h{h} T{t} B{b} V{v}\",\"params\":{},\"ms_per_step\":{:.1},\"tokens_per_sec\":{tps:.0},\"mfu\":{mfu:.3}}}",
        config.num_params(),
        median * 1e3
    );
}
