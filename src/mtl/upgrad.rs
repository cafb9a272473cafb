//! UPGrad: Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization",
//! 2024 (torchjd).
//!
//! Each g_i is projected onto the dual cone of the gradients, {x : g_j·x ≥ 0 ∀j},
//! and the projections are averaged. The projection of g_i is Σ_j v_j g_j with
//!
//!   v = argmin_{v ≥ e_i} ½ vᵀ G v,     w = (1/K) Σ_i v⁽ⁱ⁾     (`reference`),
//!
//! so no task's loss increases to first order.

use super::solve::normalized;
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// UpGrad's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpGrad {
    /// Projected coordinate-descent sweeps per projection.
    pub sweeps: u32,
}

impl Default for UpGrad {
    fn default() -> Self {
        UpGrad { sweeps: 100 }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/upgrad.wgsl.
pub const SHADER: SolveShader = solve_shader!("upgrad");

/// The WGSL `Params` of shaders/mtl/upgrad.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    sweeps: u32,
    _pad0: u32,
    _pad1: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "upgrad",
    aliases: &[],
    summary: "UPGrad (Quinton & Rey 2024): mean of projections onto the dual cone",
    defaults: "100 sweeps",
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
            sweeps: self.sweeps,
            _pad0: 0,
            _pad1: 0,
        }
    }
}

/// UPGrad (Quinton & Rey 2024, torchjd): the mean of each g_i projected onto
/// the dual cone {x : G-rows · x ≥ 0}. The projection of g_i is Σ_j v_j g_j
/// with v = argmin_{v ≥ e_i} ½ vᵀ G v, solved by projected coordinate descent
/// (`sweeps` sweeps) on the normalised G; w = (1/K) Σ_i v⁽ⁱ⁾.
pub fn reference(g: &[f64], k: usize, sweeps: usize) -> Vec<f64> {
    let gn = normalized(g, k, 1e-6);
    let mut w = vec![0.0; k];
    for i in 0..k {
        let mut v = vec![0.0; k];
        v[i] = 1.0;
        for _ in 0..sweeps {
            for j in 0..k {
                let gv: f64 = (0..k).map(|m| gn[j * k + m] * v[m]).sum();
                let lb = if j == i { 1.0 } else { 0.0 };
                v[j] = (v[j] - gv / gn[j * k + j]).max(lb);
            }
        }
        for j in 0..k {
            w[j] += v[j] / k as f64;
        }
    }
    w
}
