//! IMTL-G: Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial
//! Multi-task Learning", ICLR 2021.
//!
//! The update d = Σ w_k g_k has equal projections on every unit gradient
//! u_k = g_k/‖g_k‖. With D_i = g_0 - g_i and U_i = u_0 - u_i (i = 1..K-1):
//!
//!   α = g_0 Uᵀ (D Uᵀ)⁻¹,   w = [1 - Σ α, α]     (`reference`).

use super::solve::solve_linear;
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// ImtlG has no hyper-parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImtlG;

/// The WGSL solve: the shared prelude, then shaders/mtl/imtl_g.wgsl.
pub const SHADER: SolveShader = solve_shader!("imtl_g");

/// The WGSL `Params` of shaders/mtl/imtl_g.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "imtl_g",
    aliases: &["imtl"],
    summary: "IMTL-G (Liu et al. 2021): equal projections onto every task's unit gradient",
    defaults: "",
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
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        }
    }
}

/// IMTL-G (Liu et al., ICLR 2021): the update d = Σ w_i g_i has equal
/// projections on every unit gradient u_i = g_i/‖g_i‖. With D_i = g_0 - g_i and
/// U_i = u_0 - u_i (i = 1..K-1):  α = g_0 Uᵀ (D Uᵀ)⁻¹,  w = [1 - Σα, α].
pub fn reference(g: &[f64], k: usize) -> Vec<f64> {
    if k == 1 {
        return vec![1.0];
    }
    let n: Vec<f64> = (0..k).map(|i| g[i * k + i].max(1e-20).sqrt()).collect();
    let m = k - 1;
    // A = (D Uᵀ)ᵀ so that A αᵀ = (g_0 Uᵀ)ᵀ; D_a·U_b = G00/n0 - G0b/nb - Ga0/n0 + Gab/nb.
    let mut a = vec![0.0; m * m];
    let mut r = vec![0.0; m];
    for bi in 0..m {
        let b = bi + 1;
        r[bi] = g[0] / n[0] - g[b] / n[b];
        for ai in 0..m {
            let aa = ai + 1;
            a[bi * m + ai] = g[0] / n[0] - g[b] / n[b] - g[aa * k] / n[0] + g[aa * k + b] / n[b];
        }
    }
    let alpha = solve_linear(&a, &r, m);
    let mut w = vec![1.0 - alpha.iter().sum::<f64>()];
    w.extend(alpha);
    w
}
