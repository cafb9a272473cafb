//! UPGrad: Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization",
//! 2024 (torchjd).
//!
//! Each g_i is projected onto the dual cone of the gradients, {x : g_j·x ≥ 0 ∀j},
//! and the projections are averaged. The projection of g_i is Σ_j v_j g_j with
//!
//!   v = argmin_{v ≥ e_i} ½ vᵀ G v,     w = (1/K) Σ_i v⁽ⁱ⁾     (`reference`),
//!
//! so no task's loss increases to first order. As torchjd's `UPGrad()`: G is
//! divided by its trace (or taken as 0 when the trace is below `norm_eps`),
//! `reg_eps` is added to its diagonal, and each projection is solved exactly
//! (torchjd: quadprog; here the active-set `qp`).

use super::solve::{active_set_qp, trace_normalized};
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// UpGrad's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpGrad {
    /// Below this trace of G (the squared Frobenius norm of the gradients),
    /// G counts as zero and the update is the mean gradient (torchjd: 1e-4).
    pub norm_eps: f32,
    /// Added to the diagonal of G / trace, so that it is positive definite
    /// (torchjd: 1e-4).
    pub reg_eps: f32,
}

impl Default for UpGrad {
    fn default() -> Self {
        UpGrad {
            norm_eps: 1e-4,
            reg_eps: 1e-4,
        }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/upgrad.wgsl.
pub const SHADER: SolveShader = solve_shader!("upgrad");

/// The WGSL `Params` of shaders/mtl/upgrad.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    norm_eps: f32,
    reg_eps: f32,
    _pad: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "upgrad",
    aliases: &[],
    summary: "UPGrad (Quinton & Rey 2024): mean of projections onto the dual cone",
    defaults: "norm_eps 1e-4, reg_eps 1e-4 (as torchjd), solved exactly",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(UpGrad::default()),
};

impl GpuSolve for UpGrad {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            norm_eps: self.norm_eps,
            reg_eps: self.reg_eps,
            _pad: 0,
        }
    }
}

/// UPGrad (Quinton & Rey 2024, torchjd): the mean of each g_i projected onto
/// the dual cone {x : G-rows · x ≥ 0}. The projection of g_i is Σ_j v_j g_j
/// with v = argmin_{v ≥ e_i} ½ vᵀ Ĝ v, Ĝ = G / tr G + reg_eps·I (G / tr G
/// taken as 0 when tr G < norm_eps), solved by the active-set QP;
/// w = (1/K) Σ_i v⁽ⁱ⁾.
pub fn reference(g: &[f64], k: usize, norm_eps: f64, reg_eps: f64) -> Vec<f64> {
    let h = trace_normalized(g, k, norm_eps, reg_eps);
    let mut w = vec![0.0; k];
    for i in 0..k {
        let lo: Vec<f64> = (0..k).map(|j| if j == i { 1.0 } else { 0.0 }).collect();
        let v = active_set_qp(&h, &vec![0.0; k], &lo, &vec![true; k], k, false);
        for j in 0..k {
            w[j] += v[j] / k as f64;
        }
    }
    w
}
