//! PCGrad: Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery for
//! Multi-Task Learning", NeurIPS 2020.
//!
//! When two task gradients conflict (g_i·g_j < 0), g_i is projected onto the
//! normal plane of g_j, meeting the other tasks in a random order:
//!
//!   g_i ← g_i - (g_i·g_j / ‖g_j‖²) g_j   whenever g_i·g_j < 0;    d = Σ_i g_i.
//!
//! Every dot product comes from the Gram matrix (`reference`); the random
//! order is a hash of (seed, step, task) computed on the GPU.
//!
//! Follows LibMTL's PCGrad (each task meets every task, itself included, in
//! its own shuffled order, projecting against the original gradients);
//! `tests/fidelity.rs` runs LibMTL with the order drawn here and agrees to
//! 4e-7. Differs on purpose: the order comes from the seeded hash, not Python's
//! `random`, so CPU and GPU draw the same one.

use super::solve::uniform;
use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// PcGrad's hyper-parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PcGrad {
    /// Seed of the random task order (the run's seed by default).
    pub seed: u32,
}

/// The WGSL solve: the shared prelude, then shaders/mtl/pcgrad.wgsl.
pub const SHADER: SolveShader = solve_shader!("pcgrad");

/// The WGSL `Params` of shaders/mtl/pcgrad.wgsl.
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
    name: "pcgrad",
    aliases: &[],
    summary: "PCGrad (Yu et al. 2020): project away conflicting gradients in random order",
    defaults: "",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |seed| Box::new(PcGrad { seed }),
};

impl GpuSolve for PcGrad {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
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

/// The order in which task `i` meets the others at `step`: all tasks sorted by
/// a random key uniform(seed, step, 16 i + m), ties by index.
pub fn task_order(k: usize, seed: u32, step: u32, i: usize) -> Vec<usize> {
    let key: Vec<f64> = (0..k)
        .map(|m| uniform(seed, step, (i * 16 + m) as u32))
        .collect();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| key[a].total_cmp(&key[b]).then(a.cmp(&b)));
    order
}

// ANCHOR: pcgrad_reference
/// PCGrad (Yu et al., NeurIPS 2020): each g_i, meeting the other tasks in a
/// random order, loses its component along g_j whenever g_i·g_j < 0:
///   g_i ← g_i - (g_i·g_j / ‖g_j‖²) g_j,
/// and the update is Σ_i g_i. Writing g_i = Σ_m c_im g_m, every dot product is
/// c_i·G_j, so the weights are w = Σ_i c_i.
pub fn reference(g: &[f64], k: usize, seed: u32, step: u32) -> Vec<f64> {
    let mut w = vec![0.0; k];
    for i in 0..k {
        let mut c = vec![0.0; k];
        c[i] = 1.0;
        for j in task_order(k, seed, step, i) {
            if j == i {
                continue;
            }
            let dot: f64 = (0..k).map(|m| c[m] * g[m * k + j]).sum();
            if dot < 0.0 && g[j * k + j] > 0.0 {
                c[j] -= dot / g[j * k + j];
            }
        }
        for m in 0..k {
            w[m] += c[m];
        }
    }
    w
}
// ANCHOR_END: pcgrad_reference
