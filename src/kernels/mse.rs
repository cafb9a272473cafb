//! Fused mean squared error: loss and gradient in one kernel, with a per-row
//! label mask. See shaders/mse.wgsl.

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{check_slot, matrix, LossArray, LossParams, LossReplicas, Shader};

/// Record the fused mean squared error of `pred` (B×T) against `target` (B×T),
/// with row `mask` (B) and upstream gradient `scale[slot]`; writes `dpred` (B×T)
/// and `loss[slot]` (`scale` and `loss` have one element per task).
#[allow(clippy::too_many_arguments)]
pub fn mse(
    gpu: &Gpu,
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    scale: &Tensor,
    slot: usize,
    dpred: &Tensor,
    loss: &Tensor,
) -> Result<Dispatch> {
    let t = [pred, target, mask, scale, dpred, loss].map(Tensor::clone);
    crate::gpu::dispatch::record_replicable(gpu, move |gpu, count, stride| {
        let [pred, target, mask, scale, dpred, loss] = &t;
        let groups = [&[pred, target, dpred][..], &[mask][..], &[scale, loss][..]];
        let reps = LossReplicas::from_strides(count, groups, stride)?;
        mse_replicated(gpu, pred, target, mask, scale, slot, dpred, loss, reps)
    })
}

/// [`mse`] for `reps.count` replicas in one dispatch: the tensors given are
/// replica 0's, and replica r's lie r·`reps.values` (pred, target, dpred),
/// r·`reps.rows` (mask) and r·`reps.tasks` (scale, loss) elements further
/// on. Each replica's outputs are those of its loss recorded alone.
#[allow(clippy::too_many_arguments)]
pub fn mse_replicated(
    gpu: &Gpu,
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    scale: &Tensor,
    slot: usize,
    dpred: &Tensor,
    loss: &Tensor,
    reps: LossReplicas,
) -> Result<Dispatch> {
    let (b, t) = matrix("mse pred", pred)?;
    target.expect_shape("mse target", &[b, t])?;
    mask.expect_numel("mse mask", b)?;
    check_slot("mse scale/loss", scale, loss, slot)?;
    dpred.expect_shape("mse dpred", &[b, t])?;
    use Binding::*;
    use LossArray::*;
    Shader::builtin("mse.wgsl").record_replicated(
        gpu,
        "mse",
        &[
            Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly,
        ],
        &LossParams::workgroup(b),
        &LossParams::new(b, t, slot, &reps),
        &[dpred, loss, pred, target, mask, scale],
        &reps.axis(&[Values, Tasks, Values, Values, Rows, Tasks]),
        reps.workgroups(gpu)?,
    )
}
