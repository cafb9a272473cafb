//! GLS, the geometric loss strategy: Chennupati, Sistu, Yogamani & Rawashdeh,
//! "MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss Strategy
//! for Multi-Task Learning", CVPR Workshops 2019; as LibMTL's `GLS`.
//!
//! The total loss is the geometric mean of the task losses,
//!
//!   L = (Π_k L_k)^{1/K},   so   ∂L/∂L_k = L / (K L_k),
//!
//! which weights each task by the inverse of its own loss: a task whose loss
//! is small (relative to the others) counts more, with no parameter to tune.
//! The seeds ∂L/∂L_k come from this step's losses, after the forward pass,
//! and the loss kernels run again with them (as FAMO's); in logs, L_k
//! clamped at 1e-12 (a loss of exactly 0 makes LibMTL's gradient 0/0).

use super::{Capabilities, GpuSolve, KParams, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// GLS has no hyper-parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gls;

/// The WGSL solve: the shared prelude, then shaders/mtl/gls.wgsl.
pub const SHADER: SolveShader = solve_shader!("gls");

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "gls",
    aliases: &["geometric"],
    summary: "GLS (Chennupati et al. 2019): the geometric mean of the losses, each task weighted by the inverse of its loss",
    defaults: "",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(Gls),
};

impl GpuSolve for Gls {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::SeedsAfterForward;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = KParams;

    fn params(&self, k: u32) -> KParams {
        KParams::new(k)
    }
}

/// The smallest loss GLS takes the logarithm of.
pub const MIN_LOSS: f64 = 1e-12;

/// GLS (LibMTL): the seeds ∂L/∂L_k = (Π_j L_j)^{1/K} / (K L_k), in logs.
pub fn reference(losses: &[f64]) -> Vec<f64> {
    let k = losses.len() as f64;
    let logs: Vec<f64> = losses.iter().map(|l| l.max(MIN_LOSS).ln()).collect();
    let mean = logs.iter().sum::<f64>() / k;
    logs.iter().map(|l| (mean - l).exp() / k).collect()
}
