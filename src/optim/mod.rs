//! Optimizers: each updates the whole parameter arena in one dispatch per
//! step. SGD with momentum ([`Sgd`]), Adam and AdamW ([`Adam`]) implement
//! [`Optimizer`]; [`OptimizerConfig`] names one with its settings, and is what
//! the trainer, the command line, the config file and the saved model carry.
//!
//! Adding an optimizer: its entry point in shaders/optim.wgsl, one file here
//! (its settings, its kernel's uniform parameters, its dispatch and its
//! [`Optimizer`] implementation, like [`sgd`]), its CPU reference in
//! `reference.rs`, and its variant of [`OptimizerKind`] with its arm in
//! [`OptimizerConfig::build`].

pub mod adam;
pub mod sgd;

pub use adam::{Adam, AdamConfig};
pub use sgd::{Sgd, SgdConfig};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::nn::ParamSet;

/// An optimizer over one flat arena: one dispatch a step.
pub trait Optimizer {
    /// The name [`OptimizerKind`] parses.
    fn name(&self) -> &'static str;
    /// Change the learning rate (schedules); takes effect at the next [`Optimizer::prepare_step`].
    fn set_lr(&mut self, lr: f32);
    /// Advance the step counter and write this step's settings; call before
    /// each submit of a step that includes [`Optimizer::dispatch`].
    fn prepare_step(&mut self, gpu: &Gpu);
    /// The update, recorded once.
    fn dispatch(&self) -> &Dispatch;
}

/// Which optimizer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum (PyTorch's form; weight decay added to the gradient).
    Sgd,
    /// Adam (Kingma & Ba 2015; weight decay added to the gradient).
    #[default]
    Adam,
    /// AdamW (Loshchilov & Hutter 2019; weight decay decoupled from the moments).
    #[serde(rename = "adamw")]
    #[cfg_attr(feature = "cli", value(name = "adamw"))]
    AdamW,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }
}

/// An optimizer and its settings (Adam's β₁ = 0.9, β₂ = 0.999, ε = 1e-8 are fixed).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// SGD's momentum μ (ignored by Adam).
    pub momentum: f32,
    /// L2 penalty λ (Adam, SGD) or decoupled decay (AdamW).
    pub weight_decay: f32,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-2,
            momentum: 0.9,
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// Refuse settings no optimizer can use, before any GPU work.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidConfig(what));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "learning rate {} must be a positive number",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!("momentum {} must be in [0, 1)", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight decay {} must be zero or positive",
                self.weight_decay
            ));
        }
        Ok(())
    }

    /// The optimizer over every parameter of `params`, with its state arenas.
    pub fn build(&self, gpu: &Gpu, params: &ParamSet) -> Result<Box<dyn Optimizer>> {
        self.validate()?;
        let (theta, grad) = (&params.values.whole, &params.grads()?.whole);
        let state = |label: &str| Tensor::zeros(gpu, &[theta.numel()], label);
        Ok(match self.kind {
            OptimizerKind::Sgd => Box::new(Sgd::new(
                gpu,
                SgdConfig {
                    lr: self.lr,
                    momentum: self.momentum,
                    weight_decay: self.weight_decay,
                },
                theta,
                &state("sgd velocity")?,
                grad,
            )?),
            OptimizerKind::Adam | OptimizerKind::AdamW => Box::new(Adam::new(
                gpu,
                AdamConfig {
                    lr: self.lr,
                    weight_decay: self.weight_decay,
                    decoupled: self.kind == OptimizerKind::AdamW,
                    ..Default::default()
                },
                theta,
                &state("adam m")?,
                &state("adam v")?,
                grad,
            )?),
        })
    }
}

/// θ and every state or gradient buffer have the same length.
fn same_len(op: &'static str, theta: &Tensor, others: &[&Tensor]) -> Result<()> {
    for t in others {
        t.expect_numel(op, theta.numel())?;
    }
    Ok(())
}
