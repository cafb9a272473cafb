//! Fused mean squared error: loss and gradient in one kernel, with a per-row
//! label mask. See shaders/mse.wgsl.

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{check_slot, matrix, record, LossParams};

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
    let (b, t) = matrix("mse pred", pred)?;
    target.expect_shape("mse target", &[b, t])?;
    mask.expect_numel("mse mask", b)?;
    check_slot("mse scale/loss", scale, loss, slot)?;
    dpred.expect_shape("mse dpred", &[b, t])?;
    use Binding::*;
    record(
        gpu,
        "mse.wgsl",
        "mse",
        &[
            Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly,
        ],
        &[],
        &LossParams {
            rows: b as u32,
            cols: t as u32,
            slot: slot as u32,
            _pad: 0,
        },
        &[dpred, loss, pred, target, mask, scale],
        [1, 1, 1],
    )
}
