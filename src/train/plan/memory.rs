//! Memory per GPU: the model states, sharded by the layout, and the activations of the
//! micro-batches a GPU holds at once.
//!
//! **Model states** (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training
//! Trillion Parameter Models", section 3.1 and Figure 1). Mixed-precision Adam keeps, for Ψ
//! parameters: the fp16/bf16 weights (2Ψ bytes), their gradients (2Ψ) and the optimizer state
//! KΨ with K = 12: an fp32 master copy, momentum and variance (4Ψ each). That is 16Ψ. ZeRO
//! splits them over the N_d data-parallel GPUs stage by stage:
//!
//! | stage | shards | bytes per GPU |
//! |---|---|---|
//! | 0 (plain DP) | nothing | 2Ψ + 2Ψ + 12Ψ = 16Ψ |
//! | 1 (P_os) | optimizer state | 2Ψ + 2Ψ + 12Ψ/N_d |
//! | 2 (P_os+g) | and gradients | 2Ψ + 14Ψ/N_d |
//! | 3 (P_os+g+p) | and parameters | 16Ψ/N_d |
//!
//! With tensor parallelism t and pipeline parallelism p, each GPU first holds only Ψ/(t·p) of
//! the model (its slice of every matrix, its stage's layers; we split the embeddings the same
//! way), and ZeRO shards that over N_d = gpus/(t·p).
//!
//! **Activations** (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
//! Transformer Models", section 4, Table 2). One layer of a GPT, with micro-batch b, sequence s,
//! width h, a heads, 16-bit activations, stores for its backward pass
//!
//! - without recomputation: s·b·h·(34 + 5·a·s/h) bytes; with tensor parallelism t (no sequence
//!   parallelism) s·b·h·(10 + 24/t + 5·a·s/(h·t)): the 10 are the LayerNorms' and dropouts'
//!   inputs that every tensor rank keeps whole;
//! - with selective recomputation (the attention's s×s scores recomputed, which is also what
//!   FlashAttention does): s·b·h·(10 + 24/t);
//! - with full recomputation: only each layer's input, 2·s·b·h, plus one layer's activations
//!   rebuilt at a time during the backward pass;
//! - with sequence parallelism beside TP, the LayerNorms and dropouts work on 1/t of the
//!   sequence each, so the 10 becomes 10/t (34/t in all) and a layer's input 2·s·b·h/t.
//!
//! Under the 1F1B pipeline schedule the first stage holds p micro-batches in flight (at most the
//! m micro-batches of a step), each through its L/p layers: L·min(p, m)/p layers' worth. The
//! formula counts the transformer layers only (the paper adds the embedding and output layer
//! separately), and it was derived for GPT's MLP of 4h and full attention; for LLaMA's SwiGLU
//! and grouped-query attention it is an estimate of the same order.

use super::model::ModelShape;
use serde::Serialize;

/// Bytes per GB: decimal, as the ZeRO paper counts.
pub const GB: f64 = 1e9;

/// How the GPUs are split: `tp · pp · dp = gpus`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Layout {
    pub gpus: u64,
    /// Tensor-parallel degree (t).
    pub tp: u64,
    /// Pipeline stages (p).
    pub pp: u64,
    /// Data-parallel degree (N_d), derived.
    pub dp: u64,
    /// ZeRO stage, 0 to 3.
    pub zero: u8,
}

impl Layout {
    /// Checks the degrees and derives dp: tp·pp must divide the GPUs, and ZeRO runs 0 to 3.
    pub fn new(gpus: u64, tp: u64, pp: u64, zero: u8) -> anyhow::Result<Layout> {
        if gpus == 0 || tp == 0 || pp == 0 {
            anyhow::bail!("--gpus, --tp and --pp must be above 0");
        }
        let model = tp.saturating_mul(pp);
        if !gpus.is_multiple_of(model) {
            anyhow::bail!("--tp {tp} × --pp {pp} = {model} does not divide --gpus {gpus}");
        }
        if zero > 3 {
            anyhow::bail!("--zero {zero}: ZeRO has stages 0, 1, 2 and 3");
        }
        let dp = gpus / model;
        Ok(Layout {
            gpus,
            tp,
            pp,
            dp,
            zero,
        })
    }
}

/// The model states on one GPU, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ModelStates {
    pub params: f64,
    pub grads: f64,
    pub optimizer: f64,
}

impl ModelStates {
    /// Mixed-precision Adam for `params` parameters over `layout` (the table in the module docs).
    pub fn new(params: f64, layout: &Layout) -> ModelStates {
        let local = params / (layout.tp * layout.pp) as f64;
        let dp = layout.dp as f64;
        let shard = |from_stage: u8| if layout.zero >= from_stage { dp } else { 1.0 };
        ModelStates {
            params: 2.0 * local / shard(3),
            grads: 2.0 * local / shard(2),
            optimizer: 12.0 * local / shard(1),
        }
    }

    pub fn total(&self) -> f64 {
        self.params + self.grads + self.optimizer
    }
}

/// What the backward pass is given back by recomputing (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Recompute {
    None,
    Selective,
    Full,
}

/// One micro-batch's shape through a model on a layout.
#[derive(Clone, Copy, Debug)]
pub struct Activations<'a> {
    pub model: &'a ModelShape,
    pub layout: &'a Layout,
    pub micro_batch: u64,
    pub seq_len: u64,
    /// Micro-batches per step on each pipeline (m).
    pub micro_batches: u64,
    pub sequence_parallel: bool,
}

