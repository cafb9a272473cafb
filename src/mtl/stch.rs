//! STCH, smooth Tchebycheff scalarization: Lin, Zhang, Liu, Zhang & Ren,
//! "Smooth Tchebycheff Scalarization for Multi-Objective Optimization",
//! ICML 2024; as LibMTL's `STCH` (μ = 1, 4 warm-up epochs).
//!
//! For the first `warmup` epochs the total loss is Σ_k log L_k (seeds
//! 1/L_k); during epoch `warmup` it also averages each task's loss over
//! the epoch's steps: the nadir point z. From then on it minimises the
//! smooth maximum of the log-normalised losses,
//!
//!   L = K μ log Σ_k exp(v_k / μ),   v_k = log(L_k / z_k),
//!
//! so the seed of task k is ∂L/∂L_k = K softmax(v/μ)_k / L_k: most weight
//! on the task furthest behind its own early level, smoothly (μ → 0 is the
//! Tchebycheff maximum, large μ the mean of the logs). LibMTL adds 1e-20
//! inside each logarithm; so does this (it matters only at a zero loss).
//!
//! The seeds come from each step's losses after the forward pass (FAMO's
//! phase, `SolvePhase::SeedsAfterForward`); the epoch reaches the GPU solve through its parameters, written
//! between epochs ([`Weighting::on_epoch_end`]), and the running sums and
//! the nadir point stay in the solve's state on the GPU.

use super::{Capabilities, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::{Gpu, Tensor};
use crate::kernels::mtl::{SolveShader, STATE_LEN};
use crate::solve_shader;

/// STCH's hyper-parameters (LibMTL's defaults).
#[derive(Clone, Debug)]
pub struct Stch {
    /// μ, the smoothing (LibMTL: 1).
    pub mu: f32,
    /// Epochs of log losses before the nadir point is taken (LibMTL: 4).
    pub warmup: u32,
    /// Epochs finished so far.
    epoch: u32,
    /// The recorded solve's parameter buffer, rewritten between epochs.
    params: Option<wgpu::Buffer>,
    k: u32,
}

impl Default for Stch {
    fn default() -> Self {
        Stch {
            mu: 1.0,
            warmup: 4,
            epoch: 0,
            params: None,
            k: 0,
        }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/stch.wgsl.
pub const SHADER: SolveShader = solve_shader!("stch");

/// The WGSL `Params` of shaders/mtl/stch.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    epoch: u32,
    warmup: u32,
    mu: f32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "stch",
    aliases: &["smooth_tchebycheff"],
    summary:
        "STCH (Lin et al. 2024): the smooth maximum of the losses relative to an early nadir point",
    defaults: "mu 1, 4 warm-up epochs of log losses (LibMTL's)",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(Stch::default()),
};

impl Stch {
    fn params(&self) -> Params {
        Params {
            k: self.k,
            epoch: self.epoch,
            warmup: self.warmup,
            mu: self.mu,
        }
    }
}

impl Weighting for Stch {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        self.k = ctx.seeds.numel() as u32;
        let state = Tensor::zeros(gpu, &[STATE_LEN], "stch state")?;
        let d = crate::kernels::mtl::solve(
            gpu,
            &SHADER,
            self.params(),
            ctx.gram,
            ctx.losses,
            &state,
            ctx.seeds,
        )?;
        self.params = Some(d.params.clone());
        Ok(WeightingPlan {
            after_forward: vec![d],
            ..Default::default()
        })
    }
    fn on_epoch_end(&mut self, gpu: &Gpu, _seeds: &Tensor, _train_losses: &[f64]) -> Result<()> {
        self.epoch += 1;
        if let Some(buffer) = &self.params {
            gpu.queue
                .write_buffer(buffer, 0, bytemuck::bytes_of(&self.params()));
        }
        Ok(())
    }
}

/// STCH's memory, as its solve keeps it on the GPU.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub sum: Vec<f64>,
    pub count: f64,
    pub nadir: Option<Vec<f64>>,
}

/// One step of STCH (LibMTL) at `epoch` (0-based): the seeds ∂L/∂L_k.
pub fn reference_step(s: &mut State, losses: &[f64], epoch: u32, warmup: u32, mu: f64) -> Vec<f64> {
    let k = losses.len();
    if epoch <= warmup {
        if epoch == warmup {
            s.sum.resize(k, 0.0);
            for (a, l) in s.sum.iter_mut().zip(losses) {
                *a += l;
            }
            s.count += 1.0;
        }
        return losses.iter().map(|l| 1.0 / (l + 1e-20)).collect();
    }
    let nadir = s
        .nadir
        .get_or_insert_with(|| s.sum.iter().map(|a| a / s.count.max(1.0)).collect())
        .clone();
    let v: Vec<f64> = (0..k)
        .map(|i| (losses[i] / nadir[i] + 1e-20).ln())
        .collect();
    let m = v.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = v.iter().map(|x| ((x - m) / mu).exp()).collect();
    let total: f64 = e.iter().sum();
    (0..k)
        .map(|i| k as f64 * e[i] / total / nadir[i] / (losses[i] / nadir[i] + 1e-20))
        .collect()
}
