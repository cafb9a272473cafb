//! IMTL: Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial
//! Multi-task Learning", ICLR 2021: IMTL-L's learned loss scales and IMTL-G's
//! impartial gradient combination together, as LibMTL's `IMTL`.
//!
//! IMTL-L (`imtl_l`) learns a log scale s_k per task and trains on
//!
//!   L = Σ_k [ exp(s_k) L_k − s_k ],   so   ∂L/∂L_k = exp(s_k),   ∂L/∂s_k = exp(s_k) L_k − 1,
//!
//! which drives every scaled loss exp(s_k) L_k towards 1 (s starts at 0, as
//! LibMTL's). `imtl` is IMTL-G (`super::imtl_g`) over the gradients of the
//! scaled losses (`imtl_g+imtl_l`): task k's row is exp(s_k) ∇L_k, IMTL-G
//! combines the rows, and s follows its own gradient, as in LibMTL (where
//! each scaled loss's backward leaves exp(s_k) L_k − 1 on s_k).

use super::{Capabilities, Compose, ImtlG, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::loss_weighting;
use crate::nn::{ParamBuilder, ParamId};

/// IMTL-L: learned per-task log loss scales.
pub struct ImtlL {
    /// The starting log scale of every task (LibMTL's 0).
    pub init: f32,
    log_scale: Option<ParamId>,
}

impl Default for ImtlL {
    fn default() -> Self {
        ImtlL {
            init: 0.0,
            log_scale: None,
        }
    }
}

/// The registry's entry of IMTL-L alone.
pub(crate) const INFO_L: MethodInfo = MethodInfo {
    name: "imtl_l",
    aliases: &[],
    summary: "IMTL-L (Liu et al. 2021): learned loss scales, each scaled loss driven towards 1",
    defaults: "log scales start at 0, as LibMTL",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    shader: None,
    build: |_seed| Box::new(ImtlL::default()),
};

/// The registry's entry of IMTL (IMTL-G over IMTL-L's scaled losses).
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "imtl",
    aliases: &["imtl_hybrid"],
    summary: "IMTL (Liu et al. 2021; LibMTL): IMTL-G's impartial combination of IMTL-L's scaled losses' gradients",
    defaults: "log scales start at 0, as LibMTL",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: super::imtl_g::INFO.caps.grad_space,
        combines: true,
        seeds: true,
    },
    shader: None,
    build: |_seed| Box::new(hybrid()),
};

/// IMTL-G over IMTL-L: a [`Compose`] of the two (always valid: the first
/// combines gradients, the second weights losses).
pub fn hybrid() -> Compose {
    Compose {
        grad: Box::new(ImtlG),
        loss: Box::new(ImtlL::default()),
        label: "imtl",
    }
}

impl Weighting for ImtlL {
    fn name(&self) -> &'static str {
        "imtl_l"
    }
    fn capabilities(&self) -> Capabilities {
        INFO_L.caps
    }
    fn add_params(&mut self, params: &mut ParamBuilder, k: usize) -> Result<()> {
        self.log_scale =
            Some(params.add_method_param("imtl_l", "log_scale", &[k], vec![self.init; k])?);
        Ok(())
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let id = self
            .log_scale
            .ok_or_else(|| Error::InvalidConfig("imtl_l: add_params was not called".into()))?;
        let (s, ds) = (ctx.params.value(id), ctx.params.grad(id)?);
        Ok(WeightingPlan {
            before: vec![loss_weighting::imtl_l_seeds(gpu, &s, ctx.seeds)?],
            after_backward: vec![loss_weighting::imtl_l_grad(
                gpu, ctx.seeds, ctx.losses, &ds,
            )?],
            ..Default::default()
        })
    }
}

/// IMTL-L (LibMTL): the seeds exp(s_k) and the gradient exp(s_k) L_k − 1.
pub fn reference(log_scale: &[f64], losses: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let seeds: Vec<f64> = log_scale.iter().map(|s| s.exp()).collect();
    let grad = seeds.iter().zip(losses).map(|(w, l)| w * l - 1.0).collect();
    (seeds, grad)
}
