//! Uncertainty weighting (UW): Kendall, Gal & Cipolla, "Multi-Task Learning
//! Using Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR 2018.
//!
//! Each task has a learned s_k = log σ_k² (initialised to -0.5, as LibMTL
//! does; `Uncertainty { init, .. }` chooses), and the total is the stable form
//! used by LibMTL:
//!
//!   L = Σ_k [ ½ exp(-s_k) L_k + ½ s_k ]
//!
//! so w_k = ∂L/∂L_k = ½ exp(-s_k) and ∂L/∂s_k = ½ - w_k L_k. At the optimum
//! for fixed losses, exp(s_k) = L_k: a task with a large loss is down-weighted.
//! Both run on the GPU (shaders/loss_weighting.wgsl); s is updated by the
//! model's optimizer like any other parameter.

use super::{Capabilities, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::loss_weighting;
use crate::nn::{ParamBuilder, ParamId};

/// Learned per-task log variances.
pub struct Uncertainty {
    /// The starting log σ² of every task (LibMTL's -0.5 by default).
    pub init: f32,
    log_var: Option<ParamId>,
}

impl Default for Uncertainty {
    fn default() -> Self {
        Uncertainty::starting_at(-0.5)
    }
}

impl Uncertainty {
    /// Uncertainty weighting whose log variances start at `init`.
    pub fn starting_at(init: f32) -> Self {
        Uncertainty {
            init,
            log_var: None,
        }
    }
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "uncertainty",
    aliases: &["uw"],
    summary: "uncertainty weighting (Kendall et al. 2018): learned log σ²_k",
    defaults: "log σ² starts at -0.5, as LibMTL",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    shader: None,
    build: |_seed| Box::new(Uncertainty::default()),
};

impl Weighting for Uncertainty {
    fn name(&self) -> &'static str {
        "uncertainty"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn add_params(&mut self, params: &mut ParamBuilder, k: usize) -> Result<()> {
        self.log_var =
            Some(params.add_method_param("uncertainty", "log_var", &[k], vec![self.init; k])?);
        Ok(())
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let id = self.log_var.ok_or_else(|| {
            Error::InvalidConfig("uncertainty weighting: add_params was not called".into())
        })?;
        let (s, ds) = (ctx.params.value(id), ctx.params.grad(id)?);
        Ok(WeightingPlan {
            before: vec![loss_weighting::uw_seeds(gpu, &s, ctx.seeds)?],
            after_backward: vec![loss_weighting::uw_grad(gpu, ctx.seeds, ctx.losses, &ds)?],
            ..Default::default()
        })
    }
}
