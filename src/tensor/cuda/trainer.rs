//! The GPU side of the training loop (`crate::train::trainer`): a [`GpuGpt`] in the precision
//! chosen at run time, and the GPU's peak throughput for MFU.

use super::Precision;
use super::exec::Exec;
use super::gpt::GpuGpt;
use crate::model::gpt::Gpt;
use crate::train::optim::AdamW;
use anyhow::Result;
use half::bf16;

/// A [`GpuGpt`] in fp32 (matches the CPU) or bf16 (mixed precision), chosen at run time.
pub enum GpuTrainer {
    F32(GpuGpt<f32>),
    Bf16(GpuGpt<bf16>),
}

/// Calls the same method on whichever model is inside.
macro_rules! each {
    ($self:expr, $g:ident => $body:expr) => {
        match $self {
            GpuTrainer::F32($g) => $body,
            GpuTrainer::Bf16($g) => $body,
        }
    };
}

impl GpuTrainer {
    /// `model`'s weights and `opt`'s moments on the GPU, for micro-batches of `batch × seq_len`.
    pub fn new(
        ex: &Exec,
        model: &Gpt,
        opt: &AdamW,
        batch: usize,
        seq_len: usize,
        precision: Precision,
    ) -> Result<GpuTrainer> {
        let mut t = match precision {
            Precision::F32 => {
                GpuTrainer::F32(GpuGpt::with_exec(ex.clone(), model, batch, seq_len)?)
            }
            Precision::Bf16 => {
                GpuTrainer::Bf16(GpuGpt::with_exec(ex.clone(), model, batch, seq_len)?)
            }
        };
        each!(&mut t, g => g.load_optimizer(opt))?;
        Ok(t)
    }

    pub fn precision(&self) -> Precision {
        match self {
            GpuTrainer::F32(_) => Precision::F32,
            GpuTrainer::Bf16(_) => Precision::Bf16,
        }
    }

    /// Forward on one micro-batch; see [`GpuGpt::forward`].
    pub fn forward(&mut self, tokens: &[u32], targets: &[u32], loss_scale: f32) -> Result<f32> {
        each!(self, g => g.forward(tokens, targets, loss_scale))
    }

    pub fn backward(&mut self) -> Result<()> {
        each!(self, g => g.backward())
    }

    /// Clip and AdamW (`opt.step` advances); then the gradients are zeroed. Returns the norm.
    pub fn update(&mut self, opt: &mut AdamW, lr: f32, grad_clip: f32) -> Result<f32> {
        let norm = each!(self, g => g.update(opt, lr, grad_clip))?;
        each!(self, g => g.zero_grad())?;
        Ok(norm)
    }

    pub fn eval_loss(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f32> {
        each!(self, g => g.eval_loss(tokens, targets))
    }

    /// The weights into `model` and the moments into `opt` (for checkpoints and samples).
    pub fn download(&self, model: &Gpt, opt: &mut AdamW) -> Result<()> {
        each!(self, g => g.to_cpu(model))?;
        each!(self, g => g.save_optimizer(opt))
    }

    /// The weights into `model`.
    pub fn download_weights(&self, model: &Gpt) -> Result<()> {
        each!(self, g => g.to_cpu(model))
    }

    /// The GPU's peak dense matmul throughput in this precision, GFLOP/s (for MFU).
    pub fn peak_gflops(&self) -> f64 {
        each!(self, g => peak_gflops(g.exec.name(), self.precision()))
    }
}

/// Datasheet peak of dense matmuls in GFLOP/s for the GPUs we know (bf16 on tensor cores; fp32
/// on the CUDA cores, no TF32), else a rough guess from an H100. MFU is quoted against these,
/// as llm.c and nanoGPT do.
pub fn peak_gflops(name: &str, precision: Precision) -> f64 {
    let table: [(&str, f64, f64); 5] = [
        // (name contains, bf16, fp32)
        ("H200", 989e3, 67e3),
        ("H100", 989e3, 67e3),
        ("A100", 312e3, 19.5e3),
        ("L4", 121e3, 30.3e3),
        ("4090", 165e3, 82.6e3),
    ];
    let (bf, fp) = table
        .iter()
        .find(|(k, _, _)| name.contains(k))
        .map_or((989e3, 67e3), |&(_, b, f)| (b, f));
    match precision {
        Precision::Bf16 => bf,
        Precision::F32 => fp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_by_name() {
        assert_eq!(peak_gflops("NVIDIA H200", Precision::Bf16), 989e3);
        assert_eq!(peak_gflops("NVIDIA A100-SXM4-80GB", Precision::F32), 19.5e3);
    }
}
