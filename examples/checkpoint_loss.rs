//! The loss of a checkpoint on the ids 1..=8 (predicting 2..=8 from 1..=7): the number
//! `tools/reference/hf_load_check.py` gets from Hugging Face's `GPT2LMHeadModel` on the same
//! directory, so the two can be compared.
//!
//! cargo run --release --example checkpoint_loss -- CHECKPOINT_DIR

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: checkpoint_loss CHECKPOINT_DIR");
        std::process::exit(2);
    };
    let model = match pretrain::train::trainer::load_model(std::path::Path::new(&dir)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("checkpoint_loss: error: {e:#}");
            std::process::exit(2);
        }
    };
    let ids: Vec<u32> = (1..=8).collect();
    let loss = pretrain::tensor::no_grad(|| model.loss(&ids[..7], &ids[1..], 1, 7).item());
    println!("pretrain loss on ids 1..=8: {loss:.6}");
}
