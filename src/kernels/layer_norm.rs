//! Layer normalisation over rows with a learned scale and shift, and its
//! backward. See shaders/layer_norm.wgsl.

use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{grid, matrix, record};

/// ε under the square root: PyTorch's default.
pub const EPS: f32 = 1e-5;

/// Invocations per workgroup (the WGSL `override WG`): one row or column each.
const LN_WG: u64 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    beta_at: u32,
}

fn params(rows: usize, cols: usize, beta_at: usize) -> Params {
    Params {
        rows: rows as u32,
        cols: cols as u32,
        eps: EPS,
        beta_at: beta_at as u32,
    }
}

/// Where dβ starts in the output of [`backward_params`]: the first
/// storage-binding offset at or after H, so each half can be bound alone.
pub fn beta_at(gpu: &Gpu, h: usize) -> usize {
    let a = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    h.div_ceil(a) * a
}

fn f32_matrix(op: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    if t.dtype() != DType::F32 {
        return Err(Error::shape(op, "f32 values", format!("{:?}", t.dtype())));
    }
    matrix(op, t)
}

fn grid_for(gpu: &Gpu, n: usize) -> Result<[u32; 3]> {
    grid(gpu, (n as u64).div_ceil(LN_WG))
}

/// y = γ ⊙ (x − μ)/√(σ² + ε) + β per row of `x` (B×H); writes `stats` (B×2: μ, 1/√(σ²+ε)).
pub fn forward(
    gpu: &Gpu,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    y: &Tensor,
    stats: &Tensor,
) -> Result<Dispatch> {
    let (b, h) = f32_matrix("layer_norm x", x)?;
    gamma.expect_numel("layer_norm gamma", h)?;
    beta.expect_numel("layer_norm beta", h)?;
    y.expect_shape("layer_norm y", &[b, h])?;
    stats.expect_numel("layer_norm stats", 2 * b)?;
    use Binding::*;
    record(
        gpu,
        "layer_norm.wgsl",
        "forward",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &[],
        &params(b, h, 0),
        &[y, stats, x, gamma, beta],
        grid_for(gpu, b)?,
    )
}

/// dx from dy (B×H), the forward input x, γ and the forward's stats.
pub fn backward_input(
    gpu: &Gpu,
    dy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    stats: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    let (b, h) = f32_matrix("layer_norm x", x)?;
    dy.expect_shape("layer_norm dy", &[b, h])?;
    dx.expect_shape("layer_norm dx", &[b, h])?;
    gamma.expect_numel("layer_norm gamma", h)?;
    stats.expect_numel("layer_norm stats", 2 * b)?;
    use Binding::*;
    record(
        gpu,
        "layer_norm.wgsl",
        "backward_input",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &[],
        &params(b, h, 0),
        &[dx, stats, dy, x, gamma],
        grid_for(gpu, b)?,
    )
}

/// dγ (elements 0..H) and dβ (from [`beta_at`]) from dy (B×H), the forward
/// input x and the forward's stats.
pub fn backward_params(
    gpu: &Gpu,
    dy: &Tensor,
    x: &Tensor,
    stats: &Tensor,
    dparams: &Tensor,
) -> Result<Dispatch> {
    let (b, h) = f32_matrix("layer_norm x", x)?;
    dy.expect_shape("layer_norm dy", &[b, h])?;
    stats.expect_numel("layer_norm stats", 2 * b)?;
    let at = beta_at(gpu, h);
    dparams.expect_numel("layer_norm dgamma|dbeta", at + h)?;
    use Binding::*;
    record(
        gpu,
        "layer_norm.wgsl",
        "backward_params",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &params(b, h, at),
        &[dparams, stats, dy, x],
        grid_for(gpu, h)?,
    )
}
