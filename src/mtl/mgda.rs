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

use super::{gram_solve_plan, GradSpace, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::Solve;

#[derive(Default)]
pub struct Mgda {
    pub(crate) state: Option<Tensor>,
}

impl Weighting for Mgda {
    fn name(&self) -> &'static str {
        "mgda"
    }
    fn grad_space(&self) -> Option<GradSpace> {
        Some(GradSpace::Representation)
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let method = Solve::Mgda { iters: 250 };
        gram_solve_plan(gpu, ctx, method, &mut self.state)
    }
}
