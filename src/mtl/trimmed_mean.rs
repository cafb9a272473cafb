//! TrimmedMean: Yin, Chen, Ramchandran & Bartlett, "Byzantine-Robust
//! Distributed Learning: Towards Optimal Statistical Rates", ICML 2018; as
//! torchjd's `TrimmedMean(trim_number)`, an aggregator for federated learning
//! that torchjd offers beside the MTL methods (as Krum).
//!
//! It combines the task gradients coordinate by coordinate: in coordinate c
//! the K values are sorted, the t largest and the t smallest dropped, and
//! the rest averaged,
//!
//!   out_c = 1/(K − 2t) Σ_{q = t}^{K−1−t} g_(q)c.
//!
//! t = 0 is the mean of the rows; one task pulling hard in a coordinate is
//! left out there. It needs K ≥ 2t + 1 tasks (3 with the default t = 1;
//! torchjd has no default). The kernel is `shaders/combine/trimmed_mean.wgsl`.

use super::{Capabilities, GradSpace, MethodInfo, Weighting, WeightingContext, WeightingPlan};
use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::gram::GradRows;
use crate::kernels::{grid_1d, Shader};

/// TrimmedMean's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrimmedMean {
    /// t: how many of the largest and of the smallest values of each coordinate are dropped.
    pub trim: u32,
}

impl Default for TrimmedMean {
    fn default() -> Self {
        TrimmedMean { trim: 1 }
    }
}

/// The kernel: `shaders/combine/trimmed_mean.wgsl`.
pub const SHADER: Shader = Shader {
    file: "combine/trimmed_mean.wgsl",
    source: include_str!("../../shaders/combine/trimmed_mean.wgsl"),
};

/// The WGSL `Params` of shaders/combine/trimmed_mean.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    n: u32,
    stride: u32,
    trim: u32,
}

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "trimmed_mean",
    aliases: &["tm"],
    summary: "TrimmedMean (Yin et al. 2018; torchjd): per coordinate, the mean without the t largest and t smallest",
    defaults: "trim 1 (needs K ≥ 2·trim + 1)",
    min_tasks: 3,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: false,
    },
    shader: None,
    build: |_seed| Box::new(TrimmedMean::default()),
};

impl Weighting for TrimmedMean {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        Ok(WeightingPlan::default())
    }
    fn coordinate_wise(&self) -> bool {
        true
    }
    fn record_combine(&self, gpu: &Gpu, rows: &GradRows, out: &Tensor) -> Result<Dispatch> {
        out.expect_numel("trimmed_mean output", rows.n)?;
        if rows.k < 2 * self.trim as usize + 1 {
            return Err(Error::InvalidConfig(format!(
                "trimmed_mean with trim {} needs at least {} tasks, and there are {}",
                self.trim,
                2 * self.trim + 1,
                rows.k
            )));
        }
        let params = Params {
            k: rows.k as u32,
            n: rows.n as u32,
            stride: rows.stride as u32,
            trim: self.trim,
        };
        use Binding::*;
        SHADER.record(
            gpu,
            "trimmed_mean",
            &[Uniform, ReadWrite, ReadOnly],
            &[],
            &params,
            &[out, &rows.rows],
            grid_1d(gpu, rows.n)?,
        )
    }
}

/// TrimmedMean of the K rows of `rows` (K×N, row-major), in f64.
pub fn reference(rows: &[f64], k: usize, trim: usize) -> Vec<f64> {
    let n = rows.len() / k;
    (0..n)
        .map(|c| {
            let mut col: Vec<f64> = (0..k).map(|j| rows[j * n + c]).collect();
            col.sort_by(f64::total_cmp);
            let kept = &col[trim..k - trim];
            kept.iter().sum::<f64>() / kept.len() as f64
        })
        .collect()
}
