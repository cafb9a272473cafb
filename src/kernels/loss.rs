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
    _pad0: u32,
    _pad1: u32,
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
    /// 1: the mean over valid rows.
    pub loss: &'a Tensor,
}

/// Record the fused softmax cross-entropy of `logits` (B×C) against `labels`
/// (B, u32), with row `mask` (B, 1 = labelled) and upstream gradient `scale` (1).
pub fn softmax_ce(
    gpu: &Gpu,
    logits: &Tensor,
    labels: &Tensor,
    mask: &Tensor,
    scale: &Tensor,
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
    scale.expect_numel("softmax_ce scale", 1)?;
    out.dlogits.expect_shape("softmax_ce dlogits", &[b, c])?;
    out.loss_rows.expect_numel("softmax_ce loss_rows", b)?;
    out.loss.expect_numel("softmax_ce loss", 1)?;
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
            _pad0: 0,
            _pad1: 0,
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
/// with row `mask` (B) and upstream gradient `scale` (1); writes `dpred` (B×T) and `loss` (1).
pub fn mse(
    gpu: &Gpu,
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    scale: &Tensor,
    dpred: &Tensor,
    loss: &Tensor,
) -> Result<Dispatch> {
    let (b, t) = matrix("mse pred", pred)?;
    target.expect_shape("mse target", &[b, t])?;
    mask.expect_numel("mse mask", b)?;
    scale.expect_numel("mse scale", 1)?;
    dpred.expect_shape("mse dpred", &[b, t])?;
    loss.expect_numel("mse loss", 1)?;
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
            _pad0: 0,
            _pad1: 0,
        },
        &[dpred, loss, pred, target, mask, scale],
        [1, 1, 1],
    )
}
