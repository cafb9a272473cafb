//! C = op(A)·op(B) [+ bias] \[ReLU\], or C += op(A)·op(B), with the ReLU mask of
//! the backward pass and the bias gradient fused in. See shaders/matmul.wgsl.
//!
//! Four kernels compute the same product (the ladder of BENCHMARKS.md):
//! naive (one output per invocation), register-blocked (4×4 per invocation,
//! no barriers), rows (8 rows × 8 or 4 columns per invocation, the rows
//! shared by a 1-D workgroup: fewer loads per multiply-add) and block-tiled
//! (8×8 per invocation, 16-wide k-slices staged in workgroup memory;
//! `tiled32` stages 32-wide ones). Small products use the register-blocked
//! kernel, or the rows kernels where they are faster; for large ones
//! ([`LARGE_MACS`]) a timed search per adapter picks the faster kernel, and
//! the register kernel's workgroup shape (`kernels::matmul_choice`).
//! `TASKGRAD_MATMUL=naive|register|rows|rows4|tiled|tiled32` forces one kernel
//! for every product (`rows` and `rows4` both mean the rows kernels, each
//! product taking the one for its width), `TASKGRAD_MATMUL_WG=8x8` the
//! register kernel's shape.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::dispatch::ReplicaAxis;
use crate::gpu::Dispatch;
use crate::gpu::{Binding, Gpu};
use crate::gpu::{DType, Tensor};

/// Outputs per invocation along each dimension (the register block).
pub const BLOCK: u32 = 4;
/// Workgroup shapes the timed search tries for the register-blocked kernel.
pub const CANDIDATES: [(u32, u32); 5] = [(8, 8), (16, 4), (4, 16), (16, 16), (32, 2)];

/// The uniform parameters of both matmul kernels.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    rep_a: u32,
    rep_b: u32,
    rep_c: u32,
    rep_bias: u32,
}

/// Several products of one shape in one dispatch (the replica axis of
/// independent runs: each replica's own weights, activations and
/// gradients): replica r's A lies `a·r` elements past the A given (its mask
/// too, when the mask applies to A), its B `b·r` past B's (or the mask's),
/// its C `c·r`, its bias and bias gradient `bias·r`. A stride may be 0 for
/// an operand every replica reads. Each replica's outputs are the same sums
/// in the same order as its product alone, so equal to them bit for bit.
/// The f32 kernels only (`matmul_mixed` and the tensor cores refuse it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replicas {
    pub count: usize,
    pub a: usize,
    pub b: usize,
    pub c: usize,
    pub bias: usize,
}

/// Which operand the ReLU mask applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Multiply an operand by \[mask > 0\] as it is loaded; the mask has that operand's stored shape.
    pub mask: Option<(&'a Tensor, Operand)>,
    /// Also write db = Σ_k op(B)[k, :] (length N) here (accumulating when `accumulate`).
    pub bias_grad: Option<&'a Tensor>,
    /// Run this product for several replicas at once (None: one).
    pub replicas: Option<Replicas>,
}

impl MatmulOptions<'_> {
    /// How many replicas the product runs for (1 without [`Replicas`]).
    pub fn replica_count(&self) -> usize {
        self.replicas.map_or(1, |r| r.count.max(1))
    }

    /// The replica axis of the f32 kernels' bindings (C, A, B, bias, mask,
    /// dbias): the mask moves with the operand it masks.
    fn axis(&self) -> ReplicaAxis {
        let r = self.replicas.unwrap_or_default();
        let mask = match self.mask {
            Some((_, Operand::B)) => r.b,
            _ => r.a,
        };
        ReplicaAxis {
            count: self.replica_count(),
            strides: vec![r.c, r.a, r.b, r.bias, mask, r.bias],
        }
    }

    /// Refuse replicas in a kernel without the replica axis.
    pub(crate) fn refuse_replicas(&self, kernel: &str) -> Result<()> {
        if self.replica_count() > 1 {
            return Err(Error::InvalidConfig(format!(
                "{kernel} has no replica axis: replicated products run in f32"
            )));
        }
        Ok(())
    }
}

fn dims(op: &'static str, t: &Tensor, trans: bool) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, c] => Ok(if trans { (c, r) } else { (r, c) }),
        _ => Err(Error::shape(op, "a 2-D matrix", format!("{:?}", t.shape()))),
    }
}

