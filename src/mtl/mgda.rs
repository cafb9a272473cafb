//! MGDA-UB: Sener & Koltun, "Multi-Task Learning as Multi-Objective
//! Optimization", NeurIPS 2018.
//!
//! The update is the min-norm point of the convex hull of the task gradients,
//!
//!   w = argmin_{w ≥ 0, Σ w = 1} ‖Σ_k w_k g_k‖² = argmin wᵀ G w,
//!
//! solved exactly by an active-set method on the K×K problem (`reference`;
//! LibMTL's MinNormSolver, 250 projected steps with the two-task solution
//! clamped to [0.001, 0.999], lands within 1.2e-3 of it on the fixtures). By
//! default the gradients are taken at the shared representation (the "upper
//! bound", UB).

use super::solve::{active_set_qp, live_tasks, normalized};
use super::{Capabilities, GpuSolve, GradSpace, KParams, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// Mgda has no hyper-parameters: its problem is solved exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Mgda;

/// The WGSL solve: the shared prelude, then shaders/mtl/mgda.wgsl.
pub const SHADER: SolveShader = solve_shader!("mgda");

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "mgda",
    aliases: &["mgda_ub"],
    summary: "MGDA-UB (Sener & Koltun 2018): min-norm point of the gradients' convex hull",
    defaults: "exact (active set); representation space",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Representation),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(Mgda),
};

impl GpuSolve for Mgda {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = KParams;

    fn params(&self, k: u32) -> KParams {
        KParams::new(k)
    }
}

/// MGDA (Sener & Koltun, NeurIPS 2018): the min-norm point of the convex hull,
///   w = argmin_{w ≥ 0, Σw = 1} wᵀ G w,
/// exactly, by the active-set QP on G / mean diagonal.
///
/// A task with a zero gradient (squared norm ≤ 1e-12 of the largest) puts 0
/// in the hull, so the min-norm point is 0: all the weight goes to the first
/// such task and the shared parameters get no update that step.
pub fn reference(g: &[f64], k: usize) -> Vec<f64> {
    let live = live_tasks(g, k);
    if let Some(z) = live.iter().position(|&l| !l) {
        return (0..k).map(|i| if i == z { 1.0 } else { 0.0 }).collect();
    }
    let h = normalized(g, k, 0.0);
    active_set_qp(&h, &vec![0.0; k], &vec![0.0; k], &live, k, true)
}
