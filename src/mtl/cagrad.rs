//! CAGrad: Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient Descent for
//! Multi-task Learning", NeurIPS 2021.
//!
//! With g0 the mean gradient and c ∈ [0, 1), CAGrad moves along
//!
//!   d = g0 + (√φ / ‖g_w‖) g_w,   w = argmin_{w ∈ simplex} g_wᵀ g0 + √φ ‖g_w‖,   φ = c² ‖g0‖²,
//!
//! which maximises the worst task's improvement within a ball around g0;
//! d is rescaled by 1/(1 + c²) as in LibMTL (`reference`).
//!
//! The simplex problem is solved to the optimum (LibMTL's SLSQP stops 48% short
//! of it on one fixture; torchjd's CLARABEL agrees with this to 4e-5): with
//! x = g_w, its optimum x* also minimises ⟨x, g0⟩ + ‖x‖²/(2s) over the hull for
//! s = ‖x*‖/√φ (the two have the same gradient there), and that is the
//! hull point nearest to -s·g0, a quadratic program the active-set `qp`
//! solves exactly. So s is found by bisection on ‖x(s)‖ - √φ s (≥ 0 at
//! s = 0, ≤ 0 at s = max‖g_i‖/√φ; every root is an optimum), 40 halvings.
//!
//! Degenerate cases, documented: a task whose gradient is zero gains or loses
//! nothing whatever d is and is left out of the max-min (weight 1/K only);
//! when the optimum x* is 0 (no direction in the ball improves every task)
//! d = g0 (LibMTL's answer there; torchjd returns 0).

use super::solve::{active_set_qp, live_tasks, normalized};
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// CaGrad's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CaGrad {
    /// The radius c of the ball around the mean gradient (the paper's 0.4;
    /// LibMTL's default is 0.5, torchjd has none).
    pub c: f32,
}

impl Default for CaGrad {
    fn default() -> Self {
        CaGrad { c: 0.4 }
    }
}

/// Halvings of the bisection on s.
pub const BISECT: u32 = 40;

/// The WGSL solve: the shared prelude, then shaders/mtl/cagrad.wgsl.
pub const SHADER: SolveShader = solve_shader!("cagrad");

/// The WGSL `Params` of shaders/mtl/cagrad.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    c: f32,
    _pad0: u32,
    _pad1: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "cagrad",
    aliases: &[],
    summary: "CAGrad (Liu et al. 2021): best worst-task improvement near the mean gradient",
    defaults: "c 0.4 (LibMTL: 0.5), solved exactly",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(CaGrad::default()),
};

impl GpuSolve for CaGrad {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            c: self.c,
            _pad0: 0,
            _pad1: 0,
        }
    }
}

/// CAGrad (Liu et al., NeurIPS 2021), with g0 = mean gradient (b = 1/K) and c ∈ [0, 1):
///   w = argmin_{w ∈ simplex} g_wᵀ g0 + √φ ‖g_w‖,   φ = c² ‖g0‖²,
///   d = g0 + (√φ / ‖g_w‖) g_w,  returned rescaled by 1/(1 + c²) as in LibMTL.
/// The simplex problem by bisection on s with x(s) the hull point nearest to
/// -s·g0 (module doc), on G / mean diagonal.
pub fn reference(g: &[f64], k: usize, c: f64) -> Vec<f64> {
    let b = 1.0 / k as f64;
    let live = live_tasks(g, k);
    let gn = normalized(g, k, 0.0);
    let gb: Vec<f64> = (0..k)
        .map(|i| (0..k).map(|j| gn[i * k + j] * b).sum())
        .collect();
    let sphi = c * (gb.iter().sum::<f64>() * b).max(0.0).sqrt();
    let max_norm = (0..k).fold(0.0f64, |m, i| m.max(gn[i * k + i].max(0.0).sqrt()));
    let rescale = 1.0 / (1.0 + c * c);
    if sphi <= 0.0 || !live.iter().any(|&l| l) {
        return vec![b * rescale; k];
    }
    let norm_of = |w: &[f64]| {
        (0..k)
            .map(|i| w[i] * (0..k).map(|j| gn[i * k + j] * w[j]).sum::<f64>())
            .sum::<f64>()
            .max(0.0)
            .sqrt()
    };
    let nearest = |s: f64| {
        let lin: Vec<f64> = gb.iter().map(|v| s * v).collect();
        active_set_qp(&gn, &lin, &vec![0.0; k], &live, k, true)
    };
    let (mut lo, mut hi) = (0.0, max_norm / sphi);
    for _ in 0..BISECT {
        let s = 0.5 * (lo + hi);
        if norm_of(&nearest(s)) > sphi * s {
            lo = s;
        } else {
            hi = s;
        }
    }
    let w = nearest(0.5 * (lo + hi));
    let nx = norm_of(&w);
    let lambda = if nx > 1e-6 * max_norm { sphi / nx } else { 0.0 };
    w.iter().map(|&wi| (b + lambda * wi) * rescale).collect()
}