/// (m, n, k) of op(A)·op(B): [`output_shape`] and the length of the sums.
pub fn product_shape(
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
) -> Result<(usize, usize, usize)> {
    let (m, n) = output_shape(a, b, trans_a, trans_b)?;
    let (_, k) = dims("matmul", a, trans_a)?;
    Ok((m, n, k))
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

/// The options' own rules, and their tensors against the operands (N columns).
fn check_options(opts: &MatmulOptions, a: &Tensor, b: &Tensor, n: usize) -> Result<()> {
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
    Ok(())
}

/// Check `opts` against the operands and size the grid for workgroup `wg`,
/// each workgroup computing a `tile` of C (columns, rows).
pub fn plan(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: &MatmulOptions,
    wg: (u32, u32),
    tile: (u32, u32),
) -> Result<MatmulPlan> {
    let (m, n, k) = product_shape(a, b, opts.trans_a, opts.trans_b)?;
    c.expect_shape("matmul output", &[m, n])?;
    for (what, t) in [("matmul A", a), ("matmul B", b), ("matmul C", c)] {
        if t.dtype() == DType::U32 {
            return Err(Error::shape(what, "f32 or f16 elements", "u32"));
        }
    }
    check_options(opts, a, b, n)?;
    let gx = (n as u64).div_ceil(tile.0 as u64);
    let gy = (m as u64).div_ceil(tile.1 as u64);
    let gz = opts.replica_count() as u64;
    let max = gpu.limits.max_compute_workgroups_per_dimension as u64;
    if gx > max || gy > max || gz > max {
        return Err(Error::DispatchTooLarge {
            workgroups: gx.max(gy).max(gz),
            limit: max,
        });
    }
    let r = opts.replicas.unwrap_or_default();
    let stride = |s: usize| {
        u32::try_from(s).map_err(|_| {
            Error::InvalidConfig(format!(
                "matmul: a replica stride of {s} elements does not fit 32 bits"
            ))
        })
    };
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
            rep_a: stride(r.a)?,
            rep_b: stride(r.b)?,
            rep_c: stride(r.c)?,
            rep_bias: stride(r.bias)?,
        },
        grid: [gx as u32, gy as u32, gz as u32],
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
/// `kernels::product` picks by dtype). The kernel is the one chosen for this
/// adapter and the product's size class ([`choice`]), or `TASKGRAD_MATMUL`'s.
pub fn matmul(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> Result<Dispatch> {
    let (m, n, k) = product_shape(a, b, opts.trans_a, opts.trans_b)?;
    let (kernel, wg) = super::matmul_choice::choice(gpu)?.for_product_of(
        (m, n, k),
        forced_kernel(gpu)?,
        opts.replica_count(),
    );
    matmul_kernel(gpu, a, b, c, opts, kernel, wg)
}

/// Workgroups a product should keep busy on a GPU: fewer, and a long k is
/// split ([`splits_for`]).
pub const SPLIT_TARGET_WORKGROUPS: u64 = 512;
/// Shortest k-slice of a split.
pub const MIN_SPLIT_K: usize = 32;
/// On a CPU adapter each workgroup runs on one core, so a product of one or
/// two workgroups leaves the other cores idle: a convolution's weight
/// gradient (a 25×10 output summed over k = 36,864 patches) took a fifth of
/// a LeNet step on one core. Such products are split too, but only into
/// long slices, since every split costs a dispatch (~0.1 ms there).
pub const CPU_SPLIT_TARGET_WORKGROUPS: u64 = 8;
/// Shortest k-slice of a split on a CPU adapter.
pub const CPU_MIN_SPLIT_K: usize = 1024;

/// The longest slice of k one invocation may sum on this adapter, when its
/// driver cuts long loops short ([`Gpu::loop_budget`]): a quarter of the
/// budget, since the tiled kernels take up to two loop back-edges per value
/// of k (their staging and inner loops) and the epilogue loops a little more.
pub fn max_k_slice(gpu: &Gpu) -> Option<usize> {
    gpu.loop_budget().map(|b| (b / 4) as usize)
}

/// An error instead of a silently shortened sum, for a product that one
/// invocation cannot sum whole on this adapter and that cannot be split.
pub fn check_k_fits(gpu: &Gpu, what: &str, k: usize) -> Result<()> {
    match max_k_slice(gpu) {
        Some(max) if k > max => Err(Error::InvalidConfig(format!(
            "{what}: k = {k} is longer than one invocation may sum on {} (its driver ends \
             loops after {} iterations, silently); the default f32 products split k for it \
             (split-K), this one cannot",
            gpu.report.name,
            gpu.loop_budget().unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

/// How many k-slices `kernel` should split a product into (1: no split): on
/// a hardware adapter, when its grid has fewer than
/// [`SPLIT_TARGET_WORKGROUPS`] workgroups and k is long enough to share. On
/// software adapters every workgroup already queues behind a few cores, and a
/// split would only add a dispatch. `TASKGRAD_SPLITK=N` forces N. Never
/// fewer than [`max_k_slice`] requires, on an adapter that cuts loops short.
pub fn splits_for(
    gpu: &Gpu,
    kernel: MatmulKernel,
    (m, n, k): (usize, usize, usize),
    wg: (u32, u32),
) -> usize {
    let needed = max_k_slice(gpu).map_or(1, |max| k.div_ceil(max.max(1)));
    if let Some(forced) = gpu.env.splitk {
        return forced.min(k.max(1)).max(needed);
    }
    let (target, min_k) = if gpu.report.device_type == wgpu::DeviceType::Cpu {
        (CPU_SPLIT_TARGET_WORKGROUPS, CPU_MIN_SPLIT_K)
    } else {
        (SPLIT_TARGET_WORKGROUPS, MIN_SPLIT_K)
    };
    let tile = kernel.tile(wg);
    let grid = (n as u64).div_ceil(tile.0 as u64) * (m as u64).div_ceil(tile.1 as u64);
    let wanted = target.div_ceil(grid.max(1)) as usize;
    wanted.min(k / min_k).max(1).max(needed)
}

/// The product as the autodiff ops record it: the kernel chosen for the
/// adapter and size ([`matmul`]), split along k (two dispatches) when
/// [`splits_for`] says so.
pub fn matmul_auto(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> Result<Vec<Dispatch>> {
    let (m, n, k) = product_shape(a, b, opts.trans_a, opts.trans_b)?;
    let (mut kernel, mut wg) = super::matmul_choice::choice(gpu)?.for_product_of(
        (m, n, k),
        forced_kernel(gpu)?,
        opts.replica_count(),
    );
    if kernel == MatmulKernel::Lanes {
        // The subgroup kernel has no split-K: a product to be split (forced
        // with TASKGRAD_SPLITK, or on a driver that cuts long loops short)
        // goes to the rows kernels, which split it.
        let (rows, rows_wg) = rows_for(n);
        if splits_for(gpu, rows, (m, n, k), rows_wg) > 1 {
            (kernel, wg) = (rows, rows_wg);
        }
    }
    let splits = match kernel {
        MatmulKernel::Naive => {
            check_k_fits(gpu, "the naive matmul (no split-K)", k)?;
            1
        }
        MatmulKernel::Unrolled => {
            check_k_fits(gpu, "the written-out matmul", k)?;
            1
        }
        MatmulKernel::Lanes => 1,
        _ => splits_for(gpu, kernel, (m, n, k), wg),
    };
    if splits > 1 {
        matmul_split(gpu, a, b, c, opts, kernel, wg, splits)
    } else {
        Ok(vec![matmul_kernel(gpu, a, b, c, opts, kernel, wg)?])
    }
}

/// Split-K with the register-blocked or the tiled kernel: `splits` workgroup
/// layers each sum a slice of k into a scratch buffer of partial products
/// (raw, no epilogue), then shaders/matmul_reduce.wgsl adds them up and
/// applies the epilogue (and the bias gradient's partial sums). Two
/// dispatches; the scratch buffers belong to them.
#[allow(clippy::too_many_arguments)]
pub fn matmul_split(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
    kernel: MatmulKernel,
    wg: (u32, u32),
    splits: usize,
) -> Result<Vec<Dispatch>> {
    if matches!(
        kernel,
        MatmulKernel::Naive | MatmulKernel::Unrolled | MatmulKernel::Lanes
    ) {
        return Err(Error::InvalidConfig(format!(
            "the {} matmul has no split-K",
            kernel.name()
        )));
    }
    kernel.check_fits(gpu)?;
    let mut plan = plan(gpu, a, b, c, &opts, wg, kernel.tile(wg))?;
    for t in [Some(a), Some(b), Some(c), opts.mask.map(|(t, _)| t)]
        .into_iter()
        .flatten()
    {
        if t.dtype() != DType::F32 {
            return Err(Error::shape(
                "matmul_split",
                "f32 elements",
                format!("{:?}", t.dtype()),
            ));
        }
    }
    // Slices of whole k-steps (the tiled kernels stage BK values of k at a time).
    let step = kernel.bk().unwrap_or(1) as usize;
    let splits = splits.clamp(1, plan.k.max(1));
    let kc = plan.k.div_ceil(splits).div_ceil(step) * step;
    let splits = plan.k.div_ceil(kc).max(1);
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    if splits > max {
        return Err(Error::DispatchTooLarge {
            workgroups: splits as u64,
            limit: max as u64,
        });
    }
    let (m, n) = (plan.m, plan.n);
    let reps = opts.replica_count();
    if reps * splits > max {
        return Err(Error::DispatchTooLarge {
            workgroups: (reps * splits) as u64,
            limit: max as u64,
        });
    }
    // Replica r's partials (its `splits` slices) at r·splits·M·N, its bias
    // gradient's at r·splits·N: replica 0's views, one replica apart.
    let partial = Tensor::zeros(gpu, &[reps * splits * m * n], "matmul split-K partial sums")?
        .slice(0, &[splits * m * n])?;
    let pbias = Tensor::zeros(
        gpu,
        &[reps * splits * n],
        "matmul split-K bias-gradient partials",
    )?
    .slice(0, &[splits * n])?;
    let epilogue_flags = plan.params.flags;
    plan.params.flags = 0;
    plan.grid[2] = (reps * splits) as u32;
    plan.constants.push(("KC", kc as f64));
    let first = record_partials(gpu, kernel, &plan, (a, b, &opts), (&partial, &pbias))?;
    let params = ReduceParams {
        m: m as u32,
        n: n as u32,
        splits: splits as u32,
        flags: epilogue_flags,
        reps: reps as u32,
        rep_c: plan.params.rep_c,
        rep_bias: plan.params.rep_bias,
        pad: 0,
    };
    let second = record_reduce(gpu, &params, c, &opts, (&partial, &pbias))?;
    Ok(vec![first, second])
}

/// Split-K's first dispatch: each layer's raw partial sums into `partial`
/// (and the bias gradient's into `pbias`), by the register or tiled kernel.
fn record_partials(
    gpu: &Gpu,
    kernel: MatmulKernel,
    plan: &MatmulPlan,
    (a, b, opts): (&Tensor, &Tensor, &MatmulOptions),
    (partial, pbias): (&Tensor, &Tensor),
) -> Result<Dispatch> {
    let mask_slot = opts.mask.map(|(t, _)| t).unwrap_or(a);
    use Binding::*;
    let mut bindings = vec![
        Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly, ReadWrite,
    ];
    let mut tensors = vec![partial, a, b, a, mask_slot, pbias];
    // The partials go by workgroup layer, replica after replica.
    let mut axis = opts.axis();
    axis.strides[0] = partial.numel();
    axis.strides[3] = axis.strides[1];
    axis.strides[5] = pbias.numel();
    let mut constants = kernel.constants(plan);
    let views;
    if kernel.has_views() {
        let kc = plan
            .constants
            .iter()
            .find(|(name, _)| *name == "KC")
            .map_or(0, |&(_, v)| v as usize);
        views = VectorViews::new(gpu, plan, a, b, opts, kc)?;
        views.add_to(&mut constants, &mut axis);
        bindings.extend([ReadOnly; 3]);
        tensors.extend([&views.b4, &views.a4, &views.mask4]);
    }
    super::Shader::builtin(kernel.file()).record_replicated(
        gpu,
        kernel.entry(),
        &bindings,
        &constants,
        &plan.params,
        &tensors,
        &axis,
        plan.grid,
    )
}

/// Split-K's second dispatch: the partials added up, the epilogue applied.
fn record_reduce(
    gpu: &Gpu,
    params: &ReduceParams,
    c: &Tensor,
    opts: &MatmulOptions,
    (partial, pbias): (&Tensor, &Tensor),
) -> Result<Dispatch> {
    let reps = opts.replica_count();
    let unused_bias = Tensor::zeros(gpu, &[1], "matmul split-K unused bias")?;
    let (unused_dbias, dbias_stride) = unused_output(gpu, reps)?;
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let (m, n) = (params.m as usize, params.n as usize);
    let r = opts.replicas.unwrap_or_default();
    let axis = ReplicaAxis {
        count: reps,
        strides: vec![
            r.c,
            partial.numel(),
            if opts.bias.is_some() { r.bias } else { 0 },
            if opts.bias_grad.is_some() {
                r.bias
            } else {
                dbias_stride
            },
            pbias.numel(),
        ],
    };
    use Binding::*;
    super::Shader::builtin("matmul_reduce.wgsl").record_replicated(
        gpu,
        "matmul_reduce",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly, ReadWrite, ReadOnly],
        &[("BIAS_GRAD", flag(opts.bias_grad.is_some()))],
        params,
        &[
            c,
            partial,
            opts.bias.unwrap_or(&unused_bias),
            opts.bias_grad.unwrap_or(&unused_dbias),
            pbias,
        ],
        &axis,
        super::grid_1d(gpu, reps * (m * n).max(n))?,
    )
}

/// The uniform parameters of shaders/matmul_reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    m: u32,
    n: u32,
    splits: u32,
    flags: u32,
    reps: u32,
    rep_c: u32,
    rep_bias: u32,
    pad: u32,
}

/// A writable slot a kernel never writes through (an unused bias gradient),
/// as a view of one element per replica, one apart, so that its copies do
/// not overlap: (replica 0's view, the stride).
pub(super) fn unused_output(gpu: &Gpu, reps: usize) -> Result<(Tensor, usize)> {
    let t = Tensor::zeros(gpu, &[reps], "matmul unused bias gradient")?;
    Ok((t.slice(0, &[1])?, 1))
}

/// Record a kernel generated per product (`matmul_unrolled`,
/// `matmul_lanes`) on the prelude's bindings: C, A, B, the bias, the mask
/// and the bias gradient (an unused slot bound to A, or for the bias
/// gradient to a scratch element per replica), and with `views` also
/// binding 7-9, the vec4 views of B, A and the mask; each binding spans
/// every replica's copy ([`MatmulOptions::replicas`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn record_generated(
    gpu: &Gpu,
    shader: super::Shader,
    entry: &'static str,
    plan: &MatmulPlan,
    (a, b, c): (&Tensor, &Tensor, &Tensor),
    opts: &MatmulOptions,
    views: bool,
    workgroups: [u32; 3],
) -> Result<Dispatch> {
    let mut axis = opts.axis();
    let (scratch, stride) = unused_output(gpu, opts.replica_count())?;
    if opts.bias.is_none() {
        axis.strides[3] = axis.strides[1];
    }
    if opts.bias_grad.is_none() {
        axis.strides[5] = stride;
    }
    let mask = opts.mask.map_or(a, |(t, _)| t);
    let mut tensors = vec![
        c,
        a,
        b,
        opts.bias.unwrap_or(a),
        mask,
        opts.bias_grad.unwrap_or(&scratch),
    ];
    use Binding::*;
    let mut bindings = vec![
        Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly, ReadWrite,
    ];
    if views {
        tensors.extend([b, a, mask]);
        bindings.extend([ReadOnly; 3]);
        axis.strides
            .extend([axis.strides[2], axis.strides[1], axis.strides[4]]);
    }
    shader.record_replicated(
        gpu,
        entry,
        &bindings,
        &[],
        &plan.params,
        &tensors,
        &axis,
        workgroups,
    )
}

/// The register-blocked kernel with an explicit workgroup shape (WGX, WGY).
pub fn matmul_with(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
    wg: (u32, u32),
) -> Result<Dispatch> {
    matmul_kernel(gpu, a, b, c, opts, MatmulKernel::Register, wg)
}

/// Record the product with a given kernel of the ladder and workgroup shape.
pub fn matmul_kernel(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
    kernel: MatmulKernel,
    wg: (u32, u32),
) -> Result<Dispatch> {
    if kernel == MatmulKernel::Unrolled {
        return super::matmul_unrolled::matmul_unrolled(gpu, a, b, c, opts);
    }
    if kernel == MatmulKernel::Lanes {
        // Chosen by shape; where the layout does not allow it (a tensor off
        // a 16-byte start, k or n not a multiple of 4, ...) the rows kernels
        // take the product, with the same sums.
        if super::matmul_lanes::fits(gpu, a, b, c, &opts) {
            return super::matmul_lanes::matmul_lanes(gpu, a, b, c, opts);
        }
        let (_, n, _) = product_shape(a, b, opts.trans_a, opts.trans_b)?;
        let (rows, wg) = rows_for(n);
        return matmul_kernel(gpu, a, b, c, opts, rows, wg);
    }
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
    kernel.check_fits(gpu)?;
    let plan = plan(gpu, a, b, c, &opts, wg, kernel.tile(wg))?;
    check_k_fits(gpu, "one matmul dispatch (matmul_auto splits k)", plan.k)?;
    if !kernel.has_views() {
        return record_plain(gpu, kernel, &plan, a, b, c, &opts);
    }
    // Unused slots are bound to operands the kernel then never reads through them;
    // the unused writable slot gets a one-element scratch buffer.
    let mut axis = opts.axis();
    let bias_slot = opts.bias.unwrap_or(a);
    if opts.bias.is_none() {
        axis.strides[3] = axis.strides[1];
    }
    let mask_slot = mask.unwrap_or(a);
    let scratch;
    let dbias_slot = match opts.bias_grad {
        Some(t) => t,
        None => {
            let (t, stride) = unused_output(gpu, opts.replica_count())?;
            scratch = t;
            axis.strides[5] = stride;
            &scratch
        }
    };
    let mut constants = kernel.constants(&plan);
    let views = VectorViews::new(gpu, &plan, a, b, &opts, 0)?;
    views.add_to(&mut constants, &mut axis);
    use Binding::*;
    super::Shader::builtin(kernel.file()).record_replicated(
        gpu,
        kernel.entry(),
        &[
            Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly, ReadWrite, ReadOnly,
            ReadOnly, ReadOnly,
        ],
        &constants,
        &plan.params,
        &[
            c,
            a,
            b,
            bias_slot,
            mask_slot,
            dbias_slot,
            &views.b4,
            &views.a4,
            &views.mask4,
        ],
        &axis,
        plan.grid,
    )
}

/// Whether the register and rows kernels sum op(A)·op(B) four values of k
/// per turn for one replica and no split: with their vec4 view of A along k
/// or of Bᵀ along k ([`VectorViews`]: A_VEC = 1 or B_VEC = 2). The
/// written-out kernel groups its bias-gradient sums the same way.
pub(crate) fn four_k_per_turn(a: &Tensor, b: &Tensor, opts: &MatmulOptions, k: usize) -> bool {
    let whole = |t: &Tensor| t.offset().is_multiple_of(16);
    let mask_ok = |on: Operand| opts.mask.is_none_or(|(t, o)| o != on || whole(t));
    k.is_multiple_of(4)
        && ((!opts.trans_a && whole(a) && mask_ok(Operand::A))
            || (opts.trans_b && whole(b) && mask_ok(Operand::B)))
}

/// The register kernel's vec4 views of its operands (bindings 7-9 of
/// shaders/matmul.wgsl) and the modes that say how it reads them: A along
/// k (row-major A, K a multiple of 4) or along m (Aᵀ, M a multiple of 4), B
/// along n (row-major B, N a multiple of 4) or along k (Bᵀ); each view
/// starting where a vec4 may (a 16-byte offset, replica strides of whole
/// vec4s), and a view along k only when every split-K slice (`kc`, 0 for no
/// split) starts at a multiple of 4. An unused view is a 4-float scratch.
struct VectorViews {
    a_vec: u32,
    b_vec: u32,
    /// Whether `mask4` is the mask (else a scratch).
    mask_view: bool,
    a4: Tensor,
    b4: Tensor,
    mask4: Tensor,
}

impl VectorViews {
    fn new(
        gpu: &Gpu,
        plan: &MatmulPlan,
        a: &Tensor,
        b: &Tensor,
        opts: &MatmulOptions,
        kc: usize,
    ) -> Result<VectorViews> {
        let k_ok = plan.k.is_multiple_of(4) && kc.is_multiple_of(4);
        let whole =
            |t: &Tensor, stride: u32| t.offset().is_multiple_of(16) && stride.is_multiple_of(4);
        let mask = opts.mask;
        let mask_ok =
            |on: Operand, stride: u32| mask.is_none_or(|(t, o)| o != on || whole(t, stride));
        let (ra, rb) = (plan.params.rep_a, plan.params.rep_b);
        let a_vec = match opts.trans_a {
            _ if !whole(a, ra) || !mask_ok(Operand::A, ra) => 0,
            false if k_ok => 1,
            true if plan.m.is_multiple_of(4) => 2,
            _ => 0,
        };
        let b_vec = match opts.trans_b {
            _ if !whole(b, rb) || !mask_ok(Operand::B, rb) => 0,
            false if plan.n.is_multiple_of(4) => 1,
            true if k_ok => 2,
            _ => 0,
        };
        let scratch = Tensor::zeros(gpu, &[4], "matmul unused vec4 view")?;
        let mask4 = match mask {
            Some((t, Operand::A)) if a_vec > 0 => Some(t.clone()),
            Some((t, Operand::B)) if b_vec > 0 => Some(t.clone()),
            _ => None,
        };
        Ok(VectorViews {
            a_vec,
            b_vec,
            mask_view: mask4.is_some(),
            a4: if a_vec > 0 {
                a.clone()
            } else {
                scratch.clone()
            },
            b4: if b_vec > 0 {
                b.clone()
            } else {
                scratch.clone()
            },
            mask4: mask4.unwrap_or(scratch),
        })
    }

    /// The modes as pipeline constants, and the views' strides along the
    /// replica axis (each its operand's; 0 for the scratch) after the
    /// first six bindings'.
    fn add_to(&self, constants: &mut Vec<(&'static str, f64)>, axis: &mut ReplicaAxis) {
        constants.push(("A_VEC", self.a_vec as f64));
        constants.push(("B_VEC", self.b_vec as f64));
        let s = axis.strides.clone();
        let stride = |used: bool, i: usize| if used { s[i] } else { 0 };
        axis.strides.extend([
            stride(self.b_vec > 0, 2),
            stride(self.a_vec > 0, 1),
            stride(self.mask_view, 4),
        ]);
    }
}

/// Record the naive or the tiled kernel: the register kernel's bindings
/// without its vec4 view of B.
fn record_plain(
    gpu: &Gpu,
    kernel: MatmulKernel,
    plan: &MatmulPlan,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: &MatmulOptions,
) -> Result<Dispatch> {
    let mut axis = opts.axis();
    let (scratch, stride) = unused_output(gpu, opts.replica_count())?;
    let bias_slot = opts.bias.unwrap_or(a);
    if opts.bias.is_none() {
        axis.strides[3] = axis.strides[1];
    }
    let mask_slot = opts.mask.map(|(t, _)| t).unwrap_or(a);
    if opts.bias_grad.is_none() {
        axis.strides[5] = stride;
    }
    let dbias_slot = opts.bias_grad.unwrap_or(&scratch);
    use Binding::*;
    super::Shader::builtin(kernel.file()).record_replicated(
        gpu,
        kernel.entry(),
        &[
            Uniform, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly, ReadWrite,
        ],
        &kernel.constants(plan),
        &plan.params,
        &[c, a, b, bias_slot, mask_slot, dbias_slot],
        &axis,
        plan.grid,
    )
}

/// The f32 matmul kernels, simplest first: the ladder of BENCHMARKS.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulKernel {
    /// One output per invocation, straight from memory (shaders/matmul_naive.wgsl).
    Naive,
    /// 4×4 outputs per invocation from registers, no barriers (shaders/matmul.wgsl).
    Register,
    /// 8 rows × 8 columns per invocation, the rows shared by a 1-D
    /// workgroup: fewer loads per multiply-add (shaders/matmul.wgsl's
    /// `matmul_rows`).
    Rows,
    /// The same with 4 columns per invocation, for outputs narrower than 8.
    Rows4,
    /// One row (or column) of C per invocation, every k and output written
    /// out in WGSL generated for the product's shape, no loop: small
    /// products only (`kernels::matmul_unrolled`). Not one of [`MatmulKernel::ALL`],
    /// the kernels that take any product.
    Unrolled,
    /// Each SIMD lane its own rows of C, the block of op(B) they share
    /// loaded once across the lanes and broadcast (`subgroupBroadcast`), in
    /// WGSL generated for the product's shape (`kernels::matmul_lanes`):
    /// adapters with fixed-size subgroups, where the layout allows. Not one
    /// of [`MatmulKernel::ALL`].
    Lanes,
    /// 8×8 outputs per invocation, 16-wide k-slices staged in workgroup
    /// memory (shaders/matmul_tiled.wgsl).
    Tiled,
    /// The same kernel staging 32-wide k-slices: twice the workgroup memory
    /// (32 KiB), half the barriers — which a software adapter, where a
    /// barrier switches between every group of invocations, pays for.
    Tiled32,
}

impl MatmulKernel {
    pub const ALL: [MatmulKernel; 6] = [
        MatmulKernel::Naive,
        MatmulKernel::Register,
        MatmulKernel::Rows,
        MatmulKernel::Rows4,
        MatmulKernel::Tiled,
        MatmulKernel::Tiled32,
    ];

    /// `naive`, `register`, `rows`, `rows4`, `tiled` or `tiled32`.
    pub fn parse(s: &str) -> Result<MatmulKernel> {
        MatmulKernel::ALL
            .into_iter()
            .find(|k| k.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "TASKGRAD_MATMUL={s:?}: use naive, register, rows, rows4, tiled or tiled32"
                ))
            })
    }
    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Naive => "naive",
            MatmulKernel::Register => "register",
            MatmulKernel::Rows => "rows",
            MatmulKernel::Rows4 => "rows4",
            MatmulKernel::Unrolled => "unrolled",
            MatmulKernel::Lanes => "lanes",
            MatmulKernel::Tiled => "tiled",
            MatmulKernel::Tiled32 => "tiled32",
        }
    }
    fn file(self) -> &'static str {
        match self {
            MatmulKernel::Naive => "matmul_naive.wgsl",
            MatmulKernel::Register | MatmulKernel::Rows | MatmulKernel::Rows4 => "matmul.wgsl",
            MatmulKernel::Unrolled => "generated/matmul_unrolled.wgsl",
            MatmulKernel::Lanes => "generated/matmul_lanes.wgsl",
            MatmulKernel::Tiled | MatmulKernel::Tiled32 => "matmul_tiled.wgsl",
        }
    }
    fn entry(self) -> &'static str {
        match self {
            MatmulKernel::Naive => "matmul_naive",
            MatmulKernel::Register => "matmul",
            MatmulKernel::Rows | MatmulKernel::Rows4 => "matmul_rows",
            MatmulKernel::Unrolled => "matmul_unrolled",
            MatmulKernel::Lanes => "matmul_lanes",
            MatmulKernel::Tiled | MatmulKernel::Tiled32 => "matmul_tiled",
        }
    }
    /// Outputs per invocation along each dimension (columns, rows).
    pub fn block(self) -> (u32, u32) {
        match self {
            MatmulKernel::Naive => (1, 1),
            MatmulKernel::Register => (BLOCK, BLOCK),
            MatmulKernel::Rows => (8, 8),
            MatmulKernel::Rows4 => (BLOCK, 8),
            // (Unused: `kernels::matmul_unrolled` sizes its own grid, a row or a column of C per invocation.)
            MatmulKernel::Unrolled => (1, 1),
            // (Unused: `kernels::matmul_lanes` sizes its own blocks.)
            MatmulKernel::Lanes => (1, 1),
            MatmulKernel::Tiled | MatmulKernel::Tiled32 => (8, 8),
        }
    }
    /// Outputs per workgroup of shape `wg` (columns, rows).
    pub fn tile(self, wg: (u32, u32)) -> (u32, u32) {
        let (bx, by) = self.block();
        (bx * wg.0, by * wg.1)
    }
    /// The kernels of shaders/matmul.wgsl, which read operands through vec4
    /// views (bindings 7-9) where their layout allows.
    fn has_views(self) -> bool {
        matches!(
            self,
            MatmulKernel::Register | MatmulKernel::Rows | MatmulKernel::Rows4
        )
    }
    /// The k-slice width a tiled kernel stages (its `BK` override).
    pub fn bk(self) -> Option<u32> {
        match self {
            MatmulKernel::Tiled => Some(16),
            MatmulKernel::Tiled32 => Some(32),
            _ => None,
        }
    }
    /// Bytes of workgroup memory it needs (the tiled kernels' two staged slices).
    pub fn workgroup_bytes(self) -> u32 {
        self.bk().map_or(0, |bk| 2 * bk * 128 * 4)
    }
    /// Whether the adapter has the workgroup memory this kernel stages.
    pub fn fits(self, gpu: &Gpu) -> bool {
        self.workgroup_bytes() <= gpu.limits.max_compute_workgroup_storage_size
    }
    /// [`MatmulKernel::fits`] as an error that says what is missing.
    pub fn check_fits(self, gpu: &Gpu) -> Result<()> {
        match self.fits(gpu) {
            true => Ok(()),
            false => Err(Error::InvalidConfig(format!(
                "the {} matmul kernel needs {} bytes of workgroup memory; {} offers {}",
                self.name(),
                self.workgroup_bytes(),
                gpu.report.name,
                gpu.limits.max_compute_workgroup_storage_size
            ))),
        }
    }
    /// The plan's override constants and this kernel's own.
    fn constants(self, plan: &MatmulPlan) -> Vec<(&'static str, f64)> {
        let mut c = plan.constants.clone();
        if let Some(bk) = self.bk() {
            c.push(("BK", bk as f64));
        }
        if matches!(self, MatmulKernel::Rows | MatmulKernel::Rows4) {
            c.push(("RN", self.block().0 as f64));
        }
        c
    }
    /// The workgroup shape used when nothing was searched for this kernel.
    pub fn default_wg(self) -> (u32, u32) {
        match self {
            MatmulKernel::Register => (8, 8),
            MatmulKernel::Rows => (8, 1),
            MatmulKernel::Rows4 => (16, 1),
            MatmulKernel::Unrolled | MatmulKernel::Lanes => (8, 1),
            MatmulKernel::Naive | MatmulKernel::Tiled | MatmulKernel::Tiled32 => (16, 16),
        }
    }
}

