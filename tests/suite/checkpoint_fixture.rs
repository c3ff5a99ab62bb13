//! The PyTorch-written reference checkpoint (tools/reference/gpt2_reference.py) loads through our
//! reader: names, shapes and the parameter count all agree.

use pretrain::model::checkpoint::{load_gpt2_params, read_safetensors};
use pretrain::model::config::GptConfig;
use std::path::Path;

#[test]
fn pytorch_written_checkpoint_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny");
    let config = GptConfig::from_hf_json(&dir.join("config.json")).unwrap();
    assert_eq!(
        config,
        GptConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            block_size: 16,
            vocab_size: 67
        }
    );
    let params = load_gpt2_params(&dir.join("model.safetensors"), &config).unwrap();
    let total: usize = params.iter().map(|p| p.data.len()).sum();
    assert_eq!(total, config.num_params());
    // LayerNorm gains were drawn around 1, biases around 0.
    let ln = params.iter().find(|p| p.name == "h.1.ln_2.weight").unwrap();
    let mean = ln.data.iter().sum::<f32>() / ln.data.len() as f32;
    assert!((mean - 1.0).abs() < 0.1, "mean LayerNorm gain {mean}");
    let (expected, _) = read_safetensors(&dir.join("expected.safetensors")).unwrap();
    let logits = expected.iter().find(|t| t.name == "logits").unwrap();
    assert_eq!(logits.shape, vec![2, 11, 67]);
    assert_eq!(
        expected.len(),
        1 + params.len(),
        "logits plus one gradient per parameter"
    );
}
