//! CR-MOGM: Zhou, Zhang, Jiang, Gong & Tang, "On the Convergence of
//! Stochastic Multi-Objective Gradient Manipulation and Beyond", NeurIPS
//! 2022; as torchjd's `CRMOGMWeighting` (0.11 on; checked against 0.18.0).
//!
//! Gradient manipulation methods (MGDA, PCGrad, CAGrad, …) solve for their
//! weights from one minibatch's gradients, so the weights are as noisy as the
//! gradients and the update is biased; the paper shows that smoothing the
//! weights across steps restores convergence. CR-MOGM wraps another method
//! and replaces its weights ŵ_t by a moving average,
//!
//!   λ_t = α λ_{t−1} + (1 − α) ŵ_t,   λ_1 = ŵ_1,   d = Σ_k λ_k g_k.
//!
//! Written `cr_mogm:METHOD` or `cr_mogm:METHOD:α` (`cr_mogm` alone is
//! `cr_mogm:mgda:0.9`); α 0.9 is torchjd's default (the paper's Corollary 1
//! lets α grow toward 1 as the learning rate decays; a fixed α here, as
//! torchjd's default). The wrapped method must combine per-task gradients
//! by weights (GradDrop and TrimmedMean, which combine coordinate by
//! coordinate, have none to smooth). Kernel: `shaders/mtl/cr_mogm.wgsl`,
//! run after the wrapped method's solve on the same weights.

use super::{Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::gram::GradRows;
use crate::kernels::mtl::{SolveShader, STATE_LEN};
use crate::nn::ParamBuilder;
use crate::{kernels, solve_shader};

/// torchjd's default α.
pub const DEFAULT_ALPHA: f32 = 0.9;

/// A method whose weights are smoothed across steps.
pub struct CrMogm {
    pub inner: Box<dyn Weighting>,
    /// α: the average's weight on the past, in [0, 1].
    pub alpha: f32,
}

impl CrMogm {
    pub fn new(inner: Box<dyn Weighting>, alpha: f32) -> Result<CrMogm> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::InvalidConfig(format!(
                "cr_mogm: α is in [0, 1], got {alpha}"
            )));
        }
        if !inner.capabilities().combines || inner.coordinate_wise() {
            return Err(Error::InvalidConfig(format!(
                "cr_mogm:{}: CR-MOGM smooths the weights a method combines the task gradients \
                 with, and {} has none (give a gradient method such as mgda, pcgrad or upgrad)",
                inner.name(),
                inner.name()
            )));
        }
        Ok(CrMogm { inner, alpha })
    }
}

/// The smoothing: the shared prelude, then shaders/mtl/cr_mogm.wgsl.
pub const SHADER: SolveShader = solve_shader!("cr_mogm");

/// The WGSL `Params` of shaders/mtl/cr_mogm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    alpha: f32,
    _pad: [u32; 2],
}

/// The registry's entry: `cr_mogm` alone wraps MGDA.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "cr_mogm",
    aliases: &["crmogm"],
    summary: "CR-MOGM (Zhou et al. 2022): another method's weights smoothed across steps, λ ← αλ + (1 − α)ŵ; cr_mogm:METHOD[:α]",
    defaults: "mgda, alpha 0.9",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Representation),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |seed| {
        let inner = (super::mgda::INFO.build)(seed);
        Box::new(CrMogm::new(inner, DEFAULT_ALPHA).expect("mgda combines"))
    },
};

impl Weighting for CrMogm {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn add_params(&mut self, params: &mut ParamBuilder, tasks: usize) -> Result<()> {
        self.inner.add_params(params, tasks)
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let mut plan = self.inner.build(gpu, ctx)?;
        let state = Tensor::zeros(gpu, &[STATE_LEN], "cr_mogm state")?;
        let params = Params {
            k: ctx.combine.numel() as u32,
            alpha: self.alpha,
            _pad: [0; 2],
        };
        let gram = ctx.gram;
        plan.after_gram.push(kernels::mtl::solve(
            gpu,
            &SHADER,
            params,
            gram,
            ctx.losses,
            &state,
            ctx.combine,
        )?);
        Ok(plan)
    }
    fn on_epoch_end(&mut self, gpu: &Gpu, seeds: &Tensor, train_losses: &[f64]) -> Result<()> {
        self.inner.on_epoch_end(gpu, seeds, train_losses)
    }
    fn record_memory(
        &mut self,
        gpu: &Gpu,
        rows: &GradRows,
        space: GradSpace,
    ) -> Result<Option<(Vec<Dispatch>, GradRows)>> {
        self.inner.record_memory(gpu, rows, space)
    }
    fn samples(&self) -> usize {
        self.inner.samples()
    }
}

/// The smoothed weights of a run, given the wrapped method's weights at each step.
pub fn reference(fresh: &[Vec<f64>], alpha: f64) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::new();
    for w in fresh {
        let next = match out.last() {
            None => w.clone(),
            Some(prev) => (prev.iter().zip(w))
                .map(|(p, f)| alpha * p + (1.0 - alpha) * f)
                .collect(),
        };
        out.push(next);
    }
    out
}
