//! A convolution computed directly (the implicit GEMM): forward with the
//! bias and ReLU fused, and the weight, bias and input gradients, none of
//! them writing im2col's patch matrix. See shaders/conv_direct.wgsl; the
//! default convolution is im2col then the matmul ([`super::im2col`]), and
//! `TASKGRAD_CONV=direct` selects this one.

use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::im2col::ConvGeometry;
use crate::kernels::{grid_1d, record};

const FILE: &str = "conv_direct.wgsl";

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    height: u32,
    width: u32,
    channels: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    out_h: u32,
    out_w: u32,
    out_channels: u32,
    relu: u32,
    n: u32,
}

fn params(g: &ConvGeometry, out: usize, relu: bool, n: usize) -> Params {
    Params {
        batch: g.batch as u32,
        height: g.height as u32,
        width: g.width as u32,
        channels: g.channels as u32,
        kernel: g.kernel as u32,
        stride: g.stride as u32,
        pad: g.pad as u32,
        out_h: g.out_h() as u32,
        out_w: g.out_w() as u32,
        out_channels: out as u32,
        relu: relu as u32,
        n: n as u32,
    }
}

/// Check the f32 operands: the image `x` (B·H·W·C), the weights `w`
/// ((K·K·C) × O) and an output-shaped `y` ((B·OH·OW) × O).
fn check(op: &'static str, g: &ConvGeometry, x: &Tensor, w: &Tensor, y: &Tensor) -> Result<usize> {
    if [x, w, y].iter().any(|t| t.dtype() != DType::F32) {
        return Err(Error::shape(op, "f32 tensors", "another type"));
    }
    let out = w.shape().last().copied().unwrap_or(0);
    x.expect_numel(op, g.image_len())?;
    w.expect_numel(op, g.patch() * out)?;
    y.expect_numel(op, g.rows() * out)?;
    Ok(out)
}

/// y = act(conv(x, w) + b), ReLU when `relu`.
pub fn forward(
    gpu: &Gpu,
    g: &ConvGeometry,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
    relu: bool,
) -> Result<Dispatch> {
    let out = check("direct conv", g, x, w, y)?;
    b.expect_numel("direct conv bias", out)?;
    let n = g.rows() * out.div_ceil(4);
    use Binding::*;
    record(
        gpu,
        FILE,
        "forward",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &[],
        &params(g, out, relu, n),
        &[y, x, w, b],
        grid_1d(gpu, n)?,
    )
}

/// dw ((K·K·C) × O) = Σ_r x(r, j) dz[r, o], dz = dy masked by y > 0 when `relu`.
pub fn weight_grad(
    gpu: &Gpu,
    g: &ConvGeometry,
    x: &Tensor,
    dy: &Tensor,
    y: &Tensor,
    dw: &Tensor,
    relu: bool,
) -> Result<Dispatch> {
    let out = check("direct conv dw", g, x, dw, y)?;
    dy.expect_numel("direct conv dw", y.numel())?;
    use Binding::*;
    record(
        gpu,
        FILE,
        "weight_grad",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &[],
        &params(g, out, relu, dw.numel()),
        &[dw, x, dy, y],
        grid_1d(gpu, dw.numel())?,
    )
}

/// db (O) = Σ_r dz[r, o].
pub fn bias_grad(
    gpu: &Gpu,
    g: &ConvGeometry,
    dy: &Tensor,
    y: &Tensor,
    db: &Tensor,
    relu: bool,
) -> Result<Dispatch> {
    let out = db.numel();
    dy.expect_numel("direct conv db", g.rows() * out)?;
    y.expect_numel("direct conv db", g.rows() * out)?;
    let unused = Tensor::zeros(gpu, &[1], "direct conv unused")?;
    use Binding::*;
    record(
        gpu,
        FILE,
        "bias_grad",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &[],
        &params(g, out, relu, out),
        &[db, dy, y, &unused],
        grid_1d(gpu, out)?,
    )
}

/// dx (B·H·W·C) = the adjoint of the convolution applied to dz.
#[allow(clippy::too_many_arguments)]
pub fn input_grad(
    gpu: &Gpu,
    g: &ConvGeometry,
    dy: &Tensor,
    y: &Tensor,
    w: &Tensor,
    dx: &Tensor,
    relu: bool,
) -> Result<Dispatch> {
    let out = check("direct conv dx", g, dx, w, y)?;
    dy.expect_numel("direct conv dx", y.numel())?;
    use Binding::*;
    record(
        gpu,
        FILE,
        "input_grad",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &[],
        &params(g, out, relu, dx.numel()),
        &[dx, dy, y, w],
        grid_1d(gpu, dx.numel())?,
    )
}
