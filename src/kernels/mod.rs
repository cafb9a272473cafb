//! Rust wrappers of the WGSL kernels in `shaders/`.
//!
//! Each wrapper checks shapes, picks the workgroup grid and returns a
//! [`Dispatch`]: a compiled pipeline, its bind group and its grid, made once and
//! encodable any number of times. [`Gpu::run`](crate::gpu::Gpu::run) encodes a list of dispatches
//! into one compute pass and submits once, which is also how a cached training
//! step replays.
//!
//! Glossary: B batch rows, D input features, H hidden width, C classes,
//! K tasks, P parameters; M×K · K×N = M×N for matmul.

pub mod columns;
pub mod conv_direct;
pub mod elementwise;
pub mod embedding;
pub mod gate;
pub mod gram;
pub mod im2col;
pub mod loss_tracking;
pub mod loss_weighting;
pub mod matmul;
pub mod matmul_choice;
pub mod matmul_coop;
pub mod matmul_f16;
pub mod matmul_lanes;
pub mod matmul_unrolled;
pub mod mixture;
pub mod mse;
pub mod mtl;
pub mod pool;
pub mod reduce;
pub mod softmax_ce;
pub mod step_counter;

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};

/// Every WGSL source of this folder, by file name, for the naga validation test
/// and for the pipeline cache. The f32 matmul kernels are
/// `shaders/matmul_prelude.wgsl` followed by their own file; the solves of
/// `shaders/mtl/` are listed by their methods (`mtl::REGISTRY`), and the
/// kernels of task kinds and layers by their units ([`Shader`]).
pub const SHADERS: &[(&str, &str)] = &[
    (
        "elementwise.wgsl",
        include_str!("../../shaders/elementwise.wgsl"),
    ),
    (
        "matmul.wgsl",
        concat!(
            include_str!("../../shaders/matmul_prelude.wgsl"),
            include_str!("../../shaders/matmul.wgsl")
        ),
    ),
    (
        "matmul_reduce.wgsl",
        include_str!("../../shaders/matmul_reduce.wgsl"),
    ),
    (
        "matmul_naive.wgsl",
        concat!(
            include_str!("../../shaders/matmul_prelude.wgsl"),
            include_str!("../../shaders/matmul_naive.wgsl")
        ),
    ),
    (
        "matmul_coop.wgsl",
        include_str!("../../shaders/matmul_coop.wgsl"),
    ),
    (
        "matmul_tiled.wgsl",
        concat!(
            include_str!("../../shaders/matmul_prelude.wgsl"),
            include_str!("../../shaders/matmul_tiled.wgsl")
        ),
    ),
    ("reduce.wgsl", include_str!("../../shaders/reduce.wgsl")),
    (
        "softmax_ce.wgsl",
        include_str!("../../shaders/softmax_ce.wgsl"),
    ),
    ("mse.wgsl", include_str!("../../shaders/mse.wgsl")),
    ("optim.wgsl", include_str!("../../shaders/optim.wgsl")),
    (
        "loss_weighting.wgsl",
        include_str!("../../shaders/loss_weighting.wgsl"),
    ),
    (
        "matmul_f16.wgsl",
        include_str!("../../shaders/matmul_f16.wgsl"),
    ),
    ("gram.wgsl", include_str!("../../shaders/gram.wgsl")),
    (
        "loss_tracking.wgsl",
        include_str!("../../shaders/loss_tracking.wgsl"),
    ),
    ("gate.wgsl", include_str!("../../shaders/gate.wgsl")),
    ("columns.wgsl", include_str!("../../shaders/columns.wgsl")),
    ("mixture.wgsl", include_str!("../../shaders/mixture.wgsl")),
    // A small MLP's whole step in one dispatch (`train::mlp_step`).
    ("mlp_step.wgsl", include_str!("../../shaders/mlp_step.wgsl")),
    // Learning to Branch's parent choice (`nn::branch`).
    ("branch.wgsl", include_str!("../../shaders/branch.wgsl")),
    (
        "embedding.wgsl",
        include_str!("../../shaders/embedding.wgsl"),
    ),
    (
        "step_counter.wgsl",
        include_str!("../../shaders/step_counter.wgsl"),
    ),
    ("im2col.wgsl", include_str!("../../shaders/im2col.wgsl")),
    (
        "conv_direct.wgsl",
        include_str!("../../shaders/conv_direct.wgsl"),
    ),
    ("maxpool.wgsl", include_str!("../../shaders/maxpool.wgsl")),
    ("avgpool.wgsl", include_str!("../../shaders/avgpool.wgsl")),
];

