//! Stage 5: the base model continues text. Generation with a KV cache.
//!
//! A model predicts the next token from every earlier one. Without a cache, each new token would
//! recompute the keys and values of the whole prefix: O(n²) work for n tokens. The cache keeps each
//! layer's keys and values; a step computes them only for the new token and attends over the rest.

use crate::model::config::LAYER_NORM_EPS;
use crate::model::gpt::Gpt;
use crate::tensor::{Rng, Tensor, no_grad};

/// Keys and values of every layer for the tokens seen so far: `[H, len, D]` each.
pub struct KvCache {
    keys: Vec<Option<Tensor>>,
    values: Vec<Option<Tensor>>,
    len: usize,
}

impl KvCache {
    pub fn new(n_layer: usize) -> KvCache {
        KvCache {
            keys: vec![None; n_layer],
            values: vec![None; n_layer],
            len: 0,
        }
    }

    /// Tokens cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Gpt {
    /// Feed `ids` (continuing the cached sequence) and return the logits of the last position.
    /// The cache must leave room: `cache.len() + ids.len() <= block_size`.
    pub fn forward_cached(&self, ids: &[u32], cache: &mut KvCache) -> Vec<f32> {
        let (c, nh) = (self.config.n_embd, self.config.n_head);
        let (n, start) = (ids.len(), cache.len);
        assert!(
            n > 0 && start + n <= self.config.block_size,
            "forward_cached: {start} cached + {n} new tokens exceed block_size {}",
            self.config.block_size
        );
        let hd = c / nh;
        no_grad(|| {
            let tok = self.wte.embedding(ids, &[n]);
            let mut x = &tok + &self.wpe.narrow(0, start, n);
            for (l, block) in self.blocks.iter().enumerate() {
                let h = x.layer_norm(&block.ln_1_w, &block.ln_1_b, LAYER_NORM_EPS as f64);
                let qkv = h.linear(&block.attn_w, Some(&block.attn_b));
                // [n, 3C] → [3, H, n, D]
                let qkv = qkv
                    .reshape(&[n, 3, nh, hd])
                    .permute(&[1, 2, 0, 3])
                    .contiguous();
                let parts = qkv.chunk(3, 0);
                let q = parts[0].reshape(&[nh, n, hd]);
                let k_new = parts[1].reshape(&[nh, n, hd]);
                let v_new = parts[2].reshape(&[nh, n, hd]);
                let k = match &cache.keys[l] {
                    Some(old) => Tensor::cat(&[old, &k_new], 1),
                    None => k_new,
                };
                let v = match &cache.values[l] {
                    Some(old) => Tensor::cat(&[old, &v_new], 1),
                    None => v_new,
                };
                // New query i sits at position start + i: it sees keys 0..=start + i.
                let scale = 1.0 / (hd as f64).sqrt();
                let att = q.matmul(&k.t()).causal_softmax(scale);
                let y = att.matmul(&v).permute(&[1, 0, 2]).reshape(&[n, c]);
                cache.keys[l] = Some(k);
                cache.values[l] = Some(v);
                x = &x + &y.linear(&block.attn_proj_w, Some(&block.attn_proj_b));
                let h = x.layer_norm(&block.ln_2_w, &block.ln_2_b, LAYER_NORM_EPS as f64);
                let h = h.linear(&block.fc_w, Some(&block.fc_b)).gelu();
                x = &x + &h.linear(&block.mlp_proj_w, Some(&block.mlp_proj_b));
            }
            cache.len += n;
            let last = x.narrow(0, n - 1, 1);
            let last = last.layer_norm(&self.ln_f_w, &self.ln_f_b, LAYER_NORM_EPS as f64);
            last.matmul(&self.wte.t()).to_vec()
        })
    }
}

/// How to pick the next token from the logits.
#[derive(Clone, Copy, Debug)]
pub struct SamplingConfig {
    /// 0 = greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = all).
    pub top_k: usize,
}

/// Pick a token id from `logits` with temperature and top-k.
pub fn pick(logits: &[f32], cfg: &SamplingConfig, rng: &mut Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &l)| {
                if l > best.1 { (i, l) } else { best }
            })
            .0 as u32
    };
    if cfg.temperature <= 0.0 {
        return argmax();
    }
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    if cfg.top_k > 0 && cfg.top_k < logits.len() {
        order.select_nth_unstable_by(cfg.top_k - 1, |&a, &b| {
            logits[b as usize].total_cmp(&logits[a as usize])
        });
        order.truncate(cfg.top_k);
    }
    let max = order
        .iter()
        .map(|&i| logits[i as usize])
        .fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| (((logits[i as usize] - max) / cfg.temperature) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut r = rng.uniform() * total;
    for (&id, &w) in order.iter().zip(&weights) {
        if r < w {
            return id;
        }
        r -= w;
    }
    *order.last().expect("at least one candidate")
}

/// Continue `prompt` by up to `max_new` tokens, calling `on_token` with each new id as it is made.
/// Stops early at `stop` (e.g. `<|endoftext|>`). When the context fills up, the cache is rebuilt
/// from the most recent half of the block.
pub fn generate(
    model: &Gpt,
    prompt: &[u32],
    max_new: usize,
    cfg: &SamplingConfig,
    seed: u64,
    stop: Option<u32>,
    mut on_token: impl FnMut(u32),
) -> Vec<u32> {
    assert!(
        !prompt.is_empty(),
        "generate: the prompt needs at least one token"
    );
    let block = model.config.block_size;
    let mut rng = Rng::new(seed);
    let mut seq: Vec<u32> = prompt.to_vec();
    let mut cache = KvCache::new(model.config.n_layer);
    let keep = |seq: &[u32], n: usize| seq[seq.len().saturating_sub(n)..].to_vec();
    let mut logits = model.forward_cached(&keep(&seq, block), &mut cache);
    let mut out = Vec::new();
    for _ in 0..max_new {
        let id = pick(&logits, cfg, &mut rng);
        if Some(id) == stop {
            break;
        }
        on_token(id);
        out.push(id);
        seq.push(id);
        if cache.len() == block {
            cache = KvCache::new(model.config.n_layer);
            logits = model.forward_cached(&keep(&seq, block / 2), &mut cache);
        } else {
            logits = model.forward_cached(&[id], &mut cache);
        }
    }
    out
}
