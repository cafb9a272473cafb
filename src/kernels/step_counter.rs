//! The training step counter on the GPU, advanced once per step inside its
//! submit; dropout's masks read it. See shaders/step_counter.wgsl.

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::record;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CounterParams {
    by: u32,
    _pad: [u32; 3],
}

/// step\[0\] += 1: the last dispatch of a training step that has dropout.
pub fn advance(gpu: &Gpu, step: &Tensor) -> Result<Dispatch> {
    step.expect_numel("step counter", 1)?;
    record(
        gpu,
        "step_counter.wgsl",
        "advance",
        &[Binding::Uniform, Binding::ReadWrite],
        &[],
        &CounterParams {
            by: 1,
            _pad: [0; 3],
        },
        &[step],
        [1, 1, 1],
    )
}
