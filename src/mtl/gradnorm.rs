//! GradNorm: Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient
//! Normalization for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.
//!
//! Learned loss weights w_k (Σ w = K) are moved so that each task's weighted
//! gradient norm ‖∇ w_k L_k‖ approaches mean_j ‖∇ w_j L_j‖ · r_k^α, where
//! r_k = (L_k / L_k(0)) / mean_j (L_j / L_j(0)) is the task's relative inverse
//! training rate: tasks that train slowly get larger gradients. The norms come
//! from the Gram matrix of the weighted per-task gradients; the step on w and
//! the renormalisation run on the GPU (`reference`), writing next
//! step's seeds.

use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// GradNorm's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradNorm {
    /// The asymmetry α.
    pub alpha: f32,
    /// Learning rate of the weights.
    pub lr: f32,
}

impl Default for GradNorm {
    fn default() -> Self {
        GradNorm {
            alpha: 1.5,
            lr: 0.025,
        }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/gradnorm.wgsl.
pub const SHADER: SolveShader = solve_shader!("gradnorm");

/// The WGSL `Params` of shaders/mtl/gradnorm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    _pad: u32,
    alpha: f32,
    lr: f32,
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
    shader: Some(&SHADER),
    build: |_seed| Box::new(GradNorm::default()),
};

impl GpuSolve for GradNorm {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::SeedsAfterGram;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            _pad: 0,
            alpha: self.alpha,
            lr: self.lr,
        }
    }
}

/// One GradNorm update (Chen et al., ICML 2018). The rows behind `g` were
/// computed with the current weights, so ‖w_k ∇L_k‖ = √G_kk. With
/// r_k = (L_k/L_k(0)) / mean_j(L_j/L_j(0)) and target t_k = mean(‖·‖) r_k^α,
/// the loss Σ_k |‖w_k∇L_k‖ - t_k| has gradient sign(‖w_k∇L_k‖ - t_k) ‖∇L_k‖ in w_k;
/// one step of rate `lr`, then renormalise to Σ w = K.
pub fn reference_step(
    g: &[f64],
    k: usize,
    losses: &[f64],
    initial: &[f64],
    w: &[f64],
    alpha: f64,
    lr: f64,
) -> Vec<f64> {
    let norms: Vec<f64> = (0..k).map(|i| g[i * k + i].max(0.0).sqrt()).collect();
    let mean_norm = norms.iter().sum::<f64>() / k as f64;
    let ratio: Vec<f64> = (0..k).map(|i| losses[i] / initial[i].max(1e-20)).collect();
    let mean_ratio = ratio.iter().sum::<f64>() / k as f64;
    let mut new: Vec<f64> = (0..k)
        .map(|i| {
            let target = mean_norm * (ratio[i] / mean_ratio.max(1e-20)).powf(alpha);
            let diff = norms[i] - target;
            let sign = if diff > 0.0 {
                1.0
            } else if diff < 0.0 {
                -1.0
            } else {
                0.0
            };
            let grad = sign * norms[i] / w[i].max(1e-20);
            (w[i] - lr * grad).max(1e-4)
        })
        .collect();
    let total: f64 = new.iter().sum();
    for x in &mut new {
        *x *= k as f64 / total;
    }
    new
}
