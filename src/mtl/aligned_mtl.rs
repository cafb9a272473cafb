//! Aligned-MTL: Senushkin, Patakin, Kuznetsov & Konushin, "Independent
//! Component Alignment for Multi-Task Learning", CVPR 2023, Algorithm 1; as
//! LibMTL's `Aligned_MTL` (torchjd's `AlignedMTL` differs by the factor K:
//! its default preference is the mean, LibMTL's the sum; the fixture
//! records its answer times K).
//!
//! The update aligns the task gradients' principal components: with the
//! eigen-decomposition G = V Λ Vᵀ of the Gram matrix, keeping the R
//! eigenvalues above a tolerance, the balance transform
//!
//!   B = √λ_R · V_R Λ_R^{-1/2} V_Rᵀ,   λ_R the smallest kept,
//!
//! makes the gradients' matrix well conditioned (all its singular values
//! √λ_R), and the weights are w = B 1: d = Σ_k w_k g_k. B does not change
//! when G is scaled, so G / tr G is decomposed (the prelude's Jacobi
//! solver); eigenvalues below PINV_RTOL = 1e-5 of the largest are dropped
//! (LibMTL and torchjd: K · 1.19e-7, float32's epsilon, which in f32 is
//! rounding noise). A zero G (rank 0) gives w = 1, as torchjd's identity.

use super::solve::{jacobi_eigen, PINV_RTOL};
use super::{Capabilities, GpuSolve, GradSpace, KParams, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// Aligned-MTL has no hyper-parameters (LibMTL's: a preference of 1 per task).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AlignedMtl;

/// The WGSL solve: the shared prelude, then shaders/mtl/aligned_mtl.wgsl.
pub const SHADER: SolveShader = solve_shader!("aligned_mtl");

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "aligned_mtl",
    aliases: &["alignedmtl", "aligned"],
    summary: "Aligned-MTL (Senushkin et al. 2023; LibMTL): the gradients' principal components aligned by the Gram matrix's eigen-decomposition",
    defaults: "preference: 1 per task (LibMTL's; torchjd's mean is 1/K of it)",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(AlignedMtl),
};

impl GpuSolve for AlignedMtl {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = KParams;

    fn params(&self, k: u32) -> KParams {
        KParams::new(k)
    }
}

/// Aligned-MTL (LibMTL): w = B 1, B = √λ_R V_R Λ_R^{-1/2} V_Rᵀ from the
/// eigen-decomposition of G / tr G (eigenvalues above PINV_RTOL of the
/// largest kept); w = 1 when G is zero.
pub fn reference(g: &[f64], k: usize) -> Vec<f64> {
    let trace: f64 = (0..k).map(|i| g[i * k + i]).sum();
    if trace <= 0.0 {
        return vec![1.0; k];
    }
    let m: Vec<f64> = g.iter().map(|v| v / trace).collect();
    let (lambda, q) = jacobi_eigen(&m, k);
    let cutoff = PINV_RTOL * lambda.iter().cloned().fold(0.0, f64::max);
    let kept: Vec<usize> = (0..k).filter(|&j| lambda[j] > cutoff).collect();
    let smallest = kept
        .iter()
        .map(|&j| lambda[j])
        .fold(f64::INFINITY, f64::min);
    let mut w = vec![0.0; k];
    for &j in &kept {
        let col: f64 = (0..k).map(|i| q[i * k + j]).sum();
        let c = (smallest / lambda[j]).sqrt() * col;
        for (i, wi) in w.iter_mut().enumerate() {
            *wi += c * q[i * k + j];
        }
    }
    w
}
