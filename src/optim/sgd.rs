//! SGD with momentum, PyTorch's form (shaders/optim.wgsl `sgd`):
//!
//!   g' = g + λ θ;   v = μ v + g';   θ = θ - lr v
//!
//! This file is the whole optimizer: its settings, its kernel's uniform
//! parameters (the WGSL `Params` of the `sgd` entry point), its dispatch,
//! its [`Optimizer`] implementation and its CPU twin ([`reference()`]).

use super::{same_len, Optimizer};
use crate::error::Result;
use crate::gpu::dispatch::{record_replicable_per_step, ReplicaAxis};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, on_replicas, replica_stride, Shader};
use crate::reference::Real;

/// Hyper-parameters of SGD with momentum.
#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: super::OptimizerConfig::default().lr,
            momentum: 0.9,
            weight_decay: 0.0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdParams {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    /// Replica strides (elements) of θ, the velocity and the gradient.
    rep: [u32; 3],
    _pad: u32,
}

/// The bytes of [`SgdParams`] a step rewrites (every field before the
/// replica strides): runs stepped together share one update only where
/// these agree.
const PER_STEP: std::ops::Range<usize> = 0..std::mem::offset_of!(SgdParams, rep);

impl SgdParams {
    fn new(cfg: SgdConfig, n: usize) -> Self {
        SgdParams {
            n: n as u32,
            lr: cfg.lr,
            momentum: cfg.momentum,
            weight_decay: cfg.weight_decay,
            rep: [0; 3],
            _pad: 0,
        }
    }
}

/// The update as a dispatch (recorded once, replayed each step): θ, velocity
/// and gradient have the same length. It can be recorded again over a
/// replica axis (runs stepped together).
pub fn kernel(
    gpu: &Gpu,
    cfg: SgdConfig,
    theta: &Tensor,
    velocity: &Tensor,
    grad: &Tensor,
) -> Result<Dispatch> {
    same_len("sgd", theta, &[velocity, grad])?;
    let ts = [theta, velocity, grad].map(|t| t.clone());
    record_replicable_per_step(gpu, PER_STEP, move |gpu, count, stride| {
        let strides = ts.each_ref().map(stride);
        kernel_replicated(gpu, cfg, [&ts[0], &ts[1], &ts[2]], count, strides)
    })
}

/// [`kernel`] for `count` replicas in one dispatch: replica r's θ, velocity
/// and gradient lie r·`strides[i]` elements past those given (in that order).
pub fn kernel_replicated(
    gpu: &Gpu,
    cfg: SgdConfig,
    [theta, velocity, grad]: [&Tensor; 3],
    count: usize,
    strides: [usize; 3],
) -> Result<Dispatch> {
    same_len("sgd", theta, &[velocity, grad])?;
    let n = theta.numel();
    let mut params = SgdParams::new(cfg, n);
    for (p, &s) in params.rep.iter_mut().zip(&strides) {
        *p = replica_stride("sgd", s)?;
    }
    use Binding::*;
    Shader::builtin("optim.wgsl").record_replicated(
        gpu,
        "sgd",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly],
        &[],
        &params,
        &[theta, velocity, grad],
        &ReplicaAxis {
            count: count.max(1),
            strides: strides.to_vec(),
        },
        on_replicas(gpu, grid_1d(gpu, n)?, count)?,
    )
}

/// SGD over one arena with its velocity.
pub struct Sgd {
    pub cfg: SgdConfig,
    n: usize,
    dispatch: Dispatch,
}

impl Sgd {
    /// θ, velocity (zeros to start) and gradient have the same length.
    pub fn new(
        gpu: &Gpu,
        cfg: SgdConfig,
        theta: &Tensor,
        velocity: &Tensor,
        grad: &Tensor,
    ) -> Result<Sgd> {
        Ok(Sgd {
            cfg,
            n: theta.numel(),
            dispatch: kernel(gpu, cfg, theta, velocity, grad)?,
        })
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
    }
    fn set_lr(&mut self, lr: f32) {
        self.cfg.lr = lr;
    }
    fn prepare_step(&mut self, gpu: &Gpu) {
        self.dispatch
            .write_params(gpu, &SgdParams::new(self.cfg, self.n));
    }
    fn dispatches(&self) -> Vec<&Dispatch> {
        vec![&self.dispatch]
    }
}

/// The kernel's CPU twin: one SGD-with-momentum step, in place.
pub fn reference<T: Real>(
    theta: &mut [T],
    velocity: &mut [T],
    grad: &[T],
    lr: T,
    momentum: T,
    weight_decay: T,
) {
    for i in 0..theta.len() {
        let g = grad[i] + weight_decay * theta[i];
        velocity[i] = momentum * velocity[i] + g;
        theta[i] = theta[i] - lr * velocity[i];
    }
}
