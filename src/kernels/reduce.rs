//! Column sums (the bias gradient) and the sum of all elements. See shaders/reduce.wgsl.

use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::Tensor;
use crate::gpu::{Binding, Gpu};
use crate::kernels::{grid_1d, record};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,
    _pad: u32,
}

const BINDINGS: [Binding; 3] = [Binding::Uniform, Binding::ReadWrite, Binding::ReadOnly];

/// out\[j\] (+)= Σ_r x[r, j]; x is R×N, out has N elements.
pub fn sum_rows(gpu: &Gpu, x: &Tensor, out: &Tensor, accumulate: bool) -> Result<Dispatch> {
    let [rows, cols] = *x.shape() else {
        return Err(Error::shape(
            "sum_rows",
            "a 2-D matrix",
            format!("{:?}", x.shape()),
        ));
    };
    out.expect_numel("sum_rows output", cols)?;
    let params = Params {
        rows: rows as u32,
        cols: cols as u32,
        accumulate: accumulate as u32,
        _pad: 0,
    };
    record(
        gpu,
        "reduce.wgsl",
        "sum_rows",
        &BINDINGS,
        &[],
        &params,
        &[out, x],
        grid_1d(gpu, cols)?,
    )
}

/// out\[0\] (+)= Σ_i x\[i\]; out has one element.
pub fn sum_all(gpu: &Gpu, x: &Tensor, out: &Tensor, accumulate: bool) -> Result<Dispatch> {
    out.expect_numel("sum_all output", 1)?;
    let params = Params {
        rows: 1,
        cols: x.numel() as u32,
        accumulate: accumulate as u32,
        _pad: 0,
    };
    record(
        gpu,
        "reduce.wgsl",
        "sum_all",
        &BINDINGS,
        &[],
        &params,
        &[out, x],
        [1, 1, 1],
    )
}
