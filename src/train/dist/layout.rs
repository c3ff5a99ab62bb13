//! How a run is split over its ranks: `dp × tp × pp = world size`.
//!
//! - **tp** ranks share each layer (tensor parallel: a layer's heads and MLP columns split);
//! - **pp** groups of layers run one after another (pipeline parallel: stages);
//! - **dp** copies of that arrangement train on different micro-batches (data parallel), with
//!   ZeRO stage `zero` deciding what the copies shard among themselves instead of replicating.
//!
//! A rank's coordinates are `(dp, pp, tp)` with tp the fastest-varying, as Megatron-LM orders
//! them: the ranks of one tensor-parallel group are neighbours (on one machine, they share the
//! fastest links).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The order in which pipeline stages run their micro-batches.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipeSchedule {
    /// All forwards, then all backwards (GPipe): simple, holds every micro-batch's activations.
    Gpipe,
    /// One forward, one backward in turn once the pipeline is full (PipeDream-Flush): the same
    /// bubble, at most `pp` micro-batches of activations held.
    #[default]
    #[value(name = "1f1b")]
    #[serde(rename = "1f1b")]
    OneFOneB,
}

/// The parallel layout of a run (all 1 and ZeRO 0 in a single process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Layout {
    /// ZeRO stage among the data parallel ranks: 0 replicates everything, 1 shards the
    /// optimizer state, 2 also the gradients, 3 also the parameters.
    pub zero: u8,
    /// Tensor parallel ranks per layer.
    pub tp: usize,
    /// Pipeline stages.
    pub pp: usize,
    pub schedule: PipeSchedule,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            zero: 0,
            tp: 1,
            pp: 1,
            schedule: PipeSchedule::default(),
        }
    }
}

impl Layout {
    /// The data parallel degree on `world` ranks, or an error when `tp × pp` does not divide it.
    pub fn dp(&self, world: usize) -> Result<usize> {
        if self.zero > 3 {
            bail!(
                "--zero {} does not exist: the stages are 0, 1, 2 and 3",
                self.zero
            );
        }
        if self.tp == 0 || self.pp == 0 {
            bail!("--tp and --pp must be at least 1");
        }
        let model = self.tp * self.pp;
        if !world.is_multiple_of(model) {
            bail!(
                "--tp {} × --pp {} = {model} does not divide the {world} rank(s) of this run",
                self.tp,
                self.pp
            );
        }
        Ok(world / model)
    }

    /// Rank `rank`'s coordinates `(dp, pp, tp)`.
    pub fn coords(&self, rank: usize) -> (usize, usize, usize) {
        (
            rank / (self.tp * self.pp),
            rank / self.tp % self.pp,
            rank % self.tp,
        )
    }

    /// One line for the start of a run, e.g. "data parallel 2 × tensor parallel 2, ZeRO-1".
    pub fn describe(&self, world: usize) -> String {
        let dp = world / (self.tp * self.pp).max(1);
        let mut parts = vec![];
        if dp > 1 {
            parts.push(format!("data parallel {dp}"));
        }
        if self.tp > 1 {
            parts.push(format!("tensor parallel {}", self.tp));
        }
        if self.pp > 1 {
            parts.push(format!("pipeline parallel {}", self.pp));
        }
        let mut s = parts.join(" × ");
        if self.zero > 0 {
            s += &format!(", ZeRO-{}", self.zero);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_put_tensor_parallel_ranks_side_by_side() {
        let l = Layout {
            tp: 2,
            pp: 2,
            ..Layout::default()
        };
        assert_eq!(l.dp(8).unwrap(), 2);
        assert_eq!(l.coords(0), (0, 0, 0));
        assert_eq!(l.coords(1), (0, 0, 1));
        assert_eq!(l.coords(2), (0, 1, 0));
        assert_eq!(l.coords(5), (1, 0, 1));
        assert!(l.dp(6).is_err());
        assert_eq!(
            l.describe(8),
            "data parallel 2 × tensor parallel 2 × pipeline parallel 2"
        );
    }
}
