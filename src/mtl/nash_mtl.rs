//! Nash-MTL: Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya,
//! "Multi-Task Learning as a Bargaining Game", ICML 2022.
//!
//! The Nash bargaining solution d = Σ α_k g_k satisfies
//!
//!   α_k (G α)_k = 1 for every k,  α > 0,
//!
//! the stationary point of the convex ½ αᵀGα - Σ log α_k, solved by damped
//! Newton (`solve::nash_mtl`) instead of the paper's sequence of convex programs.

use super::{gram_solve_plan, GradSpace, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::Solve;

#[derive(Default)]
pub struct NashMtl {
    pub(crate) state: Option<Tensor>,
}

impl Weighting for NashMtl {
    fn name(&self) -> &'static str {
        "nash_mtl"
    }
    fn grad_space(&self) -> Option<GradSpace> {
        Some(GradSpace::Parameters)
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let method = Solve::NashMtl { iters: 20 };
        gram_solve_plan(gpu, ctx, method, &mut self.state)
    }
}
