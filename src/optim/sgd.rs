//! SGD with momentum, PyTorch's form (shaders/optim.wgsl `sgd`):
//!
//!   g' = g + λ θ;   v = μ v + g';   θ = θ - lr v

use super::Optimizer;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::optim::{sgd, SgdConfig, SgdParams};

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
            dispatch: sgd(gpu, cfg, theta, velocity, grad)?,
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
    fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }
}
