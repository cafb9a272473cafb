//! The moving average of the per-task gradient rows that DB-MTL and MoCo
//! keep (`shaders/combine/memory.wgsl`): its kernel and its CPU twin.

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::gram::GradRows;
use crate::kernels::{grid_1d, Shader};
use crate::mtl::GradSpace;

/// The kernel: `shaders/combine/memory.wgsl`.
pub const SHADER: Shader = Shader {
    file: "combine/memory.wgsl",
    source: include_str!("../../shaders/combine/memory.wgsl"),
};

/// How this step's rows enter the average (the kernel's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// DB-MTL: m ← η m + (1 − η) g.
    Keep,
    /// MoCo: m ← (1 − η) m + η s g, s_k = L_k / (‖g_k‖ + 1e-8).
    Track,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    n: u32,
    stride: u32,
    mode: u32,
    beta: f32,
    sigma: f32,
    _pad: [u32; 2],
}

/// The rate η_t = β / t^σ at step t = 1, 2, ….
pub fn rate(beta: f64, sigma: f64, t: u32) -> f64 {
    beta / (t as f64).powf(sigma)
}

/// Record the update of `memory` (K×N, zero at the start) from `rows`;
/// `state` holds the method's step counter in its first value, `gram` is
/// the rows' Gram matrix and `losses` this step's losses (read by `Track`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    gpu: &Gpu,
    update: Update,
    beta: f32,
    sigma: f32,
    rows: &GradRows,
    memory: &Tensor,
    state: &Tensor,
    gram: &Tensor,
    losses: &Tensor,
) -> Result<Dispatch> {
    memory.expect_numel("gradient memory", rows.k * rows.n)?;
    gram.expect_numel("gradient memory gram", rows.k * rows.k)?;
    losses.expect_numel("gradient memory losses", rows.k)?;
    let params = Params {
        k: rows.k as u32,
        n: rows.n as u32,
        stride: rows.stride as u32,
        mode: match update {
            Update::Keep => 0,
            Update::Track => 1,
        },
        beta,
        sigma,
        _pad: [0; 2],
    };
    use Binding::*;
    SHADER.record(
        gpu,
        "ema_rows",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly],
        &[],
        &params,
        &[memory, &rows.rows, state, gram, losses],
        grid_1d(gpu, rows.k * rows.n)?,
    )
}

/// One update of `memory` (K×N) from `rows` (K×N) at step t, in f64.
pub fn reference(
    update: Update,
    beta: f64,
    sigma: f64,
    t: u32,
    memory: &mut [f64],
    rows: &[f64],
    losses: &[f64],
) {
    let k = losses.len();
    let n = rows.len() / k;
    let eta = rate(beta, sigma, t);
    for j in 0..k {
        let row = &rows[j * n..(j + 1) * n];
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        let s = losses[j] / (norm + 1e-8);
        for (m, &v) in memory[j * n..(j + 1) * n].iter_mut().zip(row) {
            *m = match update {
                Update::Keep => eta * *m + (1.0 - eta) * v,
                Update::Track => (1.0 - eta) * *m + eta * s * v,
            };
        }
    }
}

/// A memory kept over steps means something only for the shared
/// parameters' gradients (the representation's come from other batches
/// each step): `method` refuses `space` otherwise, as LibMTL does.
pub(crate) fn parameters_only(method: &str, space: GradSpace) -> Result<()> {
    if space == GradSpace::Parameters {
        return Ok(());
    }
    Err(Error::InvalidConfig(format!(
        "{method} keeps a memory of the shared parameters' gradients over steps, which \
         means nothing for representation gradients (other batches each step): use \
         --space params"
    )))
}
