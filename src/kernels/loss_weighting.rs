//! Uncertainty weighting's per-task kernels: seeds from the learned log
//! variances and their gradient. See shaders/loss_weighting.wgsl.

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{record, tasks_of};

/// seed[k] = ½ exp(-s[k])
pub fn uw_seeds(gpu: &Gpu, log_var: &Tensor, seeds: &Tensor) -> Result<Dispatch> {
    log_var.expect_numel("uw_seeds log variances", seeds.numel())?;
    use Binding::*;
    record(
        gpu,
        "loss_weighting.wgsl",
        "uw_seeds",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &tasks_of(seeds)?,
        &[seeds, log_var],
        [1, 1, 1],
    )
}

/// ds[k] = ½ - seed[k] · loss[k]
pub fn uw_grad(gpu: &Gpu, seeds: &Tensor, losses: &Tensor, dlog_var: &Tensor) -> Result<Dispatch> {
    seeds.expect_numel("uw_grad seeds", dlog_var.numel())?;
    losses.expect_numel("uw_grad losses", dlog_var.numel())?;
    use Binding::*;
    record(
        gpu,
        "loss_weighting.wgsl",
        "uw_grad",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &tasks_of(dlog_var)?,
        &[dlog_var, seeds, losses],
        [1, 1, 1],
    )
}
