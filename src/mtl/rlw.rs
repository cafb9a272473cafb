//! RLW: Lin, Ye, Xu, Shi & Zhang, "Reasonable Effectiveness of Random
//! Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022.
//!
//! Each step draws fresh loss weights
//!
//!   w = softmax(z),   z ~ N(0, I_K),
//!
//! on the GPU from a hash of (seed, step, task) (`solve::rlw`).

use super::{Capabilities, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::{solve, Solve, STATE_LEN};

pub struct Rlw {
    pub seed: u32,
    pub(crate) state: Option<Tensor>,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "rlw",
    aliases: &[],
    summary: "random loss weighting (Lin et al. 2022): softmax of a normal draw per step",
    defaults: "",
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    build: |seed| Box::new(Rlw { seed, state: None }),
};

impl Weighting for Rlw {
    fn name(&self) -> &'static str {
        "rlw"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let state = Tensor::zeros(gpu, &[STATE_LEN], "rlw state")?;
        let d = solve(
            gpu,
            Solve::Rlw { seed: self.seed },
            ctx.gram,
            ctx.losses,
            &state,
            ctx.seeds,
        )?;
        self.state = Some(state);
        Ok(WeightingPlan {
            before: vec![d],
            ..Default::default()
        })
    }
}
