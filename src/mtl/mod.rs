//! Multi-task loss weighting.
//!
//! Every method implements [`Weighting`]: it may add parameters of its own
//! (learned with the model by the same optimizer) and records dispatches that
//! run inside the training step, so weights never cost a host round trip:
//! - `before`: at the start of the step, writes each task's seed (the weight
//!   w_k = ∂L/∂L_k that the fused loss kernels multiply into their gradient);
//! - `after_losses`: after the losses and backward pass, e.g. the gradients of
//!   the method's own parameters.
//!
//! Methods that need per-task gradients (GradNorm, PCGrad, MGDA, ...) plug in
//! here too, with a third hook over the per-task gradient rows; they come with
//! the fused per-task gradient reduction.

mod equal;
mod fixed;
pub mod solve;
pub mod uncertainty;

pub use equal::Equal;
pub use fixed::Fixed;
pub use uncertainty::Uncertainty;

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::kernels::Dispatch;
use crate::nn::{ParamBuilder, ParamSet};
use crate::tensor::Tensor;

/// Buffers a weighting method works on.
pub struct WeightingContext<'a> {
    pub params: &'a ParamSet,
    /// K seeds: the weight of each task's loss in the total.
    pub seeds: &'a Tensor,
    /// K losses of the current step (written by the loss kernels).
    pub losses: &'a Tensor,
}

/// The dispatches a method adds to each training step.
#[derive(Default)]
pub struct WeightingPlan {
    pub before: Vec<Dispatch>,
    pub after_losses: Vec<Dispatch>,
}

/// A loss-weighting method.
pub trait Weighting {
    /// Short name, as accepted by [`by_name`].
    fn name(&self) -> &'static str;
    /// Add the method's own learned parameters (default: none).
    fn add_params(&mut self, _params: &mut ParamBuilder, _tasks: usize) -> Result<()> {
        Ok(())
    }
    /// Record the method's per-step dispatches (and write any constant seeds).
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan>;
}

/// Methods available by name.
pub const METHODS: &[&str] = &["equal", "uncertainty"];

/// A method by name: `equal`, `uncertainty` (alias `uw`), or `fixed:w1,w2,...`.
pub fn by_name(name: &str) -> Result<Box<dyn Weighting>> {
    let lower = name.trim().to_ascii_lowercase();
    if let Some(list) = lower.strip_prefix("fixed:") {
        let weights = list
            .split(',')
            .map(|w| {
                w.trim().parse::<f32>().map_err(|_| {
                    Error::InvalidConfig(format!("fixed weight {w:?} is not a number"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Box::new(Fixed::new(weights)?));
    }
    match lower.as_str() {
        "equal" | "ew" => Ok(Box::new(Equal)),
        "uncertainty" | "uw" => Ok(Box::new(Uncertainty::default())),
        _ => Err(Error::InvalidConfig(format!(
            "unknown weighting {name:?}; choose one of {}, or fixed:w1,w2,...",
            METHODS.join(", ")
        ))),
    }
}
