//! Inverted dropout with a seeded hash mask (forward and backward are the
//! same masked scaling), reading the GPU step counter
//! ([`super::step_counter`]). See shaders/dropout.wgsl.

use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, record};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    seed: u32,
    rate: f32,
    _pad: u32,
}

/// y = keep ? x / (1 − rate) : 0, keep drawn from (element, `seed`, `step[0]`).
/// The backward is the same call on dy.
pub fn masked(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    step: &Tensor,
    seed: u32,
    rate: f32,
) -> Result<Dispatch> {
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::InvalidConfig(format!(
            "a dropout rate is in [0, 1), got {rate}"
        )));
    }
    if x.dtype() != DType::F32 || step.dtype() != DType::U32 {
        return Err(Error::shape(
            "dropout",
            "f32 values and a u32 step",
            format!("{:?} and {:?}", x.dtype(), step.dtype()),
        ));
    }
    y.expect_shape("dropout y", x.shape())?;
    step.expect_numel("dropout step", 1)?;
    use Binding::*;
    record(
        gpu,
        "dropout.wgsl",
        "masked",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &Params {
            n: x.numel() as u32,
            seed,
            rate,
            _pad: 0,
        },
        &[y, x, step],
        grid_1d(gpu, x.numel())?,
    )
}
