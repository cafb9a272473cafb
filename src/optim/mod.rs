//! Optimizers: each updates the whole parameter arena in one dispatch per
//! step (one per trainable span when some parameters are frozen). SGD with momentum ([`Sgd`]), Adam and AdamW ([`Adam`]) implement
//! [`Optimizer`]; [`OptimizerConfig`] names one with its settings, and is what
//! the trainer, the command line, the config file and the saved model carry.
//!
//! Adding an optimizer: its entry point in shaders/optim.wgsl, one file here
//! (its settings, its kernel's uniform parameters, its dispatch and its
//! [`Optimizer`] implementation, like [`sgd`]), its CPU reference in
//! `reference.rs`, and its variant of [`OptimizerKind`] with
//! its arm in `OptimizerConfig::over`.

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
    /// each submit of a step that includes [`Optimizer::dispatches`].
    fn prepare_step(&mut self, gpu: &Gpu);
    /// The update, recorded once: one dispatch, or one per trainable span
    /// of the arena when some parameters are frozen ([`ParamSet::freeze`]).
    fn dispatches(&self) -> Vec<&Dispatch>;
}

/// One optimizer per trainable span of an arena whose other parameters
/// are frozen: each span is a slice of θ, of the state and of the gradient
/// at the same offsets, so the frozen ones are never read or written.
struct Spanned(Vec<Box<dyn Optimizer>>);

impl Optimizer for Spanned {
    fn name(&self) -> &'static str {
        self.0[0].name()
    }
    fn set_lr(&mut self, lr: f32) {
        self.0.iter_mut().for_each(|o| o.set_lr(lr));
    }
    fn prepare_step(&mut self, gpu: &Gpu) {
        self.0.iter_mut().for_each(|o| o.prepare_step(gpu));
    }
    fn dispatches(&self) -> Vec<&Dispatch> {
        self.0.iter().flat_map(|o| o.dispatches()).collect()
    }
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

    /// The optimizer over every parameter of `params` that is not frozen,
    /// with its state arenas (as long as the whole arena, so that a span's
    /// state sits at the span's offsets).
    pub fn build(&self, gpu: &Gpu, params: &ParamSet) -> Result<Box<dyn Optimizer>> {
        self.validate()?;
        let (theta, grad) = (&params.values.whole, &params.grads()?.whole);
        let state = |label: &str| Tensor::zeros(gpu, &[theta.numel()], label);
        let spans = params.trainable_spans();
        if spans.is_empty() {
            return Err(Error::InvalidConfig(
                "every parameter is frozen: there is nothing to train".into(),
            ));
        }
        let (s1, s2) = match self.kind {
            // SGD's one state buffer; `over` passes it alone.
            OptimizerKind::Sgd => {
                let v = state("sgd velocity")?;
                (v.clone(), v)
            }
            _ => (state("adam m")?, state("adam v")?),
        };
        let whole = spans.len() == 1 && spans[0] == (0..theta.numel());
        let mut parts: Vec<Box<dyn Optimizer>> = Vec::new();
        for span in &spans {
            let cut = |t: &Tensor| match whole {
                true => Ok(t.clone()),
                false => t.slice(span.start, &[span.len()]),
            };
            parts.push(self.over(gpu, &cut(theta)?, &cut(&s1)?, &cut(&s2)?, &cut(grad)?)?);
        }
        // One span (nothing frozen, or one trainable run): that optimizer alone.
        Ok(match <[Box<dyn Optimizer>; 1]>::try_from(parts) {
            Ok([one]) => one,
            Err(parts) => Box::new(Spanned(parts)),
        })
    }

    /// This optimizer over θ with its state (SGD's is `s1` alone).
    fn over(
        &self,
        gpu: &Gpu,
        theta: &Tensor,
        s1: &Tensor,
        s2: &Tensor,
        grad: &Tensor,
    ) -> Result<Box<dyn Optimizer>> {
        Ok(match self.kind {
            OptimizerKind::Sgd => Box::new(Sgd::new(
                gpu,
                SgdConfig {
                    lr: self.lr,
                    momentum: self.momentum,
                    weight_decay: self.weight_decay,
                },
                theta,
                s1,
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
                s1,
                s2,
                grad,
            )?),
        })
    }
}

fn same_len(op: &'static str, theta: &Tensor, others: &[&Tensor]) -> Result<()> {
    for t in others {
        t.expect_numel(op, theta.numel())?;
    }
    Ok(())
}
