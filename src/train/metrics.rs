//! Per-task metrics and Δm%, the multi-task model's mean relative gain over the
//! single-task baselines.

use crate::data::{Target, TaskSpec};

/// Metrics of one task on one split.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskMetrics {
    Classification {
        loss: f64,
        accuracy: f64,
    },
    /// RMSE and MAE in the target's original units; R² is unit-free.
    Regression {
        loss: f64,
        rmse: f64,
        mae: f64,
        r2: f64,
    },
}

impl TaskMetrics {
    /// The metric Δm% uses and whether higher is better: accuracy, or RMSE.
    pub fn primary(&self) -> (f64, bool) {
        match self {
            TaskMetrics::Classification { accuracy, .. } => (*accuracy, true),
            TaskMetrics::Regression { rmse, .. } => (*rmse, false),
        }
    }
    pub fn loss(&self) -> f64 {
        match self {
            TaskMetrics::Classification { loss, .. } | TaskMetrics::Regression { loss, .. } => {
                *loss
            }
        }
    }
}

/// Accuracy of argmax over `outputs` (rows×C) on rows with mask > 0.5.
pub fn accuracy(outputs: &[f32], c: usize, labels: &[u32], mask: &[f32]) -> f64 {
    let (mut right, mut n) = (0usize, 0usize);
    for (r, &m) in mask.iter().enumerate() {
        if m <= 0.5 {
            continue;
        }
        let row = &outputs[r * c..(r + 1) * c];
        let arg = (0..c).fold(0, |best, j| if row[j] > row[best] { j } else { best });
        right += (arg as u32 == labels[r]) as usize;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        right as f64 / n as f64
    }
}

/// (RMSE, MAE, R²) of predictions against truth on rows with mask > 0.5.
pub fn regression(pred: &[f64], truth: &[f64], mask: &[f32]) -> (f64, f64, f64) {
    let rows: Vec<usize> = (0..mask.len()).filter(|&r| mask[r] > 0.5).collect();
    if rows.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let n = rows.len() as f64;
    let mean = rows.iter().map(|&r| truth[r]).sum::<f64>() / n;
    let (mut se, mut ae, mut tot) = (0.0, 0.0, 0.0);
    for &r in &rows {
        let e = pred[r] - truth[r];
        se += e * e;
        ae += e.abs();
        tot += (truth[r] - mean) * (truth[r] - mean);
    }
    let r2 = if tot > 0.0 { 1.0 - se / tot } else { 0.0 };
    ((se / n).sqrt(), ae / n, r2)
}

/// Metrics of task `spec` from model outputs (rows×outputs) on `rows` of the dataset.
pub fn task_metrics(
    spec: &TaskSpec,
    target: &Target,
    outputs: &[f32],
    rows: &[usize],
    loss: f64,
) -> TaskMetrics {
    let mask: Vec<f32> = rows.iter().map(|&i| target.mask()[i]).collect();
    match target {
        Target::Class { labels, .. } => {
            let lab: Vec<u32> = rows.iter().map(|&i| labels[i]).collect();
            TaskMetrics::Classification {
                loss,
                accuracy: accuracy(outputs, spec.outputs(), &lab, &mask),
            }
        }
        Target::Value {
            values, mean, std, ..
        } => {
            let unscale = |v: f32| (v * std + mean) as f64;
            let pred: Vec<f64> = outputs.iter().map(|&v| unscale(v)).collect();
            let truth: Vec<f64> = rows.iter().map(|&i| unscale(values[i])).collect();
            let (rmse, mae, r2) = regression(&pred, &truth, &mask);
            TaskMetrics::Regression {
                loss,
                rmse,
                mae,
                r2,
            }
        }
    }
}

// ANCHOR: delta_m
/// Δm% (LibMTL; Maninis et al. 2019): the mean over tasks of the signed
/// relative difference of the multi-task metric M_k from the single-task M_b,k,
///   Δm = (100 / K) Σ_k (-1)^{l_k} (M_k - M_b,k) / M_b,k,
/// with l_k = 1 when lower is better. Positive means multi-task learning helped.
pub fn delta_m(mtl: &[(f64, bool)], stl: &[(f64, bool)]) -> f64 {
    let k = mtl.len().min(stl.len());
    if k == 0 {
        return 0.0;
    }
    let sum: f64 = mtl
        .iter()
        .zip(stl)
        .map(|(&(m, higher), &(b, _))| {
            let rel = if b.abs() > 0.0 {
                (m - b) / b.abs()
            } else {
                0.0
            };
            if higher {
                rel
            } else {
                -rel
            }
        })
        .sum();
    100.0 * sum / k as f64
}
// ANCHOR_END: delta_m
