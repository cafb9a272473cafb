//! Fused softmax cross-entropy: loss and gradient in one kernel, with a
//! per-row label mask. See shaders/softmax_ce.wgsl.

use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{check_slot, matrix, LossArray, LossParams, LossReplicas, Shader};

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
    let t = [
        logits,
        labels,
        mask,
        scale,
        out.dlogits,
        out.loss_rows,
        out.loss,
    ]
    .map(Tensor::clone);
    crate::gpu::dispatch::record_replicable(gpu, move |gpu, count, stride| {
        let [logits, labels, mask, scale, dlogits, loss_rows, loss] = &t;
        let out = SoftmaxCeOutputs {
            dlogits,
            loss_rows,
            loss,
        };
        let groups = [
            &[logits, dlogits][..],
            &[labels, mask, loss_rows][..],
            &[scale, loss][..],
        ];
        let reps = LossReplicas::from_strides(count, groups, stride)?;
        softmax_ce_replicated(gpu, logits, labels, mask, scale, slot, out, reps)
    })
}

/// [`softmax_ce`] for `reps.count` replicas in one dispatch: the tensors
/// given are replica 0's, and replica r's lie r·`reps.values` (logits,
/// dlogits), r·`reps.rows` (labels, mask, loss_rows) and r·`reps.tasks`
/// (scale, loss) elements further on. Each replica's outputs are those of
/// its loss recorded alone.
#[allow(clippy::too_many_arguments)]
pub fn softmax_ce_replicated(
    gpu: &Gpu,
    logits: &Tensor,
    labels: &Tensor,
    mask: &Tensor,
    scale: &Tensor,
    slot: usize,
    out: SoftmaxCeOutputs,
    reps: LossReplicas,
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
    use LossArray::*;
    Shader::builtin("softmax_ce.wgsl").record_replicated(
        gpu,
        "softmax_ce",
        &[
            Uniform, ReadWrite, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly,
        ],
        &LossParams::workgroup(b),
        &LossParams::new(b, c, slot, &reps),
        &[
            out.dlogits,
            out.loss_rows,
            out.loss,
            logits,
            labels,
            mask,
            scale,
        ],
        &reps.axis(&[Values, Rows, Tasks, Values, Rows, Rows, Tasks]),
        reps.workgroups(gpu)?,
    )
}
