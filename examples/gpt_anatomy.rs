//! Every parameter of a GPT-2 with its shape and size, the count by hand, and one forward pass
//! on random tokens. Lesson 06 runs it.
//!
//! cargo run --release --example gpt_anatomy -- [gpt2|small]

use pretrain::model::checkpoint::gpt2_param_shapes;
use pretrain::model::config::GptConfig;
use pretrain::model::gpt::Gpt;
use pretrain::train::trainer::group_digits;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "gpt2".into());
    let config = match which.as_str() {
        "gpt2" => GptConfig::GPT2_124M,
        "small" => GptConfig {
            n_layer: 4,
            n_head: 4,
            n_embd: 256,
            block_size: 256,
            vocab_size: 8192,
        },
        other => {
            eprintln!("gpt_anatomy: unknown model {other:?} (expected gpt2 or small)");
            std::process::exit(2);
        }
    };
    let GptConfig {
        n_layer: l,
        n_head: h,
        n_embd: c,
        block_size: t,
        vocab_size: v,
    } = config;
    println!("{which}: n_layer {l}, n_head {h}, n_embd {c}, block_size {t}, vocab_size {v}");
    println!("{:<28} {:>14} {:>12}", "tensor", "shape", "params");
    let mut total = 0;
    for (name, shape) in gpt2_param_shapes(&config) {
        let n: usize = shape.iter().product();
        total += n;
        // Blocks 1.. repeat block 0: show it once.
        if name.starts_with("h.") && !name.starts_with("h.0.") {
            continue;
        }
        println!(
            "{name:<28} {:>14} {:>12}",
            format!("{shape:?}"),
            group_digits(n)
        );
    }
    println!(
        "{:<28} {:>14}",
        format!("(h.1 … h.{} repeat h.0)", l - 1),
        ""
    );
    let by_hand = v * c + t * c + l * (12 * c * c + 13 * c) + 2 * c;
    println!("total {} parameters", group_digits(total));
    println!(
        "by hand: V·C + T·C + L·(12·C² + 13·C) + 2·C = {}",
        group_digits(by_hand)
    );
    assert_eq!(total, by_hand);
    assert_eq!(total, config.num_params());

    // One forward pass of a small model on random tokens: logits for every position.
    let small = GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        block_size: 16,
        vocab_size: 100,
    };
    let model = Gpt::new(small, 0);
    let ids: Vec<u32> = (0..2 * 16).map(|i| (i * 37 % 100) as u32).collect();
    let targets: Vec<u32> = (0..2 * 16).map(|i| ((i * 53 + 7) % 100) as u32).collect();
    let logits = pretrain::tensor::no_grad(|| model.forward(&ids, 2, 16));
    let loss = pretrain::tensor::no_grad(|| logits.cross_entropy(&targets));
    println!(
        "forward: ids [2, 16] → logits {:?}; loss at init {:.3} ≈ ln(vocab) = {:.3}",
        logits.shape(),
        loss.item(),
        (small.vocab_size as f32).ln()
    );
}
