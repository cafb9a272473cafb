//! ExcessMTL: He, Zhou, Cheng & Tang, "Robust Multi-Task Learning with
//! Excess Risks", ICML 2024; as LibMTL's `ExcessMTL`.
//!
//! Tasks are weighted by how far each still is from its best loss (its
//! excess risk), not by the loss itself, so a task with noisy labels (a
//! high loss it cannot reduce) does not take over. The excess risk is
//! estimated from the task's gradient under AdaGrad's diagonal
//! preconditioner, with s_k the running sum of g_k²:
//!
//!   w_k = Σ_c g_kc² / √(s_kc + 1e-7),
//!
//! and the weights take an exponentiated step on it, relative to the first
//! step's estimate, renormalised to sum to K:
//!
//!   λ_k ← λ_k exp(η w_k / w⁰_k),   λ ← K λ / Σ λ      (λ = 1 on the first step).
//!
//! Default η = 0.01 (LibMTL's `robust_step_size`). The shared parameters'
//! gradient is Σ_k λ_k g_k with this step's λ, as LibMTL's. One deliberate
//! difference: LibMTL weights the whole loss, so each task's head gets
//! λ_k ∇L_k; here the heads get ∇L_k (λ is known only after the per-task
//! gradients, when the heads' backward pass has run). For a task's own head
//! λ_k is a per-task step size, which Adam nearly undoes. Parameter space
//! only (LibMTL's representation variant sums the per-sample gradients
//! first). Kernels: `shaders/combine/excess.wgsl` (s and the scaled rows)
//! and `shaders/mtl/excess_mtl.wgsl` (λ).

use super::memory;
use super::{Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::gram::{self, GradRows};
use crate::kernels::mtl::{SolveShader, STATE_LEN};
use crate::kernels::{grid_1d, Shader};
use crate::{kernels, solve_shader};

/// ExcessMTL's settings.
#[derive(Clone, Debug)]
pub struct ExcessMtl {
    /// η: the step of the weights (LibMTL's `robust_step_size`, 0.01).
    pub step_size: f32,
    /// The Gram matrix of the scaled rows, which the solve reads (from `build`).
    scaled_gram: Option<Tensor>,
}

impl Default for ExcessMtl {
    fn default() -> Self {
        ExcessMtl::new(0.01)
    }
}

impl ExcessMtl {
    pub fn new(step_size: f32) -> ExcessMtl {
        ExcessMtl {
            step_size,
            scaled_gram: None,
        }
    }
}

/// The λ solve: the shared prelude, then shaders/mtl/excess_mtl.wgsl.
pub const SHADER: SolveShader = solve_shader!("excess_mtl");

/// The running sums: `shaders/combine/excess.wgsl`.
pub const ROWS_SHADER: Shader = Shader {
    file: "combine/excess.wgsl",
    source: include_str!("../../shaders/combine/excess.wgsl"),
};

/// The WGSL `Params` of shaders/mtl/excess_mtl.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    step_size: f32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowsParams {
    k: u32,
    n: u32,
    stride: u32,
    _pad: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "excess_mtl",
    aliases: &["excessmtl"],
    summary: "ExcessMTL (He et al. 2024): weights by each task's excess risk, estimated under AdaGrad's preconditioner",
    defaults: "robust_step_size 0.01",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(ExcessMtl::default()),
};

impl Weighting for ExcessMtl {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        let k = ctx.combine.numel();
        let state = Tensor::zeros(gpu, &[STATE_LEN], "excess_mtl state")?;
        let scaled_gram = Tensor::zeros(gpu, &[k * k], "excess_mtl gram of the scaled rows")?;
        let params = Params {
            k: k as u32,
            step_size: self.step_size,
            _pad: [0; 2],
        };
        let solve = kernels::mtl::solve(
            gpu,
            &SHADER,
            params,
            &scaled_gram,
            ctx.losses,
            &state,
            ctx.combine,
        )?;
        self.scaled_gram = Some(scaled_gram);
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
        memory::parameters_only("excess_mtl", space)?;
        let scaled_gram = (self.scaled_gram.as_ref())
            .ok_or_else(|| Error::internal("excess_mtl memory", "recorded before build"))?;
        let (k, n) = (rows.k, rows.n);
        let sums = Tensor::zeros(gpu, &[k * n], "excess_mtl sums of squares")?;
        let scaled = Tensor::zeros(gpu, &[k * n], "excess_mtl scaled rows")?;
        let params = RowsParams {
            k: k as u32,
            n: n as u32,
            stride: rows.stride as u32,
            _pad: 0,
        };
        use Binding::*;
        let update = ROWS_SHADER.record(
            gpu,
            "excess_rows",
            &[Uniform, ReadWrite, ReadWrite, ReadOnly],
            &[],
            &params,
            &[&sums, &scaled, &rows.rows],
            grid_1d(gpu, k * n)?,
        )?;
        let gd = gram::gram(gpu, &GradRows::new(scaled, k, n, n)?, scaled_gram)?;
        // The Gram matrix and the combination stay those of the rows themselves.
        Ok(Some((vec![update, gd.partial, gd.finish], rows.clone())))
    }
}

/// The weights λ of a run over `steps` (each K×N, row-major), in f64.
pub fn reference(steps: &[Vec<f64>], k: usize, step_size: f64) -> Vec<Vec<f64>> {
    let n = steps.first().map_or(0, |s| s.len() / k);
    let mut sums = vec![0.0; k * n];
    let mut lambda = vec![1.0; k];
    let mut first = vec![0.0; k];
    let mut out = Vec::new();
    for (t, rows) in steps.iter().enumerate() {
        let mut w = vec![0.0; k];
        for (i, (s, g)) in sums.iter_mut().zip(rows).enumerate() {
            *s += g * g;
            w[i / n] += g * g / (*s + 1e-7).sqrt();
        }
        if t == 0 {
            first = w;
        } else {
            for j in 0..k {
                let ratio = if first[j] > 0.0 { w[j] / first[j] } else { 0.0 };
                lambda[j] *= (step_size * ratio).exp();
            }
            let total: f64 = lambda.iter().sum();
            lambda.iter_mut().for_each(|l| *l *= k as f64 / total);
        }
        out.push(lambda.clone());
    }
    out
}
