//! GradNorm: Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient
//! Normalization for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.
//!
//! As LibMTL: the loss weights are w = K·softmax(s), with s learned by the
//! model's optimizer like any other parameter. Each task's weighted gradient
//! norm n_k = ‖w_k ∇L_k‖ is pulled toward mean_j n_j · r_k^α, where
//! r_k = (L_k / L_k(0)) / mean_j (L_j / L_j(0)) is the task's relative
//! inverse training rate and L(0) the first epoch's mean loss; the loss
//!
//!   L_grad = Σ_k | n_k - mean(n) r_k^α |      (the target held constant)
//!
//! has ∂L_grad/∂w_k = sign(n_k - t_k) ‖∇L_k‖, and through w = K softmax(s)
//!
//!   ∂L_grad/∂s = u - z Σ_j u_j,   u_k = w_k ∂L_grad/∂w_k = sign(n_k - t_k) n_k,
//!
//! z = softmax(s). The first epoch trains with equal weights (no L(0) yet:
//! u = 0), as LibMTL. On the GPU: the seeds from s before the forward pass
//! (`softmax_seeds`), u from the Gram matrix (shaders/mtl/gradnorm.wgsl), then
//! ∂/∂s into s's gradient (`softmax_seeds_grad`); L(0) is written once, at the
//! end of the first epoch.

use super::{Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::kernels::mtl::{SolveShader, STATE_LEN};
use crate::kernels::{self, loss_weighting};
use crate::nn::{ParamBuilder, ParamId};
use crate::solve_shader;

/// GradNorm's hyper-parameter and learned logits.
pub struct GradNorm {
    /// The asymmetry α (LibMTL and the paper: 1.5).
    pub alpha: f32,
    logits: Option<ParamId>,
    /// The solve's state: L(0), once known.
    state: Option<Tensor>,
    epochs_seen: usize,
}

impl Default for GradNorm {
    fn default() -> Self {
        GradNorm::with_alpha(1.5)
    }
}

impl GradNorm {
    /// GradNorm with asymmetry `alpha`.
    pub fn with_alpha(alpha: f32) -> Self {
        GradNorm {
            alpha,
            logits: None,
            state: None,
            epochs_seen: 0,
        }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/gradnorm.wgsl.
pub const SHADER: SolveShader = solve_shader!("gradnorm");

/// The WGSL `Params` of shaders/mtl/gradnorm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub k: u32,
    pub _pad: u32,
    pub alpha: f32,
    pub _pad1: u32,
}

/// The solve's state layout (shaders/mtl/gradnorm.wgsl): a flag, then L(0).
pub const INITIALISED: usize = 1;
pub const INITIAL_LOSSES: usize = 2;

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "gradnorm",
    aliases: &[],
    summary: "GradNorm (Chen et al. 2018): weights that balance per-task gradient norms",
    defaults: "alpha 1.5; w = K softmax(s), s trained by the optimizer (LibMTL)",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: false,
        seeds: true,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(GradNorm::default()),
};

impl Weighting for GradNorm {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn add_params(&mut self, params: &mut ParamBuilder, k: usize) -> Result<()> {
        // LibMTL starts s at 1 (any equal values give w = 1).
        self.logits = Some(params.add_method_param("gradnorm", "logits", &[k], vec![1.0; k])?);
        Ok(())
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let id = self
            .logits
            .ok_or_else(|| Error::InvalidConfig("gradnorm: add_params was not called".into()))?;
        let k = ctx.seeds.numel();
        let (s, ds) = (ctx.params.value(id), ctx.params.grad(id)?);
        let state = Tensor::zeros(gpu, &[STATE_LEN], "gradnorm state")?;
        let u = Tensor::zeros(gpu, &[k], "gradnorm w·dL/dw")?;
        let params = Params {
            k: k as u32,
            _pad: 0,
            alpha: self.alpha,
            _pad1: 0,
        };
        let solve = kernels::mtl::solve(gpu, &SHADER, params, ctx.gram, ctx.losses, &state, &u)?;
        self.state = Some(state);
        self.epochs_seen = 0;
        Ok(WeightingPlan {
            before: vec![loss_weighting::softmax_seeds(gpu, &s, ctx.seeds)?],
            after_gram: vec![solve, loss_weighting::softmax_seeds_grad(gpu, &s, &u, &ds)?],
            ..Default::default()
        })
    }
    /// L(0) is the first epoch's mean loss per task (LibMTL's train_loss_buffer[:, 0]).
    fn on_epoch_end(&mut self, gpu: &Gpu, _seeds: &Tensor, train_losses: &[f64]) -> Result<()> {
        self.epochs_seen += 1;
        if self.epochs_seen == 1 {
            if let Some(state) = &self.state {
                let mut v = vec![0.0f32; STATE_LEN];
                v[INITIALISED] = 1.0;
                for (i, &l) in train_losses.iter().enumerate() {
                    v[INITIAL_LOSSES + i] = l as f32;
                }
                state.write(gpu, &v)?;
            }
        }
        Ok(())
    }
}

/// u_k = w_k ∂L_grad/∂w_k = sign(n_k - t_k) n_k, with n_k = √G_kk (the rows
/// behind G carry the weights already), t_k = mean(n) r_k^α and
/// r_k = (L_k/L_k(0)) / mean_j(L_j/L_j(0)); `initial` None (the first epoch): u = 0.
pub fn reference_u(
    g: &[f64],
    k: usize,
    losses: &[f64],
    initial: Option<&[f64]>,
    alpha: f64,
) -> Vec<f64> {
    let Some(initial) = initial else {
        return vec![0.0; k];
    };
    let norms: Vec<f64> = (0..k).map(|i| g[i * k + i].max(0.0).sqrt()).collect();
    let mean_norm = norms.iter().sum::<f64>() / k as f64;
    let ratio: Vec<f64> = (0..k).map(|i| losses[i] / initial[i].max(1e-20)).collect();
    let mean_ratio = ratio.iter().sum::<f64>() / k as f64;
    (0..k)
        .map(|i| {
            let target = mean_norm * (ratio[i] / mean_ratio.max(1e-20)).powf(alpha);
            let diff = norms[i] - target;
            let sign = if diff > 0.0 {
                1.0
            } else if diff < 0.0 {
                -1.0
            } else {
                0.0
            };
            sign * norms[i]
        })
        .collect()
}

/// w = K softmax(s).
pub fn reference_seeds(s: &[f64]) -> Vec<f64> {
    let k = s.len() as f64;
    super::solve::softmax(s).iter().map(|z| k * z).collect()
}

/// ∂L/∂s for w = K softmax(s), from u = w ⊙ ∂L/∂w: u - z Σ_j u_j.
pub fn reference_seeds_grad(s: &[f64], u: &[f64]) -> Vec<f64> {
    let z = super::solve::softmax(s);
    let total: f64 = u.iter().sum();
    u.iter().zip(&z).map(|(ui, zi)| ui - zi * total).collect()
}
