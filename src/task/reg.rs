//! Regression: a real value. The head predicts the value standardised with
//! the training rows' mean and spread; MSE on that scale
//! (`shaders/mse.wgsl`); RMSE, MAE and R² in the data's own units.

use std::sync::Arc;

use super::metrics::{regression, Metric, TaskMetrics};
use super::{
    field, parse_number, Encoded, KindInfo, Labels, LossInputs, Storage, Target, TaskKind,
    TaskPrediction,
};
use crate::autodiff::{Tape, Var};
use crate::error::Result;

/// A regression task, fitted: the training values' mean and spread.
#[derive(Clone, Debug, PartialEq)]
pub struct Reg {
    pub mean: f32,
    pub std: f32,
}

/// Mean and spread (population) of `values`, as a standardisation keeps them
/// (the data's numeric inputs use it too).
pub fn mean_std(values: &[f64]) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / values.len() as f64;
    // The column's real spread, however small; only an exactly constant
    // column (or a spread f32 cannot hold) is left unscaled.
    let std = var.sqrt() as f32;
    (mean as f32, if std.is_normal() { std } else { 1.0 })
}

fn fit(labels: &Labels<'_>) -> std::result::Result<Arc<dyn TaskKind>, String> {
    let values = labels
        .train
        .iter()
        .map(|c| parse_number(c).map(|v| v as f64))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let (mean, std) = mean_std(&values);
    Ok(Arc::new(Reg { mean, std }))
}

pub(super) const INFO: KindInfo = KindInfo {
    name: "reg",
    aliases: &["regression"],
    summary: "a real value: MSE on the standardised value; RMSE, MAE, R²",
    shader: None,
    fit,
    load: |m| {
        let (mean, std): (f32, f32) = (field(m, "mean")?, field(m, "std")?);
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            return Err(format!(
                "a regression's mean and spread are finite and its spread above 0 (mean {mean}, spread {std})"
            ));
        }
        Ok(Arc::new(Reg { mean, std }))
    },
};

impl TaskKind for Reg {
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
        parse_number(cell).map(|v| Encoded::Value((v - self.mean) / self.std))
    }
    fn loss(&self, tape: &mut Tape, out: Var, b: LossInputs<'_>) -> Result<Var> {
        let rows = b.mask.numel();
        let target = b.target.reshape(&[rows, 1])?;
        tape.mse(out, &target, b.mask, b.seeds, b.losses, b.slot)
    }
    fn metrics(&self, outputs: &[f32], target: &Target, rows: &[usize], loss: f64) -> TaskMetrics {
        let unscale = |v: f32| (v * self.std + self.mean) as f64;
        let pred: Vec<f64> = outputs.iter().map(|&v| unscale(v)).collect();
        let truth: Vec<f64> = target.values_of(rows).into_iter().map(unscale).collect();
        let (rmse, mae, r2) = regression(&pred, &truth, &target.mask_of(rows));
        TaskMetrics {
            loss,
            metrics: vec![
                Metric::new("rmse", "RMSE (original units)", rmse, false),
                Metric::new("mae", "MAE (original units)", mae, false),
                Metric::new("r2", "R²", r2, true),
            ],
        }
    }
    fn predict(&self, name: &str, out: &[f32], rows: usize) -> TaskPrediction {
        let values: Vec<f32> = (0..rows).map(|i| out[i] * self.std + self.mean).collect();
        TaskPrediction {
            name: name.to_string(),
            cells: values.iter().map(|v| format!("{v}")).collect(),
            values: values.iter().map(|&v| v as f64).collect(),
            classes: Vec::new(),
            probabilities: Vec::new(),
        }
    }
    fn save(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("mean".into(), self.mean.into());
        m.insert("std".into(), self.std.into());
        m
    }
    fn describe(&self) -> String {
        format!("mean {:.4}, spread {:.4}", self.mean, self.std)
    }
    fn loss_name(&self) -> &'static str {
        "MSE (standardised target)"
    }
}
