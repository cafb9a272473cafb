//! UPGrad: Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization",
//! 2024 (torchjd).
//!
//! Each g_i is projected onto the dual cone of the gradients, {x : g_j·x ≥ 0 ∀j},
//! and the projections are averaged. The projection of g_i is Σ_j v_j g_j with
//!
//!   v = argmin_{v ≥ e_i} ½ vᵀ G v,     w = (1/K) Σ_i v⁽ⁱ⁾     (`solve::upgrad`),
//!
//! so no task's loss increases to first order.

use super::{gram_solve_plan, GradSpace, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::Solve;

#[derive(Default)]
pub struct UpGrad {
    pub(crate) state: Option<Tensor>,
}

impl Weighting for UpGrad {
    fn name(&self) -> &'static str {
        "upgrad"
    }
    fn grad_space(&self) -> Option<GradSpace> {
        Some(GradSpace::Parameters)
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let method = Solve::UpGrad { sweeps: 100 };
        gram_solve_plan(gpu, ctx, method, &mut self.state)
    }
}
