//! C = op(A)·op(B) [+ bias] [ReLU], or C += op(A)·op(B), with the ReLU mask of
//! the backward pass and the bias gradient fused in. See shaders/matmul.wgsl.
//!
//! The workgroup shape (each invocation computes a 4×4 block) is chosen per
//! adapter at first use by a short timed search over the `WGX`/`WGY` override
//! constants, then cached on the [`Gpu`]; `TASKGRAD_MATMUL_WG=8x8` skips it.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::{Binding, Gpu};
use crate::gpu::{DType, Tensor};
use crate::kernels::record;

/// Outputs per invocation along each dimension (the register block).
pub const BLOCK: u32 = 4;
/// Workgroup shapes the timed search tries.
pub const CANDIDATES: [(u32, u32); 5] = [(8, 8), (16, 4), (4, 16), (16, 16), (32, 2)];
/// Sizes the search times: a small product (training steps of small models) and a large one.
const SEARCH_SIZES: [usize; 2] = [64, 256];

/// The uniform parameters of both matmul kernels.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

/// Which operand the ReLU mask applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    A,
    B,
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
    /// Multiply an operand by [mask > 0] as it is loaded; the mask has that operand's stored shape.
    pub mask: Option<(&'a Tensor, Operand)>,
    /// Also write db = Σ_k op(B)[k, :] (length N) here (accumulating when `accumulate`).
    pub bias_grad: Option<&'a Tensor>,
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

/// A product checked once for every matmul kernel (f32 and mixed
/// precision): its sizes, uniform parameters, grid and the override constants
/// all variants share.
pub struct MatmulPlan {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub(crate) params: Params,
    pub grid: [u32; 3],
    /// TRANS_A, TRANS_B, MASK_A, MASK_B, BIAS_GRAD, WGX, WGY.
    pub constants: Vec<(&'static str, f64)>,
}

/// Check `opts` against the operands and size the grid for workgroup `wg`
/// (each invocation computes a [`BLOCK`]×[`BLOCK`] block of C).
pub fn plan(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: &MatmulOptions,
    wg: (u32, u32),
) -> Result<MatmulPlan> {
    let (m, n) = output_shape(a, b, opts.trans_a, opts.trans_b)?;
    let k = if opts.trans_a {
        a.shape()[0]
    } else {
        a.shape()[1]
    };
    c.expect_shape("matmul output", &[m, n])?;
    for (what, t) in [("matmul A", a), ("matmul B", b), ("matmul C", c)] {
        if t.dtype() == DType::U32 {
            return Err(Error::shape(what, "f32 or f16 elements", "u32"));
        }
    }
    if opts.accumulate && (opts.bias.is_some() || opts.relu) {
        return Err(Error::InvalidConfig(
            "matmul: accumulate cannot be combined with bias or relu".into(),
        ));
    }
    if opts.bias.is_some() && opts.bias_grad.is_some() {
        return Err(Error::InvalidConfig(
            "matmul: bias and bias_grad exclude each other".into(),
        ));
    }
    for (what, t) in [
        ("matmul bias", opts.bias),
        ("matmul bias gradient", opts.bias_grad),
    ] {
        if let Some(t) = t {
            t.expect_numel(what, n)?;
            if t.dtype() != DType::F32 {
                return Err(Error::shape(
                    what,
                    "f32 elements",
                    format!("{:?}", t.dtype()),
                ));
            }
        }
    }
    if let Some((mask, operand)) = opts.mask {
        let target = if operand == Operand::A { a } else { b };
        mask.expect_shape("matmul mask", target.shape())?;
    }
    let gx = (n as u64).div_ceil((BLOCK * wg.0) as u64);
    let gy = (m as u64).div_ceil((BLOCK * wg.1) as u64);
    let max = gpu.limits.max_compute_workgroups_per_dimension as u64;
    if gx > max || gy > max {
        return Err(Error::DispatchTooLarge {
            workgroups: gx.max(gy),
            limit: max,
        });
    }
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    Ok(MatmulPlan {
        m,
        n,
        k,
        params: Params {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            flags: (opts.bias.is_some() as u32) << 2
                | (opts.relu as u32) << 3
                | (opts.accumulate as u32) << 4,
        },
        grid: [gx as u32, gy as u32, 1],
        constants: vec![
            ("TRANS_A", flag(opts.trans_a)),
            ("TRANS_B", flag(opts.trans_b)),
            ("MASK_A", flag(matches!(opts.mask, Some((_, Operand::A))))),
            ("MASK_B", flag(matches!(opts.mask, Some((_, Operand::B))))),
            ("BIAS_GRAD", flag(opts.bias_grad.is_some())),
            ("WGX", wg.0 as f64),
            ("WGY", wg.1 as f64),
        ],
    })
}

/// Record C = op(A)·op(B) with the epilogue in `opts`, all in f32 (the
/// mixed-precision product is `kernels::matmul_f16::matmul_mixed`;
/// `kernels::product` picks by dtype).
pub fn matmul(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> Result<Dispatch> {
    let wg = workgroup(gpu)?;
    matmul_with(gpu, a, b, c, opts, wg)
}

/// [`matmul`] with an explicit workgroup shape (WGX, WGY).
pub fn matmul_with(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
    wg: (u32, u32),
) -> Result<Dispatch> {
    let mask = opts.mask.map(|(t, _)| t);
    for (what, t) in [
        ("matmul A", Some(a)),
        ("matmul B", Some(b)),
        ("matmul C", Some(c)),
        ("matmul mask", mask),
    ] {
        if let Some(t) = t.filter(|t| t.dtype() != DType::F32) {
            return Err(Error::shape(
                what,
                "f32 elements (f16 products: matmul_f16::matmul_mixed)",
                format!("{:?}", t.dtype()),
            ));
        }
    }
    let plan = plan(gpu, a, b, c, &opts, wg)?;
    // Unused slots are bound to operands the kernel then never reads through them;
    // the unused writable slot gets a one-element scratch buffer.
    let bias_slot = opts.bias.unwrap_or(a);
    let mask_slot = mask.unwrap_or(a);
    let scratch;
    let dbias_slot = match opts.bias_grad {
        Some(t) => t,
        None => {
            scratch = Tensor::zeros(gpu, &[1], "matmul unused bias gradient")?;
            &scratch
        }
    };
    // vec4 loads of B: row-major, unmasked, rows of a multiple of 4 floats, and a
    // binding offset the vec4 view can start at.
    let b_vec4 = !opts.trans_b
        && opts.mask.is_none_or(|(_, o)| o != Operand::B)
        && plan.n % 4 == 0
        && b.offset().is_multiple_of(16);
    // The vec4 view must be at least one vec4 long even when unused.
    let scratch4;
    let b4_slot = if b_vec4 {
        b
    } else {
        scratch4 = Tensor::zeros(gpu, &[4], "matmul unused vec4 view")?;
        &scratch4
    };
    let mut constants = plan.constants.clone();
    constants.push(("B_VEC4", if b_vec4 { 1.0 } else { 0.0 }));
    use Binding::*;
    record(
        gpu,
        "matmul.wgsl",
        "matmul",
        &[
            Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadOnly,
        ],
        &constants,
        &plan.params,
        &[c, a, b, bias_slot, mask_slot, dbias_slot, b4_slot],
        plan.grid,
    )
}

/// The workgroup shape for this adapter: `TASKGRAD_MATMUL_WG`, else a timed
/// search (median of 5 runs of a 64³ and a 256³ product per candidate), once.
pub fn workgroup(gpu: &Gpu) -> Result<(u32, u32)> {
    if let Some(&wg) = gpu.matmul_wg.get() {
        return Ok(wg);
    }
    let wg = match std::env::var("TASKGRAD_MATMUL_WG") {
        Ok(s) => parse_wg(&s)?,
        Err(_) => search(gpu)?,
    };
    Ok(*gpu.matmul_wg.get_or_init(|| wg))
}

fn parse_wg(s: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::InvalidConfig(format!(
            "TASKGRAD_MATMUL_WG={s:?}: expected WGXxWGY, e.g. 8x8"
        ))
    };
    let (x, y) = s.split_once('x').ok_or_else(bad)?;
    let (x, y): (u32, u32) = (
        x.trim().parse().map_err(|_| bad())?,
        y.trim().parse().map_err(|_| bad())?,
    );
    if x == 0 || y == 0 || x * y > 256 {
        return Err(bad());
    }
    Ok((x, y))
}

fn search(gpu: &Gpu) -> Result<(u32, u32)> {
    let max_invocations = gpu.limits.max_compute_invocations_per_workgroup;
    let fits = |wg: &(u32, u32)| {
        wg.0 * wg.1 <= max_invocations
            && wg.0 <= gpu.limits.max_compute_workgroup_size_x
            && wg.1 <= gpu.limits.max_compute_workgroup_size_y
    };
    let candidates: Vec<(u32, u32)> = CANDIDATES.iter().copied().filter(fits).collect();
    // Median of 5 timed runs per candidate and size; the score adds each size's
    // time relative to the best candidate at that size.
    let mut score = vec![0.0f64; candidates.len()];
    for n in SEARCH_SIZES {
        let a = Tensor::from_slice(gpu, &[n, n], &vec![0.5; n * n], "matmul search A")?;
        let b = Tensor::from_slice(gpu, &[n, n], &vec![0.25; n * n], "matmul search B")?;
        let c = Tensor::zeros(gpu, &[n, n], "matmul search C")?;
        let mut medians = Vec::new();
        for &wg in &candidates {
            let d = matmul_with(gpu, &a, &b, &c, MatmulOptions::default(), wg)?;
            gpu.run(&[&d])?;
            gpu.wait()?;
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                gpu.run(&[&d])?;
                gpu.wait()?;
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            medians.push(times[2]);
        }
        let best = medians.iter().copied().fold(f64::INFINITY, f64::min);
        for (s, m) in score.iter_mut().zip(&medians) {
            *s += m / best;
        }
    }
    let best = (0..candidates.len())
        .min_by(|&i, &j| score[i].total_cmp(&score[j]))
        .unwrap_or(0);
    Ok(candidates.get(best).copied().unwrap_or((8, 8)))
}
