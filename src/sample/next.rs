//! What the model believes comes next: the probability it gives each possible next token.
//!
//! A base model is a next-token predictor and nothing more; generation only draws from this
//! distribution again and again. Looking at the distribution itself shows what training taught:
//! after "北京是中国的首都，它位于" a trained model should put most of its probability on a few
//! plausible continuations (华北, 北方), while an untrained one spreads it over the whole
//! vocabulary. The *entropy* of the distribution measures that spread: `log2(V)` bits for a
//! uniform guess over `V` tokens, near 0 for a certain one; `2^entropy` is the number of
//! equally likely tokens it is worth (the perplexity of one step).

use crate::model::gpt::Gpt;
use crate::tensor::no_grad;

/// One possible next token and the probability the model gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub prob: f64,
}

/// The model's distribution over the token after a prompt.
#[derive(Clone, Debug)]
pub struct NextTokens {
    /// The most likely tokens, most likely first.
    pub top: Vec<Candidate>,
    /// Entropy of the whole distribution, in bits.
    pub entropy_bits: f64,
    /// Prompt tokens the model saw (the last `block_size` of a longer prompt).
    pub context: usize,
}

/// Softmax of one row of logits, in f64.
fn probabilities(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l)) as f64;
    let exp: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / total).collect()
}

/// The last `block_size` tokens of `ids`: all the model can see.
fn visible<'a>(model: &Gpt, ids: &'a [u32]) -> &'a [u32] {
    &ids[ids.len().saturating_sub(model.config.block_size)..]
}

/// Next-token probabilities after every position of `ids` (`[T][V]`).
fn all_positions(model: &Gpt, ids: &[u32]) -> Vec<Vec<f64>> {
    let logits = no_grad(|| model.forward(ids, 1, ids.len()).to_vec());
    logits
        .chunks(model.config.vocab_size)
        .map(probabilities)
        .collect()
}

/// The `n` most likely tokens after `prompt` (non-empty), and the distribution's entropy.
pub fn next_tokens(model: &Gpt, prompt: &[u32], n: usize) -> NextTokens {
    assert!(!prompt.is_empty(), "next_tokens: an empty prompt");
    let ids = visible(model, prompt);
    let probs = all_positions(model, ids).pop().expect("one row per token");
    let entropy_bits = -probs
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p * p.log2())
        .sum::<f64>();
    let mut top: Vec<Candidate> = probs
        .iter()
        .enumerate()
        .map(|(id, &prob)| Candidate {
            id: id as u32,
            prob,
        })
        .collect();
    // Most likely first; equal probabilities by id, so the order is always the same.
    top.sort_by(|a, b| b.prob.total_cmp(&a.prob).then(a.id.cmp(&b.id)));
    top.truncate(n);
    NextTokens {
        top,
        entropy_bits,
        context: ids.len(),
    }
}

/// For each token of `ids` after the first, the probability the model gave it, having seen the
/// tokens before it (the last `block_size` of `ids` only). The mean of `-ln p` over them is the
/// model's loss on this text.
pub fn walk(model: &Gpt, ids: &[u32]) -> Vec<f64> {
    let ids = visible(model, ids);
    let rows = all_positions(model, ids);
    rows.iter()
        .zip(&ids[1..])
        .map(|(probs, &next)| probs[next as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::GptConfig;

    fn model() -> Gpt {
        let config = GptConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            block_size: 8,
            vocab_size: 11,
        };
        Gpt::new(config, 3)
    }

    #[test]
    fn the_distribution_is_a_distribution() {
        let m = model();
        let all = next_tokens(&m, &[1, 2, 3], 11);
        let total: f64 = all.top.iter().map(|c| c.prob).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        assert!(all.top.windows(2).all(|w| w[0].prob >= w[1].prob));
        let h: f64 = all.top.iter().map(|c| -c.prob * c.prob.log2()).sum();
        assert!((h - all.entropy_bits).abs() < 1e-12);
        // An untrained model is close to uniform: near log2(11) bits.
        assert!((all.entropy_bits - 11f64.log2()).abs() < 0.1);
        assert_eq!(next_tokens(&m, &[1, 2, 3], 3).top, all.top[..3]);
    }

    #[test]
    fn the_walk_gives_the_models_loss() {
        let m = model();
        let ids = [4, 1, 7, 7, 2, 9, 0];
        let p = walk(&m, &ids);
        assert_eq!(p.len(), ids.len() - 1);
        let nll = p.iter().map(|p| -p.ln()).sum::<f64>() / p.len() as f64;
        let t = ids.len() - 1;
        let loss = m.loss(&ids[..t], &ids[1..], 1, t).item() as f64;
        // f32 loss against the f64 mean: 1e-5 relative.
        assert!((nll - loss).abs() < 1e-5 * loss, "{nll} vs {loss}");
        // The walk's last step is the next-token distribution of the prompt before it.
        let after = next_tokens(&m, &ids[..t], 11);
        let want = after.top.iter().find(|c| c.id == ids[t]).unwrap().prob;
        assert!((p[t - 1] - want).abs() < 1e-12);
    }
}
