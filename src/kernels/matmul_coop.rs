//! The tensor-core product: C (f32) = op(A)·op(B) [+ bias] \[ReLU\] or
//! C += op(A)·op(B), with A and B in f16, through 16×16×16 cooperative
//! matrices (shaders/matmul_coop.wgsl). It runs only where the adapter offers
//! `EXPERIMENTAL_COOPERATIVE_MATRIX` with an f16 × f16 → f32 16×16×16
//! configuration ([`Gpu::has_coop_f16`]), and only for the products it can do
//! exactly ([`supports`]); `kernels::product` sends everything else to the
//! mixed-precision kernel, so no shape is ever computed wrong.

use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::matmul::{plan, MatmulOptions};
use crate::kernels::record;

/// Outputs per workgroup along each dimension (4×4 tiles of 16×16).
pub const BLOCK: u32 = 64;

/// Whether the cooperative-matrix kernel computes this product: A and B f16,
/// C f32, no ReLU mask or bias gradient, one replica, M and N multiples of 64, K of 16.
pub fn supports(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, opts: &MatmulOptions) -> bool {
    let multiple = |v: usize, of: usize| v > 0 && v.is_multiple_of(of);
    gpu.has_coop_f16()
        && a.dtype() == DType::F16
        && b.dtype() == DType::F16
        && c.dtype() == DType::F32
        && opts.mask.is_none()
        && opts.bias_grad.is_none()
        && opts.replica_count() == 1
        && c.shape().len() == 2
        && a.shape().len() == 2
        && multiple(c.shape()[0], 64)
        && multiple(c.shape()[1], 64)
        && multiple(
            if opts.trans_a {
                a.shape()[0]
            } else {
                a.shape()[1]
            },
            16,
        )
}

/// The two entry points of shaders/matmul_coop.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoopVariant {
    /// One subgroup per 64×64 block, operands straight from storage.
    Direct,
    /// Four subgroups per 128×128 block, operands staged in workgroup memory:
    /// needs subgroups of exactly 32 and M, N multiples of 128, K of 32.
    /// Opt-in: its staging loads single f16 values, and it measured slower
    /// than `Direct` (48 against 70 TFLOP/s at n = 4096 on an H100).
    /// Slower than `Direct` today (scalar staging loads); the next rung
    /// toward the tensor cores' peak is vector loads here.
    Staged,
}

/// Whether the staged variant can run this product on this adapter.
pub fn staged_fits(gpu: &Gpu, m: usize, n: usize, k: usize) -> bool {
    let info = gpu.adapter.get_info();
    info.subgroup_min_size == 32
        && info.subgroup_max_size == 32
        && m.is_multiple_of(128)
        && n.is_multiple_of(128)
        && k.is_multiple_of(32)
}

/// Record the product on the tensor cores (the direct variant: on an H100 it
/// ran 70 TFLOP/s at n = 4096 where the staged one with scalar staging loads
/// ran 48); refuses what [`supports`] refuses.
pub fn matmul_coop(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> Result<Dispatch> {
    matmul_coop_variant(gpu, a, b, c, opts, CoopVariant::Direct)
}

/// [`matmul_coop`] with a given variant.
pub fn matmul_coop_variant(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
    variant: CoopVariant,
) -> Result<Dispatch> {
    opts.refuse_replicas("the cooperative-matrix matmul")?;
    if !gpu.has_coop_f16() {
        return Err(Error::MissingFeature {
            feature: "EXPERIMENTAL_COOPERATIVE_MATRIX (16x16x16, f16 inputs, f32 accumulator)",
            why: format!("{} has no such cooperative matrices", gpu.report),
        });
    }
    let plan = plan(gpu, a, b, c, &opts, (1, 1), (1, 1))?;
    if !supports(gpu, a, b, c, &opts) {
        return Err(Error::InvalidConfig(format!(
            "matmul_coop takes f16 A and B, f32 C, no mask or bias gradient, M and N multiples \
             of 64 and K of 16; got {:?} x {:?} -> {:?}",
            a.shape(),
            b.shape(),
            c.shape()
        )));
    }
    let staged = variant == CoopVariant::Staged;
    if staged && !staged_fits(gpu, plan.m, plan.n, plan.k) {
        return Err(Error::InvalidConfig(format!(
            "the staged tensor-core matmul needs subgroups of 32 and M, N multiples of 128, K of \
             32; got {}x{}x{}",
            plan.m, plan.k, plan.n
        )));
    }
    let block = if staged { 2 * BLOCK } else { BLOCK } as u64;
    let blocks = (plan.m as u64).div_ceil(block) * (plan.n as u64).div_ceil(block);
    let grid = crate::kernels::grid(gpu, blocks)?;
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let constants = [
        ("TRANS_A", flag(opts.trans_a)),
        ("TRANS_B", flag(opts.trans_b)),
    ];
    // Without a bias its binding gets a scratch element (never read).
    let scratch = Tensor::zeros(gpu, &[1], "matmul_coop unused bias")?;
    let bias = opts.bias.unwrap_or(&scratch);
    use Binding::*;
    if staged {
        // A and B again at bindings 5 and 6, read as vec4<f16>.
        return record(
            gpu,
            "matmul_coop.wgsl",
            "matmul_coop_staged",
            &[
                Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly, ReadOnly,
            ],
            &constants,
            &plan.params,
            &[c, a, b, bias, a, b],
            grid,
        );
    }
    record(
        gpu,
        "matmul_coop.wgsl",
        "matmul_coop",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &constants,
        &plan.params,
        &[c, a, b, bias],
        grid,
    )
}
