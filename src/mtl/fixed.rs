//! Fixed user weights: L = Σ_k w_k L_k with w given up front.

use super::{Capabilities, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// w_k given by the user, finite and non-negative.
pub struct Fixed {
    pub weights: Vec<f32>,
}

impl Fixed {
    pub fn new(weights: Vec<f32>) -> Result<Self> {
        if weights.is_empty() || weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::InvalidConfig(format!(
                "fixed weights must be finite and >= 0, got {weights:?}"
            )));
        }
        if weights.iter().all(|&w| w == 0.0) {
            return Err(Error::InvalidConfig(format!(
                "fixed weights {weights:?} are all zero: no task would be trained"
            )));
        }
        Ok(Fixed { weights })
    }
}

impl Weighting for Fixed {
    fn name(&self) -> &'static str {
        "fixed"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            grad_space: None,
            combines: false,
            seeds: true,
        }
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        if self.weights.len() != ctx.seeds.numel() {
            return Err(Error::InvalidConfig(format!(
                "{} fixed weights given for {} tasks",
                self.weights.len(),
                ctx.seeds.numel()
            )));
        }
        ctx.seeds.write(gpu, &self.weights)?;
        Ok(WeightingPlan::default())
    }
}
