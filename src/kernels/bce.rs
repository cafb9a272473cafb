//! Fused binary cross-entropy with logits: loss and gradient in one kernel,
//! with a per-row label mask. See shaders/bce.wgsl.

use crate::error::Result;
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{check_slot, matrix, record, LossParams};

/// Record the fused binary cross-entropy of `logits` (B×T) against `target`
/// (B×T, 0 or 1), with row `mask` (B) and upstream gradient `scale[slot]`;
/// writes `dlogits` (B×T) and `loss[slot]` (`scale` and `loss` have one
/// element per task).
#[allow(clippy::too_many_arguments)]
pub fn bce(
    gpu: &Gpu,
    logits: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    scale: &Tensor,
    slot: usize,
    dlogits: &Tensor,
    loss: &Tensor,
) -> Result<Dispatch> {
    let (b, t) = matrix("bce logits", logits)?;
    if target.dtype() != DType::F32 {
        return Err(crate::error::Error::shape(
            "bce target",
            "f32 values 0 or 1",
            "u32",
        ));
    }
    target.expect_shape("bce target", &[b, t])?;
    mask.expect_numel("bce mask", b)?;
    check_slot("bce scale/loss", scale, loss, slot)?;
    dlogits.expect_shape("bce dlogits", &[b, t])?;
    use Binding::*;
    record(
        gpu,
        "bce.wgsl",
        "bce",
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
        &[dlogits, loss, logits, target, mask, scale],
        [1, 1, 1],
    )
}
