//! Half precision: an f16 matmul with f32 accumulation, and casts between f32
//! and f16. See shaders/matmul_f16.wgsl. Every entry point checks the
//! adapter's `SHADER_F16` feature first and returns [`Error::MissingFeature`]
//! without it, so a shader is never compiled where it cannot run.

use crate::device::{Binding, Gpu};
use crate::error::{Error, Result};
use crate::kernels::matmul::{output_shape, workgroup, BLOCK};
use crate::kernels::{grid_1d, record, Dispatch};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

fn require_f16(gpu: &Gpu) -> Result<()> {
    if gpu.has_f16() {
        Ok(())
    } else {
        Err(Error::MissingFeature {
            feature: "SHADER_F16",
            why: format!("{} cannot compute in f16; use f32 tensors", gpu.report),
        })
    }
}

fn expect_dtype(op: &'static str, t: &Tensor, dtype: DType) -> Result<()> {
    if t.dtype() != dtype {
        return Err(Error::shape(
            op,
            format!("{dtype:?} elements"),
            format!("{:?}", t.dtype()),
        ));
    }
    Ok(())
}

/// Record C (f32) = op(A)·op(B) [+ bias] [ReLU] with A and B in f16.
pub fn matmul_f16(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    trans_a: bool,
    trans_b: bool,
    bias: Option<&Tensor>,
    relu: bool,
) -> Result<Dispatch> {
    require_f16(gpu)?;
    expect_dtype("matmul_f16 A", a, DType::F16)?;
    expect_dtype("matmul_f16 B", b, DType::F16)?;
    expect_dtype("matmul_f16 C", c, DType::F32)?;
    let (m, n) = output_shape(a, b, trans_a, trans_b)?;
    let k = if trans_a { a.shape()[0] } else { a.shape()[1] };
    c.expect_shape("matmul_f16 output", &[m, n])?;
    if let Some(bias) = bias {
        expect_dtype("matmul_f16 bias", bias, DType::F32)?;
        bias.expect_numel("matmul_f16 bias", n)?;
    }
    let wg = workgroup(gpu)?;
    let params = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        flags: (bias.is_some() as u32) << 2 | (relu as u32) << 3,
    };
    let grid = [
        (n as u32).div_ceil(BLOCK * wg.0),
        (m as u32).div_ceil(BLOCK * wg.1),
        1,
    ];
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let constants = [
        ("TRANS_A", flag(trans_a)),
        ("TRANS_B", flag(trans_b)),
        ("WGX", wg.0 as f64),
        ("WGY", wg.1 as f64),
    ];
    // Without a bias the f32 slot gets a one-element buffer the kernel never reads.
    let unused;
    let bias_slot = match bias {
        Some(t) => t,
        None => {
            unused = Tensor::zeros(gpu, &[1], "matmul_f16 unused bias")?;
            &unused
        }
    };
    use Binding::*;
    record(
        gpu,
        "matmul_f16.wgsl",
        "matmul_f16",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &constants,
        &params,
        &[c, a, b, bias_slot],
        grid,
    )
}

/// Record y16 = f16(x), elementwise.
pub fn to_f16(gpu: &Gpu, x: &Tensor, y16: &Tensor) -> Result<Dispatch> {
    require_f16(gpu)?;
    expect_dtype("to_f16 input", x, DType::F32)?;
    expect_dtype("to_f16 output", y16, DType::F16)?;
    y16.expect_numel("to_f16 output", x.numel())?;
    let params = Params {
        m: x.numel() as u32,
        n: 0,
        k: 0,
        flags: 0,
    };
    use Binding::*;
    record(
        gpu,
        "matmul_f16.wgsl",
        "to_f16",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &params,
        &[y16, x],
        grid_1d(gpu, x.numel())?,
    )
}

/// Record y = f32(x16), elementwise.
pub fn to_f32(gpu: &Gpu, x16: &Tensor, y: &Tensor) -> Result<Dispatch> {
    require_f16(gpu)?;
    expect_dtype("to_f32 input", x16, DType::F16)?;
    expect_dtype("to_f32 output", y, DType::F32)?;
    y.expect_numel("to_f32 output", x16.numel())?;
    let params = Params {
        m: x16.numel() as u32,
        n: 0,
        k: 0,
        flags: 0,
    };
    use Binding::*;
    record(
        gpu,
        "matmul_f16.wgsl",
        "to_f32",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &params,
        &[y, x16],
        grid_1d(gpu, x16.numel())?,
    )
}