/// Products of at least this many multiply-adds (256³) are "large": they may
/// use another kernel than the small ones, as measured per adapter.
pub const LARGE_MACS: usize = 1 << 24;

/// What the timed search chose for an adapter.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatmulChoice {
    /// Workgroup shape of the register-blocked kernel (every small product,
    /// unless `rows`).
    pub register_wg: (u32, u32),
    /// Small products of at least 8 rows by the rows kernels ([`rows_for`])
    /// instead of the register kernel: measured faster on the adapter (on
    /// lavapipe, fewer loads per multiply-add).
    #[serde(default)]
    pub rows: bool,
    /// Small products that fit the written-out kernel
    /// ([`super::matmul_unrolled::lanes_for`]) by it, one replica at a time:
    /// taken on Mesa's llvmpipe, where it runs a head's products 1.4-2.1× faster
    /// than the rows kernels; never chosen elsewhere.
    #[serde(default)]
    pub unrolled: bool,
    /// Small products of at least 8 rows, 16 columns and 4 values of k that
    /// the written-out kernel does not take, by the subgroup kernel
    /// (`super::matmul_lanes`) where the layout allows, for one replica or
    /// several: taken on Mesa's llvmpipe with fixed-size subgroups, where it
    /// runs W-iris's hidden products about 2× faster than the rows kernels;
    /// never chosen elsewhere.
    #[serde(default)]
    pub lanes: bool,
    /// Kernel and workgroup shape for large products.
    pub large: MatmulKernel,
    pub large_wg: (u32, u32),
}

