//! FAMO: Liu, Liang, Chen, Li & Liu, "FAMO: Fast Adaptive Multitask
//! Optimization", NeurIPS 2023.
//!
//! Logits ξ give z = softmax(ξ), and the step descends Σ_k z_k log L_k / c,
//!
//!   seeds w_k = z_k / (c L_k),   c = Σ_j z_j / L_j,
//!
//! so every task's log-loss falls at a balanced rate. ξ learns from how much
//! the step lowered each log-loss, δ_k = log L_k(before) - log L_k(after),
//! with gradient (diag(z) - z zᵀ) δ, by Adam (rate 0.025, decay 0.001).
//!
//! As LibMTL (and the paper's code), "after" is the same minibatch evaluated
//! again at the updated weights: the step runs the forward pass a second
//! time after the optimizer and the `famo_update` entry point reads those
//! losses (`after_update`: no readback, one more forward pass per step).
//! `same_batch: false` keeps the cheaper variant that compares with the
//! previous minibatch's losses instead (no extra forward pass; its δ mixes
//! the step's effect with the difference between batches).
//! The seeds depend on this step's losses, so the loss kernels run a second
//! time once the solve has written them (`after_forward`).

use super::solve::softmax;
use super::{Capabilities, GpuSolve, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// Famo's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Famo {
    /// Learning rate of the logits ξ (Adam).
    pub lr: f32,
    /// L2 decay of the logits.
    pub gamma: f32,
    /// δ from the same minibatch after the update (LibMTL; default), or from
    /// the previous minibatch (no extra forward pass).
    pub same_batch: bool,
}

impl Default for Famo {
    fn default() -> Self {
        Famo {
            lr: 0.025,
            gamma: 0.001,
            same_batch: true,
        }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/famo.wgsl.
pub const SHADER: SolveShader = solve_shader!("famo");

/// The WGSL `Params` of shaders/mtl/famo.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    same_batch: u32,
    lr: f32,
    gamma: f32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "famo",
    aliases: &[],
    summary: "FAMO (Liu et al. 2023): fast adaptive weights from the log-loss change",
    defaults: "lr 0.025, decay 0.001; loss change on the same batch (LibMTL)",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(Famo::default()),
};

impl GpuSolve for Famo {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::SeedsAfterForward;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            same_batch: self.same_batch as u32,
            lr: self.lr,
            gamma: self.gamma,
        }
    }

    fn after_update_entry(&self) -> Option<&'static str> {
        self.same_batch.then_some("famo_update")
    }
}

/// FAMO state: logits ξ, Adam moments, previous losses.
#[derive(Clone, Debug)]
pub struct State {
    pub has_prev: bool,
    pub xi: Vec<f64>,
    pub prev: Vec<f64>,
    pub m: Vec<f64>,
    pub v: Vec<f64>,
    pub t: i32,
}

impl State {
    pub fn new(k: usize) -> Self {
        State {
            has_prev: false,
            xi: vec![0.0; k],
            prev: vec![0.0; k],
            m: vec![0.0; k],
            v: vec![0.0; k],
            t: 0,
        }
    }
}

/// FAMO's seeds (Liu et al., NeurIPS 2023) for this step's losses, which
/// are kept as the "before" of the logits' next update:
///   w_k = z_k / (c L_k),  c = Σ_j z_j / L_j,  z = softmax(ξ),
/// so that Σ_k w_k ∇L_k = ∇ (Σ_k z_k log L_k) / c.
pub fn reference_seeds(s: &mut State, losses: &[f64]) -> Vec<f64> {
    let k = losses.len();
    let eps = 1e-8;
    let z = softmax(&s.xi);
    let c: f64 = (0..k).map(|i| z[i] / (losses[i] + eps)).sum();
    s.prev = losses.to_vec();
    s.has_prev = true;
    (0..k).map(|i| z[i] / ((losses[i] + eps) * c)).collect()
}

/// FAMO's update of the logits from the losses `after` the step, against
/// those kept by [`reference_seeds`]:
///   δ_k = log L_k(before) - log L_k(after),  ∇_ξ = (diag(z) - z zᵀ) δ,
/// by Adam (rate `lr`, L2 decay `gamma`, as torch's Adam weight_decay).
pub fn reference_update(s: &mut State, after: &[f64], lr: f64, gamma: f64) {
    let k = after.len();
    let eps = 1e-8;
    let delta: Vec<f64> = (0..k)
        .map(|i| (s.prev[i] + eps).ln() - (after[i] + eps).ln())
        .collect();
    let z = softmax(&s.xi);
    let zd: f64 = (0..k).map(|i| z[i] * delta[i]).sum();
    s.t += 1;
    let (b1, b2) = (0.9f64, 0.999f64);
    for i in 0..k {
        let gi = z[i] * (delta[i] - zd) + gamma * s.xi[i];
        s.m[i] = b1 * s.m[i] + (1.0 - b1) * gi;
        s.v[i] = b2 * s.v[i] + (1.0 - b2) * gi * gi;
        let mh = s.m[i] / (1.0 - b1.powi(s.t));
        let vh = s.v[i] / (1.0 - b2.powi(s.t));
        s.xi[i] -= lr * mh / (vh.sqrt() + 1e-8);
    }
}

/// One step of the previous-minibatch variant (`same_batch: false`): the
/// logits learn from the change since the previous step's losses, then the
/// seeds for this step's.
pub fn reference_step(s: &mut State, losses: &[f64], lr: f64, gamma: f64) -> Vec<f64> {
    if s.has_prev {
        reference_update(s, losses, lr, gamma);
    }
    reference_seeds(s, losses)
}
