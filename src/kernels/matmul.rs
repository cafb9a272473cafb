//! C = op(A)·op(B) [+ bias] [ReLU], or C += op(A)·op(B). See shaders/matmul.wgsl.

use crate::device::{Binding, Gpu};
use crate::error::{Error, Result};
use crate::kernels::{record, Dispatch};
use crate::tensor::Tensor;

/// Side of the square output tile each workgroup computes (WGSL `override TILE`).
pub const TILE: u32 = 16;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

/// Options of one product.
#[derive(Clone, Copy, Default)]
pub struct MatmulOptions<'a> {
    /// Use Aᵀ: A is stored K×M.
    pub trans_a: bool,
    /// Use Bᵀ: B is stored N×K.
    pub trans_b: bool,
    /// Add this length-N row vector to every row of C.
    pub bias: Option<&'a Tensor>,
    /// Apply max(·, 0) after the bias.
    pub relu: bool,
    /// C += op(A)·op(B) (for gradient accumulation); excludes bias and relu.
    pub accumulate: bool,
}

fn dims(op: &'static str, t: &Tensor, trans: bool) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, c] => Ok(if trans { (c, r) } else { (r, c) }),
        _ => Err(Error::shape(op, "a 2-D matrix", format!("{:?}", t.shape()))),
    }
}

/// Shape (M, N) of op(A)·op(B), checking that the inner dimensions agree.
pub fn output_shape(
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
) -> Result<(usize, usize)> {
    let (m, k) = dims("matmul", a, trans_a)?;
    let (k2, n) = dims("matmul", b, trans_b)?;
    if k != k2 {
        return Err(Error::shape(
            "matmul",
            format!("op(B) with {k} rows to match op(A) {m}x{k}"),
            format!("op(B) {k2}x{n}"),
        ));
    }
    Ok((m, n))
}

/// Record C = op(A)·op(B) with the epilogue in `opts`.
pub fn matmul(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> Result<Dispatch> {
    let (m, n) = output_shape(a, b, opts.trans_a, opts.trans_b)?;
    let k = if opts.trans_a {
        a.shape()[0]
    } else {
        a.shape()[1]
    };
    c.expect_shape("matmul output", &[m, n])?;
    if opts.accumulate && (opts.bias.is_some() || opts.relu) {
        return Err(Error::InvalidConfig(
            "matmul: accumulate cannot be combined with bias or relu".into(),
        ));
    }
    if let Some(bias) = opts.bias {
        bias.expect_numel("matmul bias", n)?;
    }
    let flags = opts.trans_a as u32
        | (opts.trans_b as u32) << 1
        | (opts.bias.is_some() as u32) << 2
        | (opts.relu as u32) << 3
        | (opts.accumulate as u32) << 4;
    let params = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        flags,
    };
    let gx = (n as u64).div_ceil(TILE as u64);
    let gy = (m as u64).div_ceil(TILE as u64);
    let max = gpu.limits.max_compute_workgroups_per_dimension as u64;
    if gx > max || gy > max {
        return Err(Error::DispatchTooLarge {
            workgroups: gx.max(gy),
            limit: max,
        });
    }
    // Without a bias the slot is bound to A; the kernel never reads it.
    let bias = opts.bias.unwrap_or(a);
    use Binding::*;
    record(
        gpu,
        "matmul.wgsl",
        "matmul",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &[("TILE", TILE as f64)],
        &params,
        &[c, a, b, bias],
        [gx as u32, gy as u32, 1],
    )
}
