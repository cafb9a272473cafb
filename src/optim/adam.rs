//! Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), bias-corrected
//! (shaders/optim.wgsl `adam`):
//!
//!   Adam:   g' = g + λ θ          AdamW:  g' = g;  θ = θ (1 - lr λ)
//!   m = β1 m + (1-β1) g';   v = β2 v + (1-β2) g'²
//!   θ = θ - lr (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + ε)
//!
//! The bias corrections change every step: `prepare_step` (of [`Optimizer`])
//! writes step t's into the recorded dispatch's uniform buffer.
//!
//! This file is the whole optimizer: its settings, its kernel's uniform
//! parameters (the WGSL `Params` of the `adam` entry point), its dispatch,
//! its [`Optimizer`] implementation and its CPU twin ([`reference()`]).

use super::{same_len, Optimizer};
use crate::error::{Error, Result};
use crate::gpu::dispatch::{record_replicable_per_step, ReplicaAxis};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, on_replicas, replica_stride, Shader};
use crate::reference::Real;

/// Hyper-parameters of Adam; `decoupled` makes it AdamW.
#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: super::OptimizerConfig::default().lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParams {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    decoupled: u32,
    /// Replica strides (elements) of θ, m, v and the gradient.
    rep: [u32; 4],
    _pad: [u32; 3],
}

/// The bytes of [`AdamParams`] a step rewrites (every field before the
/// replica strides): runs stepped together share one update only where
/// these agree.
const PER_STEP: std::ops::Range<usize> = 0..std::mem::offset_of!(AdamParams, rep);

impl AdamParams {
    /// Step t's parameters (t ≥ 1): the bias corrections 1 - β^t are computed here.
    fn new(cfg: AdamConfig, n: usize, t: u64) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        AdamParams {
            n: n as u32,
            lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            bc1: (1.0 - (cfg.beta1 as f64).powi(t)) as f32,
            bc2: (1.0 - (cfg.beta2 as f64).powi(t)) as f32,
            decoupled: cfg.decoupled as u32,
            rep: [0; 4],
            _pad: [0; 3],
        }
    }
}

/// One Adam (or AdamW) step over θ with moments m, v, recorded with step 1's
/// bias corrections; [`Adam`]'s `prepare_step` rewrites them each step. It
/// can be recorded again over a replica axis (runs stepped together).
pub fn kernel(
    gpu: &Gpu,
    cfg: AdamConfig,
    theta: &Tensor,
    m: &Tensor,
    v: &Tensor,
    grad: &Tensor,
) -> Result<Dispatch> {
    same_len("adam", theta, &[m, v, grad])?;
    if !(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0 && cfg.beta2 >= 0.0 && cfg.beta2 < 1.0) {
        return Err(Error::InvalidConfig(format!(
            "adam betas must be in [0, 1), got {} and {}",
            cfg.beta1, cfg.beta2
        )));
    }
    let ts = [theta, m, v, grad].map(|t| t.clone());
    record_replicable_per_step(gpu, PER_STEP, move |gpu, count, stride| {
        let strides = ts.each_ref().map(stride);
        kernel_replicated(gpu, cfg, [&ts[0], &ts[1], &ts[2], &ts[3]], count, strides)
    })
}

/// [`kernel`] for `count` replicas in one dispatch: replica r's θ, m, v and
/// gradient lie r·`strides[i]` elements past those given (in that order).
pub fn kernel_replicated(
    gpu: &Gpu,
    cfg: AdamConfig,
    [theta, m, v, grad]: [&Tensor; 4],
    count: usize,
    strides: [usize; 4],
) -> Result<Dispatch> {
    same_len("adam", theta, &[m, v, grad])?;
    let n = theta.numel();
    let mut params = AdamParams::new(cfg, n, 1);
    for (p, &s) in params.rep.iter_mut().zip(&strides) {
        *p = replica_stride("adam", s)?;
    }
    use Binding::*;
    Shader::builtin("optim.wgsl").record_replicated(
        gpu,
        "adam",
        &[Uniform, ReadWrite, ReadWrite, ReadWrite, ReadOnly],
        &[],
        &params,
        &[theta, m, v, grad],
        &ReplicaAxis {
            count: count.max(1),
            strides: strides.to_vec(),
        },
        on_replicas(gpu, grid_1d(gpu, n)?, count)?,
    )
}

/// Adam or AdamW over one arena, with its step counter.
pub struct Adam {
    pub cfg: AdamConfig,
    /// Steps taken so far.
    pub step: u64,
    n: usize,
    pub dispatch: Dispatch,
}

impl Adam {
    /// θ, m, v (zeros to start) and the gradient have the same length.
    pub fn new(
        gpu: &Gpu,
        cfg: AdamConfig,
        theta: &Tensor,
        m: &Tensor,
        v: &Tensor,
        grad: &Tensor,
    ) -> Result<Adam> {
        Ok(Adam {
            cfg,
            step: 0,
            n: theta.numel(),
            dispatch: kernel(gpu, cfg, theta, m, v, grad)?,
        })
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &'static str {
        if self.cfg.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }
    fn set_lr(&mut self, lr: f32) {
        self.cfg.lr = lr;
    }
    /// Advance the step counter and write step t's bias corrections.
    fn prepare_step(&mut self, gpu: &Gpu) {
        self.step += 1;
        self.dispatch
            .write_params(gpu, &AdamParams::new(self.cfg, self.n, self.step));
    }
    fn dispatches(&self) -> Vec<&Dispatch> {
        vec![&self.dispatch]
    }
}

/// The kernel's CPU twin: one Adam (or, with `decoupled`, AdamW) step t ≥ 1, in place.
#[allow(clippy::too_many_arguments)]
pub fn reference<T: Real>(
    theta: &mut [T],
    m: &mut [T],
    v: &mut [T],
    grad: &[T],
    t: u64,
    lr: T,
    beta1: T,
    beta2: T,
    eps: T,
    weight_decay: T,
    decoupled: bool,
) {
    let bc1 = T::one() - T::from_f64(beta1.to_f64().powi(t as i32));
    let bc2 = T::one() - T::from_f64(beta2.to_f64().powi(t as i32));
    for i in 0..theta.len() {
        let mut g = grad[i];
        if decoupled {
            theta[i] = theta[i] * (T::one() - lr * weight_decay);
        } else {
            g += weight_decay * theta[i];
        }
        m[i] = beta1 * m[i] + (T::one() - beta1) * g;
        v[i] = beta2 * v[i] + (T::one() - beta2) * g * g;
        theta[i] = theta[i] - lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + eps);
    }
}
