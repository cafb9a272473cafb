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
//! eigenvalues below PINV_RTOL = 1e-5 of the largest: in f32 the Gram matrix
//! of two gradients closer than about 3e-3 radians carries no information
//! about their difference (the small eigenvalue is rounding noise), so they
//! count as parallel. torchjd, in f64, resolves them, and its answer can
//! move at O(1) with an O(1e-3) change of one gradient (the fixture's
//! near-identical rows: 0.16 apart).

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

/// Eigenvalues of G / tr G below this fraction of the largest count as zero.
pub const PINV_RTOL: f64 = 1e-5;

/// Cyclic Jacobi sweeps of the eigen-decomposition.
pub const JACOBI_SWEEPS: usize = 12;

/// The eigen-decomposition of a symmetric K×K matrix by cyclic Jacobi
/// rotations: returns (eigenvalues, eigenvectors as the columns of V, row-major).
pub fn jacobi_eigen(m: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = m.to_vec();
    let mut v: Vec<f64> = (0..k * k)
        .map(|i| if i / k == i % k { 1.0 } else { 0.0 })
        .collect();
    for _ in 0..JACOBI_SWEEPS {
        for p in 0..k {
            for q in p + 1..k {
                let apq = a[p * k + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a_pq (Numerical Recipes, §11.1).
                let theta = (a[q * k + q] - a[p * k + p]) / (2.0 * apq);
                let t = if theta.abs() > 1e10 {
                    0.5 / theta
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..k {
                    let (rp, rq) = (a[r * k + p], a[r * k + q]);
                    a[r * k + p] = c * rp - s * rq;
                    a[r * k + q] = s * rp + c * rq;
                }
                for r in 0..k {
                    let (pr, qr) = (a[p * k + r], a[q * k + r]);
                    a[p * k + r] = c * pr - s * qr;
                    a[q * k + r] = s * pr + c * qr;
                }
                for r in 0..k {
                    let (rp, rq) = (v[r * k + p], v[r * k + q]);
                    v[r * k + p] = c * rp - s * rq;
                    v[r * k + q] = s * rp + c * rq;
                }
            }
        }
    }
    ((0..k).map(|i| a[i * k + i]).collect(), v)
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
    let (lambda, q) = jacobi_eigen(&m, k);
    let cutoff = PINV_RTOL * lambda.iter().cloned().fold(0.0, f64::max);
    let mut v = vec![0.0; k];
    for j in 0..k {
        if lambda[j] > cutoff {
            let c = (0..k).map(|i| q[i * k + j] * n[i]).sum::<f64>() / lambda[j];
            for i in 0..k {
                v[i] += c * q[i * k + j];
            }
        }
    }
    let sum: f64 = v.iter().sum();
    let abs: f64 = v.iter().map(|x| x.abs()).sum();
    if sum.abs() <= 1e-6 * abs || abs == 0.0 {
        return vec![0.0; k];
    }
    v.iter().map(|x| x / sum).collect()
}
