//! MGDA-UB: Sener & Koltun, "Multi-Task Learning as Multi-Objective
//! Optimization", NeurIPS 2018.
//!
//! The update is the min-norm point of the convex hull of the task gradients,
//!
//!   w = argmin_{w ≥ 0, Σ w = 1} ‖Σ_k w_k g_k‖² = argmin wᵀ G w,
//!
//! in closed form for two tasks, γ = clamp((G₂₂ - G₁₂)/(G₁₁ + G₂₂ - 2G₁₂)), and by
//! Frank-Wolfe with exact line search for more (`solve::mgda`). By default the
//! gradients are taken at the shared representation (the "upper bound", UB).

use super::{
    gram_solve_plan, Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext,
    WeightingPlan,
};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::Solve;

#[derive(Default)]
pub struct Mgda {
    pub(crate) state: Option<Tensor>,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "mgda",
    aliases: &["mgda_ub"],
    summary: "MGDA-UB (Sener & Koltun 2018): min-norm point of the gradients' convex hull",
    defaults: "250 Frank-Wolfe steps; representation space",
    caps: Capabilities {
        grad_space: Some(GradSpace::Representation),
        combines: true,
        seeds: false,
    },
    build: |_seed| Box::new(Mgda::default()),
};

impl Weighting for Mgda {
    fn name(&self) -> &'static str {
        "mgda"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let method = Solve::Mgda { iters: 250 };
        gram_solve_plan(gpu, ctx, method, &mut self.state)
    }
}
