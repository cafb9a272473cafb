//! PCGrad: Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery for
//! Multi-Task Learning", NeurIPS 2020.
//!
//! When two task gradients conflict (g_i·g_j < 0), g_i is projected onto the
//! normal plane of g_j, meeting the other tasks in a random order:
//!
//!   g_i ← g_i - (g_i·g_j / ‖g_j‖²) g_j   whenever g_i·g_j < 0;    d = Σ_i g_i.
//!
//! Every dot product comes from the Gram matrix (`solve::pcgrad`); the random
//! order is a hash of (seed, step, task) computed on the GPU.

use super::{
    gram_solve_plan, Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext,
    WeightingPlan,
};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::Solve;

pub struct PcGrad {
    pub seed: u32,
    pub(crate) state: Option<Tensor>,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "pcgrad",
    aliases: &[],
    summary: "PCGrad (Yu et al. 2020): project away conflicting gradients in random order",
    defaults: "",
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    build: |seed| Box::new(PcGrad { seed, state: None }),
};

impl Weighting for PcGrad {
    fn name(&self) -> &'static str {
        "pcgrad"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let method = Solve::PcGrad { seed: self.seed };
        gram_solve_plan(gpu, ctx, method, &mut self.state)
    }
}
