//! MGDA-UB: Sener & Koltun, "Multi-Task Learning as Multi-Objective
//! Optimization", NeurIPS 2018.
//!
//! The update is the min-norm point of the convex hull of the task gradients,
//!
//!   w = argmin_{w ≥ 0, Σ w = 1} ‖Σ_k w_k g_k‖² = argmin wᵀ G w,
//!
//! in closed form for two tasks, γ = clamp((G₂₂ - G₁₂)/(G₁₁ + G₂₂ - 2G₁₂)), and by
//! Frank-Wolfe with exact line search for more (`reference`). By default the
//! gradients are taken at the shared representation (the "upper bound", UB).

use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// Mgda's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mgda {
    /// Frank-Wolfe steps for K > 2.
    pub iters: u32,
}

impl Default for Mgda {
    fn default() -> Self {
        Mgda { iters: 250 }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/mgda.wgsl.
pub const SHADER: SolveShader = solve_shader!("mgda");

/// The WGSL `Params` of shaders/mtl/mgda.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    iters: u32,
    _pad0: u32,
    _pad1: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "mgda",
    aliases: &["mgda_ub"],
    summary: "MGDA-UB (Sener & Koltun 2018): min-norm point of the gradients' convex hull",
    defaults: "250 Frank-Wolfe steps; representation space",
    caps: Capabilities {
        grad_space: Some(GradSpace::Representation),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(Mgda::default()),
};

impl GpuSolve for Mgda {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            iters: self.iters,
            _pad0: 0,
            _pad1: 0,
        }
    }
}

/// γ minimising ‖γ a + (1-γ) b‖² given a·a, a·b, b·b (Sener & Koltun's MinNormSolver).
pub fn min_norm_2(v11: f64, v12: f64, v22: f64) -> f64 {
    if v12 >= v11 {
        0.999
    } else if v12 >= v22 {
        0.001
    } else {
        (v22 - v12) / (v11 + v22 - 2.0 * v12)
    }
}

/// MGDA (Sener & Koltun, NeurIPS 2018): the min-norm point of the convex hull,
///   w = argmin_{w ≥ 0, Σw = 1} wᵀ G w,
/// in closed form for two tasks and by Frank-Wolfe with exact line search
/// (`iters` steps) for more.
///
/// A task with a zero gradient (squared norm ≤ 1e-12 of the largest) puts 0
/// in the hull, so the min-norm point is 0: all the weight goes to the first
/// such task and the shared parameters get no update that step.
pub fn reference(g: &[f64], k: usize, iters: usize) -> Vec<f64> {
    let maxd = (0..k).map(|i| g[i * k + i]).fold(0.0, f64::max);
    if let Some(z) = (0..k).find(|&i| g[i * k + i] <= 1e-12 * maxd) {
        return (0..k).map(|i| if i == z { 1.0 } else { 0.0 }).collect();
    }
    if k == 1 {
        return vec![1.0];
    }
    if k == 2 {
        let gamma = min_norm_2(g[0], g[1], g[3]);
        return vec![gamma, 1.0 - gamma];
    }
    let mut w = vec![1.0 / k as f64; k];
    for _ in 0..iters {
        let gw: Vec<f64> = (0..k)
            .map(|i| (0..k).map(|j| g[i * k + j] * w[j]).sum())
            .collect();
        let t = (0..k).fold(0, |b, i| if gw[i] < gw[b] { i } else { b });
        let v11: f64 = (0..k).map(|i| w[i] * gw[i]).sum();
        let gamma = min_norm_2(v11, gw[t], g[t * k + t]);
        for (i, wi) in w.iter_mut().enumerate() {
            *wi = gamma * *wi + if i == t { 1.0 - gamma } else { 0.0 };
        }
    }
    w
}