/// The choice with no search (in a browser, where nothing may wait on the
/// GPU): the register-blocked kernel, 8×8 workgroups, for every product.
impl Default for MatmulChoice {
    fn default() -> MatmulChoice {
        MatmulChoice {
            register_wg: (8, 8),
            rows: false,
            unrolled: false,
            lanes: false,
            large: MatmulKernel::Register,
            large_wg: (8, 8),
        }
    }
}

impl MatmulChoice {
    /// Kernel and workgroup for an m×k by k×n product, or for the `forced`
    /// kernel (`TASKGRAD_MATMUL`). The large kernel (chosen on a square
    /// product) takes a product of at least [`LARGE_MACS`] whose output
    /// is at least one of its tiles wide and tall: a tile of 128 columns
    /// over a 10-column output (a convolution's channels) computes 12× the
    /// work it keeps, where the register kernel's small blocks waste none.
    /// The others go to the rows kernels where the search chose them
    /// (`rows`) and the output has at least their 8 rows, else to the
    /// register kernel with its workgroup fitted to the output.
    pub fn for_product(
        &self,
        shape: (usize, usize, usize),
        forced: Option<MatmulKernel>,
    ) -> (MatmulKernel, (u32, u32)) {
        self.for_product_of(shape, forced, 1)
    }

