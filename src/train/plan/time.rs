//! Time: the FLOPs of training, the messages each GPU sends per step, and the seconds both take.
//!
//! **Compute.** A forward and backward pass costs about 6 FLOPs per parameter per token
//! (Kaplan et al. 2020, section 2.1: 2N forward, twice that backward), so training N parameters
//! on D tokens costs 6·N·D. The attention's score and value products add 12·L·h·s per token
//! (Chowdhery et al. 2022, PaLM, appendix B), which 6·N·D leaves out; we report it beside. At a
//! model FLOPs utilization (MFU: useful FLOPs over peak FLOPs, everything lost to bubbles,
//! messages and stalls included) the run takes 6·N·D / (peak · MFU) GPU-seconds.
//!
//! **Messages**, bytes one GPU sends per step (ring algorithms, Ψ' = Ψ/(t·p) the parameters
//! of its model slice, 2 bytes per bf16 value, N the group's size, m micro-batches per step):
//!
//! | parallelism | what | bytes per GPU per step |
//! |---|---|---|
//! | data, ZeRO 0 | all-reduce the gradients once per step | 2(N−1)/N · 2Ψ' |
//! | data, ZeRO 1 | reduce-scatter the gradients once per step, all-gather the new weights | 2(N−1)/N · 2Ψ' |
//! | data, ZeRO 2 | reduce-scatter the gradients every micro-batch, all-gather the weights | (m + 1)(N−1)/N · 2Ψ' |
//! | data, ZeRO 3 | all-gather the weights forward and backward, reduce-scatter the gradients, every micro-batch | 3m(N−1)/N · 2Ψ' |
//! | tensor | 4 all-reduces of the b·s·h activations per layer (2 forward, 2 backward; Megatron's f and g) | m · L/p · 4 · 2(t−1)/t · 2bsh |
//! | pipeline | a stage's output forward and its input's gradient backward, split over the t tensor ranks | m · 2 · 2bsh / t |
//!
//! At m = 1 the data-parallel rows are the ZeRO paper's (section 7): ZeRO-1 and 2 move what
//! plain DP moves, ZeRO-3 1.5 times that. A group whose GPUs fit in one node (ranks ordered
//! tensor first, then data, then pipeline) talks over the intra-node link (NVLink), others over
//! the inter-node one (InfiniBand or RoCE); seconds are bytes over the link's bandwidth, latency
//! left out.

use super::memory::Layout;
use super::model::ModelShape;
use serde::Serialize;

/// One kind of message in a step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    /// `data`, `tensor` or `pipeline`.
    pub parallelism: &'static str,
    /// The collective, in words.
    pub what: &'static str,
    /// `intra-node` or `inter-node`.
    pub link: &'static str,
    pub bytes_per_gpu: f64,
    pub seconds: f64,
}

/// The links between GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Links {
    /// GB/s one GPU sends within its node.
    pub intra_node_gbps: f64,
    /// GB/s one GPU sends to other nodes.
    pub inter_node_gbps: f64,
    pub gpus_per_node: u64,
}

/// What one step moves: the layout, the model when its shapes are known, the micro-batches.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    pub params: f64,
    pub model: Option<&'a ModelShape>,
    pub layout: &'a Layout,
    pub micro_batch: u64,
    pub seq_len: u64,
    /// Micro-batches per step on each pipeline (m).
    pub micro_batches: u64,
}

