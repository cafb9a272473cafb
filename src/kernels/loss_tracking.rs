//! Per-task loss bookkeeping on the GPU (sums, first non-finite step, count),
//! read back once per epoch. See shaders/loss_tracking.wgsl.

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{record, tasks_of};

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
