//! DWA: Liu, Johns & Davison, "End-to-End Multi-Task Learning with
//! Attention", CVPR 2019.
//!
//! Dynamic weight average: a task whose loss falls slowly gets more weight,
//!
//!   w_k(t) = K exp(r_k / T) / Σ_j exp(r_j / T),   r_k = L_k(t-1) / L_k(t-2),
//!
//! from the last two epochs' mean training losses (T = 2); w = 1 for the first
//! two epochs. The weights change once per epoch, from the loss sums the
//! trainer reads back then anyway, so no step waits on the host.
//!
//! Follows LibMTL's DWA (T = 2, equal weights for the first two epochs).

use super::solve::softmax;
use super::{Capabilities, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gpu::Tensor;

pub struct Dwa {
    pub temperature: f64,
    history: Vec<Vec<f64>>,
}

impl Default for Dwa {
    fn default() -> Self {
        Dwa {
            temperature: 2.0,
            history: Vec::new(),
        }
    }
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "dwa",
    aliases: &[],
    summary: "dynamic weight average (Liu et al. 2019): weights from the loss ratios of the last two epochs",
    defaults: "temperature 2",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    shader: None,
    build: |_seed| Box::new(Dwa::default()),
};

impl Weighting for Dwa {
    fn name(&self) -> &'static str {
        "dwa"
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        Ok(WeightingPlan::default())
    }
    fn on_epoch_end(&mut self, gpu: &Gpu, seeds: &Tensor, train_losses: &[f64]) -> Result<()> {
        self.history.push(train_losses.to_vec());
        if let [.., before_last, last] = &self.history[..] {
            let w = reference(last, before_last, self.temperature);
            seeds.write(gpu, &w.iter().map(|&x| x as f32).collect::<Vec<_>>())?;
        }
        Ok(())
    }
}

/// DWA (Liu, Johns & Davison, CVPR 2019): w_k = K softmax(r / T)_k with
/// r_k = L_k(t-1) / L_k(t-2), the ratio of the last two epochs' mean losses.
pub fn reference(last: &[f64], before_last: &[f64], temperature: f64) -> Vec<f64> {
    let k = last.len();
    let r: Vec<f64> = (0..k)
        .map(|i| last[i] / before_last[i].max(1e-20) / temperature)
        .collect();
    softmax(&r).iter().map(|v| v * k as f64).collect()
}
