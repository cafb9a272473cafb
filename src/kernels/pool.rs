//! Max and average pooling over NHWC images, forward and backward. See
//! shaders/maxpool.wgsl and shaders/avgpool.wgsl. The geometry is a
//! convolution's ([`ConvGeometry`]) without padding; the output keeps the
//! channels: B·OH·OW·C.

use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::im2col::{params, ConvGeometry};
use crate::kernels::{grid_1d, record};

/// Elements of a pooled batch: B·OH·OW·C.
pub fn pooled_len(g: &ConvGeometry) -> usize {
    g.rows() * g.channels
}

fn check(op: &'static str, g: &ConvGeometry, image: &Tensor, pooled: &Tensor) -> Result<()> {
    if g.pad != 0 {
        return Err(Error::InvalidConfig(format!(
            "{op}: pooling takes no padding, got {}",
            g.pad
        )));
    }
    if image.dtype() != DType::F32 || pooled.dtype() != DType::F32 {
        return Err(Error::shape(op, "f32 values", "another type"));
    }
    image.expect_numel(op, g.image_len())?;
    pooled.expect_numel(op, pooled_len(g))
}

fn check_arg(op: &'static str, g: &ConvGeometry, arg: &Tensor) -> Result<()> {
    if arg.dtype() != DType::U32 {
        return Err(Error::shape(op, "u32 argmax indices", "another type"));
    }
    arg.expect_numel(op, pooled_len(g))
}

/// The kernels' invocations: one per pixel of `t` (all its channels).
fn pixels(t: &Tensor, g: &ConvGeometry) -> usize {
    t.numel() / g.channels
}

/// y = the maximum of each window of x, `arg` its index in x.
pub fn max_forward(
    gpu: &Gpu,
    g: &ConvGeometry,
    x: &Tensor,
    y: &Tensor,
    arg: &Tensor,
) -> Result<Dispatch> {
    check("max pool", g, x, y)?;
    check_arg("max pool", g, arg)?;
    use Binding::*;
    record(
        gpu,
        "maxpool.wgsl",
        "forward",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly],
        &[],
        &params(g, pixels(y, g)),
        &[y, arg, x],
        grid_1d(gpu, pixels(y, g))?,
    )
}

/// dx from dy: each output's gradient to the input element its maximum was.
pub fn max_backward(
    gpu: &Gpu,
    g: &ConvGeometry,
    dy: &Tensor,
    arg: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    check("max pool backward", g, dx, dy)?;
    check_arg("max pool backward", g, arg)?;
    use Binding::*;
    record(
        gpu,
        "maxpool.wgsl",
        "backward",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly],
        &[],
        &params(g, pixels(dx, g)),
        &[dx, arg, dy],
        grid_1d(gpu, pixels(dx, g))?,
    )
}

/// y = the mean of each window of x.
pub fn avg_forward(gpu: &Gpu, g: &ConvGeometry, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    check("average pool", g, x, y)?;
    use Binding::*;
    record(
        gpu,
        "avgpool.wgsl",
        "forward",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &params(g, pixels(y, g)),
        &[y, x],
        grid_1d(gpu, pixels(y, g))?,
    )
}

/// dx from dy: each output's gradient spread evenly over its window.
pub fn avg_backward(gpu: &Gpu, g: &ConvGeometry, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    check("average pool backward", g, dx, dy)?;
    use Binding::*;
    record(
        gpu,
        "avgpool.wgsl",
        "backward",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &params(g, pixels(dx, g)),
        &[dx, dy],
        grid_1d(gpu, pixels(dx, g))?,
    )
}
