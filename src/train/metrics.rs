//! Per-task metrics (each task's kind computes its own: [`crate::task`]) and
//! Δm%, the multi-task model's mean relative gain over the single-task
//! baselines.

pub use crate::task::metrics::{accuracy, regression, roc_auc, Metric, TaskMetrics};

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
