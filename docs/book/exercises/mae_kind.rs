//! Exercise 11 (chapter 11): a task kind of your own, a regression trained
//! on the mean absolute error.
//!
//!   e = pred − target (standardised),
//!   loss = Σ_valid |e| / n_valid,   dpred = sign(e) · seed / n_valid  (0 on masked rows)
//!
//! Everything but the loss is the regression kind's (`Reg`): its
//! standardisation, metrics, predictions and what a saved model keeps, as
//! `examples/custom_loss.rs` does for Huber. Two things are yours:
//!
//! 1. the kernel's two lines marked TODO: the row's loss and its gradient;
//! 2. `TaskKind::loss`: put the kernel on the tape as a fused loss, so that
//!    the backward walk starts from the gradient it writes.
//!
//! Check it:   cargo test --release --test exercises -- --ignored exercise_11
//! The check runs the kernel against the formula in f64 (a masked row, errors
//! of both signs), then trains Iris with petal length as this kind beside the
//! species and requires its loss to fall.

use std::sync::Arc;

use taskgrad::autodiff::{Tape, Var};
use taskgrad::gpu::{Binding, Dispatch, Gpu, Tensor};
use taskgrad::kernels::Shader;
use taskgrad::task::{
    self, Encoded, KindInfo, Labels, LossInputs, Reg, Storage, Target, TaskKind, TaskMetrics,
    TaskPrediction,
};

const MAE_SHADER: Shader = Shader {
    file: "mae.wgsl",
    source: MAE_WGSL,
};

const MAE_WGSL: &str = r#"
// Fused mean absolute error with a row mask. pred, target, mask: B; seeds, losses: K.
//   e = pred[r] − target[r]
//   losses[slot] = Σ_valid |e| / n_valid;  dpred[r] = valid ? sign(e)·seeds[slot]/n_valid : 0
struct Params { rows: u32, slot: u32 }
override WG: u32 = 256u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dpred: array<f32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(0) @binding(3) var<storage, read> pred: array<f32>;
@group(0) @binding(4) var<storage, read> target_values: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;
@group(0) @binding(6) var<storage, read> seeds: array<f32>;
var<workgroup> partial: array<f32, WG>;

fn tree_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half = half / 2u) {
        if (lid < half) { partial[lid] = partial[lid] + partial[lid + half]; }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn mae(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    var count = 0.0;
    for (var r = lid; r < p.rows; r = r + WG) {
        if (mask[r] > 0.5) { count = count + 1.0; }
    }
    let n_valid = tree_sum(lid, count);
    let inv = select(0.0, 1.0 / n_valid, n_valid > 0.0);
    var local_loss = 0.0;
    for (var r = lid; r < p.rows; r = r + WG) {
        var d = 0.0;
        if (mask[r] > 0.5) {
            let e = pred[r] - target_values[r];
            local_loss = local_loss + 0.0;  // TODO: this row's loss
            d = 0.0 * e;                    // TODO: its gradient
        }
        dpred[r] = d;
    }
    let total = tree_sum(lid, local_loss);
    if (lid == 0u) { losses[p.slot] = total * inv; }
}
"#;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MaeParams {
    rows: u32,
    slot: u32,
}

/// Record the kernel over `pred` (B×1) into `dpred` and `losses[slot]`.
pub fn mae_dispatch(
    gpu: &Gpu,
    pred: &Tensor,
    dpred: &Tensor,
    batch: LossInputs<'_>,
) -> taskgrad::Result<Dispatch> {
    use Binding::*;
    let params = MaeParams {
        rows: batch.mask.numel() as u32,
        slot: batch.slot as u32,
    };
    MAE_SHADER.record(
        gpu,
        "mae",
        &[
            Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly,
        ],
        &[],
        &params,
        &[
            dpred,
            batch.losses,
            pred,
            batch.target,
            batch.mask,
            batch.seeds,
        ],
        [1, 1, 1],
    )
}

/// The kind: the regression kind's standardisation, and the MAE loss.
#[derive(Debug)]
pub struct Mae {
    reg: Reg,
}

pub static MAE: KindInfo = KindInfo {
    name: "mae",
    aliases: &[],
    summary: "a real value: mean absolute error on the standardised value; RMSE, MAE, R²",
    shader: Some(MAE_SHADER),
    fit: |labels: &Labels<'_>| {
        let values = labels
            .train
            .iter()
            .map(|c| task::parse_number(c).map(|v| v as f64))
            .collect::<Result<Vec<_>, _>>()?;
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let reg = Reg {
            mean: mean as f32,
            std: if std > 0.0 { std as f32 } else { 1.0 },
        };
        Ok(Arc::new(Mae { reg }))
    },
    load: |m| {
        let num = |k: &str| m.get(k).and_then(|v| v.as_f64()).ok_or(format!("no {k}"));
        let reg = Reg {
            mean: num("mean")? as f32,
            std: num("std")? as f32,
        };
        Ok(Arc::new(Mae { reg }))
    },
};

impl TaskKind for Mae {
    fn info(&self) -> &'static KindInfo {
        &MAE
    }
    fn outputs(&self) -> usize {
        1
    }
    fn storage(&self) -> Storage {
        Storage::Values
    }
    fn encode(&self, cell: &str) -> Result<Encoded, String> {
        self.reg.encode(cell)
    }
    fn loss(&self, tape: &mut Tape, out: Var, batch: LossInputs<'_>) -> taskgrad::Result<Var> {
        // TODO: the kernel, on the tape as a fused loss (chapter 11 shows
        // how the Huber kind does it).
        let _ = (tape, out, batch);
        Err(taskgrad::Error::InvalidConfig(
            "exercise 11: MAE's loss is not on the tape yet".into(),
        ))
    }
    fn metrics(&self, outputs: &[f32], target: &Target, rows: &[usize], loss: f64) -> TaskMetrics {
        self.reg.metrics(outputs, target, rows, loss)
    }
    fn predict(&self, name: &str, outputs: &[f32], rows: usize) -> TaskPrediction {
        self.reg.predict(name, outputs, rows)
    }
    fn save(&self) -> serde_json::Map<String, serde_json::Value> {
        self.reg.save()
    }
    fn describe(&self) -> String {
        self.reg.describe()
    }
    fn loss_name(&self) -> &'static str {
        "mean absolute error (standardised target)"
    }
}
