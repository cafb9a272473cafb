//! The mixture-of-experts gate: a softmax over each row's E experts, and its
//! backward through the softmax Jacobian. See shaders/gate.wgsl.

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, record};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    experts: u32,
    _pad0: u32,
    _pad1: u32,
}

/// (B, E) of a B×E matrix.
fn rows_experts(what: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match *t.shape() {
        [b, e] if e > 0 => Ok((b, e)),
        _ => Err(Error::shape(what, "B×E, E ≥ 1", format!("{:?}", t.shape()))),
    }
}

/// g = softmax of each row of x (B×E).
pub fn gate(gpu: &Gpu, x: &Tensor, g: &Tensor) -> Result<Dispatch> {
    let (b, e) = rows_experts("gate input", x)?;
    g.expect_shape("gate output", &[b, e])?;
    use Binding::*;
    record(
        gpu,
        "gate.wgsl",
        "gate",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &Params {
            rows: b as u32,
            experts: e as u32,
            _pad0: 0,
            _pad1: 0,
        },
        &[g, x],
        grid_1d(gpu, b)?,
    )
}

/// dx = g ⊙ (dg - rowsum(g ⊙ dg)), all B×E.
pub fn gate_backward(gpu: &Gpu, g: &Tensor, dg: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    let (b, e) = rows_experts("gate_backward g", g)?;
    dg.expect_shape("gate_backward dg", &[b, e])?;
    dx.expect_shape("gate_backward dx", &[b, e])?;
    use Binding::*;
    record(
        gpu,
        "gate.wgsl",
        "gate_backward",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &Params {
            rows: b as u32,
            experts: e as u32,
            _pad0: 0,
            _pad1: 0,
        },
        &[dx, g, dg],
        grid_1d(gpu, b)?,
    )
}
