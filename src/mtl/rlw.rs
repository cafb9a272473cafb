//! RLW: Lin, Ye, Xu, Shi & Zhang, "Reasonable Effectiveness of Random
//! Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022.
//!
//! Each step draws fresh loss weights
//!
//!   w = softmax(z),   z ~ N(0, I_K),
//!
//! on the GPU from a hash of (seed, step, task) (`reference`).
//!
//! Follows LibMTL's RLW (its default normal distribution); the draws come
//! from the seeded hash (Box-Muller), so CPU and GPU agree, not from torch.

use super::solve::{softmax, uniform};
use super::{Capabilities, GpuSolve, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// Rlw's hyper-parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rlw {
    /// Seed of the random draws (the run's seed by default).
    pub seed: u32,
}

/// The WGSL solve: the shared prelude, then shaders/mtl/rlw.wgsl.
pub const SHADER: SolveShader = solve_shader!("rlw");

/// The WGSL `Params` of shaders/mtl/rlw.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    seed: u32,
    _pad0: u32,
    _pad1: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "rlw",
    aliases: &[],
    summary: "random loss weighting (Lin et al. 2022): softmax of a normal draw per step",
    defaults: "",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: None,
        combines: false,
        seeds: true,
    },
    shader: Some(&SHADER),
    build: |seed| Box::new(Rlw { seed }),
};

impl GpuSolve for Rlw {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::SeedsBeforeForward;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            seed: self.seed,
            _pad0: 0,
            _pad1: 0,
        }
    }
}

/// RLW (Lin et al., TMLR 2022): w = softmax(z), z ~ N(0, I) drawn afresh each step.
pub fn reference(k: usize, seed: u32, step: u32) -> Vec<f64> {
    let z: Vec<f64> = (0..k)
        .map(|i| {
            let u1 = uniform(seed, step, 2 * i as u32).max(1e-7);
            let u2 = uniform(seed, step, 2 * i as u32 + 1);
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect();
    softmax(&z)
}
