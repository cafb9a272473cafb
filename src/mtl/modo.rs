//! MoDo: Chen, Fernando, Ying & Chen, "Three-Way Trade-Off in
//! Multi-Objective Learning: Optimization, Generalization and
//! Conflict-Avoidance", NeurIPS 2023; as LibMTL's `MoDo`.
//!
//! MGDA's weights from stochastic gradients are biased: the Gram matrix of
//! one minibatch's gradients is not an unbiased estimate of the true one.
//! MoDo draws three minibatches each step, moves the weights by one projected
//! step on the product of the first two (independent, so unbiased), and
//! combines the third's gradients:
//!
//!   λ ← Π_Δ(λ − γ (G_0 G_1ᵀ λ + ρ λ)),   d = Σ_k λ_k g_{2,k}   (λ = 1/K at first)
//!
//! Π_Δ the projection onto the simplex. Defaults LibMTL's: γ 1e-3, ρ 0.1.
//! The heads get the mean of the three minibatches' gradients, as LibMTL's.
//! Parameter space only, as LibMTL (`--space rep` is refused); K ≤ 8 (the
//! Gram matrix of two minibatches' rows is 2K×2K, and the Gram kernel takes
//! 16 rows). Kernel: `shaders/mtl/modo.wgsl`.

use super::solve::project_simplex;
use super::{
    memory, Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext, WeightingPlan,
};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::gram::{self, GradRows, MAX_TASKS};
use crate::kernels::mtl::{SolveShader, STATE_LEN};
use crate::{kernels, solve_shader};

/// MoDo's settings (LibMTL's names).
#[derive(Clone, Debug)]
pub struct MoDo {
    /// γ: the step of the weights λ (1e-3).
    pub gamma: f32,
    /// ρ: the ℓ2 term of λ's step (0.1).
    pub rho: f32,
    /// The 2K×2K Gram matrix of two minibatches' rows, from `build`.
    cross: Option<Tensor>,
}

impl Default for MoDo {
    fn default() -> Self {
        MoDo::new(1e-3, 0.1)
    }
}

impl MoDo {
    pub fn new(gamma: f32, rho: f32) -> MoDo {
        MoDo {
            gamma,
            rho,
            cross: None,
        }
    }
}

/// The λ step: the shared prelude, then shaders/mtl/modo.wgsl.
pub const SHADER: SolveShader = solve_shader!("modo");

/// The WGSL `Params` of shaders/mtl/modo.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    gamma: f32,
    rho: f32,
    _pad: u32,
}

/// Minibatches a step of MoDo or SDMGrad draws.
pub const SAMPLES: usize = 3;

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "modo",
    aliases: &[],
    summary: "MoDo (Chen et al. 2023): three minibatches a step, weights moved by the product of two, the third's gradients combined",
    defaults: "gamma 1e-3, rho 0.1",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(MoDo::default()),
};

/// The 2K×2K Gram buffer a three-minibatch method solves from, checked
/// against the K ≤ 8 it allows.
pub(crate) fn cross_gram(gpu: &Gpu, name: &str, k: usize) -> Result<Tensor> {
    if 2 * k > MAX_TASKS {
        return Err(Error::InvalidConfig(format!(
            "{name} takes at most {} tasks (the Gram matrix of two minibatches' gradients \
             is 2K×2K, and the Gram kernel takes {MAX_TASKS} rows), got {k}",
            MAX_TASKS / 2
        )));
    }
    Tensor::zeros(gpu, &[4 * k * k], "gram of two minibatches")
}

/// A three-minibatch method's plan: seeds of 1, and its solve (`shader`,
/// with `params(K)`) after the Gram matrix, reading the 2K×2K Gram matrix of
/// two minibatches' rows, which is returned for [`record_samples`] to fill.
pub(crate) fn build_solve<P: bytemuck::Pod>(
    gpu: &Gpu,
    ctx: &WeightingContext,
    name: &str,
    shader: &SolveShader,
    params: impl Fn(usize) -> P,
) -> Result<(WeightingPlan, Tensor)> {
    ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
    let k = ctx.combine.numel();
    let cross = cross_gram(gpu, name, k)?;
    let state = Tensor::zeros(gpu, &[STATE_LEN], "three-minibatch solve state")?;
    let solve = kernels::mtl::solve(
        gpu,
        shader,
        params(k),
        &cross,
        ctx.losses,
        &state,
        ctx.combine,
    )?;
    let plan = WeightingPlan {
        after_gram: vec![solve],
        ..WeightingPlan::default()
    };
    Ok((plan, cross))
}

/// A three-minibatch method's rows: the Gram matrix of minibatches
/// `cross`, `cross + 1` into `into`, and minibatch `combine`'s K rows.
pub(crate) fn record_samples(
    gpu: &Gpu,
    name: &str,
    rows: &GradRows,
    space: GradSpace,
    into: Option<&Tensor>,
    (cross, combine): (usize, usize),
) -> Result<Option<(Vec<Dispatch>, GradRows)>> {
    memory::parameters_only(name, space)?;
    let into = into.ok_or_else(|| Error::internal(name, "rows recorded before build"))?;
    if !rows.k.is_multiple_of(SAMPLES) {
        return Err(Error::internal(
            name,
            format!("{} rows are not {SAMPLES} minibatches' K rows", rows.k),
        ));
    }
    let k = rows.k / SAMPLES;
    let gd = gram::gram(gpu, &rows.range(cross * k, 2 * k)?, into)?;
    Ok(Some((
        vec![gd.partial, gd.finish],
        rows.range(combine * k, k)?,
    )))
}

impl Weighting for MoDo {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn samples(&self) -> usize {
        SAMPLES
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        let params = |k: usize| Params {
            k: k as u32,
            gamma: self.gamma,
            rho: self.rho,
            _pad: 0,
        };
        let (plan, cross) = build_solve(gpu, ctx, INFO.name, &SHADER, params)?;
        self.cross = Some(cross);
        Ok(plan)
    }
    fn record_memory(
        &mut self,
        gpu: &Gpu,
        rows: &GradRows,
        space: GradSpace,
    ) -> Result<Option<(Vec<Dispatch>, GradRows)>> {
        record_samples(gpu, INFO.name, rows, space, self.cross.as_ref(), (0, 2))
    }
}

/// The directions of a run over `steps` (each the three minibatches' K×N
/// rows, 3K×N row-major), in f64, and the last weights λ.
pub fn reference(m: &MoDo, steps: &[Vec<f64>], k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let n = steps.first().map_or(0, |s| s.len() / (SAMPLES * k));
    let row = |g: &[f64], s: usize, j: usize| g[(s * k + j) * n..(s * k + j + 1) * n].to_vec();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut lambda = vec![1.0 / k as f64; k];
    let mut out = Vec::new();
    for g in steps {
        let moved: Vec<f64> = (0..k)
            .map(|i| {
                let u: f64 = (0..k)
                    .map(|j| dot(&row(g, 0, i), &row(g, 1, j)) * lambda[j])
                    .sum();
                lambda[i] - m.gamma as f64 * (u + m.rho as f64 * lambda[i])
            })
            .collect();
        lambda = project_simplex(&moved);
        out.push(
            (0..n)
                .map(|c| (0..k).map(|j| lambda[j] * g[(2 * k + j) * n + c]).sum())
                .collect(),
        );
    }
    (out, lambda)
}
