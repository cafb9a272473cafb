//! Equal weighting (EW): L = Σ_k L_k, so every seed is 1.
//! Follows LibMTL's EW.

use super::{Capabilities, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::Gpu;

/// w_k = 1 for every task.
pub struct Equal;

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "equal",
    aliases: &["ew"],
    summary: "equal weights, Σ_k L_k",
    defaults: "",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    shader: None,
    build: |_seed| Box::new(Equal),
};

impl Weighting for Equal {
    fn name(&self) -> &'static str {
        "equal"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        Ok(WeightingPlan::default())
    }
}
