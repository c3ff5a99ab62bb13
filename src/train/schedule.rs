//! The learning-rate schedule: a linear warmup, then a cosine decay to a floor (or a constant).
//!
//! Warmup keeps the first updates small while AdamW's moment estimates are still noisy; the cosine
//! decay lowers the step size as the loss flattens, so the model settles instead of bouncing.

/// How the rate behaves after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Cosine decay from `max_lr` to `min_lr` over the remaining steps.
    Cosine,
    /// `max_lr` for every step after warmup.
    Constant,
}

/// The floor of the cosine decay, as a fraction of the peak (nanoGPT and Chinchilla use 1/10).
pub const MIN_LR_FRACTION: f32 = 0.1;

/// A learning-rate schedule over `total_steps` optimizer steps.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub max_lr: f32,
    pub min_lr: f32,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl Schedule {
    /// The rate for step `step` (counting from 0).
    pub fn lr(&self, step: usize) -> f32 {
        if step < self.warmup_steps {
            // Step 0 already gets a small non-zero rate.
            return self.max_lr * (step + 1) as f32 / self.warmup_steps as f32;
        }
        match self.kind {
            ScheduleKind::Constant => self.max_lr,
            ScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
                let done = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                let coeff = 0.5 * (1.0 + (std::f64::consts::PI * done).cos());
                (self.min_lr as f64 + coeff * (self.max_lr - self.min_lr) as f64) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_floor() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            max_lr: 1.0,
            min_lr: 0.1,
            warmup_steps: 4,
            total_steps: 14,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert_eq!(s.lr(4), 1.0);
        // Halfway through the decay, the cosine is at its midpoint.
        assert!((s.lr(9) - 0.55).abs() < 1e-6, "{}", s.lr(9));
        assert!((s.lr(14) - 0.1).abs() < 1e-6);
        assert!((s.lr(100) - 0.1).abs() < 1e-6, "stays at the floor");
        for step in 4..14 {
            assert!(s.lr(step + 1) <= s.lr(step), "decays monotonically");
        }
    }

    #[test]
    fn constant_after_warmup() {
        let s = Schedule {
            kind: ScheduleKind::Constant,
            max_lr: 3e-4,
            min_lr: 0.0,
            warmup_steps: 0,
            total_steps: 10,
        };
        assert!((0..20).all(|i| s.lr(i) == 3e-4));
    }
}