pub(crate) fn source(file: &'static str) -> &'static str {
    SHADERS
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, src)| *src)
        .unwrap_or_else(|| panic!("shader {file} is not listed in kernels::SHADERS"))
}

/// Most tasks any per-task kernel or solve handles (the solves keep K×K
/// matrices of at most 16×16 in workgroup memory; the Gram kernel K(K+1)/2
/// partial sums per invocation).
pub const MAX_TASKS: usize = 16;

pub use crate::gpu::dispatch::{grid, grid_1d, WG};

/// A WGSL file that belongs to a unit of its own (a task kind's loss, a
/// layer's kernels) rather than to [`SHADERS`]: the unit holds it beside its
/// wrapper and its CPU twin, declares it in its registry entry
/// (`KindInfo::shader`, `LayerInfo::shader`) for the naga validation test,
/// and records its entry points with [`Shader::record`].
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    /// The file's name in `shaders/` (the pipeline cache's key).
    pub file: &'static str,
    /// Its text (`include_str!` of the file).
    pub source: &'static str,
}

impl Shader {
    /// [`crate::gpu::dispatch::record_replicated`] for the entry point `entry` of this file.
    #[allow(clippy::too_many_arguments)]
    pub fn record_replicated<P: bytemuck::Pod>(
        &self,
        gpu: &Gpu,
        entry: &'static str,
        bindings: &[Binding],
        constants: &[(&str, f64)],
        params: &P,
        tensors: &[&Tensor],
        axis: &crate::gpu::dispatch::ReplicaAxis,
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        crate::gpu::dispatch::record_replicated(
            gpu,
            self.file,
            self.source,
            entry,
            bindings,
            constants,
            params,
            tensors,
            axis,
            workgroups,
        )
    }

    /// [`crate::gpu::dispatch::record`] for the entry point `entry` of this file.
    #[allow(clippy::too_many_arguments)]
    pub fn record<P: bytemuck::Pod>(
        &self,
        gpu: &Gpu,
        entry: &'static str,
        bindings: &[Binding],
        constants: &[(&str, f64)],
        params: &P,
        tensors: &[&Tensor],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        crate::gpu::dispatch::record(
            gpu,
            self.file,
            self.source,
            entry,
            bindings,
            constants,
            params,
            tensors,
            workgroups,
        )
    }
}

impl Shader {
    /// The kernel of `shaders/` named by its file in [`SHADERS`].
    pub(crate) fn builtin(file: &'static str) -> Shader {
        Shader {
            file,
            source: source(file),
        }
    }
}

/// [`Shader::record`] for a kernel of `shaders/` named by its file in [`SHADERS`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn record<P: bytemuck::Pod>(
    gpu: &Gpu,
    file: &'static str,
    entry: &'static str,
    bindings: &[Binding],
    constants: &[(&str, f64)],
    params: &P,
    tensors: &[&Tensor],
    workgroups: [u32; 3],
) -> Result<Dispatch> {
    Shader::builtin(file).record(gpu, entry, bindings, constants, params, tensors, workgroups)
}

