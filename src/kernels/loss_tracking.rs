//! Per-task loss bookkeeping on the GPU (sums, first non-finite step, count),
//! read back once per epoch. See shaders/loss_tracking.wgsl.

use crate::error::Result;
use crate::gpu::dispatch::ReplicaAxis;
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{replica_grid, tasks_of, Shader};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TrackParams {
    tasks: u32,
    rep_state: u32,
    rep_loss: u32,
    _pad: u32,
}

/// Add this step's losses (K) to the bookkeeping `state` (3K).
pub fn track_losses(gpu: &Gpu, losses: &Tensor, state: &Tensor) -> Result<Dispatch> {
    let (losses, state) = (losses.clone(), state.clone());
    crate::gpu::dispatch::record_replicable(gpu, move |gpu, count, stride| {
        let strides = (stride(&losses), stride(&state));
        track_losses_replicated(gpu, &losses, &state, count, strides)
    })
}

/// [`track_losses`] for `count` replicas in one dispatch: replica r's
/// losses lie r·`strides.0` elements past `losses`, its state r·`strides.1`
/// past `state` (strides in elements).
pub fn track_losses_replicated(
    gpu: &Gpu,
    losses: &Tensor,
    state: &Tensor,
    count: usize,
    (rep_loss, rep_state): (usize, usize),
) -> Result<Dispatch> {
    state.expect_numel("track_losses state", 3 * losses.numel())?;
    let params = TrackParams {
        tasks: tasks_of(losses)?.tasks,
        rep_state: rep_state as u32,
        rep_loss: rep_loss as u32,
        _pad: 0,
    };
    let count = count.max(1);
    use Binding::*;
    Shader::builtin("loss_tracking.wgsl").record_replicated(
        gpu,
        "track_losses",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &params,
        &[state, losses],
        &ReplicaAxis {
            count,
            strides: vec![rep_state, rep_loss],
        },
        replica_grid(gpu, count)?,
    )
}
