//! GradVac: Wang, Tsvetkov, Firat & Cao, "Gradient Vaccine: Investigating and
//! Improving Multi-task Optimization in Massively Multilingual Models", ICLR
//! 2021.
//!
//! PCGrad acts only when two gradients conflict (cosine below 0) and then
//! makes them orthogonal. GradVac keeps, for each ordered pair (i, j), a
//! target cosine φ̂_ij, an exponential moving average of the cosines seen,
//! and whenever the cosine of g_i (as altered so far) with g_j falls below
//! it, adds just enough of g_j to raise it to the target:
//!
//!   φ = cos(g_i, g_j);  if φ < φ̂_ij:
//!       g_i ← g_i + ‖g_i‖ (φ̂ √(1−φ²) − φ √(1−φ̂²)) / (‖g_j‖ √(1−φ̂²)) · g_j;
//!   φ̂_ij ← (1 − β) φ̂_ij + β φ;        d = Σ_i g_i.
//!
//! Each g_i meets the other tasks in a random order. With φ̂ = 0 (the first
//! step) this is PCGrad's projection. As PCGrad here, g_i = Σ_m c_im g_m, so
//! every norm and cosine comes from the Gram matrix (`reference`) and the
//! weights are w = Σ_i c_i.
//!
//! Follows LibMTL's GradVac (β = 0.5, one group: the whole shared model;
//! 1e-8 in both denominators; the cosine with the altered g_i against the
//! original g_j). The EMA table φ̂ (K×K) lives in the solve's state after the
//! step counter. Differs on purpose: the order comes from the seeded hash
//! PCGrad uses (LibMTL: Python's `random`), and 1 − φ² is clamped at 0 (f32
//! can round a cosine past 1; LibMTL's f64 does not). `tests/fidelity.rs`
//! runs LibMTL for three steps with the orders drawn here.

use super::pcgrad::task_order;
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// GradVac's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradVac {
    /// The EMA rate of the target cosines (LibMTL's `GradVac_beta`: 0.5).
    pub beta: f32,
    /// Seed of the random task order (the run's seed by default).
    pub seed: u32,
}

impl Default for GradVac {
    fn default() -> Self {
        GradVac { beta: 0.5, seed: 0 }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/gradvac.wgsl.
pub const SHADER: SolveShader = solve_shader!("gradvac");

/// The WGSL `Params` of shaders/mtl/gradvac.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    seed: u32,
    beta: f32,
    _pad: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "gradvac",
    aliases: &[],
    summary: "GradVac (Wang et al. 2021): raise each pair's cosine to its running target, in random order",
    defaults: "beta 0.5 (as LibMTL), whole shared model as one group",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |seed| {
        Box::new(GradVac {
            seed,
            ..GradVac::default()
        })
    },
};

impl GpuSolve for GradVac {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            seed: self.seed,
            beta: self.beta,
            _pad: 0,
        }
    }
}

// ANCHOR: gradvac_reference
/// GradVac (Wang et al., ICLR 2021) at `step`, with the target cosines `rho`
/// (K×K, row i for g_i, updated in place): each g_i = Σ_m c_im g_m, meeting
/// the other tasks in `task_order`, gains a multiple of g_j whenever its
/// cosine with g_j is below rho_ij; the weights are w = Σ_i c_i.
pub fn reference(
    g: &[f64],
    k: usize,
    beta: f64,
    seed: u32,
    step: u32,
    rho: &mut [f64],
) -> Vec<f64> {
    let norm_j = |j: usize| g[j * k + j].max(0.0).sqrt();
    let mut w = vec![0.0; k];
    for i in 0..k {
        let mut c = vec![0.0; k];
        c[i] = 1.0;
        for j in task_order(k, seed, step, i) {
            if j == i {
                continue;
            }
            // ‖g_i‖² = cᵀ G c and g_i·g_j = c·G_j, with g_i as altered so far.
            let norm_i = (0..k)
                .map(|a| (0..k).map(|b| c[a] * g[a * k + b] * c[b]).sum::<f64>())
                .sum::<f64>()
                .max(0.0)
                .sqrt();
            let dot: f64 = (0..k).map(|m| c[m] * g[m * k + j]).sum();
            let phi = dot / (norm_i * norm_j(j) + 1e-8);
            let target = rho[i * k + j];
            if phi < target {
                let s = (1.0 - target * target).max(0.0).sqrt();
                let coef = norm_i * (target * (1.0 - phi * phi).max(0.0).sqrt() - phi * s)
                    / (norm_j(j) * s + 1e-8);
                c[j] += coef;
            }
            rho[i * k + j] = (1.0 - beta) * target + beta * phi;
        }
        for m in 0..k {
            w[m] += c[m];
        }
    }
    w
}
// ANCHOR_END: gradvac_reference
