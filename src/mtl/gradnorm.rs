//! GradNorm: Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient
//! Normalization for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.
//!
//! Learned loss weights w_k (Σ w = K) are moved so that each task's weighted
//! gradient norm ‖∇ w_k L_k‖ approaches mean_j ‖∇ w_j L_j‖ · r_k^α, where
//! r_k = (L_k / L_k(0)) / mean_j (L_j / L_j(0)) is the task's relative inverse
//! training rate: tasks that train slowly get larger gradients. The norms come
//! from the Gram matrix of the weighted per-task gradients; the step on w and
//! the renormalisation run on the GPU (`solve::gradnorm_step`), writing next
//! step's seeds.

use super::{Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::{solve, Solve, STATE_LEN};

pub struct GradNorm {
    /// The asymmetry α (1.5 by default).
    pub alpha: f32,
    /// Learning rate of the weights (0.025 by default).
    pub lr: f32,
    state: Option<Tensor>,
}

impl Default for GradNorm {
    fn default() -> Self {
        GradNorm {
            alpha: 1.5,
            lr: 0.025,
            state: None,
        }
    }
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "gradnorm",
    aliases: &[],
    summary: "GradNorm (Chen et al. 2018): weights that balance per-task gradient norms",
    defaults: "alpha 1.5, lr 0.025",
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: false,
        seeds: true,
    },
    build: |_seed| Box::new(GradNorm::default()),
};

impl Weighting for GradNorm {
    fn name(&self) -> &'static str {
        "gradnorm"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        // Seeds start at 1 and are rewritten by the solve after each step's Gram matrix;
        // the per-task rows already carry the weights, so they combine with weight 1.
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        let state = Tensor::zeros(gpu, &[STATE_LEN], "gradnorm state")?;
        let d = solve(
            gpu,
            Solve::GradNorm {
                alpha: self.alpha,
                lr: self.lr,
            },
            ctx.gram,
            ctx.losses,
            &state,
            ctx.seeds,
        )?;
        self.state = Some(state);
        Ok(WeightingPlan {
            after_gram: vec![d],
            ..Default::default()
        })
    }
}
