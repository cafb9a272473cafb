//! Binary: one of two outcomes (a click, a diagnosis). One logit z; binary
//! cross-entropy with logits computed stably in WGSL (`shaders/bce.wgsl`);
//! ROC AUC (primary, higher is better), log-loss and accuracy at p = ½.
//!
//! The kind is one unit: this file holds the kind, its kernel's wrapper
//! ([`kernel`]) and the kernel's CPU twin ([`reference()`]); the WGSL is
//! `shaders/bce.wgsl`, declared in [`INFO`]'s `shader`.
//!
//! The column holds two values. Which one is the positive outcome (target
//! 1, the one whose probability `predict` writes): `1` when the values are
//! 0 and 1, else the later of the two in sorted order (`true` of
//! false/true, `yes` of no/yes, `M` of B/M). The run's summary names it.

use std::sync::Arc;

use super::metrics::{log_loss, roc_auc, Metric, TaskMetrics};
use super::{
    field, label_text, Encoded, KindInfo, Labels, LossInputs, Storage, Target, TaskKind,
    TaskPrediction,
};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{check_slot, matrix, LossArray, LossParams, LossReplicas, Shader};
use crate::reference::Real;

/// The fused loss: `shaders/bce.wgsl`.
pub const SHADER: Shader = Shader {
    file: "bce.wgsl",
    source: include_str!("../../shaders/bce.wgsl"),
};

/// A binary task, fitted: its two values, the negative then the positive.
#[derive(Clone, Debug, PartialEq)]
pub struct Binary {
    pub classes: [String; 2],
}

fn fit(labels: &Labels<'_>) -> std::result::Result<Arc<dyn TaskKind>, String> {
    let mut values = labels
        .present
        .iter()
        .map(|c| label_text(c))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    values.sort();
    values.dedup();
    match values.as_slice() {
        // Sorted as text, "0" < "1": the positive is the later either way.
        [neg, pos] => Ok(Arc::new(Binary {
            classes: [neg.clone(), pos.clone()],
        })),
        [only] => Err(format!(
            "a binary task needs two values; only {only:?} occurs"
        )),
        many => Err(format!(
            "a binary task takes two values; this column has {} ({}{}): use class",
            many.len(),
            many[..many.len().min(5)].join(", "),
            if many.len() > 5 { ", …" } else { "" }
        )),
    }
}

/// The kind's registry entry.
pub const INFO: KindInfo = KindInfo {
    name: "binary",
    aliases: &["bin", "binary-class"],
    summary: "one of two values: binary cross-entropy with logits; ROC AUC, log-loss, accuracy",
    shader: Some(SHADER),
    fit,
    load: |m| {
        let classes: [String; 2] = field(m, "classes")?;
        if classes[0] == classes[1] {
            return Err(format!(
                "a binary task's two values are one: {:?}",
                classes[0]
            ));
        }
        Ok(Arc::new(Binary { classes }))
    },
};

/// σ(z) in f64.
fn sigmoid(z: f32) -> f64 {
    1.0 / (1.0 + (-(z as f64)).exp())
}

impl TaskKind for Binary {
    fn info(&self) -> &'static KindInfo {
        &INFO
    }
    fn outputs(&self) -> usize {
        1
    }
    fn storage(&self) -> Storage {
        Storage::Values
    }
    fn encode(&self, cell: &str) -> std::result::Result<Encoded, String> {
        let label = label_text(cell)?;
        match self.classes.iter().position(|c| *c == label) {
            Some(k) => Ok(Encoded::Value(k as f32)),
            None => Err(format!(
                "{cell:?} is neither of this binary task's values ({} and {})",
                self.classes[0], self.classes[1]
            )),
        }
    }
    fn loss(&self, tape: &mut Tape, out: Var, b: LossInputs<'_>) -> Result<Var> {
        let rows = b.mask.numel();
        let target = b.target.reshape(&[rows, 1])?;
        let gpu = tape.gpu;
        // dlogits = (σ(z) - y) · seed / (n_valid · T)
        tape.fused_loss("bce", out, b.losses, |z, dz| {
            kernel(gpu, z, &target, b.mask, b.seeds, b.slot, dz, b.losses)
        })
    }
    fn metrics(&self, outputs: &[f32], target: &Target, rows: &[usize], loss: f64) -> TaskMetrics {
        let mask = target.mask_of(rows);
        let positive: Vec<bool> = target.values_of(rows).iter().map(|&v| v > 0.5).collect();
        let scores: Vec<f64> = outputs.iter().map(|&z| z as f64).collect();
        let (mut right, mut n) = (0usize, 0usize);
        for (r, &m) in mask.iter().enumerate() {
            if m > 0.5 {
                right += ((outputs[r] > 0.0) == positive[r]) as usize;
                n += 1;
            }
        }
        TaskMetrics {
            loss,
            metrics: vec![
                Metric::new("auc", "ROC AUC", roc_auc(&scores, &positive, &mask), true),
                Metric::new(
                    "log_loss",
                    "log-loss (nats)",
                    log_loss(outputs, &positive, &mask),
                    false,
                ),
                Metric::new(
                    "accuracy",
                    "accuracy (p > ½)",
                    right as f64 / n.max(1) as f64,
                    true,
                ),
            ],
        }
    }
    fn predict(&self, name: &str, out: &[f32], rows: usize) -> TaskPrediction {
        let p: Vec<f64> = out[..rows].iter().map(|&z| sigmoid(z)).collect();
        TaskPrediction {
            name: name.to_string(),
            cells: p.iter().map(|v| format!("{v:.6}")).collect(),
            probabilities: p.iter().map(|&v| vec![1.0 - v, v]).collect(),
            values: p,
            classes: self.classes.to_vec(),
        }
    }
    fn save(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("classes".into(), self.classes.to_vec().into());
        m
    }
    fn describe(&self) -> String {
        format!(
            "positive: {} (negative: {})",
            self.classes[1], self.classes[0]
        )
    }
    fn loss_name(&self) -> &'static str {
        "binary cross-entropy (nats)"
    }
}

