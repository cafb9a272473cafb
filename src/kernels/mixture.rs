//! The gated mixture of E experts' outputs, out\[b,h\] = Σ_e g\[b,e\] Z\[b,e,h\],
//! and its one-pass backward (dZ and dg together). See shaders/mixture.wgsl.

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, record};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    experts: u32,
    width: u32,
    _pad: u32,
}

/// (B, E, H) from g (B×E) and Z (B×(E·H)).
fn dims(g: &Tensor, z: &Tensor) -> Result<(usize, usize, usize)> {
    let (b, e) = match *g.shape() {
        [b, e] if e > 0 => (b, e),
        _ => {
            return Err(Error::shape(
                "mixture gate",
                "B×E",
                format!("{:?}", g.shape()),
            ))
        }
    };
    match *z.shape() {
        [zb, eh] if zb == b && eh % e == 0 && eh > 0 => Ok((b, e, eh / e)),
        _ => Err(Error::shape(
            "mixture experts",
            format!("{b}×(E·H) with E = {e}"),
            format!("{:?}", z.shape()),
        )),
    }
}

/// out (B×H) = Σ_e g[:, e] ⊙ Z[:, e·H..(e+1)·H].
pub fn mixture(gpu: &Gpu, g: &Tensor, z: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let (b, e, h) = dims(g, z)?;
    out.expect_shape("mixture output", &[b, h])?;
    use Binding::*;
    record(
        gpu,
        "mixture.wgsl",
        "mixture",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &Params {
            rows: b as u32,
            experts: e as u32,
            width: h as u32,
            _pad: 0,
        },
        &[out, g, z],
        grid_1d(gpu, b * h)?,
    )
}

/// dZ = g ⊗ dout and dg\[b,e\] = Σ_h Z\[b,e,h\] dout\[b,h\], in one dispatch.
pub fn mixture_backward(
    gpu: &Gpu,
    g: &Tensor,
    z: &Tensor,
    dout: &Tensor,
    dg: &Tensor,
    dz: &Tensor,
) -> Result<Dispatch> {
    let (b, e, h) = dims(g, z)?;
    dout.expect_shape("mixture_backward dout", &[b, h])?;
    dg.expect_shape("mixture_backward dg", &[b, e])?;
    dz.expect_shape("mixture_backward dz", &[b, e * h])?;
    use Binding::*;
    record(
        gpu,
        "mixture.wgsl",
        "mixture_backward",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadWrite],
        &[],
        &Params {
            rows: b as u32,
            experts: e as u32,
            width: h as u32,
            _pad: 0,
        },
        &[dg, g, z, dout, dz],
        grid_1d(gpu, b * e)?,
    )
}