impl Activations<'_> {
    /// Bytes of one layer for one micro-batch, without recomputation or with selective.
    fn per_layer(&self, selective: bool) -> f64 {
        let (s, b) = (self.seq_len as f64, self.micro_batch as f64);
        let (h, a) = (self.model.n_embd as f64, self.model.n_head as f64);
        let t = self.layout.tp as f64;
        let scores = if selective {
            0.0
        } else {
            5.0 * a * s / (h * t)
        };
        s * b * h * (10.0 / self.sp_split() + 24.0 / t + scores)
    }

    /// What sequence parallelism divides the unsplit parts by: t with it, 1 without.
    fn sp_split(&self) -> f64 {
        if self.sequence_parallel {
            self.layout.tp as f64
        } else {
            1.0
        }
    }

    /// Layers' worth of activations the first pipeline stage holds at once under 1F1B.
    pub fn layers_in_flight(&self) -> f64 {
        let p = self.layout.pp;
        let in_flight = p.min(self.micro_batches.max(1));
        self.model.n_layer as f64 * in_flight as f64 / p as f64
    }

    /// Bytes on one GPU under `mode`.
    pub fn bytes(&self, mode: Recompute) -> f64 {
        let layers = self.layers_in_flight();
        match mode {
            Recompute::None => layers * self.per_layer(false),
            Recompute::Selective => layers * self.per_layer(true),
            Recompute::Full => {
                let sbh = (self.seq_len * self.micro_batch * self.model.n_embd) as f64;
                let input = 2.0 * sbh / self.sp_split();
                layers * input + self.per_layer(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::plan::model::Preset;

    /// The ZeRO paper's Figure 1: Ψ = 7.5B, N_d = 64, K = 12 gives 120, 31.4, 16.6 and 1.9 GB
    /// per GPU. Exactly: 120, 31.40625, 16.640625, 1.875; the paper rounds to one decimal, so
    /// the tolerance is half its last digit, 0.05 GB.
    #[test]
    fn zero_paper_figure_1() {
        for (zero, paper) in [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)] {
            let layout = Layout::new(64, 1, 1, zero).unwrap();
            let gb = ModelStates::new(7.5e9, &layout).total() / GB;
            assert!((gb - paper).abs() <= 0.05, "stage {zero}: {gb}");
        }
    }

    #[test]
    fn bad_layouts_are_errors() {
        assert!(
            Layout::new(64, 3, 1, 0)
                .unwrap_err()
                .to_string()
                .contains("divide")
        );
        assert!(
            Layout::new(64, 1, 1, 4)
                .unwrap_err()
                .to_string()
                .contains("--zero 4")
        );
        assert!(Layout::new(0, 1, 1, 0).is_err());
        assert_eq!(Layout::new(64, 2, 4, 1).unwrap().dp, 8);
    }

    /// Korthikanti et al. 2022, Table 2 at t = 1: 34 + 5as/h per s·b·h, with the selective and
    /// full forms, for GPT-2 at b = 1, s = 1024 (h = 768, a = 12: 5as/h = 80).
    #[test]
    fn activation_forms() {
        let model = Preset::Gpt2.shape();
        let layout = Layout::new(1, 1, 1, 0).unwrap();
        let act = Activations {
            model: &model,
            layout: &layout,
            micro_batch: 1,
            seq_len: 1024,
            micro_batches: 1,
            sequence_parallel: false,
        };
        let sbh = 1024.0 * 768.0;
        assert_eq!(act.bytes(Recompute::None), 12.0 * sbh * (34.0 + 80.0));
        assert_eq!(act.bytes(Recompute::Selective), 12.0 * sbh * 34.0);
        assert_eq!(act.bytes(Recompute::Full), 12.0 * 2.0 * sbh + sbh * 114.0);
    }

    /// 1F1B: with p stages and at least p micro-batches, the first stage holds L layers' worth
    /// whatever p is; with fewer micro-batches, fewer.
    #[test]
    fn pipeline_in_flight() {
        let model = Preset::Llama3_70b.shape();
        let layout = Layout::new(8, 1, 8, 0).unwrap();
        let mut act = Activations {
            model: &model,
            layout: &layout,
            micro_batch: 1,
            seq_len: 8192,
            micro_batches: 32,
            sequence_parallel: false,
        };
        assert_eq!(act.layers_in_flight(), 80.0);
        act.micro_batches = 2;
        assert_eq!(act.layers_in_flight(), 20.0);
    }
}

#[cfg(test)]
mod sp_tests {
    use super::*;
    use crate::train::plan::model::Preset;

    /// Table 2's TP rows at t = 8, a = 128, s = 8192, h = 16384 (5as/(ht) = 40): 10 + 3 + 40
    /// without SP, 34/8 + 40 with it, and 34/8 with SP and selective recomputation.
    #[test]
    fn tensor_and_sequence_parallel_forms() {
        let model = Preset::Llama3_405b.shape();
        let layout = Layout::new(8, 8, 1, 0).unwrap();
        let mut act = Activations {
            model: &model,
            layout: &layout,
            micro_batch: 1,
            seq_len: 8192,
            micro_batches: 1,
            sequence_parallel: false,
        };
        let sbh = 8192.0 * 16384.0 * 126.0;
        assert_eq!(act.bytes(Recompute::None), sbh * 53.0);
        act.sequence_parallel = true;
        assert_eq!(act.bytes(Recompute::None), sbh * (34.0 / 8.0 + 40.0));
        assert_eq!(act.bytes(Recompute::Selective), sbh * 34.0 / 8.0);
    }
}
