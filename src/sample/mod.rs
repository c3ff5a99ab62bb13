//! Stage 5: the base model continues text. Generation with a KV cache.
//!
//! A model predicts the next token from every earlier one. Without a cache, each new token would
//! recompute the keys and values of the whole prefix: O(n²) work for n tokens. The cache keeps each
//! layer's keys and values; a step computes them only for the new token and attends over the rest.

pub mod next;

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
    /// The cache must leave room: `cache.len() + ids.len() <= block_size`. The blocks are the
    /// model's own (`Gpt::block`); only attention differs: it reads the cached keys and values.
    pub fn forward_cached(&self, ids: &[u32], cache: &mut KvCache) -> Vec<f32> {
        let (n, start) = (ids.len(), cache.len);
        assert!(
            n > 0 && start + n <= self.config.block_size,
            "forward_cached: {start} cached + {n} new tokens exceed block_size {}",
            self.config.block_size
        );
        no_grad(|| {
            let mut x = self.embed(ids, &[n], start);
            for (l, block) in self.blocks.iter().enumerate() {
                x = self.block(block, &x, |qkv| self.cached_attention(qkv, cache, l));
            }
            cache.len += n;
            let last = self.final_norm(&x.narrow(0, n - 1, 1));
            last.matmul(&self.wte.t()).to_vec()
        })
    }

    /// Attention of the new rows `qkv` (`[n, 3C]`) over the cached keys and values of layer `l`
    /// and their own; the new keys and values join the cache.
    fn cached_attention(&self, qkv: &Tensor, cache: &mut KvCache, l: usize) -> Tensor {
        let (c, nh) = (self.config.n_embd, self.config.n_head);
        let (n, hd) = (qkv.shape()[0], c / nh);
        // [n, 3C] → [3, H, n, D]
        let parts = qkv
            .reshape(&[n, 3, nh, hd])
            .permute(&[1, 2, 0, 3])
            .contiguous()
            .chunk(3, 0);
        let q = parts[0].reshape(&[nh, n, hd]);
        let extend = |old: &Option<Tensor>, new: Tensor| match old {
            Some(old) => Tensor::cat(&[old, &new], 1),
            None => new,
        };
        let k = extend(&cache.keys[l], parts[1].reshape(&[nh, n, hd]));
        let v = extend(&cache.values[l], parts[2].reshape(&[nh, n, hd]));
        // New query i sits at position start + i: it sees keys 0..=start + i.
        let att = q.matmul(&k.t()).causal_softmax(1.0 / (hd as f64).sqrt());
        let y = att.matmul(&v).permute(&[1, 0, 2]).reshape(&[n, c]);
        cache.keys[l] = Some(k);
        cache.values[l] = Some(v);
        y
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
