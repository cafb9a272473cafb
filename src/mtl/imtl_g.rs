//! IMTL-G: Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial
//! Multi-task Learning", ICLR 2021.
//!
//! The update d = Σ w_k g_k has equal projections on every unit gradient
//! u_k = g_k/‖g_k‖. With D_i = g_0 - g_i and U_i = u_0 - u_i (i = 1..K-1):
//!
//!   α = g_0 Uᵀ (D Uᵀ)⁻¹,   w = [1 - Σ α, α].
//!
//! Equal projections mean G w = μ n with n_i = ‖g_i‖, so w ∝ G⁻¹ n; this is
//! computed as torchjd does, w = G⁺ n / Σ(G⁺ n) with the pseudo-inverse, which
//! is defined when gradients are identical, parallel or zero (`reference`).
//! G⁺ comes from a Jacobi eigen-decomposition of G / tr G, dropping the
//! eigenvalues below PINV_RTOL = 1e-5 of the largest (`solve::pinv_apply`): in f32 the Gram matrix
//! of two gradients closer than about 3e-3 radians carries no information
//! about their difference (the small eigenvalue is rounding noise), so they
//! count as parallel. torchjd, in f64, resolves them, and its answer can
//! move at O(1) with an O(1e-3) change of one gradient (the fixture's
//! near-identical rows: 0.16 apart).

use super::solve::pinv_apply;
use super::{Capabilities, GpuSolve, GradSpace, KParams, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// ImtlG has no hyper-parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImtlG;

/// The WGSL solve: the shared prelude, then shaders/mtl/imtl_g.wgsl.
pub const SHADER: SolveShader = solve_shader!("imtl_g");

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "imtl_g",
    aliases: &[],
    summary: "IMTL-G (Liu et al. 2021): equal projections onto every task's unit gradient",
    defaults: "",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(ImtlG),
};

impl GpuSolve for ImtlG {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = KParams;

    fn params(&self, k: u32) -> KParams {
        KParams::new(k)
    }
}

/// IMTL-G (Liu et al., ICLR 2021) in torchjd's pseudo-inverse form:
/// w = G⁺ n / Σ(G⁺ n), n_i = √G_ii, G⁺ from the eigen-decomposition of
/// G / tr G with eigenvalues below PINV_RTOL of the largest dropped; w = 0
/// when |Σ G⁺ n| ≤ 1e-6 Σ|G⁺ n| (torchjd: 1e-12, absolute).
pub fn reference(g: &[f64], k: usize) -> Vec<f64> {
    if k == 1 {
        return vec![1.0];
    }
    let trace: f64 = (0..k).map(|i| g[i * k + i]).sum();
    if trace <= 0.0 {
        return vec![0.0; k];
    }
    let m: Vec<f64> = g.iter().map(|v| v / trace).collect();
    let n: Vec<f64> = (0..k).map(|i| m[i * k + i].max(0.0).sqrt()).collect();
    let v = pinv_apply(&m, &n, k);
    let sum: f64 = v.iter().sum();
    let abs: f64 = v.iter().map(|x| x.abs()).sum();
    if sum.abs() <= 1e-6 * abs || abs == 0.0 {
        return vec![0.0; k];
    }
    v.iter().map(|x| x / sum).collect()
}
