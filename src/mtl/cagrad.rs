//! CAGrad: Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient Descent for
//! Multi-task Learning", NeurIPS 2021.
//!
//! With g0 the mean gradient and c ∈ [0, 1), CAGrad moves along
//!
//!   d = g0 + (√φ / ‖g_w‖) g_w,   w = argmin_{w ∈ simplex} g_wᵀ g0 + √φ ‖g_w‖,   φ = c² ‖g0‖²,
//!
//! which maximises the worst task's improvement within a ball around g0;
//! d is rescaled by 1/(1 + c²) as in LibMTL (`solve::cagrad`).

use super::{
    gram_solve_plan, Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext,
    WeightingPlan,
};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::Solve;

pub struct CaGrad {
    /// The radius c of the ball around the mean gradient (0.4 by default).
    pub c: f32,
    pub(crate) state: Option<Tensor>,
}

impl Default for CaGrad {
    fn default() -> Self {
        CaGrad {
            c: 0.4,
            state: None,
        }
    }
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "cagrad",
    aliases: &[],
    summary: "CAGrad (Liu et al. 2021): best worst-task improvement near the mean gradient",
    defaults: "c 0.4, 100 steps",
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    build: |_seed| Box::new(CaGrad::default()),
};

impl Weighting for CaGrad {
    fn name(&self) -> &'static str {
        "cagrad"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let method = Solve::CaGrad {
            c: self.c,
            iters: 100,
        };
        gram_solve_plan(gpu, ctx, method, &mut self.state)
    }
}
