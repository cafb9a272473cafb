//! DualProj: the mean gradient projected onto the dual cone of the task
//! gradients (Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual
//! Learning", NeurIPS 2017, equation 11; as an aggregator in torchjd, Quinton
//! & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024).
//!
//! Where UPGrad projects each g_i and averages, DualProj averages first and
//! projects once: d = Σ_j v_j g_j with
//!
//!   v = argmin_{v ≥ u} ½ vᵀ Ĝ v,   u = (1/K, …, 1/K)       (`reference`),
//!
//! the closest point to the mean gradient at which no task's loss increases
//! to first order (g_j·d ≥ 0 for every j). As torchjd's `DualProj()`: Ĝ is
//! G divided by its trace (or 0 when the trace is below `norm_eps`) plus
//! `reg_eps` on the diagonal, and the projection is solved exactly (torchjd:
//! quadprog; here the active-set QP that UPGrad uses, `solve::active_set_qp`
//! and the prelude's `qp`). `tests/fidelity.rs` checks it against torchjd.

use super::solve::{active_set_qp, trace_normalized};
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// DualProj's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DualProj {
    /// Below this trace of G (the squared Frobenius norm of the gradients),
    /// G counts as zero and the update is the mean gradient (torchjd: 1e-4).
    pub norm_eps: f32,
    /// Added to the diagonal of G / trace, so that it is positive definite
    /// (torchjd: 1e-4).
    pub reg_eps: f32,
}

impl Default for DualProj {
    fn default() -> Self {
        DualProj {
            norm_eps: 1e-4,
            reg_eps: 1e-4,
        }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/dualproj.wgsl.
pub const SHADER: SolveShader = solve_shader!("dualproj");

/// The WGSL `Params` of shaders/mtl/dualproj.wgsl.
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
    name: "dualproj",
    aliases: &["dual_proj"],
    summary: "DualProj (GEM, Lopez-Paz & Ranzato 2017; torchjd): the mean gradient projected onto the dual cone",
    defaults: "norm_eps 1e-4, reg_eps 1e-4 (as torchjd), solved exactly",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(DualProj::default()),
};

impl GpuSolve for DualProj {
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

/// DualProj (torchjd): the mean gradient projected onto the dual cone
/// {x : G-rows · x ≥ 0}: w = argmin_{v ≥ 1/K} ½ vᵀ Ĝ v, Ĝ = G / tr G +
/// reg_eps·I (G / tr G taken as 0 when tr G < norm_eps), by the active-set QP.
pub fn reference(g: &[f64], k: usize, norm_eps: f64, reg_eps: f64) -> Vec<f64> {
    let h = trace_normalized(g, k, norm_eps, reg_eps);
    let lo = vec![1.0 / k as f64; k];
    active_set_qp(&h, &vec![0.0; k], &lo, &vec![true; k], k, false)
}
