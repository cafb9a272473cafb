//! im2col and col2im: a 2-D convolution over NHWC images as one matrix
//! product (cols · W), and its adjoint for the backward. See
//! shaders/im2col.wgsl.

use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, record};

/// The shapes of a 2-D convolution: B images of H×W pixels with C channels
/// (NHWC), a K×K kernel moved by `stride`, `pad` zero pixels on every side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeometry {
    /// The geometry, or why no convolution has it (a kernel larger than the
    /// padded image, a zero size or stride).
    pub fn new(
        (batch, height, width, channels): (usize, usize, usize, usize),
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Result<ConvGeometry> {
        let g = ConvGeometry {
            batch,
            height,
            width,
            channels,
            kernel,
            stride,
            pad,
        };
        if [batch, height, width, channels, kernel, stride].contains(&0) {
            return Err(Error::InvalidConfig(format!(
                "a convolution needs every size and the stride at least 1: {g:?}"
            )));
        }
        if kernel > height + 2 * pad || kernel > width + 2 * pad {
            return Err(Error::InvalidConfig(format!(
                "a {kernel}×{kernel} kernel does not fit a {height}×{width} image padded by {pad}"
            )));
        }
        Ok(g)
    }
    /// OH = (H + 2P − K)/S + 1.
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.pad - self.kernel) / self.stride + 1
    }
    /// OW = (W + 2P − K)/S + 1.
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.pad - self.kernel) / self.stride + 1
    }
    /// Rows of cols: one per output pixel, B·OH·OW.
    pub fn rows(&self) -> usize {
        self.batch * self.out_h() * self.out_w()
    }
    /// Columns of cols: one patch, K·K·C.
    pub fn patch(&self) -> usize {
        self.kernel * self.kernel * self.channels
    }
    /// Elements of one batch of images, B·H·W·C.
    pub fn image_len(&self) -> usize {
        self.batch * self.height * self.width * self.channels
    }
}

/// The uniform parameters of the image kernels (im2col.wgsl, maxpool.wgsl,
/// avgpool.wgsl share this `Params`): the geometry, OH, OW and the number
/// of invocations `n`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    batch: u32,
    height: u32,
    width: u32,
    channels: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    out_h: u32,
    out_w: u32,
    n: u32,
    _pad: [u32; 2],
}

pub(crate) fn params(g: &ConvGeometry, n: usize) -> Params {
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
        n: n as u32,
        _pad: [0; 2],
    }
}

fn check(op: &'static str, g: &ConvGeometry, image: &Tensor, cols: &Tensor) -> Result<()> {
    if image.dtype() != DType::F32 || cols.dtype() != DType::F32 {
        return Err(Error::shape(op, "f32 tensors", "another type"));
    }
    image.expect_numel(op, g.image_len())?;
    cols.expect_shape(op, &[g.rows(), g.patch()])
}

/// cols ((B·OH·OW) × (K·K·C)) from the images x (B·H·W·C, NHWC).
pub fn im2col(gpu: &Gpu, g: &ConvGeometry, x: &Tensor, cols: &Tensor) -> Result<Dispatch> {
    check("im2col", g, x, cols)?;
    // One invocation per (row of cols, kernel row kh).
    let n = g.rows() * g.kernel;
    use Binding::*;
    record(
        gpu,
        "im2col.wgsl",
        "im2col",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &params(g, n),
        &[cols, x],
        grid_1d(gpu, n)?,
    )
}

/// dx (B·H·W·C) from dcols: the adjoint of [`im2col`], overwriting dx.
pub fn col2im(gpu: &Gpu, g: &ConvGeometry, dcols: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    check("col2im", g, dx, dcols)?;
    // One invocation per input pixel, all its channels.
    let n = g.batch * g.height * g.width;
    use Binding::*;
    record(
        gpu,
        "im2col.wgsl",
        "col2im",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &params(g, n),
        &[dx, dcols],
        grid_1d(gpu, n)?,
    )
}
