//! Our GPT-2 against PyTorch (like llm.c's test_gpt2): the fixtures in tests/fixtures/gpt2_tiny
//! were written by tools/reference/gpt2_reference.py, computed in float64.
//!
//! Tolerances (our f32 against the f64 reference):
//! - loss: 1e-5 relative;
//! - logits: max |ours − ref| ≤ 1e-5 · max |ref|;
//! - each parameter's gradient: max |ours − ref| ≤ 1e-4 · max |ref| of that tensor;
//! - the 10 AdamW-step losses: 1e-4 relative each.

use pretrain::model::checkpoint::{load_gpt2_params, read_safetensors};
use pretrain::model::config::GptConfig;
use pretrain::model::gpt::{Attention, Gpt};
use pretrain::train::optim::{AdamW, AdamWConfig};
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny")
}

struct Expected {
    b: usize,
    t: usize,
    inputs: Vec<u32>,
    targets: Vec<u32>,
    loss: f64,
    adamw_losses: Vec<f64>,
    json: serde_json::Value,
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixture().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
            })
            .collect()
    };
    Expected {
        b: v["batch"].as_u64().unwrap() as usize,
        t: v["seq_len"].as_u64().unwrap() as usize,
        inputs: ids("inputs"),
        targets: ids("targets"),
        loss: v["loss"].as_f64().unwrap(),
        adamw_losses: v["adamw_losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect(),
        json: v,
    }
}

fn model(attention: Attention) -> Gpt {
    let config = GptConfig::from_hf_json(&fixture().join("config.json")).unwrap();
    let params = load_gpt2_params(&fixture().join("model.safetensors"), &config).unwrap();
    let mut m = Gpt::from_named(config, params);
    m.attention = attention;
    m
}

fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[test]
fn logits_loss_and_gradients_match_pytorch() {
    let e = expected();
    let (reference, _) = read_safetensors(&fixture().join("expected.safetensors")).unwrap();
    let get = |name: &str| reference.iter().find(|t| t.name == name).unwrap();
    for attention in [Attention::Fused, Attention::Composed] {
        let m = model(attention);
        let logits = m.forward(&e.inputs, e.b, e.t);
        let want = get("logits");
        let got = logits.to_vec();
        assert_eq!(got.len(), want.data.len(), "{attention:?}: logits length");
        let err = got
            .iter()
            .zip(&want.data)
            .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(
            err <= 1e-5 * max_abs(&want.data),
            "{attention:?}: logits differ by {err}"
        );

        let loss = logits.cross_entropy(&e.targets);
        let l = loss.item() as f64;
        assert!(
            (l - e.loss).abs() <= 1e-5 * e.loss,
            "{attention:?}: loss {l} vs {}",
            e.loss
        );

        loss.backward();
        for (name, p) in m.params() {
            let want = get(&format!("grad.{name}"));
            let got = p.grad().unwrap().to_vec();
            assert_eq!(
                got.len(),
                want.data.len(),
                "{attention:?}: grad of {name} length"
            );
            let err = got
                .iter()
                .zip(&want.data)
                .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
            let scale = max_abs(&want.data);
            assert!(
                err <= 1e-4 * scale,
                "{attention:?}: grad of {name} differs by {err} (scale {scale})"
            );
        }
    }
}

#[test]
fn ten_adamw_steps_match_pytorch() {
    let e = expected();
    let a = &e.json["adamw"];
    let cfg = AdamWConfig {
        beta1: a["betas"][0].as_f64().unwrap() as f32,
        beta2: a["betas"][1].as_f64().unwrap() as f32,
        eps: a["eps"].as_f64().unwrap() as f32,
        weight_decay: a["weight_decay"].as_f64().unwrap() as f32,
    };
    let (lr, clip) = (
        a["lr"].as_f64().unwrap() as f32,
        a["grad_clip"].as_f64().unwrap() as f32,
    );
    let m = model(Attention::Fused);
    let params: Vec<_> = m.params().into_iter().map(|(_, p)| p.clone()).collect();
    let refs: Vec<&_> = params.iter().collect();
    let mut opt = AdamW::new(cfg, &refs, &refs);
    for (step, want) in e.adamw_losses.iter().enumerate() {
        params.iter().for_each(|p| p.zero_grad());
        let loss = m.loss(&e.inputs, &e.targets, e.b, e.t);
        let l = loss.item() as f64;
        assert!(
            (l - want).abs() <= 1e-4 * want,
            "step {step}: loss {l} vs PyTorch {want}"
        );
        loss.backward();
        opt.update(&refs, lr, clip);
    }
}