/// C = op(A)·op(B) by the f32 kernels (`matmul::matmul_auto`: the chosen
/// kernel, split along k where the grid is small), or, when any of A, B, C or
/// the mask is f16, by the tensor cores where the adapter has them and the
/// product suits them (`matmul_coop::supports`), else by the mixed-precision
/// kernel. One or two dispatches; the autodiff ops call this.
pub fn product(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: matmul::MatmulOptions,
) -> Result<Vec<Dispatch>> {
    let f16 = |t: &Tensor| t.dtype() == crate::gpu::DType::F16;
    // The options but their tensors, for recording the product again.
    let opts_flags = matmul::MatmulOptions {
        bias: None,
        mask: None,
        bias_grad: None,
        replicas: None,
        ..opts
    };
    if matmul_coop::supports(gpu, a, b, c, &opts) {
        Ok(vec![matmul_coop::matmul_coop(gpu, a, b, c, opts)?])
    } else if f16(a) || f16(b) || f16(c) || opts.mask.is_some_and(|(t, _)| f16(t)) {
        let wg = matmul::workgroup(gpu)?;
        Ok(vec![matmul_f16::matmul_mixed(gpu, a, b, c, opts, wg)?])
    } else if opts.replicas.is_some() {
        matmul::matmul_auto(gpu, a, b, c, opts)
    } else {
        let group = matmul::matmul_auto(gpu, a, b, c, opts)?;
        // The written-out kernel has no replica axis, and each run's own
        // costs less than one shared dispatch of the rows kernels: such a
        // product is not recorded again (see `matmul_unrolled`).
        if group.iter().any(matmul_unrolled::runs) {
            return Ok(group);
        }
        // The same product over a replica axis, every operand at one stride.
        let (a, b, c) = (a.clone(), b.clone(), c.clone());
        let bias = opts.bias.cloned();
        let mask = opts.mask.map(|(t, side)| (t.clone(), side));
        let bias_grad = opts.bias_grad.cloned();
        let again = move |gpu: &Gpu, count: usize, stride: crate::gpu::dispatch::StrideOf<'_>| {
            let bias_stride = match (&bias, &bias_grad) {
                (Some(t), Some(g)) if stride(t) != stride(g) => {
                    return Err(crate::Error::internal(
                        "a product over a replica axis",
                        "bias and bias gradient at different strides",
                    ))
                }
                (Some(t), _) | (None, Some(t)) => stride(t),
                (None, None) => 0,
            };
            let replicas = matmul::Replicas {
                count,
                a: stride(&a),
                b: stride(&b),
                c: stride(&c),
                bias: bias_stride,
            };
            if let Some((t, side)) = &mask {
                let operand = match side {
                    matmul::Operand::A => replicas.a,
                    matmul::Operand::B => replicas.b,
                };
                if stride(t) != operand {
                    return Err(crate::Error::internal(
                        "a product over a replica axis",
                        "the mask and its operand at different strides",
                    ));
                }
            }
            let again = matmul::MatmulOptions {
                bias: bias.as_ref(),
                mask: mask.as_ref().map(|(t, side)| (t, *side)),
                bias_grad: bias_grad.as_ref(),
                replicas: Some(replicas),
                ..opts_flags
            };
            matmul::matmul_auto(gpu, &a, &b, &c, again)
        };
        Ok(crate::gpu::dispatch::replicable(group, again))
    }
}

/// The uniform parameters of the fused losses (softmax-CE, MSE, BCE).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct LossParams {
    pub rows: u32,
    pub cols: u32,
    pub slot: u32,
    pub _pad: u32,
    /// Replica r's B×C values (logits or predictions, their gradient, the
    /// targets), its B-row arrays (labels, mask, per-row losses) and its
    /// K-element arrays (scale, loss) lie this many elements past replica 0's.
    pub rep_values: u32,
    pub rep_rows: u32,
    pub rep_tasks: u32,
    pub _pad2: u32,
}

impl LossParams {
    /// The `WG` of a one-workgroup loss over `rows` rows: the smallest
    /// power of two that gives each row an invocation of its own, from 32
    /// up to 256 (the most; each invocation then takes rows lid, lid + 256,
    /// ...). The tree sums over 256 invocations added zeros from the idle
    /// ones before reaching this width, and adding zero changes no bit, so
    /// the sums are those of 256 invocations; on a CPU adapter the idle
    /// invocations and their barrier rounds cost most of a small batch's
    /// loss (a 32-row softmax-CE: 0.056 ms a call with 256 on lavapipe).
    pub(crate) fn workgroup(rows: usize) -> [(&'static str, f64); 1] {
        [("WG", rows.next_power_of_two().clamp(32, 256) as f64)]
    }

    pub(crate) fn new(rows: usize, cols: usize, slot: usize, reps: &LossReplicas) -> LossParams {
        LossParams {
            rows: rows as u32,
            cols: cols as u32,
            slot: slot as u32,
            _pad: 0,
            rep_values: reps.values as u32,
            rep_rows: reps.rows as u32,
            rep_tasks: reps.tasks as u32,
            _pad2: 0,
        }
    }
}

/// What each tensor of a fused loss is, for its replica stride.
#[derive(Clone, Copy)]
pub(crate) enum LossArray {
    /// B×C: logits or predictions, their gradient, regression or binary targets.
    Values,
    /// B: class labels, the row mask, per-row losses.
    Rows,
    /// K: the upstream gradients and the losses, one per task.
    Tasks,
}

/// `count` copies of a fused loss in one dispatch (the replica axis of
/// DESIGN.md's "many runs in one program", as [`matmul::Replicas`] is for
/// products): replica r's tensors lie r·stride elements past those given for
/// replica 0, each kind of tensor at its own stride (in elements). Each
/// replica takes its own mean over its own labelled rows and writes its own
/// `loss[slot]`, so `tasks` must be at least K and `values`, `rows` at least
/// the sizes of what the replicas write (checked when recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossReplicas {
    pub count: usize,
    pub values: usize,
    pub rows: usize,
    pub tasks: usize,
}

