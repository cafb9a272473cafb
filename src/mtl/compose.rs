//! A gradient-based method on top of loss weights: `pcgrad+uncertainty`,
//! `mgda+fixed:1,2,1`, `cagrad+dwa`, ...
//!
//! The loss weighting sets each task's seed w_k, so task k's gradient row is
//! the gradient of w_k L_k; the gradient method then combines those rows from
//! their Gram matrix as usual. Task-specific (head) parameters get w_k ∇L_k.

use super::{Capabilities, GradSpace, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::Tensor;
use crate::gpu::{Dispatch, Gpu};
use crate::kernels::gram::GradRows;
use crate::nn::ParamBuilder;

pub struct Compose {
    pub grad: Box<dyn Weighting>,
    pub loss: Box<dyn Weighting>,
    /// Its name: "composed", or a registered method's that is a composition
    /// (`imtl`, IMTL-G over IMTL-L).
    pub label: &'static str,
}

impl Compose {
    pub fn new(grad: Box<dyn Weighting>, loss: Box<dyn Weighting>) -> Result<Compose> {
        if !grad.capabilities().combines {
            let combining: Vec<&str> = super::REGISTRY
                .iter()
                .filter(|m| m.caps.combines)
                .map(|m| m.name)
                .collect();
            return Err(Error::InvalidConfig(format!(
                "{:?}+{:?}: the first method must combine per-task gradients ({})",
                grad.name(),
                loss.name(),
                combining.join(", ")
            )));
        }
        if loss.capabilities().grad_space.is_some() {
            return Err(Error::InvalidConfig(format!(
                "{:?}+{:?}: the second method must weight losses",
                grad.name(),
                loss.name()
            )));
        }
        Ok(Compose {
            grad,
            loss,
            label: "composed",
        })
    }
}

impl Weighting for Compose {
    fn name(&self) -> &'static str {
        self.label
    }
    fn capabilities(&self) -> Capabilities {
        let (g, l) = (self.grad.capabilities(), self.loss.capabilities());
        Capabilities {
            grad_space: g.grad_space,
            combines: g.combines,
            seeds: l.seeds,
        }
    }
    fn add_params(&mut self, params: &mut ParamBuilder, tasks: usize) -> Result<()> {
        self.grad.add_params(params, tasks)?;
        self.loss.add_params(params, tasks)
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        // The gradient method writes seeds of 1; the loss weighting's seeds,
        // written after them, are the ones that stay.
        let g = self.grad.build(gpu, ctx)?;
        let l = self.loss.build(gpu, ctx)?;
        let join = |mut a: Vec<_>, b: Vec<_>| {
            a.extend(b);
            a
        };
        Ok(WeightingPlan {
            before: join(l.before, g.before),
            after_forward: join(l.after_forward, g.after_forward),
            after_gram: join(l.after_gram, g.after_gram),
            after_backward: join(g.after_backward, l.after_backward),
            after_update: join(g.after_update, l.after_update),
        })
    }
    fn on_epoch_end(&mut self, gpu: &Gpu, seeds: &Tensor, train_losses: &[f64]) -> Result<()> {
        self.grad.on_epoch_end(gpu, seeds, train_losses)?;
        self.loss.on_epoch_end(gpu, seeds, train_losses)
    }
    fn record_memory(
        &mut self,
        gpu: &Gpu,
        rows: &GradRows,
        space: GradSpace,
    ) -> Result<Option<(Vec<Dispatch>, GradRows)>> {
        self.grad.record_memory(gpu, rows, space)
    }
    fn samples(&self) -> usize {
        self.grad.samples()
    }
    fn coordinate_wise(&self) -> bool {
        self.grad.coordinate_wise()
    }
    fn record_combine(&self, gpu: &Gpu, rows: &GradRows, out: &Tensor) -> Result<Dispatch> {
        self.grad.record_combine(gpu, rows, out)
    }
}
