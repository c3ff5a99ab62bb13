//! Where each GPT-2 parameter lives in the GPU model's flat buffers.
//!
//! The GPU model keeps all parameters in one flat buffer (and the gradients, AdamW moments and
//! fp32 master copy in flat buffers of the same layout), so that zeroing the gradients, their
//! global norm and the casts are one launch each. [`ParamTable`] lists every tensor in the CPU
//! model's order (`gpt2_param_shapes`) with its offset. Two differences from the CPU layout:
//! - the token embedding has `Vp` rows, the vocabulary rounded up to a multiple of 128, so that
//!   the tied LM head's matmul has a friendly width; rows `V..Vp` stay zero (no token selects
//!   them and the classifier gives their logits zero gradient);
//! - every tensor starts at a multiple of 64 elements, so vectorised loads stay aligned. The
//!   gaps are zeros, add nothing to the gradient norm and never change.

use crate::model::checkpoint::gpt2_param_shapes;
use crate::model::config::GptConfig;

/// The vocabulary is padded to a multiple of this on the GPU.
pub const VOCAB_MULTIPLE: usize = 128;
/// Every parameter tensor starts at a multiple of this many elements.
pub const ALIGN: usize = 64;

/// `v` rounded up to a multiple of [`VOCAB_MULTIPLE`] (50257 → 50304).
pub fn padded_vocab(v: usize) -> usize {
    v.div_ceil(VOCAB_MULTIPLE) * VOCAB_MULTIPLE
}

/// One parameter tensor in the flat buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSlot {
    /// GPT-2's name, as in checkpoints (`h.0.attn.c_attn.weight`).
    pub name: String,
    /// The CPU model's shape (`wte` has `V` rows here; on the GPU it has `Vp`).
    pub shape: Vec<usize>,
    /// First element in the flat buffers.
    pub offset: usize,
    /// Elements on the GPU (`Vp·C` for `wte`, else the product of `shape`).
    pub len: usize,
    /// Elements on the CPU: the first `cpu_len` of the slot (`V·C` for `wte`).
    pub cpu_len: usize,
    /// Weight decay applies (2-D tensors: weights and embeddings), as in `AdamW::update`.
    pub decay: bool,
}

/// Every parameter's slot, in the CPU model's order, and the total length of the flat buffers.
#[derive(Clone, Debug)]
pub struct ParamTable {
    pub slots: Vec<ParamSlot>,
    pub total: usize,
    /// The padded vocabulary `Vp`.
    pub vp: usize,
}

impl ParamTable {
    pub fn new(config: &GptConfig) -> ParamTable {
        let vp = padded_vocab(config.vocab_size);
        let mut offset = 0;
        let slots = gpt2_param_shapes(config)
            .into_iter()
            .map(|(name, shape)| {
                let cpu_len: usize = shape.iter().product();
                let len = if name == "wte.weight" {
                    vp * config.n_embd
                } else {
                    cpu_len
                };
                let slot = ParamSlot {
                    decay: shape.len() == 2,
                    name,
                    shape,
                    offset,
                    len,
                    cpu_len,
                };
                offset = (offset + len).div_ceil(ALIGN) * ALIGN;
                slot
            })
            .collect();
        ParamTable {
            slots,
            total: offset,
            vp,
        }
    }

    /// The flat buffer for per-tensor host data (in table order, `cpu_len` each): zeros in the
    /// padding rows and gaps.
    pub fn pack(&self, tensors: &[&[f32]]) -> Vec<f32> {
        assert_eq!(tensors.len(), self.slots.len(), "ParamTable::pack: count");
        let mut flat = vec![0.0f32; self.total];
        for (s, t) in self.slots.iter().zip(tensors) {
            assert_eq!(t.len(), s.cpu_len, "ParamTable::pack: {}", s.name);
            flat[s.offset..s.offset + s.cpu_len].copy_from_slice(t);
        }
        flat
    }

    /// The inverse of [`pack`](Self::pack): each tensor's CPU part of `flat`.
    pub fn unpack(&self, flat: &[f32]) -> Vec<Vec<f32>> {
        assert_eq!(flat.len(), self.total, "ParamTable::unpack: length");
        self.slots
            .iter()
            .map(|s| flat[s.offset..s.offset + s.cpu_len].to_vec())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gpt::Gpt;

    fn tiny() -> GptConfig {
        GptConfig {
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            block_size: 32,
            vocab_size: 300,
        }
    }

    #[test]
    fn padding_rounds_up_to_128() {
        assert_eq!(padded_vocab(50257), 50304);
        assert_eq!(padded_vocab(300), 384);
        assert_eq!(padded_vocab(256), 256);
        assert_eq!(padded_vocab(1), 128);
    }

    #[test]
    fn table_matches_the_cpu_model() {
        for config in [tiny(), GptConfig::GPT2_124M] {
            let t = ParamTable::new(&config);
            let expected = gpt2_param_shapes(&config);
            assert_eq!(t.slots.len(), expected.len());
            let mut end = 0;
            for (s, (name, shape)) in t.slots.iter().zip(&expected) {
                assert_eq!(&s.name, name);
                assert_eq!(&s.shape, shape);
                assert_eq!(s.cpu_len, shape.iter().product::<usize>());
                assert_eq!(s.decay, shape.len() == 2, "{name}");
                assert_eq!(s.offset % ALIGN, 0, "{name} aligned");
                assert!(s.offset >= end, "{name} overlaps the previous tensor");
                end = s.offset + s.len;
            }
            assert!(t.total >= end && t.total - end < ALIGN);
            // Only wte is padded, to Vp rows.
            assert_eq!(t.slots[0].len, t.vp * config.n_embd);
            assert!(t.slots[1..].iter().all(|s| s.len == s.cpu_len));
            let cpu_total: usize = t.slots.iter().map(|s| s.cpu_len).sum();
            assert_eq!(cpu_total, config.num_params());
        }
    }

    #[test]
    fn decay_matches_adamw_update() {
        // AdamW::update decays exactly the tensors with ndim == 2.
        let model = Gpt::new(tiny(), 1);
        let t = ParamTable::new(&tiny());
        for (s, (name, p)) in t.slots.iter().zip(model.params()) {
            assert_eq!(s.name, name);
            assert_eq!(s.decay, p.ndim() == 2, "{name}");
            assert_eq!(s.cpu_len, p.numel(), "{name}");
        }
    }

    #[test]
    fn pack_unpack_round_trip_with_zero_padding() {
        let config = tiny();
        let model = Gpt::new(config, 3);
        let t = ParamTable::new(&config);
        let data: Vec<Vec<f32>> = model.params().iter().map(|(_, p)| p.to_vec()).collect();
        let refs: Vec<&[f32]> = data.iter().map(|d| d.as_slice()).collect();
        let flat = t.pack(&refs);
        assert_eq!(t.unpack(&flat), data);
        // wte's padding rows are zero, and so is every gap.
        let wte = &t.slots[0];
        assert!(
            flat[wte.offset + wte.cpu_len..wte.offset + wte.len]
                .iter()
                .all(|&x| x == 0.0)
        );
        let mut covered = vec![false; t.total];
        for s in &t.slots {
            covered[s.offset..s.offset + s.cpu_len].fill(true);
        }
        assert!(flat.iter().zip(&covered).all(|(&x, &c)| c || x == 0.0));
    }
}
