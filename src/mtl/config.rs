//! ConFIG: Liu, Thuerey et al., "ConFIG: Towards Conflict-free Training of
//! Physics Informed Neural Networks", ICLR 2025 (arXiv 2408.11104), equation 2;
//! as torchjd's `ConFIG()` (its default preference: a weight of 1 per task).
//!
//! The update points along the direction that makes the same angle with
//! every task's gradient, and is as long as the sum of the gradients'
//! projections on it. With unit gradients u_k = g_k/‖g_k‖ (a zero gradient
//! gives u_k = 0) and U their rows:
//!
//!   v = U⁺ 1,   û = v/‖v‖,   d = (Σ_i g_i·û) û.
//!
//! All of it is in the Gram matrix: U⁺ 1 = Uᵀ C⁺ 1 with C = U Uᵀ the matrix
//! of cosines, so v = Σ_k c_k u_k for c = C⁺ 1, ‖v‖² = cᵀ C c, and
//!
//!   d = Σ_k w_k g_k,   w_k = s c_k / (‖v‖ ‖g_k‖),   s = Σ_i Σ_k c_k G_ik / (‖g_k‖ ‖v‖).
//!
//! C⁺ by the prelude's Jacobi eigen-solver, its eigenvalues below PINV_RTOL
//! = 1e-5 of the largest dropped (torchjd's `pinv` keeps singular values
//! down to ~1e-14 of the largest, in f64: f32 cannot).

use super::solve::pinv_apply;
use super::{Capabilities, GpuSolve, GradSpace, KParams, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// ConFIG has no hyper-parameters (a preference vector of ones, torchjd's default).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Config;

/// The WGSL solve: the shared prelude, then shaders/mtl/config.wgsl.
pub const SHADER: SolveShader = solve_shader!("config");

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "config",
    aliases: &["conflict_free"],
    summary: "ConFIG (Liu et al. 2025; torchjd): the direction at equal angles to every task's gradient, as long as their summed projections",
    defaults: "preference: 1 per task (torchjd's default)",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(Config),
};

impl GpuSolve for Config {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = KParams;

    fn params(&self, k: u32) -> KParams {
        KParams::new(k)
    }
}

/// ConFIG (torchjd, preference 1): the weights w with d = Σ w_k g_k, from
/// the Gram matrix (see the module's formulas); zero gradients get w_k = 0.
pub fn reference(g: &[f64], k: usize) -> Vec<f64> {
    let norms: Vec<f64> = (0..k).map(|i| g[i * k + i].max(0.0).sqrt()).collect();
    let unit = |i: usize| norms[i] > 0.0;
    let mut cos = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            if unit(i) && unit(j) {
                cos[i * k + j] = g[i * k + j] / (norms[i] * norms[j]);
            }
        }
    }
    let c = pinv_apply(&cos, &vec![1.0; k], k);
    let vv: f64 = (0..k)
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .map(|(i, j)| c[i] * cos[i * k + j] * c[j])
        .sum();
    let v = vv.max(0.0).sqrt();
    if v <= 1e-12 {
        return vec![0.0; k];
    }
    // s = Σ_i g_i·û, û = Σ_k c_k g_k / (‖g_k‖ ‖v‖).
    let s: f64 = (0..k)
        .filter(|&j| unit(j))
        .map(|j| c[j] / norms[j] * (0..k).map(|i| g[i * k + j]).sum::<f64>())
        .sum::<f64>()
        / v;
    (0..k)
        .map(|j| match unit(j) {
            true => s * c[j] / (v * norms[j]),
            false => 0.0,
        })
        .collect()
}
