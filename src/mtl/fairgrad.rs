//! FairGrad: Ban & Ji, "Fair Resource Allocation in Multi-Task Learning",
//! ICML 2024; as LibMTL's `FairGrad` (α = 1 by default, LibMTL's).
//!
//! The update d = Σ w_k g_k allocates "progress" fairly in the sense of
//! α-fairness: its weights solve
//!
//!   (G w)_k = w_k^{−1/α}  for every k,  w > 0,
//!
//! (α = 1 is proportional fairness, Nash-MTL's bargaining point without its
//! clip; α → ∞ approaches max-min fairness). That is the stationary point
//! of the convex ½ wᵀGw − Σ_k f(w_k) with f'(w) = w^{−1/α}, solved here by
//! damped Newton (`iters` steps, each keeping w > 0) on G + εI, the solve
//! Nash-MTL uses (`solve::alpha_fair`, the prelude's `alpha_fair`); LibMTL solves the same equations by scipy's `least_squares` from
//! w = 1/K. A zero-gradient task cannot be balanced: with G + εI its weight
//! grows large and adds nothing to d.

use super::solve::alpha_fair;
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// FairGrad's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FairGrad {
    /// α of α-fairness (LibMTL's default 1).
    pub alpha: f32,
    /// Damped Newton steps.
    pub iters: u32,
}

impl Default for FairGrad {
    fn default() -> Self {
        FairGrad {
            alpha: 1.0,
            iters: 30,
        }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/fairgrad.wgsl.
pub const SHADER: SolveShader = solve_shader!("fairgrad");

/// The WGSL `Params` of shaders/mtl/fairgrad.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    iters: u32,
    alpha: f32,
    _pad: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "fairgrad",
    aliases: &["fair_grad"],
    summary: "FairGrad (Ban & Ji 2024): α-fair weights, (G w)_k = w_k^(−1/α)",
    defaults: "alpha 1 (LibMTL's), 30 damped Newton steps",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(FairGrad::default()),
};

impl GpuSolve for FairGrad {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            iters: self.iters,
            alpha: self.alpha,
            _pad: 0,
        }
    }
}

/// FairGrad (LibMTL): w > 0 with (G w)_k = w_k^{−1/α}, by damped Newton on
/// G + εI (`solve::alpha_fair`, Nash-MTL's solve with q = 1/α).
pub fn reference(g: &[f64], k: usize, alpha: f64, iters: usize) -> Vec<f64> {
    alpha_fair(g, k, 1.0 / alpha, iters)
}
