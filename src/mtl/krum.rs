//! Krum: Blanchard, El Mhamdi, Guerraoui & Stainer, "Machine Learning with
//! Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017; as
//! torchjd's `Krum(n_byzantine, n_selected)` (an aggregator for federated
//! learning that torchjd offers beside the MTL methods).
//!
//! Each gradient is scored by how close it sits to its neighbours: with
//! f = `n_byzantine` gradients possibly adversarial, the score of g_i is
//! the sum of its distances to its K − f − 2 nearest other gradients,
//!
//!   s_i = Σ_{j ∈ N_i} ‖g_i − g_j‖,   ‖g_i − g_j‖² = G_ii + G_jj − 2 G_ij,
//!
//! and the update is the mean of the `n_selected` lowest-scored gradients
//! (Multi-Krum; one by default): weights 1/m on them, 0 elsewhere. As
//! torchjd, distances (not their squares, as the paper's) are summed. Ties
//! go to the lower task index. It needs K ≥ f + 3 tasks (3 with the
//! defaults); below that, a solve built by hand counts every other task
//! as a neighbour. In multi-task training it follows one task per step
//! (the most central), which is what it is for: outliers are left out.

use super::{Capabilities, GpuSolve, GradSpace, MethodInfo, SolvePhase};
use crate::kernels::mtl::SolveShader;
use crate::solve_shader;

/// Krum's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Krum {
    /// f: how many task gradients may be adversarial (torchjd requires it; 0 here).
    pub n_byzantine: u32,
    /// m: how many of the best-scored gradients are averaged (torchjd: 1).
    pub n_selected: u32,
}

impl Default for Krum {
    fn default() -> Self {
        Krum {
            n_byzantine: 0,
            n_selected: 1,
        }
    }
}

/// The WGSL solve: the shared prelude, then shaders/mtl/krum.wgsl.
pub const SHADER: SolveShader = solve_shader!("krum");

/// The WGSL `Params` of shaders/mtl/krum.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    k: u32,
    n_byzantine: u32,
    n_selected: u32,
    _pad: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "krum",
    aliases: &[],
    summary: "Krum (Blanchard et al. 2017; torchjd): the task gradient closest to its neighbours (Byzantine-robust)",
    defaults: "n_byzantine 0, n_selected 1 (needs K ≥ n_byzantine + 3)",
    min_tasks: 3,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(Krum::default()),
};

impl GpuSolve for Krum {
    const INFO: &'static MethodInfo = &INFO;
    const PHASE: SolvePhase = SolvePhase::Weights;
    const SHADER: &'static SolveShader = &SHADER;
    type Params = Params;

    fn params(&self, k: u32) -> Params {
        Params {
            k,
            n_byzantine: self.n_byzantine,
            n_selected: self.n_selected,
            _pad: 0,
        }
    }
}

/// Krum (torchjd): weights 1/m on the m gradients of lowest score, the
/// score of g_i the sum of its distances to its K − f − 2 nearest others
/// (at least 1); ties to the lower index.
pub fn reference(g: &[f64], k: usize, n_byzantine: usize, n_selected: usize) -> Vec<f64> {
    let near = k.saturating_sub(n_byzantine + 2).clamp(1, k.max(2) - 1);
    let dist = |i: usize, j: usize| {
        (g[i * k + i] + g[j * k + j] - 2.0 * g[i * k + j])
            .max(0.0)
            .sqrt()
    };
    let scores: Vec<f64> = (0..k)
        .map(|i| {
            let mut d: Vec<f64> = (0..k).filter(|&j| j != i).map(|j| dist(i, j)).collect();
            d.sort_by(f64::total_cmp);
            d.iter().take(near).sum()
        })
        .collect();
    let m = n_selected.clamp(1, k);
    let mut order: Vec<usize> = (0..k).collect();
    // Stable: equal scores keep the lower index first.
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut w = vec![0.0; k];
    for &i in order.iter().take(m) {
        w[i] = 1.0 / m as f64;
    }
    if k == 1 {
        w[0] = 1.0;
    }
    w
}
