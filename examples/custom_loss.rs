//! custom_loss: a task kind the crate does not have, defined in one file
//! outside it: a Huber-loss regression, with its own WGSL kernel, registered
//! through the public API and trained with `fit` beside the crate's kinds.
//!
//!     cargo run --release --example custom_loss
//!
//! What a task kind owns (`taskgrad::task::TaskKind`): its head's width, how
//! a label cell becomes a target, its fused loss on the tape, its metrics
//! (the primary one first, for Δm%), how raw outputs become predictions, and
//! what a saved model keeps. Here the kind reuses the regression kind's
//! standardisation, metrics and predictions, and brings its own loss:
//!
//!   e = pred − target (standardised),  h(e) = ½e² for |e| ≤ δ, δ(|e| − ½δ) beyond,
//!   loss = Σ_valid h(e) / n_valid,      dpred = clamp(e, −δ, δ) · seed / n_valid.
//!
//! Less pull from outliers than MSE: past δ the gradient stops growing.

use std::sync::Arc;

use taskgrad::autodiff::{Tape, Var};
use taskgrad::data::{Dataset, Split, Table, TaskType};
use taskgrad::gpu::{Binding, Dispatch, Gpu, Tensor};
use taskgrad::kernels::Shader;
use taskgrad::task::{
    self, Encoded, KindInfo, Labels, LossInputs, Reg, Storage, Target, TaskKind, TaskMetrics,
    TaskPrediction,
};
use taskgrad::train::{fit, TrainConfig};

/// The kernel: one workgroup, as the crate's own fused losses. Its header
/// is its math and shapes, like every WGSL file of the crate.
const HUBER_SHADER: Shader = Shader {
    file: "huber.wgsl",
    source: HUBER_WGSL,
};

const HUBER_WGSL: &str = r#"
// Fused Huber loss with a row mask. pred, target, mask: B; seeds, losses: K.
//   e = pred[r] − target[r];  h(e) = ½e² (|e| ≤ δ), δ(|e| − ½δ) (beyond)
//   losses[slot] = Σ_valid h(e) / n_valid;  dpred[r] = valid ? clamp(e, −δ, δ)·seeds[slot]/n_valid : 0
struct Params { rows: u32, slot: u32, delta: f32, _pad: u32 }
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
fn huber(@builtin(local_invocation_id) lid3: vec3<u32>) {
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
            let a = abs(e);
            local_loss = local_loss + select(p.delta * (a - 0.5 * p.delta), 0.5 * e * e, a <= p.delta);
            d = clamp(e, -p.delta, p.delta) * seeds[p.slot] * inv;
        }
        dpred[r] = d;
    }
    let total = tree_sum(lid, local_loss);
    if (lid == 0u) { losses[p.slot] = total * inv; }
}
"#;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct HuberParams {
    rows: u32,
    slot: u32,
    delta: f32,
    _pad: u32,
}

/// Record the kernel over `pred` (B×1) into `dpred` and `losses[slot]`.
fn huber_dispatch(
    gpu: &Gpu,
    pred: &Tensor,
    dpred: &Tensor,
    batch: LossInputs<'_>,
    delta: f32,
) -> taskgrad::Result<Dispatch> {
    use Binding::*;
    let rows = batch.mask.numel();
    let params = HuberParams {
        rows: rows as u32,
        slot: batch.slot as u32,
        delta,
        _pad: 0,
    };
    HUBER_SHADER.record(
        gpu,
        "huber",
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

/// The kind, fitted: the regression kind's standardisation, and δ (in
/// standard deviations of the target).
#[derive(Debug)]
struct Huber {
    reg: Reg,
    delta: f32,
}

const DELTA: f32 = 1.0;

static HUBER: KindInfo = KindInfo {
    name: "huber",
    aliases: &[],
    summary: "a real value: Huber loss (δ = 1 standard deviation); RMSE, MAE, R²",
    shader: Some(HUBER_SHADER),
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
        Ok(Arc::new(Huber { reg, delta: DELTA }))
    },
    load: |m| {
        let num = |k: &str| m.get(k).and_then(|v| v.as_f64()).ok_or(format!("no {k}"));
        let reg = Reg {
            mean: num("mean")? as f32,
            std: num("std")? as f32,
        };
        Ok(Arc::new(Huber {
            reg,
            delta: num("delta")? as f32,
        }))
    },
};

impl TaskKind for Huber {
    fn info(&self) -> &'static KindInfo {
        &HUBER
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
    // ANCHOR: huber_loss
    fn loss(&self, tape: &mut Tape, out: Var, batch: LossInputs<'_>) -> taskgrad::Result<Var> {
        let (gpu, delta) = (tape.gpu, self.delta);
        tape.fused_loss("huber", out, batch.losses, |pred, dpred| {
            huber_dispatch(gpu, pred, dpred, batch, delta)
        })
    }
    // ANCHOR_END: huber_loss
    fn metrics(&self, outputs: &[f32], target: &Target, rows: &[usize], loss: f64) -> TaskMetrics {
        self.reg.metrics(outputs, target, rows, loss)
    }
    fn predict(&self, name: &str, outputs: &[f32], rows: usize) -> TaskPrediction {
        self.reg.predict(name, outputs, rows)
    }
    fn save(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = self.reg.save();
        m.insert("delta".into(), self.delta.into());
        m
    }
    fn describe(&self) -> String {
        format!("{}, δ = {}", self.reg.describe(), self.delta)
    }
    fn loss_name(&self) -> &'static str {
        "Huber (standardised target)"
    }
}

