//! Equal weighting (EW): L = Σ_k L_k, so every seed is 1.

use super::{Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::Gpu;

/// w_k = 1 for every task.
pub struct Equal;

impl Weighting for Equal {
    fn name(&self) -> &'static str {
        "equal"
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        Ok(WeightingPlan::default())
    }
}
