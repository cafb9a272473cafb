//! CAGrad: Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient Descent for
//! Multi-task Learning", NeurIPS 2021.
//!
//! With g0 the mean gradient and c ∈ [0, 1), CAGrad moves along
//!
//!   d = g0 + (√φ / ‖g_w‖) g_w,   w = argmin_{w ∈ simplex} g_wᵀ g0 + √φ ‖g_w‖,   φ = c² ‖g0‖²,
//!
//! which maximises the worst task's improvement within a ball around g0;
//! d is rescaled by 1/(1 + c²) as in LibMTL (`reference`).

use super::solve::normalized;
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// CaGrad's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CaGrad {
    /// The radius c of the ball around the mean gradient.
    pub c: f32,
    /// Exponentiated-gradient steps of the simplex problem.
    pub iters: u32,
}

impl Default for CaGrad {
    fn default() -> Self {
        CaGrad { c: 0.4, iters: 100 }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/cagrad.wgsl.
pub const SHADER: SolveShader = solve_shader!("cagrad");

/// The WGSL `Params` of shaders/mtl/cagrad.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    iters: u32,
    c: f32,
    _pad: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "cagrad",
    aliases: &[],
    summary: "CAGrad (Liu et al. 2021): best worst-task improvement near the mean gradient",
    defaults: "c 0.4, 100 steps",
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
            iters: self.iters,
            c: self.c,
            _pad: 0,
        }
    }
}

/// CAGrad (Liu et al., NeurIPS 2021), with g0 = mean gradient (b = 1/K) and c ∈ [0, 1):
///   w = argmin_{w ∈ simplex} g_wᵀ g0 + √φ ‖g_w‖,   φ = c² ‖g0‖²,
///   d = g0 + (√φ / ‖g_w‖) g_w,  returned rescaled by 1/(1 + c²) as in LibMTL.
/// The simplex problem is solved by exponentiated gradient (`iters` steps, rate 1)
/// on the normalised Gram matrix (the minimiser does not depend on G's scale).
pub fn reference(g: &[f64], k: usize, c: f64, iters: usize) -> Vec<f64> {
    let gn = normalized(g, k, 0.0);
    let b = 1.0 / k as f64;
    let gb: Vec<f64> = (0..k)
        .map(|i| (0..k).map(|j| gn[i * k + j] * b).sum())
        .collect();
    let g0_sq: f64 = gb.iter().sum::<f64>() * b;
    let sphi = c * g0_sq.max(0.0).sqrt();
    let mut w = vec![b; k];
    for _ in 0..iters {
        let gw: Vec<f64> = (0..k)
            .map(|i| (0..k).map(|j| gn[i * k + j] * w[j]).sum())
            .collect();
        let nw = (0..k).map(|i| w[i] * gw[i]).sum::<f64>().max(1e-20).sqrt();
        let mut total = 0.0;
        for i in 0..k {
            w[i] *= (-(gb[i] + sphi * gw[i] / nw)).exp();
            total += w[i];
        }
        for wi in &mut w {
            *wi /= total;
        }
    }
    let gw: Vec<f64> = (0..k)
        .map(|i| (0..k).map(|j| gn[i * k + j] * w[j]).sum())
        .collect();
    let nw = (0..k).map(|i| w[i] * gw[i]).sum::<f64>().max(1e-20).sqrt();
    let lambda = sphi / nw;
    w.iter()
        .map(|&wi| (b + lambda * wi) / (1.0 + c * c))
        .collect()
}