    /// [`MatmulChoice::for_product`] for a product run for `replicas` runs
    /// at once: where the written-out kernel is chosen it takes the products
    /// small enough for it, of one replica (it has no replica axis; a
    /// replicated product takes the kernel it would have had without it,
    /// whose sums are the same bit for bit); the subgroup kernel takes its
    /// products of any number of replicas.
    pub fn for_product_of(
        &self,
        (m, n, k): (usize, usize, usize),
        forced: Option<MatmulKernel>,
        replicas: usize,
    ) -> (MatmulKernel, (u32, u32)) {
        if forced.is_none()
            && self.unrolled
            && replicas <= 1
            && m > 0
            && n > 0
            && super::matmul_unrolled::lanes_for((m, n, k)).is_some()
        {
            return (MatmulKernel::Unrolled, MatmulKernel::Unrolled.default_wg());
        }
        if forced.is_none() && self.lanes && m >= 8 && n >= 16 && k >= 4 && m * n * k < LARGE_MACS {
            return (MatmulKernel::Lanes, MatmulKernel::Lanes.default_wg());
        }
        let tile = self.large.tile(self.large_wg);
        let fills = m >= tile.1 as usize && n >= tile.0 as usize;
        let register = (
            MatmulKernel::Register,
            fit_to_output(self.register_wg, (m, n)),
        );
        match forced {
            Some(MatmulKernel::Register) => register,
            Some(MatmulKernel::Rows | MatmulKernel::Rows4) => rows_for(n),
            Some(k) if k == self.large => (k, self.large_wg),
            Some(k) => (k, k.default_wg()),
            None if m * n * k >= LARGE_MACS && fills => (self.large, self.large_wg),
            None if self.rows && m >= 8 => rows_for(n),
            None => register,
        }
    }
}

