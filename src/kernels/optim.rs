//! Optimizer updates over a whole flat arena in one dispatch. See
//! shaders/optim.wgsl; the optimizers that drive them step by step are in
//! the `optim` layer above.

use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::Tensor;
use crate::gpu::{Binding, Gpu};
use crate::kernels::{grid_1d, record};

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
            lr: 1e-2,
            momentum: 0.9,
            weight_decay: 0.0,
        }
    }
}

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
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

impl AdamConfig {
    /// AdamW with decoupled weight decay `weight_decay`.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        AdamConfig {
            lr,
            weight_decay,
            decoupled: true,
            ..Default::default()
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct SgdParams {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

impl SgdParams {
    pub(crate) fn new(cfg: SgdConfig, n: usize) -> Self {
        SgdParams {
            n: n as u32,
            lr: cfg.lr,
            momentum: cfg.momentum,
            weight_decay: cfg.weight_decay,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AdamParams {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    decoupled: u32,
    _pad: [u32; 3],
}

impl AdamParams {
    /// Step t's parameters (t ≥ 1): the bias corrections 1 - β^t are computed here.
    pub(crate) fn new(cfg: AdamConfig, n: usize, t: u64) -> Self {
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
            _pad: [0; 3],
        }
    }
}

fn same_len(op: &'static str, theta: &Tensor, others: &[&Tensor]) -> Result<()> {
    for t in others {
        t.expect_numel(op, theta.numel())?;
    }
    Ok(())
}

/// One SGD step: θ, velocity and gradient have the same length.
pub fn sgd(
    gpu: &Gpu,
    cfg: SgdConfig,
    theta: &Tensor,
    velocity: &Tensor,
    grad: &Tensor,
) -> Result<Dispatch> {
    same_len("sgd", theta, &[velocity, grad])?;
    let n = theta.numel();
    let params = SgdParams::new(cfg, n);
    use Binding::*;
    record(
        gpu,
        "optim.wgsl",
        "sgd",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly],
        &[],
        &params,
        &[theta, velocity, grad],
        grid_1d(gpu, n)?,
    )
}

/// One Adam (or AdamW) step over θ with moments m, v, recorded with step 1's
/// bias corrections; rewrite them per step with `AdamParams::new` (the
/// `optim::Adam` optimizer does).
pub fn adam(
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
    let n = theta.numel();
    use Binding::*;
    record(
        gpu,
        "optim.wgsl",
        "adam",
        &[Uniform, ReadWrite, ReadWrite, ReadWrite, ReadOnly],
        &[],
        &AdamParams::new(cfg, n, 1),
        &[theta, m, v, grad],
        grid_1d(gpu, n)?,
    )
}
