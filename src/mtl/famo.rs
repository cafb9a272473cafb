//! FAMO: Liu, Liang, Chen, Li & Liu, "FAMO: Fast Adaptive Multitask
//! Optimization", NeurIPS 2023.
//!
//! Logits ξ give z = softmax(ξ), and the step descends Σ_k z_k log L_k / c,
//!
//!   seeds w_k = z_k / (c L_k),   c = Σ_j z_j / L_j,
//!
//! so every task's log-loss falls at a balanced rate. ξ learns from how the
//! log-losses changed since the previous step, δ_k = log L_k(prev) - log L_k,
//! with gradient (diag(z) - z zᵀ) δ, by Adam (rate 0.025, decay 0.001).
//! The seeds depend on this step's losses, so the loss kernels run a second
//! time once the solve has written them (`after_forward`); like LibMTL, the
//! previous losses are those of the previous minibatch.

use super::{Capabilities, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::mtl_solve::{solve, Solve, STATE_LEN};

pub struct Famo {
    pub lr: f32,
    pub gamma: f32,
    state: Option<Tensor>,
}

impl Default for Famo {
    fn default() -> Self {
        Famo {
            lr: 0.025,
            gamma: 0.001,
            state: None,
        }
    }
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "famo",
    aliases: &[],
    summary: "FAMO (Liu et al. 2023): fast adaptive weights from the log-loss change",
    defaults: "lr 0.025, decay 0.001",
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    build: |_seed| Box::new(Famo::default()),
};

impl Weighting for Famo {
    fn name(&self) -> &'static str {
        "famo"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        let state = Tensor::zeros(gpu, &[STATE_LEN], "famo state")?;
        let d = solve(
            gpu,
            Solve::Famo {
                lr: self.lr,
                gamma: self.gamma,
            },
            ctx.gram,
            ctx.losses,
            &state,
            ctx.seeds,
        )?;
        self.state = Some(state);
        Ok(WeightingPlan {
            after_forward: vec![d],
            ..Default::default()
        })
    }
}