/// The register kernel's workgroup `wg` reshaped (same size) for an m×n
/// output narrower or shorter than one workgroup's blocks: a head's 120×3
/// output under 8×8 workgroups kept one invocation of eight busy, and on a
/// CPU adapter, which runs eight invocations as one SIMD instruction, paid
/// for all eight in every turn of the loop. Each output is the same sum
/// whatever invocation computes it, so the shape never changes a number.
pub fn fit_to_output((wx, wy): (u32, u32), (m, n): (usize, usize)) -> (u32, u32) {
    let size = wx * wy;
    let blocks = |len: usize| (len.div_ceil(BLOCK as usize).max(1) as u32).next_power_of_two();
    let (bx, by) = (blocks(n), blocks(m));
    if bx < wx {
        let x = bx.min(size);
        (x, (size / x).min(by))
    } else if by < wy {
        let y = by.min(size);
        ((size / y).min(bx), y)
    } else {
        (wx, wy)
    }
}

/// The rows kernel for an output `n` columns wide: 8 columns per invocation,
/// or 4 under 8 columns, in a 1-D workgroup no wider (a power of two) than
/// the output needs, up to its default width: a 3-column head takes one
/// invocation, not 16 mostly idle ones.
pub fn rows_for(n: usize) -> (MatmulKernel, (u32, u32)) {
    let kernel = if n >= 8 {
        MatmulKernel::Rows
    } else {
        MatmulKernel::Rows4
    };
    let per = kernel.block().0 as usize;
    let wx = (n.div_ceil(per).max(1) as u32)
        .next_power_of_two()
        .min(kernel.default_wg().0);
    (kernel, (wx, 1))
}