impl Step<'_> {
    /// Every message of a step, by the table in the module docs.
    pub fn messages(&self, links: &Links) -> Vec<Message> {
        let l = self.layout;
        let m = self.micro_batches as f64;
        let link = |span: u64| {
            if span <= links.gpus_per_node {
                ("intra-node", links.intra_node_gbps)
            } else {
                ("inter-node", links.inter_node_gbps)
            }
        };
        let mut out = Vec::new();
        let mut push = |parallelism, what, span: u64, bytes: f64| {
            let (name, gbps) = link(span);
            out.push(Message {
                parallelism,
                what,
                link: name,
                bytes_per_gpu: bytes,
                seconds: bytes / (gbps * 1e9),
            });
        };
        if l.dp > 1 {
            let (what, bytes) = self.data_parallel();
            push("data", what, l.tp * l.dp, bytes);
        }
        if let Some(model) = self.model {
            let (t, layers) = (l.tp as f64, model.n_layer as f64 / l.pp as f64);
            let bsh2 = 2.0 * (self.micro_batch * self.seq_len * model.n_embd) as f64;
            if l.tp > 1 {
                let bytes = m * layers * 4.0 * 2.0 * (t - 1.0) / t * bsh2;
                push("tensor", "4 all-reduces per layer", l.tp, bytes);
            }
            if l.pp > 1 {
                push("pipeline", "send/recv", l.gpus, m * 2.0 * bsh2 / t);
            }
        }
        out
    }

    /// The data-parallel collective and its bytes per GPU per step.
    fn data_parallel(&self) -> (&'static str, f64) {
        let l = self.layout;
        let n = l.dp as f64;
        let ring = (n - 1.0) / n * 2.0 * self.params / (l.tp * l.pp) as f64;
        let m = self.micro_batches as f64;
        match l.zero {
            0 => ("all-reduce gradients", 2.0 * ring),
            1 => ("reduce-scatter gradients, all-gather weights", 2.0 * ring),
            2 => (
                "reduce-scatter per micro-batch, all-gather",
                (m + 1.0) * ring,
            ),
            _ => (
                "all-gather weights twice, reduce-scatter gradients",
                3.0 * m * ring,
            ),
        }
    }
}

/// FLOPs per token of training: 6N, and the attention's 12·L·h·s beside it.
pub fn flops_per_token(params: f64) -> f64 {
    6.0 * params
}

/// The attention's FLOPs per token that 6N leaves out (PaLM's appendix B).
pub fn attention_flops_per_token(model: &ModelShape, seq_len: u64) -> f64 {
    12.0 * (model.n_layer * model.n_embd * seq_len) as f64
}

/// The bubble of a pipeline of p stages and m micro-batches (GPipe, 1F1B): (p−1)/(m+p−1).
pub fn pipeline_bubble(stages: u64, micro_batches: u64) -> f64 {
    let (p, m) = (stages as f64, micro_batches.max(1) as f64);
    (p - 1.0) / (m + p - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::plan::model::Preset;

    const LINKS: Links = Links {
        intra_node_gbps: 450.0,
        inter_node_gbps: 50.0,
        gpus_per_node: 8,
    };

    fn step<'a>(layout: &'a Layout, model: Option<&'a ModelShape>, m: u64) -> Step<'a> {
        Step {
            params: 1e9,
            model,
            layout,
            micro_batch: 1,
            seq_len: 1024,
            micro_batches: m,
        }
    }

    /// The formulas at N = 4: DP 2(N−1)/N·2Ψ; ZeRO-3 1.5 times DP at one micro-batch.
    #[test]
    fn data_parallel_bytes() {
        let dp = Layout::new(4, 1, 1, 0).unwrap();
        let z3 = Layout::new(4, 1, 1, 3).unwrap();
        let plain = step(&dp, None, 1).messages(&LINKS);
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].bytes_per_gpu, 2.0 * 0.75 * 2e9);
        assert_eq!(plain[0].link, "intra-node");
        let sharded = step(&z3, None, 1).messages(&LINKS);
        assert_eq!(sharded[0].bytes_per_gpu, 1.5 * plain[0].bytes_per_gpu);
    }

    /// Tensor groups of 8 stay in a node; data groups spanning 16 GPUs leave it.
    #[test]
    fn links_by_span() {
        let model = Preset::Gpt2.shape();
        let layout = Layout::new(16, 8, 1, 0).unwrap();
        let msgs = step(&layout, Some(&model), 1).messages(&LINKS);
        let link = |p: &str| msgs.iter().find(|m| m.parallelism == p).unwrap().link;
        assert_eq!(link("tensor"), "intra-node");
        assert_eq!(link("data"), "inter-node");
    }

    #[test]
    fn bubble() {
        assert_eq!(pipeline_bubble(1, 8), 0.0);
        assert_eq!(pipeline_bubble(4, 1), 0.75);
        assert_eq!(pipeline_bubble(2, 3), 0.25);
    }
}