/// The kernel against the formula in f64, on values spread past ±δ, one row masked.
fn check_kernel(gpu: &Gpu) -> taskgrad::Result<()> {
    let pred = [0.3f32, -2.5, 1.0, 4.0, 0.0];
    let target = [0.0f32, 0.0, 1.5, 0.0, 9.0];
    let mask = [1.0f32, 1.0, 1.0, 1.0, 0.0];
    let seed = 0.5f32;
    let t = |v: &[f32], shape: &[usize]| Tensor::from_slice(gpu, shape, v, "check");
    let (p, y, m) = (t(&pred, &[5, 1])?, t(&target, &[5])?, t(&mask, &[5])?);
    let (seeds, losses, dpred) = (t(&[seed], &[1])?, t(&[0.0], &[1])?, t(&[0.0; 5], &[5, 1])?);
    let batch = LossInputs {
        target: &y,
        mask: &m,
        seeds: &seeds,
        losses: &losses,
        slot: 0,
    };
    gpu.run(&[&huber_dispatch(gpu, &p, &dpred, batch, DELTA)?])?;
    let got = gpu.read(&[&losses, &dpred])?;
    let (d, n) = (DELTA as f64, 4.0);
    let (mut want_loss, mut max_err) = (0.0, 0.0f64);
    for r in 0..5 {
        let e = (pred[r] - target[r]) as f64;
        let valid = mask[r] > 0.5;
        if valid {
            want_loss += if e.abs() <= d {
                0.5 * e * e
            } else {
                d * (e.abs() - 0.5 * d)
            } / n;
        }
        let want_d = if valid {
            e.clamp(-d, d) * seed as f64 / n
        } else {
            0.0
        };
        max_err = max_err.max((got[1][r] as f64 - want_d).abs());
    }
    max_err = max_err.max((got[0][0] as f64 - want_loss).abs());
    println!("huber kernel against the formula: largest difference {max_err:.2e}");
    assert!(max_err < 1e-6, "the kernel disagrees with its formula");
    Ok(())
}

fn main() -> taskgrad::Result<()> {
    taskgrad::gpu::quiet_graphics_stack();
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.report);
    check_kernel(&gpu)?;

    // ANCHOR: huber_register
    // The one registration line: now `--task NAME:huber`, configs and saved
    // models know the kind by name too.
    task::register(&HUBER)?;
    // ANCHOR_END: huber_register

    let table = Table::from_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv"))?;
    let split = Split::new(table.n_rows(), 0.2, 0.2, 0)?;
    let tasks = [
        ("species", TaskType::CLASS),
        ("petal_length", TaskType::by_name("huber")?),
        ("petal_width", TaskType::REG),
    ];
    let data = Dataset::from_table(
        &table,
        &["sepal_length", "sepal_width"],
        &tasks,
        &split.train,
    )?;
    for t in &data.tasks {
        println!("task {}: {}, {}", t.name, t.kind_name(), t.kind.describe());
    }
    let cfg = TrainConfig {
        epochs: 60,
        ..Default::default()
    };
    let method = taskgrad::mtl::by_name("equal")?;
    let first = std::cell::Cell::new(None);
    let report = fit(&gpu, &data, &split, &[0, 1, 2], method, &cfg, &mut |e| {
        if first.get().is_none() {
            first.set(Some(e.train_loss[1]));
        }
    })?;
    let last = report
        .history
        .last()
        .map(|e| e.train_loss[1])
        .unwrap_or(0.0);
    println!(
        "petal_length's Huber loss: {:.4} after the first epoch, {last:.4} after {}",
        first.get().unwrap_or(0.0),
        report.history.len()
    );
    for (t, m) in data.tasks.iter().zip(&report.test) {
        let named: Vec<String> = m
            .metrics
            .iter()
            .map(|m| format!("{} {:.3}", m.name, m.value))
            .collect();
        println!("test {:<13} {}", t.name, named.join(", "));
    }
    // A saved model keeps the kind by name and loads it back through the registry.
    let saved = serde_json::to_string(&data.tasks[1]).unwrap_or_default();
    let back: task::TaskSpec = serde_json::from_str(&saved).map_err(|e| {
        taskgrad::Error::InvalidConfig(format!("the saved Huber task does not load: {e}"))
    })?;
    assert_eq!(back, data.tasks[1]);
    println!("saved as {saved}");
    assert!(
        last < first.get().unwrap_or(0.0),
        "the Huber loss did not fall"
    );
    Ok(())
}