/// Record the fused binary cross-entropy of `logits` (B×T) against `target`
/// (B×T, 0 or 1), with row `mask` (B) and upstream gradient `scale[slot]`;
/// writes `dlogits` (B×T) and `loss[slot]` (`scale` and `loss` have one
/// element per task). One workgroup.
#[allow(clippy::too_many_arguments)]
pub fn kernel(
    gpu: &Gpu,
    logits: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    scale: &Tensor,
    slot: usize,
    dlogits: &Tensor,
    loss: &Tensor,
) -> Result<Dispatch> {
    let t = [logits, target, mask, scale, dlogits, loss].map(Tensor::clone);
    crate::gpu::dispatch::record_replicable(gpu, move |gpu, count, stride| {
        let [logits, target, mask, scale, dlogits, loss] = &t;
        let groups = [
            &[logits, target, dlogits][..],
            &[mask][..],
            &[scale, loss][..],
        ];
        let reps = LossReplicas::from_strides(count, groups, stride)?;
        kernel_replicated(gpu, logits, target, mask, scale, slot, dlogits, loss, reps)
    })
}

/// [`kernel`] for `reps.count` replicas in one dispatch: the tensors given
/// are replica 0's, and replica r's lie r·`reps.values` (logits, target,
/// dlogits), r·`reps.rows` (mask) and r·`reps.tasks` (scale, loss) elements
/// further on. Each replica's outputs are those of its loss recorded alone.
#[allow(clippy::too_many_arguments)]
pub fn kernel_replicated(
    gpu: &Gpu,
    logits: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    scale: &Tensor,
    slot: usize,
    dlogits: &Tensor,
    loss: &Tensor,
    reps: LossReplicas,
) -> Result<Dispatch> {
    let (b, t) = matrix("bce logits", logits)?;
    if target.dtype() != DType::F32 {
        return Err(Error::shape("bce target", "f32 values 0 or 1", "u32"));
    }
    target.expect_shape("bce target", &[b, t])?;
    mask.expect_numel("bce mask", b)?;
    check_slot("bce scale/loss", scale, loss, slot)?;
    dlogits.expect_shape("bce dlogits", &[b, t])?;
    use Binding::*;
    use LossArray::*;
    SHADER.record_replicated(
        gpu,
        "bce",
        &[
            Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly,
        ],
        &LossParams::workgroup(b),
        &LossParams::new(b, t, slot, &reps),
        &[dlogits, loss, logits, target, mask, scale],
        &reps.axis(&[Values, Tasks, Values, Values, Rows, Tasks]),
        reps.workgroups(gpu)?,
    )
}

/// The kernel's CPU twin: mean binary cross-entropy with logits over the
/// entries of rows with mask > 0.5 and its gradient, `(loss, dlogits)`;
/// dlogits = (σ(z) − y) · scale / (n_valid · T). ℓ = max(z, 0) − z·y +
/// ln(1 + e^{−|z|}), the form that cannot overflow.
pub fn reference<T: Real>(
    logits: &[T],
    target: &[T],
    mask: &[T],
    b: usize,
    t: usize,
    scale: T,
) -> (T, Vec<T>) {
    crate::reference::masked_mean_loss(mask, b, t, scale, |i| {
        let (z, y) = (logits[i], target[i]);
        let e = (T::zero() - z.max(T::zero() - z)).exp(); // e^{-|z|}
        let loss = z.max(T::zero()) - z * y + (T::one() + e).ln();
        let sigma = T::one() / (T::one() + (T::zero() - z).exp());
        (loss, sigma - y)
    })
}
