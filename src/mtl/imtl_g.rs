//! IMTL-G: Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial
//! Multi-task Learning", ICLR 2021.
//!
//! The update d = Σ w_k g_k has equal projections on every unit gradient
//! u_k = g_k/‖g_k‖. With D_i = g_0 - g_i and U_i = u_0 - u_i (i = 1..K-1):
//!
//!   α = g_0 Uᵀ (D Uᵀ)⁻¹,   w = [1 - Σ α, α]     (`solve::imtl_g`).

use super::{
    gram_solve_plan, Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext,
    WeightingPlan,
};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::Solve;

#[derive(Default)]
pub struct ImtlG {
    pub(crate) state: Option<Tensor>,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "imtl_g",
    aliases: &["imtl"],
    summary: "IMTL-G (Liu et al. 2021): equal projections onto every task's unit gradient",
    defaults: "",
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    build: |_seed| Box::new(ImtlG::default()),
};

impl Weighting for ImtlG {
    fn name(&self) -> &'static str {
        "imtl_g"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let method = Solve::ImtlG;
        gram_solve_plan(gpu, ctx, method, &mut self.state)
    }
}
