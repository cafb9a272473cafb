//! LayerNorm (Ba, Kiros & Hinton, 2016), one unit: the layer (`layernorm`,
//! a learned scale γ and shift β, ones and zeros at the start), its tape op
//! with the backward beside the forward, the kernels' wrappers and their CPU
//! twins. The WGSL is `shaders/layer_norm.wgsl`.
//!
//!   y = γ ⊙ (x − μ)/√(σ² + ε) + β per row of x (B×H), σ² biased
//!   dx = r (g − mean g − x̂ mean(g x̂)), g = dy ⊙ γ, r = 1/√(σ² + ε)
//!   dγ = Σ_b dy ⊙ x̂,  dβ = Σ_b dy

use super::{no_arg, Layer, LayerInfo};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{elementwise, grid, matrix, Shader};
use crate::nn::{ParamId, ParamSet};
use crate::reference::Real;

/// The kernels: `shaders/layer_norm.wgsl`.
pub const SHADER: Shader = Shader {
    file: "layer_norm.wgsl",
    source: include_str!("../../../shaders/layer_norm.wgsl"),
};

// ---- the layer ------------------------------------------------------------------

#[derive(Debug)]
struct LayerNorm {
    gamma: ParamId,
    beta: ParamId,
    width: usize,
    /// The image it reads and outputs, if it is one.
    image: Option<super::Image>,
}

impl Layer for LayerNorm {
    fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        let gamma = params.var_f32(tape, self.gamma)?;
        let beta = params.var_f32(tape, self.beta)?;
        op(tape, x, gamma, beta)
    }
    fn output(&self) -> usize {
        self.width
    }
    fn image(&self) -> Option<super::Image> {
        self.image
    }
    fn params(&self) -> Vec<ParamId> {
        vec![self.gamma, self.beta]
    }
}

/// The layer's registry entry.
pub const INFO: LayerInfo = LayerInfo {
    name: "layernorm",
    summary:
        "layernorm — each row normalised to mean 0 and variance 1, then a learned scale and shift",
    shader: Some(SHADER),
    build: |a, c| {
        no_arg(a, "layernorm")?;
        let h = c.input;
        let gamma = c
            .params
            .add_drawn(&format!("{}.gamma", c.name), &[h], || vec![1.0; h])?;
        let beta = c
            .params
            .add_drawn(&format!("{}.beta", c.name), &[h], || vec![0.0; h])?;
        Ok(Box::new(LayerNorm {
            gamma,
            beta,
            width: h,
            image: c.image,
        }))
    },
};

// ---- the op -----------------------------------------------------------------------

/// Layer normalisation of each row of `x` (B×H) with scale `gamma` and
/// shift `beta` (H each), recorded on the tape with its backward.
pub fn op(tape: &mut Tape, x: Var, gamma: Var, beta: Var) -> Result<Var> {
    let gpu = tape.gpu;
    let (xv, gv, bv) = (
        tape.value(x).clone(),
        tape.value(gamma).clone(),
        tape.value(beta).clone(),
    );
    let y = Tensor::zeros(gpu, xv.shape(), "layer_norm")?;
    let rows = xv.shape().first().copied().unwrap_or(0);
    let stats = Tensor::zeros(gpu, &[rows, 2], "layer_norm stats")?;
    let fwd = forward(gpu, &xv, &gv, &bv, &y, &stats)?;
    // dx = r (g − mean g − x̂ mean(g x̂)), g = dy γ;  dγ = Σ_b dy x̂;  dβ = Σ_b dy
    let h = gv.numel();
    let rule = move |t: &mut Tape, dy: &Tensor| -> Result<()> {
        let gpu = t.gpu;
        t.contribute(x, |dx| backward_input(gpu, dy, &xv, &gv, &stats, dx))?;
        if t.requires_grad(gamma) || t.requires_grad(beta) {
            let at = beta_at(gpu, h);
            let both = Tensor::zeros(gpu, &[at + h], "layer_norm dgamma|dbeta")?;
            t.record_backward(backward_params(gpu, dy, &xv, &stats, &both)?);
            let (dg, db) = (both.slice(0, gv.shape())?, both.slice(at, gv.shape())?);
            t.contribute(gamma, |g| elementwise::scale(gpu, &dg, 1.0, g))?;
            t.contribute(beta, |g| elementwise::scale(gpu, &db, 1.0, g))?;
        }
        Ok(())
    };
    Ok(tape.op("layer_norm", &[x, gamma, beta], y, vec![fwd], rule))
}

// ---- the kernels ------------------------------------------------------------------

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
    SHADER.record(
        gpu,
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
    SHADER.record(
        gpu,
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
    SHADER.record(
        gpu,
        "backward_params",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &params(b, h, at),
        &[dparams, stats, dy, x],
        grid_for(gpu, h)?,
    )
}

// ---- the CPU twins ------------------------------------------------------------------

/// The forward kernel's CPU twin: layer normalisation of each row of x (B×H): y = γ ⊙ (x − μ)/√(σ² + ε) + β,
/// σ² biased. Returns y and per row (μ, 1/√(σ² + ε)).
pub fn reference<T: Real>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    b: usize,
    h: usize,
    eps: T,
) -> (Vec<T>, Vec<T>) {
    let n = T::from_f64(h as f64);
    let mut y = vec![T::zero(); b * h];
    let mut stats = vec![T::zero(); 2 * b];
    for r in 0..b {
        let row = &x[r * h..(r + 1) * h];
        let mut sum = T::zero();
        for &v in row {
            sum += v;
        }
        let mu = sum / n;
        let mut sq = T::zero();
        for &v in row {
            sq += (v - mu) * (v - mu);
        }
        let rstd = T::one() / (sq / n + eps).sqrt();
        for j in 0..h {
            y[r * h + j] = gamma[j] * (row[j] - mu) * rstd + beta[j];
        }
        stats[2 * r] = mu;
        stats[2 * r + 1] = rstd;
    }
    (y, stats)
}

/// The backward kernels' CPU twin: (dx, dγ, dβ) from dy (B×H).
pub fn reference_backward<T: Real>(
    dy: &[T],
    x: &[T],
    gamma: &[T],
    b: usize,
    h: usize,
    eps: T,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (_, stats) = reference(x, gamma, &vec![T::zero(); h], b, h, eps);
    let n = T::from_f64(h as f64);
    let (mut dx, mut dgamma, mut dbeta) = (
        vec![T::zero(); b * h],
        vec![T::zero(); h],
        vec![T::zero(); h],
    );
    for r in 0..b {
        let (mu, rstd) = (stats[2 * r], stats[2 * r + 1]);
        let xhat = |j: usize| (x[r * h + j] - mu) * rstd;
        let (mut mean_g, mut mean_gx) = (T::zero(), T::zero());
        for j in 0..h {
            let g = dy[r * h + j] * gamma[j];
            mean_g += g / n;
            mean_gx += g * xhat(j) / n;
            dgamma[j] += dy[r * h + j] * xhat(j);
            dbeta[j] += dy[r * h + j];
        }
        for j in 0..h {
            dx[r * h + j] = rstd * (dy[r * h + j] * gamma[j] - mean_g - xhat(j) * mean_gx);
        }
    }
    (dx, dgamma, dbeta)
}
