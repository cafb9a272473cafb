//! UPGrad: Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization",
//! 2024 (torchjd).
//!
//! Each g_i is projected onto the dual cone of the gradients, {x : g_j·x ≥ 0 ∀j},
//! and the projections are averaged. The projection of g_i is Σ_j v_j g_j with
//!
//!   v = argmin_{v ≥ e_i} ½ vᵀ G v,     w = (1/K) Σ_i v⁽ⁱ⁾     (`solve::upgrad`),
//!
//! so no task's loss increases to first order.

use super::{
    gram_solve_plan, Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext,
    WeightingPlan,
};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::Solve;

#[derive(Default)]
pub struct UpGrad {
    pub(crate) state: Option<Tensor>,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "upgrad",
    aliases: &[],
    summary: "UPGrad (Quinton & Rey 2024): mean of projections onto the dual cone",
    defaults: "100 sweeps",
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    build: |_seed| Box::new(UpGrad::default()),
};

impl Weighting for UpGrad {
    fn name(&self) -> &'static str {
        "upgrad"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let method = Solve::UpGrad { sweeps: 100 };
        gram_solve_plan(gpu, ctx, method, &mut self.state)
    }
}
