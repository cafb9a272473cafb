//! SDMGrad: Xiao, Ban & Ji, "Direction-oriented Multi-objective Learning:
//! Simple and Provable Stochastic Algorithms", NeurIPS 2023; as LibMTL's
//! `SDMGrad`.
//!
//! A direction close to the mean gradient ḡ that still serves every task:
//! the weights w minimise ½ ‖Σ w_k g_k‖² + λ ⟨Σ w_k g_k, ḡ⟩ over the simplex.
//! Each step draws three minibatches: the Gram matrix comes from the product
//! of the second's and the third's gradients (independent, so unbiased),
//! scaled by the mean of its diagonal's square roots, and w (carried from
//! step to step, 1/K at first) takes `iters` projected heavy-ball steps on it
//! (LibMTL: 20 steps of SGD with rate 5 and momentum 0.5, the buffer new each
//! step); the first minibatch's gradients are combined:
//!
//!   d = Σ_k (w_k + λ/K) / (1 + λ) · g_{0,k}.
//!
//! Defaults LibMTL's: λ 0.3, 20 steps. The heads get the mean of the three
//! minibatches' gradients (a deliberate difference: LibMTL's heads keep the
//! sum of the three backward passes, three times a step's scale, where its
//! MoDo divides by three). Parameter space only (`--space rep` is refused,
//! as by LibMTL); K ≤ 8, as MoDo. Kernel: `shaders/mtl/sdmgrad.wgsl`.

use super::modo::{build_solve, record_samples, SAMPLES};
use super::solve::project_simplex;
use super::{Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::gram::GradRows;
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// SDMGrad's settings.
#[derive(Clone, Debug)]
pub struct SdmGrad {
    /// λ: the pull toward the mean gradient (LibMTL's `SDMGrad_lamda`, 0.3).
    pub lambda: f32,
    /// Projected steps on w per training step (`SDMGrad_niter`, 20).
    pub iters: u32,
    /// The inner SGD's rate and momentum (LibMTL fixes them: 5 and 0.5).
    pub lr: f32,
    pub momentum: f32,
    /// The 2K×2K Gram matrix of two minibatches' rows, from `build`.
    cross: Option<Tensor>,
}

impl Default for SdmGrad {
    fn default() -> Self {
        SdmGrad::new(0.3, 20)
    }
}

impl SdmGrad {
    pub fn new(lambda: f32, iters: u32) -> SdmGrad {
        SdmGrad {
            lambda,
            iters,
            lr: 5.0,
            momentum: 0.5,
            cross: None,
        }
    }
}

/// The w solve: the shared prelude, then shaders/mtl/sdmgrad.wgsl.
pub const SHADER: SolveShader = solve_shader!("sdmgrad");

/// The WGSL `Params` of shaders/mtl/sdmgrad.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    iters: u32,
    lambda: f32,
    lr: f32,
    momentum: f32,
    _pad: [u32; 3],
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "sdmgrad",
    aliases: &["sdm_grad"],
    summary: "SDMGrad (Xiao et al. 2023): three minibatches a step, simplex weights near the mean gradient from an unbiased Gram matrix",
    defaults: "lambda 0.3, 20 inner steps (rate 5, momentum 0.5)",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(SdmGrad::default()),
};

impl Weighting for SdmGrad {
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
            iters: self.iters,
            lambda: self.lambda,
            lr: self.lr,
            momentum: self.momentum,
            _pad: [0; 3],
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
        record_samples(gpu, INFO.name, rows, space, self.cross.as_ref(), (1, 0))
    }
}

/// The directions of a run over `steps` (each the three minibatches' K×N
/// rows, 3K×N row-major), in f64, and the last w.
pub fn reference(m: &SdmGrad, steps: &[Vec<f64>], k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let n = steps.first().map_or(0, |s| s.len() / (SAMPLES * k));
    let lambda = m.lambda as f64;
    let mut w = vec![1.0 / k as f64; k];
    let mut out = Vec::new();
    for g in steps {
        let row = |s: usize, j: usize| &g[(s * k + j) * n..(s * k + j + 1) * n];
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut gg: Vec<f64> = (0..k * k)
            .map(|ij| dot(row(1, ij / k), row(2, ij % k)))
            .collect();
        let s = (0..k).map(|i| gg[i * k + i].max(0.0).sqrt()).sum::<f64>() / k as f64;
        gg.iter_mut().for_each(|v| *v /= s * s + 1e-8);
        let mean: Vec<f64> = (0..k)
            .map(|i| gg[i * k..(i + 1) * k].iter().sum::<f64>() / k as f64)
            .collect();
        let mut buf = vec![0.0; k];
        for it in 0..m.iters {
            let grad: Vec<f64> = (0..k)
                .map(|i| dot(&gg[i * k..(i + 1) * k], &w) + lambda * mean[i])
                .collect();
            for i in 0..k {
                buf[i] = if it == 0 {
                    grad[i]
                } else {
                    m.momentum as f64 * buf[i] + grad[i]
                };
                w[i] -= m.lr as f64 * buf[i];
            }
            w = project_simplex(&w);
        }
        let weights: Vec<f64> = w
            .iter()
            .map(|v| (v + lambda / k as f64) / (1.0 + lambda))
            .collect();
        out.push(
            (0..n)
                .map(|c| (0..k).map(|j| weights[j] * row(0, j)[c]).sum())
                .collect(),
        );
    }
    (out, w)
}