/// `TASKGRAD_MATMUL`, if set: one kernel for every product (read and checked
/// when the `Gpu` was made).
pub fn forced_kernel(gpu: &Gpu) -> Result<Option<MatmulKernel>> {
    gpu.env.matmul.map(MatmulKernel::parse).transpose()
}

pub use super::matmul_choice::{choice, workgroup};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_large_kernel_takes_only_products_that_fill_its_tiles() {
        let c = MatmulChoice {
            register_wg: (8, 8),
            rows: false,
            unrolled: false,
            lanes: false,
            large: MatmulKernel::Tiled32,
            large_wg: (16, 16),
        };
        let kernel = |shape| c.for_product(shape, None).0;
        assert_eq!(kernel((512, 512, 512)), MatmulKernel::Tiled32);
        assert_eq!(kernel((255, 255, 255)), MatmulKernel::Register, "small");
        // LeNet's first convolution at batch 256: 147456 patches of 25 to 10 channels.
        assert_eq!(kernel((147456, 10, 25)), MatmulKernel::Register);
        // Its weight gradient: 25×147456 by 147456×10.
        assert_eq!(kernel((25, 10, 147456)), MatmulKernel::Register);
        assert_eq!(
            kernel((128, 4096, 4096)),
            MatmulKernel::Tiled32,
            "one tile tall"
        );
        assert_eq!(kernel((127, 4096, 4096)), MatmulKernel::Register);
        let forced = c.for_product((147456, 10, 25), Some(MatmulKernel::Tiled32));
        assert_eq!(forced, (MatmulKernel::Tiled32, (16, 16)));
    }

    #[test]
    fn the_written_out_kernel_takes_small_products_of_one_replica_where_chosen() {
        let c = MatmulChoice {
            rows: true,
            unrolled: true,
            large: MatmulKernel::Tiled32,
            large_wg: (16, 16),
            ..MatmulChoice::default()
        };
        let pick = |shape| c.for_product(shape, None).0;
        // W-iris: a head's three products and the first layer's; not the hidden layer's.
        assert_eq!(pick((120, 3, 64)), MatmulKernel::Unrolled);
        assert_eq!(pick((64, 3, 120)), MatmulKernel::Unrolled);
        assert_eq!(pick((120, 64, 3)), MatmulKernel::Unrolled);
        assert_eq!(pick((2, 64, 120)), MatmulKernel::Unrolled);
        assert_eq!(pick((120, 64, 64)), MatmulKernel::Rows);
        // Replicated, or forced, or not chosen: the kernel it would be without it.
        assert_eq!(
            c.for_product_of((120, 3, 64), None, 3).0,
            MatmulKernel::Rows4
        );
        assert_eq!(
            c.for_product((120, 3, 64), Some(MatmulKernel::Register)).0,
            MatmulKernel::Register
        );
        let off = MatmulChoice {
            unrolled: false,
            ..c
        };
        assert_eq!(off.for_product((120, 3, 64), None).0, MatmulKernel::Rows4);
    }

    #[test]
    fn the_subgroup_kernel_takes_the_small_products_the_written_out_one_leaves() {
        let c = MatmulChoice {
            rows: true,
            unrolled: true,
            lanes: true,
            large: MatmulKernel::Tiled32,
            large_wg: (16, 16),
            ..MatmulChoice::default()
        };
        let pick = |shape| c.for_product(shape, None).0;
        // W-iris's hidden layer: forward, weight gradient, input gradient.
        assert_eq!(pick((120, 64, 64)), MatmulKernel::Lanes);
        assert_eq!(pick((64, 64, 120)), MatmulKernel::Lanes);
        // Its heads stay written out; narrow or short outputs and large
        // products keep the rows and large kernels.
        assert_eq!(pick((120, 3, 64)), MatmulKernel::Unrolled);
        assert_eq!(pick((120, 8, 600)), MatmulKernel::Rows);
        assert_eq!(pick((4, 64, 600)), MatmulKernel::Register);
        assert_eq!(pick((512, 512, 512)), MatmulKernel::Tiled32);
        // Replicated: still the subgroup kernel, which has a replica axis,
        // and for a head too, which the written-out kernel takes only alone
        // (`matmul_kernel` gives the rows kernels what the layout refuses).
        assert_eq!(
            c.for_product_of((120, 64, 64), None, 3).0,
            MatmulKernel::Lanes
        );
        assert_eq!(
            c.for_product_of((120, 16, 64), None, 3).0,
            MatmulKernel::Lanes
        );
        assert_eq!(
            c.for_product_of((120, 3, 64), None, 3).0,
            MatmulKernel::Rows4
        );
        // Forced: the kernel forced.
        assert_eq!(
            c.for_product((120, 64, 64), Some(MatmulKernel::Register)).0,
            MatmulKernel::Register
        );
    }

    #[test]
    fn the_rows_kernels_take_small_products_of_8_rows_where_chosen() {
        let c = MatmulChoice {
            rows: true,
            large: MatmulKernel::Tiled32,
            large_wg: (16, 16),
            ..MatmulChoice::default()
        };
        let pick = |shape| c.for_product(shape, None);
        // A hidden layer: 8 columns per invocation, 8 invocations for 64 columns.
        assert_eq!(pick((120, 64, 64)), (MatmulKernel::Rows, (8, 1)));
        assert_eq!(pick((120, 300, 64)), (MatmulKernel::Rows, (8, 1)));
        // Heads: 4 columns per invocation, as few invocations as cover them.
        assert_eq!(pick((120, 3, 64)), (MatmulKernel::Rows4, (1, 1)));
        assert_eq!(pick((120, 7, 64)), (MatmulKernel::Rows4, (2, 1)));
        assert_eq!(pick((120, 8, 64)), (MatmulKernel::Rows, (1, 1)));
        assert_eq!(pick((120, 20, 64)), (MatmulKernel::Rows, (4, 1)));
        // Fewer than 8 rows (a first layer's weight gradient): the register kernel.
        assert_eq!(pick((4, 64, 120)).0, MatmulKernel::Register);
        // Large products keep the large kernel.
        assert_eq!(pick((512, 512, 512)).0, MatmulKernel::Tiled32);
        // Not chosen: the register kernel.
        let off = MatmulChoice { rows: false, ..c };
        assert_eq!(
            off.for_product((120, 64, 64), None).0,
            MatmulKernel::Register
        );
        // Forced: the rows kernels for any product.
        assert_eq!(
            off.for_product((4, 3, 9), Some(MatmulKernel::Rows)),
            (MatmulKernel::Rows4, (1, 1))
        );
    }
}
