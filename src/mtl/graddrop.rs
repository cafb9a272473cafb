//! GradDrop: Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, "Just
//! Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout",
//! NeurIPS 2020 (Algorithm 1, lines 10–15); as torchjd's `GradDrop` with f
//! the identity and one leak ℓ for every task.
//!
//! It combines the task gradients coordinate by coordinate, not as a
//! weighted sum: in coordinate c, with the positive sign purity
//!
//!   P_c = ½ (1 + Σ_k g_kc / Σ_k |g_kc|)
//!
//! and a fresh uniform draw U_c, only the positive components survive when
//! P_c > U_c, only the negative ones when P_c < U_c, and leak ℓ of every
//! dropped component is kept: out_c = Σ_k (ℓ + (1 − ℓ) M_kc) g_kc. Where the
//! tasks agree in sign the whole column is kept; where they conflict the
//! combined step takes one side, more often the larger. A zero column gives
//! 0 (torchjd's 0/0 gives a NaN purity, which also masks everything).
//!
//! The draws are the seeded hash of the solves (`solve::uniform`, index c,
//! the step counted on the GPU), so CPU and GPU drop the same components.
//! LibMTL's GradDrop differs: it only works at the shared representation,
//! its purity is taken from the representation gradient times the sign of
//! the representation, summed over the batch, with 1e-7 added to Σ|g|. Here
//! `--space rep` applies torchjd's rule to the representation's
//! gradient, element by element. The kernel is `shaders/combine/graddrop.wgsl`.

use super::solve::uniform;
use super::{Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::gram::GradRows;
use crate::kernels::{grid_1d, Shader};

/// GradDrop's settings.
#[derive(Clone, Debug, Default)]
pub struct GradDrop {
    /// ℓ: how much of a dropped component is kept (torchjd and LibMTL: 0).
    pub leak: f32,
    /// Seed of the draws (the run's seed by default).
    pub seed: u32,
    /// The step counter of the draws (made by `build`).
    state: Option<Tensor>,
}

impl GradDrop {
    pub fn new(leak: f32, seed: u32) -> GradDrop {
        GradDrop {
            leak,
            seed,
            state: None,
        }
    }
}

/// The kernel: `shaders/combine/graddrop.wgsl`.
pub const SHADER: Shader = Shader {
    file: "combine/graddrop.wgsl",
    source: include_str!("../../shaders/combine/graddrop.wgsl"),
};

/// The WGSL `Params` of shaders/combine/graddrop.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    n: u32,
    stride: u32,
    seed: u32,
    leak: f32,
    _pad: [u32; 3],
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "graddrop",
    aliases: &[],
    summary:
        "GradDrop (Chen et al. 2020; torchjd): per coordinate, keep one sign, drawn by its purity",
    defaults: "leak 0",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: None,
    build: |seed| Box::new(GradDrop::new(0.0, seed)),
};

const BINDINGS: [Binding; 4] = [
    Binding::Uniform,
    Binding::ReadWrite,
    Binding::ReadOnly,
    Binding::ReadWrite,
];

impl Weighting for GradDrop {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        let state = Tensor::zeros(gpu, &[1], "graddrop step")?;
        let params = Params {
            k: 0,
            n: 0,
            stride: 0,
            seed: self.seed,
            leak: self.leak,
            _pad: [0; 3],
        };
        // The step advances after this step's combine (bindings 1 and 2 unused there).
        let unused = [
            Tensor::zeros(gpu, &[1], "graddrop advance (unused)")?,
            Tensor::zeros(gpu, &[1], "graddrop advance (unused)")?,
        ];
        let advance = SHADER.record(
            gpu,
            "advance",
            &BINDINGS,
            &[],
            &params,
            &[&unused[0], &unused[1], &state],
            [1, 1, 1],
        )?;
        self.state = Some(state);
        Ok(WeightingPlan {
            after_backward: vec![advance],
            ..WeightingPlan::default()
        })
    }
    fn coordinate_wise(&self) -> bool {
        true
    }
    fn record_combine(&self, gpu: &Gpu, rows: &GradRows, out: &Tensor) -> Result<Dispatch> {
        out.expect_numel("graddrop output", rows.n)?;
        let state = (self.state.as_ref())
            .ok_or_else(|| Error::internal("graddrop combine", "recorded before build"))?;
        let params = Params {
            k: rows.k as u32,
            n: rows.n as u32,
            stride: rows.stride as u32,
            seed: self.seed,
            leak: self.leak,
            _pad: [0; 3],
        };
        SHADER.record(
            gpu,
            "graddrop",
            &BINDINGS,
            &[],
            &params,
            &[out, &rows.rows, state],
            grid_1d(gpu, rows.n)?,
        )
    }
}

/// The draw U_c of coordinate `c` at `step`, as the kernel makes it.
pub fn draw(seed: u32, step: u32, c: usize) -> f64 {
    uniform(seed, step, c as u32)
}

/// GradDrop of the K rows of `rows` (K×N, row-major) with the draws `u`
/// (N values in [0, 1)): torchjd's rule, in f64.
pub fn reference(rows: &[f64], k: usize, u: &[f64], leak: f64) -> Vec<f64> {
    let n = u.len();
    (0..n)
        .map(|c| {
            let col = (0..k).map(|j| rows[j * n + c]);
            let (sum, mag) = col.fold((0.0, 0.0), |(s, m), v| (s + v, m + v.abs()));
            let purity = if mag > 0.0 {
                0.5 * (1.0 + sum / mag)
            } else {
                0.5
            };
            (0..k)
                .map(|j| {
                    let v = rows[j * n + c];
                    let kept = (purity > u[c] && v > 0.0) || (purity < u[c] && v < 0.0);
                    (leak + (1.0 - leak) * if kept { 1.0 } else { 0.0 }) * v
                })
                .sum()
        })
        .collect()
}
