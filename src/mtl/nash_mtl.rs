//! Nash-MTL: Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya,
//! "Multi-Task Learning as a Bargaining Game", ICML 2022.
//!
//! The Nash bargaining solution d = Σ α_k g_k satisfies
//!
//!   α_k (G α)_k = 1 for every k,  α > 0,
//!
//! the stationary point of the convex ½ αᵀGα - Σ log α_k, solved by damped
//! Newton (`reference`) instead of the paper's sequence of convex programs.
//! As in LibMTL and torchjd, the direction is then clipped to norm
//! `max_norm` (default 1; 0 disables it): α ← α · min(1, max_norm / √(αᵀGα)).
//!
//! Follows LibMTL's Nash_MTL and torchjd's NashMTL (max_norm 1, first step;
//! they agree with this to 4e-5 on tests/fidelity.rs's matrices). Differs on
//! purpose: Newton reaches the bargaining point α_i(Gα)_i = 1, where their 20
//! ECOS iterations can stop off it (two rows of norms 1 and 2 at cosine -0.5:
//! α₀(Gα)₀ = 0, a direction 0.52 away). A zero-gradient task cannot bargain;
//! with G + εI its weight grows to 1/√ε and adds nothing to d.

use super::solve::alpha_fair;
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// NashMtl's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NashMtl {
    /// Damped Newton steps.
    pub iters: u32,
    /// Clip the direction to this norm (LibMTL's and torchjd's default 1; 0: no clip).
    pub max_norm: f32,
}

impl Default for NashMtl {
    fn default() -> Self {
        NashMtl {
            iters: 20,
            max_norm: 1.0,
        }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/nash_mtl.wgsl.
pub const SHADER: SolveShader = solve_shader!("nash_mtl");

/// The WGSL `Params` of shaders/mtl/nash_mtl.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    iters: u32,
    max_norm: f32,
    _pad: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "nash_mtl",
    aliases: &["nash"],
    summary: "Nash-MTL (Navon et al. 2022): the bargaining solution α_i (Gα)_i = 1",
    defaults: "20 Newton steps, max_norm 1",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(NashMtl::default()),
};

impl GpuSolve for NashMtl {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            iters: self.iters,
            max_norm: self.max_norm,
            _pad: 0,
        }
    }
}

/// Nash-MTL (Navon et al., ICML 2022): the bargaining solution d = Σ α_i g_i with
/// α_i (Gα)_i = 1, i.e. the minimiser of ½ αᵀGα - Σ log α_i over α > 0 (convex),
/// found by damped Newton (`iters` steps) on G + εI.
pub fn reference(g: &[f64], k: usize, iters: usize, max_norm: f64) -> Vec<f64> {
    let mut a = alpha_fair(g, k, 1.0, iters);
    // Clip the direction's norm ‖d‖ = √(αᵀGα) to max_norm (0: no clip).
    let q: f64 = (0..k)
        .map(|i| a[i] * (0..k).map(|j| g[i * k + j] * a[j]).sum::<f64>())
        .sum();
    let norm = q.max(0.0).sqrt();
    if max_norm > 0.0 && norm > max_norm {
        a.iter_mut().for_each(|v| *v *= max_norm / norm);
    }
    a
}
