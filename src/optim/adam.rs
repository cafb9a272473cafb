//! Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), bias-corrected
//! (shaders/optim.wgsl `adam`):
//!
//!   Adam:   g' = g + λ θ          AdamW:  g' = g;  θ = θ (1 - lr λ)
//!   m = β1 m + (1-β1) g';   v = β2 v + (1-β2) g'²
//!   θ = θ - lr (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + ε)
//!
//! The bias corrections change every step: `prepare_step` (of [`Optimizer`])
//! writes step t's into the recorded dispatch's uniform buffer.

use super::Optimizer;
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::optim::{adam, AdamConfig, AdamParams};

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
            dispatch: adam(gpu, cfg, theta, m, v, grad)?,
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
    fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }
}
