//! Half precision: a mixed-precision matmul (any operand f16, f32
//! accumulation), and casts between f32 and f16. See shaders/matmul_f16.wgsl. Every entry point checks the
//! adapter's `SHADER_F16` feature first and returns [`Error::MissingFeature`]
//! without it, so a shader is never compiled where it cannot run.

use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::{Binding, Gpu};
use crate::gpu::{DType, Tensor};
use crate::kernels::matmul::{plan, workgroup, MatmulKernel, MatmulOptions};
use crate::kernels::{grid_1d, record};

/// The casts' parameters (the WGSL `Params` with m = n elements).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CastParams {
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

/// Record C = op(A)·op(B) with the options of [`MatmulOptions`], where any of
/// A, B, C and the mask may be f16 (f32 accumulation); checked by the same
/// [`plan`] as the f32 kernel.
pub fn matmul_mixed(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
    wg: (u32, u32),
) -> Result<Dispatch> {
    opts.refuse_replicas("the mixed-precision matmul")?;
    require_f16(gpu)?;
    if gpu.limits.max_storage_buffers_per_shader_stage < 10 {
        return Err(Error::MissingFeature {
            feature: "10 storage buffers per shader stage",
            why: format!(
                "{} allows {}; the mixed-precision matmul binds 10",
                gpu.report, gpu.limits.max_storage_buffers_per_shader_stage
            ),
        });
    }
    let plan = plan(gpu, a, b, c, &opts, wg, MatmulKernel::Register.tile(wg))?;
    super::matmul::check_k_fits(gpu, "the mixed-precision matmul (no split-K)", plan.k)?;
    let f16 = |t: &Tensor| t.dtype() == DType::F16;
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let mut constants = plan.constants.clone();
    constants.extend([
        ("A_F16", flag(f16(a))),
        ("B_F16", flag(f16(b))),
        ("C_F16", flag(f16(c))),
        ("MASK_F16", flag(opts.mask.is_some_and(|(t, _)| f16(t)))),
    ]);
    // Each typed pair binds the real tensor on its side and a small scratch
    // buffer of the other type (never read) on the other.
    let s32 = Tensor::zeros(gpu, &[4], "matmul unused f32")?;
    let s32w = Tensor::zeros(gpu, &[4], "matmul unused f32 out")?;
    let s16 = Tensor::zeros_f16(gpu, &[4], "matmul unused f16")?;
    let s16w = Tensor::zeros_f16(gpu, &[4], "matmul unused f16 out")?;
    let pick = |t: &'_ Tensor, want16: bool| -> bool { f16(t) == want16 };
    let (c32, c16) = if f16(c) { (&s32w, c) } else { (c, &s16w) };
    let (a32, a16) = if pick(a, true) { (&s32, a) } else { (a, &s16) };
    let (b32, b16) = if pick(b, true) { (&s32, b) } else { (b, &s16) };
    let (m32, m16) = match opts.mask {
        Some((t, _)) if f16(t) => (&s32, t),
        Some((t, _)) => (t, &s16),
        None => (&s32, &s16),
    };
    let bias = opts.bias.unwrap_or(&s32);
    let dbias_scratch = Tensor::zeros(gpu, &[4], "matmul unused bias gradient")?;
    let dbias = opts.bias_grad.unwrap_or(&dbias_scratch);
    use Binding::*;
    record(
        gpu,
        "matmul_f16.wgsl",
        "matmul_mixed",
        &[
            Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadWrite,
            ReadOnly, ReadOnly, ReadOnly,
        ],
        &constants,
        &plan.params,
        &[c32, a32, b32, bias, m32, dbias, c16, a16, b16, m16],
        plan.grid,
    )
}

/// Record C (f32) = op(A)·op(B) [+ bias] \[ReLU\] with A and B in f16.
#[allow(clippy::too_many_arguments)]
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
    let opts = MatmulOptions {
        trans_a,
        trans_b,
        bias,
        relu,
        ..Default::default()
    };
    matmul_mixed(gpu, a, b, c, opts, workgroup(gpu)?)
}

/// Record y16 = f16(x), elementwise.
pub fn to_f16(gpu: &Gpu, x: &Tensor, y16: &Tensor) -> Result<Dispatch> {
    cast(gpu, "to_f16", (x, DType::F32), (y16, DType::F16))
}

/// Record y = f32(x16), elementwise.
pub fn to_f32(gpu: &Gpu, x16: &Tensor, y: &Tensor) -> Result<Dispatch> {
    cast(gpu, "to_f32", (x16, DType::F16), (y, DType::F32))
}

/// One of the casts: `from` and `to` with the dtypes they must have.
fn cast(
    gpu: &Gpu,
    entry: &'static str,
    (x, from): (&Tensor, DType),
    (y, to): (&Tensor, DType),
) -> Result<Dispatch> {
    require_f16(gpu)?;
    expect_dtype(entry, x, from)?;
    expect_dtype(entry, y, to)?;
    y.expect_numel(entry, x.numel())?;
    let params = CastParams {
        m: x.numel() as u32,
        n: 0,
        k: 0,
        flags: 0,
    };
    use Binding::*;
    record(
        gpu,
        "matmul_f16.wgsl",
        entry,
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &params,
        &[y, x],
        grid_1d(gpu, x.numel())?,
    )
}
