//! Fused losses: loss and gradient in one kernel, with a per-row label mask.
//! See shaders/softmax_ce.wgsl and shaders/mse.wgsl.

use crate::device::{Binding, Gpu};
use crate::error::{Error, Result};
use crate::kernels::{record, Dispatch};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    slot: u32,
    _pad: u32,
}

/// Check that `slot` indexes both the K-element `scale` and `loss` arrays.
fn check_slot(op: &'static str, scale: &Tensor, loss: &Tensor, slot: usize) -> Result<()> {
    if slot >= scale.numel() || scale.numel() != loss.numel() {
        return Err(Error::shape(
            op,
            format!("scale and loss of equal length K > slot {slot}"),
            format!("scale {:?}, loss {:?}", scale.shape(), loss.shape()),
        ));
    }
    Ok(())
}

fn matrix(op: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((r, c)),
        _ => Err(Error::shape(op, "a 2-D matrix", format!("{:?}", t.shape()))),
    }
}

/// Outputs of [`softmax_ce`].
pub struct SoftmaxCeOutputs<'a> {
    /// B×C: (softmax(z) - onehot(y)) · scale / n_valid on valid rows, 0 elsewhere.
    pub dlogits: &'a Tensor,
    /// B: each row's loss (0 on masked rows).
    pub loss_rows: &'a Tensor,
    /// K: the mean over valid rows is written to element `slot`.
    pub loss: &'a Tensor,
}

/// Record the fused softmax cross-entropy of `logits` (B×C) against `labels`
/// (B, u32), with row `mask` (B, 1 = labelled) and upstream gradient `scale[slot]`
/// (`scale` has one element per task).
pub fn softmax_ce(
    gpu: &Gpu,
    logits: &Tensor,
    labels: &Tensor,
    mask: &Tensor,
    scale: &Tensor,
    slot: usize,
    out: SoftmaxCeOutputs,
) -> Result<Dispatch> {
    let (b, c) = matrix("softmax_ce logits", logits)?;
    if c == 0 {
        return Err(Error::shape(
            "softmax_ce logits",
            "at least one class",
            "0 classes",
        ));
    }
    if labels.dtype() != DType::U32 {
        return Err(Error::shape(
            "softmax_ce labels",
            "u32 class indices",
            "f32 values",
        ));
    }
    labels.expect_numel("softmax_ce labels", b)?;
    mask.expect_numel("softmax_ce mask", b)?;
    check_slot("softmax_ce scale/loss", scale, out.loss, slot)?;
    out.dlogits.expect_shape("softmax_ce dlogits", &[b, c])?;
    out.loss_rows.expect_numel("softmax_ce loss_rows", b)?;
    use Binding::*;
    record(
        gpu,
        "softmax_ce.wgsl",
        "softmax_ce",
        &[
            Uniform, ReadWrite, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly,
        ],
        &[],
        &Params {
            rows: b as u32,
            cols: c as u32,
            slot: slot as u32,
            _pad: 0,
        },
        &[
            out.dlogits,
            out.loss_rows,
            out.loss,
            logits,
            labels,
            mask,
            scale,
        ],
        [1, 1, 1],
    )
}

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
        &Params {
            rows: b as u32,
            cols: t as u32,
            slot: slot as u32,
            _pad: 0,
        },
        &[dpred, loss, pred, target, mask, scale],
        [1, 1, 1],
    )
}