impl LossReplicas {
    /// One copy: the loss alone.
    pub const ONE: LossReplicas = LossReplicas {
        count: 1,
        values: 0,
        rows: 0,
        tasks: 0,
    };

    /// `count` copies, each group of tensors (values, rows, tasks) at the
    /// stride `stride` gives its tensors, which must agree within a group.
    pub fn from_strides(
        count: usize,
        [values, rows, tasks]: [&[&Tensor]; 3],
        stride: crate::gpu::dispatch::StrideOf<'_>,
    ) -> Result<LossReplicas> {
        let one = |group: &[&Tensor]| -> Result<usize> {
            let s = group.first().map_or(0, |t| stride(t));
            match group.iter().all(|t| stride(t) == s) {
                true => Ok(s),
                false => Err(crate::Error::internal(
                    "a loss over a replica axis",
                    "tensors of one kind at different strides",
                )),
            }
        };
        Ok(LossReplicas {
            count,
            values: one(values)?,
            rows: one(rows)?,
            tasks: one(tasks)?,
        })
    }

    fn stride(&self, kind: LossArray) -> usize {
        match kind {
            LossArray::Values => self.values,
            LossArray::Rows => self.rows,
            LossArray::Tasks => self.tasks,
        }
    }

    /// The replica axis over tensors of these kinds, in binding order.
    pub(crate) fn axis(&self, kinds: &[LossArray]) -> crate::gpu::dispatch::ReplicaAxis {
        crate::gpu::dispatch::ReplicaAxis {
            count: self.count.max(1),
            strides: kinds.iter().map(|&k| self.stride(k)).collect(),
        }
    }

    /// The grid: one workgroup per replica, along z.
    pub(crate) fn workgroups(&self, gpu: &Gpu) -> Result<[u32; 3]> {
        replica_grid(gpu, self.count)
    }
}

/// The grid of a one-workgroup kernel over `count` replicas: one workgroup
/// per replica, along z.
pub(crate) fn replica_grid(gpu: &Gpu, count: usize) -> Result<[u32; 3]> {
    let limit = gpu.limits.max_compute_workgroups_per_dimension as usize;
    if count > limit {
        return Err(Error::DispatchTooLarge {
            workgroups: count as u64,
            limit: limit as u64,
        });
    }
    Ok([1, 1, count.max(1) as u32])
}

/// `grid` repeated for `count` replicas along z (the kernel reads its
/// replica from the workgroup's z).
pub(crate) fn on_replicas(gpu: &Gpu, grid: [u32; 3], count: usize) -> Result<[u32; 3]> {
    let [x, y, _] = grid;
    let [_, _, z] = replica_grid(gpu, count)?;
    Ok([x, y, z])
}

/// A replica stride (elements) as the 32-bit value a kernel's parameters hold.
pub(crate) fn replica_stride(op: &str, stride: usize) -> Result<u32> {
    u32::try_from(stride).map_err(|_| {
        Error::InvalidConfig(format!(
            "{op}: a replica stride of {stride} elements does not fit 32 bits"
        ))
    })
}

/// Check that `slot` indexes both the K-element `scale` and `loss` arrays.
pub(crate) fn check_slot(
    op: &'static str,
    scale: &Tensor,
    loss: &Tensor,
    slot: usize,
) -> Result<()> {
    if slot >= scale.numel() || scale.numel() != loss.numel() {
        return Err(Error::shape(
            op,
            format!("scale and loss of equal length K > slot {slot}"),
            format!("scale {:?}, loss {:?}", scale.shape(), loss.shape()),
        ));
    }
    Ok(())
}

/// The (rows, columns) of a 2-D tensor.
pub(crate) fn matrix(op: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((r, c)),
        _ => Err(Error::shape(op, "a 2-D matrix", format!("{:?}", t.shape()))),
    }
}

/// The uniform parameters of the single-workgroup per-task kernels (K ≤ [`MAX_TASKS`]).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct TaskParams {
    pub(crate) tasks: u32,
    _pad: [u32; 3],
}

pub(crate) fn tasks_of(t: &Tensor) -> Result<TaskParams> {
    let k = t.numel();
    if k > MAX_TASKS {
        return Err(Error::InvalidConfig(format!(
            "at most {MAX_TASKS} tasks are supported, got {k}"
        )));
    }
    Ok(TaskParams {
        tasks: k as u32,
        _pad: [0; 3],
    })
}
