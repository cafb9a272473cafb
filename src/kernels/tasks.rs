//! Small per-task kernels: uncertainty-weighting seeds and gradients, and loss
//! bookkeeping. See shaders/loss_weighting.wgsl and shaders/loss_tracking.wgsl.

use crate::device::{Binding, Gpu};
use crate::error::{Error, Result};
use crate::kernels::{record, Dispatch};
use crate::tensor::Tensor;

/// Most tasks one of these single-workgroup kernels handles.
pub const MAX_TASKS: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tasks: u32,
    _pad: [u32; 3],
}

fn tasks_of(t: &Tensor) -> Result<Params> {
    let k = t.numel();
    if k > MAX_TASKS {
        return Err(Error::InvalidConfig(format!(
            "at most {MAX_TASKS} tasks are supported, got {k}"
        )));
    }
    Ok(Params {
        tasks: k as u32,
        _pad: [0; 3],
    })
}

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

/// Add this step's losses (K) to the bookkeeping `state` (3K).
pub fn track_losses(gpu: &Gpu, losses: &Tensor, state: &Tensor) -> Result<Dispatch> {
    state.expect_numel("track_losses state", 3 * losses.numel())?;
    use Binding::*;
    record(
        gpu,
        "loss_tracking.wgsl",
        "track_losses",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &tasks_of(losses)?,
        &[state, losses],
        [1, 1, 1],
    )
}
