//! MoCo: Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, "Mitigating
//! Gradient Bias in Multi-objective Learning: A Provably Convergent
//! Approach", ICLR 2023; as LibMTL's `MoCo`.
//!
//! Stochastic gradients make MGDA-like weights biased; MoCo tracks each
//! task's gradient with a moving average and moves the weights by a small
//! step each iteration instead of solving for them. With η_t = β / t^σβ and
//! γ_t = γ / t^σγ at step t:
//!
//!   y_k ← (1 − η_t) y_k + η_t L_k g_k / (‖g_k‖ + 1e-8)
//!   λ   ← softmax(λ − γ_t (Y Yᵀ + ρ I) λ)         (λ = 1/K before the first step)
//!   d   = Σ_k λ_k y_k
//!
//! Defaults LibMTL's: β 0.5, σβ 0.5, γ 0.1, σγ 0.5, ρ 0. The heads get each
//! task's own gradient (seeds 1), as in LibMTL. Parameter space only, as
//! LibMTL (`--space rep` is refused). Kernels: `shaders/combine/memory.wgsl`
//! (y, from the Gram matrix of this step's rows for the norms) and
//! `shaders/mtl/moco.wgsl` (λ).

use super::memory::{self, Update};
use super::{Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::gram::{self, GradRows};
use crate::kernels::mtl::{SolveShader, STATE_LEN};
use crate::{kernels, solve_shader};

/// MoCo's settings (LibMTL's names).
#[derive(Clone, Debug)]
pub struct MoCo {
    /// β: the rate of the tracked gradients y (0.5).
    pub beta: f32,
    /// σβ: η_t = β / t^σβ (0.5).
    pub beta_sigma: f32,
    /// γ: the rate of the weights λ (0.1).
    pub gamma: f32,
    /// σγ: γ_t = γ / t^σγ (0.5).
    pub gamma_sigma: f32,
    /// ρ: the ℓ2 term of λ's step (0).
    pub rho: f32,
    /// The solve's state and the losses, from `build`.
    bound: Option<(Tensor, Tensor)>,
}

impl Default for MoCo {
    fn default() -> Self {
        MoCo::new(0.5, 0.5, 0.1, 0.5, 0.0)
    }
}

impl MoCo {
    pub fn new(beta: f32, beta_sigma: f32, gamma: f32, gamma_sigma: f32, rho: f32) -> MoCo {
        MoCo {
            beta,
            beta_sigma,
            gamma,
            gamma_sigma,
            rho,
            bound: None,
        }
    }
}

/// The λ step: the shared prelude, then shaders/mtl/moco.wgsl.
pub const SHADER: SolveShader = solve_shader!("moco");

/// The WGSL `Params` of shaders/mtl/moco.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    gamma: f32,
    gamma_sigma: f32,
    rho: f32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "moco",
    aliases: &[],
    summary: "MoCo (Fernando et al. 2023): tracked task gradients, weights moved by one softmax step each iteration",
    defaults: "beta 0.5, beta_sigma 0.5, gamma 0.1, gamma_sigma 0.5, rho 0",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(MoCo::default()),
};

impl Weighting for MoCo {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        let state = Tensor::zeros(gpu, &[STATE_LEN], "moco state")?;
        let params = Params {
            k: ctx.combine.numel() as u32,
            gamma: self.gamma,
            gamma_sigma: self.gamma_sigma,
            rho: self.rho,
        };
        let solve = kernels::mtl::solve(
            gpu,
            &SHADER,
            params,
            ctx.gram,
            ctx.losses,
            &state,
            ctx.combine,
        )?;
        self.bound = Some((state, ctx.losses.clone()));
        Ok(WeightingPlan {
            after_gram: vec![solve],
            ..WeightingPlan::default()
        })
    }
    fn record_memory(
        &mut self,
        gpu: &Gpu,
        rows: &GradRows,
        space: GradSpace,
    ) -> Result<Option<(Vec<Dispatch>, GradRows)>> {
        memory::parameters_only("moco", space)?;
        let (state, losses) = (self.bound.as_ref())
            .ok_or_else(|| Error::internal("moco memory", "recorded before build"))?;
        // This step's norms ‖g_k‖, from the Gram matrix of the rows themselves.
        let raw = Tensor::zeros(gpu, &[rows.k * rows.k], "moco gram of this step's rows")?;
        let gd = gram::gram(gpu, rows, &raw)?;
        let y = Tensor::zeros(gpu, &[rows.k * rows.n], "moco tracked gradients")?;
        let update = memory::record(
            gpu,
            Update::Track,
            self.beta,
            self.beta_sigma,
            rows,
            &y,
            state,
            &raw,
            losses,
        )?;
        let dispatches = vec![gd.partial, gd.finish, update];
        Ok(Some((
            dispatches,
            GradRows::new(y, rows.k, rows.n, rows.n)?,
        )))
    }
}

/// The directions of a run over `steps` (each K×N, row-major) with this
/// step's `losses` (K each), in f64, and the last weights λ.
pub fn reference(m: &MoCo, steps: &[Vec<f64>], losses: &[Vec<f64>]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let k = losses.first().map_or(0, |l| l.len());
    let n = steps.first().map_or(0, |s| s.len() / k);
    let mut y = vec![0.0; k * n];
    let mut lambda = vec![1.0 / k as f64; k];
    let mut out = Vec::new();
    for (i, (rows, l)) in steps.iter().zip(losses).enumerate() {
        let t = i as u32 + 1;
        memory::reference(
            Update::Track,
            m.beta as f64,
            m.beta_sigma as f64,
            t,
            &mut y,
            rows,
            l,
        );
        let rate = memory::rate(m.gamma as f64, m.gamma_sigma as f64, t);
        let dot = |a: usize, b: usize| -> f64 { (0..n).map(|c| y[a * n + c] * y[b * n + c]).sum() };
        let moved: Vec<f64> = (0..k)
            .map(|a| {
                let g: f64 = (0..k).map(|b| dot(a, b) * lambda[b]).sum();
                lambda[a] - rate * (g + m.rho as f64 * lambda[a])
            })
            .collect();
        lambda = super::solve::softmax(&moved);
        out.push(
            (0..n)
                .map(|c| (0..k).map(|j| lambda[j] * y[j * n + c]).sum())
                .collect(),
        );
    }
    (out, lambda)
}
