//! Nash-MTL: Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya,
//! "Multi-Task Learning as a Bargaining Game", ICML 2022.
//!
//! The Nash bargaining solution d = Σ α_k g_k satisfies
//!
//!   α_k (G α)_k = 1 for every k,  α > 0,
//!
//! the stationary point of the convex ½ αᵀGα - Σ log α_k, solved by damped
//! Newton (`solve::nash_mtl`) instead of the paper's sequence of convex programs.

use super::{
    gram_solve_plan, Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext,
    WeightingPlan,
};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::Solve;

#[derive(Default)]
pub struct NashMtl {
    pub(crate) state: Option<Tensor>,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "nash_mtl",
    aliases: &["nash"],
    summary: "Nash-MTL (Navon et al. 2022): the bargaining solution α_i (Gα)_i = 1",
    defaults: "20 Newton steps",
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    build: |_seed| Box::new(NashMtl::default()),
};

impl Weighting for NashMtl {
    fn name(&self) -> &'static str {
        "nash_mtl"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let method = Solve::NashMtl { iters: 20 };
        gram_solve_plan(gpu, ctx, method, &mut self.state)
    }
}
