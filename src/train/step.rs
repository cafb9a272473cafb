//! The training step, built once per batch shape and replayed: every buffer,
//! bind group and dispatch is made here, and a step is one ordered list of
//! dispatches encoded into one compute pass and submitted once.
//!
//! [`Program::build`] runs these phases, each a function below, and collects
//! their dispatches in a [`StepPlan`] with one named list per phase:
//!
//! 1. [`BatchBuffers::new`]: the minibatch's inputs, labels and masks;
//! 2. [`trace`]: the forward pass (trunk, heads, fused losses); with per-task
//!    gradients each head reads the trunk output through a stop-gradient, so
//!    the heads' backward pass leaves task k's gradient at the representation
//!    in row k of DZ;
//! 3. the backward pass from the losses over the heads (and, without per-task
//!    gradients, the trunk);
//! 4. the per-task gradient path of the chosen space,
//!    [`per_task_in_parameters`] (K trunk passes, pass k writing the shared
//!    parameters' gradients to row k of a K×P buffer; Gram; solve; Σ_k w_k g_k
//!    over the shared part of the gradient arena) or
//!    [`per_task_in_representation`] (Gram of DZ; solve; dz = Σ_k w_k DZ_k;
//!    one trunk pass from dz);
//! 5. the weighting's dispatches ([`crate::mtl::WeightingPlan`]);
//! 6. the loss bookkeeping and the optimizer;
//! 7. for a weighting that looks at what the update did (FAMO): the forward
//!    pass and losses again on the same batch, then its `after_update`.
//!
//! A method that draws several minibatches a step (MoDo, SDMGrad:
//! `Weighting::samples`) gets phases 1 and 2 once per minibatch, over the same
//! parameter nodes, and phase 4 stacks every minibatch's K rows for it. With
//! [`StepOptions::mlp_step`], a small MLP's phases 2–4 are one dispatch
//! instead (`super::mlp_step`).
//!
//! [`StepPlan::train`] lists a training step in order. Evaluation and
//! inference use the forward-only [`super::ForwardProgram`].

use std::ops::Range;
use std::sync::Arc;

use crate::autodiff::{Tape, Var};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::gram::{self, GradRows};
use crate::kernels::{elementwise, loss_tracking, matmul_f16, step_counter};
use crate::mtl::{GradSpace, Weighting, WeightingContext, WeightingPlan};
use crate::nn::{MultiTaskNet, ParamSet};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::task::{LossInputs, Storage, TargetData, TaskKind, TaskSpec};

/// Round `n` up to the storage-offset alignment (in elements).
fn aligned(gpu: &Gpu, n: usize) -> usize {
    let a = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    n.div_ceil(a) * a
}

/// How a step is built.
#[derive(Clone, Copy, Debug)]
pub struct StepOptions {
    /// Fuse the ReLU mask and the bias gradient into the backward matmuls (default true).
    pub fused: bool,
    /// Matmuls and hidden activations in f16, f32 accumulation, f32 master
    /// weights and gradients (needs `SHADER_F16` and a half-precision ParamSet).
    pub half: bool,
    /// Run a small MLP's forward, losses and backward as one dispatch of one
    /// workgroup where it fits (`train::mlp_step`; default false: on lavapipe
    /// it is slower than the general step, BENCHMARKS.md "One workgroup").
    pub mlp_step: bool,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            fused: true,
            half: false,
            mlp_step: false,
        }
    }
}

/// The minibatch's buffers: inputs (B×D), and per task its targets (B, as
/// the task's kind stores them) and a row mask (1 = labelled).
pub struct BatchBuffers {
    pub b: usize,
    pub x: Tensor,
    /// Each task's kind: it records the task's loss over these buffers.
    pub kinds: Vec<Arc<dyn TaskKind>>,
    pub targets: Vec<Tensor>,
    pub masks: Vec<Tensor>,
}

impl BatchBuffers {
    pub fn new(gpu: &Gpu, tasks: &[TaskSpec], d: usize, b: usize) -> Result<BatchBuffers> {
        let x = Tensor::zeros(gpu, &[b, d], "batch x")?;
        let (mut targets, mut masks) = (Vec::new(), Vec::new());
        for t in tasks {
            targets.push(match t.kind.storage() {
                Storage::Labels => Tensor::from_u32(gpu, &[b], &vec![0; b], "batch labels")?,
                Storage::Values => Tensor::zeros(gpu, &[b], "batch targets")?,
            });
            masks.push(Tensor::zeros(gpu, &[b], "batch mask")?);
        }
        Ok(BatchBuffers {
            b,
            x,
            kinds: tasks.iter().map(|t| t.kind.clone()).collect(),
            targets,
            masks,
        })
    }

    /// Write the minibatch `idx` (tasks `subset` of `data`), padded to B masked rows.
    pub fn write(&self, gpu: &Gpu, data: &Dataset, idx: &[usize], subset: &[usize]) -> Result<()> {
        let hb = data.batch(idx, self.b, subset);
        self.x.write(gpu, &hb.x)?;
        for (k, target) in hb.targets.iter().enumerate() {
            match target {
                TargetData::Labels(l) => self.targets[k].write_u32(gpu, l)?,
                TargetData::Values(v) => self.targets[k].write(gpu, v)?,
            }
            self.masks[k].write(gpu, &hb.masks[k])?;
        }
        Ok(())
    }
}

/// Buffers every phase shares: the per-task scalars and the Gram matrix.
pub struct TaskBuffers {
    /// K seeds: the weight of each task's loss in the total.
    pub seeds: Tensor,
    /// K losses of the current step.
    pub losses: Tensor,
    /// Per-task loss sums, first non-finite step and count (3K).
    pub state: Tensor,
    /// K×K Gram matrix of the per-task gradients (meaningful with a gradient space).
    pub gram: Tensor,
    /// K combination weights of the per-task gradients (ones unless a method writes them).
    pub combine: Tensor,
}

impl TaskBuffers {
    pub(crate) fn new(gpu: &Gpu, k: usize) -> Result<TaskBuffers> {
        Ok(TaskBuffers {
            seeds: Tensor::zeros(gpu, &[k], "task seeds")?,
            losses: Tensor::zeros(gpu, &[k], "task losses")?,
            state: Tensor::zeros(gpu, &[3 * k], "loss bookkeeping")?,
            gram: Tensor::zeros(gpu, &[k, k], "task gradient gram")?,
            combine: Tensor::from_slice(gpu, &[k], &vec![1.0; k], "combination weights")?,
        })
    }
}

/// What the forward trace leaves for the backward phases.
pub struct Traced {
    /// Each task's representation (the trunk's output, the same for every
    /// task; or a mixture of experts' per-task mixture) and its shape.
    pub zs: Vec<Var>,
    pub z_shape: Vec<usize>,
    /// Each row of DZ is one task's gradient at its representation (with a
    /// gradient space): K rows of `z_stride` elements.
    pub dz_rows: Option<Tensor>,
    pub z_stride: usize,
    /// Each head's output (logits or predictions).
    pub outputs: Vec<Tensor>,
    /// The fused loss nodes, one per task.
    pub loss_vars: Vec<Var>,
    /// How many of the tape's forward dispatches belong to the network (the rest are losses).
    pub n_net: usize,
    /// Each task's last gate (B×E), for a mixture of experts.
    pub gates: Vec<Tensor>,
}

impl Traced {
    /// Every task reads the same representation (a trunk, OMoE).
    pub fn one_representation(&self) -> bool {
        self.zs.windows(2).all(|w| w[0] == w[1])
    }
}

/// Phase 2: record the network and the fused losses on `tape`.
pub fn trace(
    tape: &mut Tape,
    net: &MultiTaskNet,
    params: &ParamSet,
    batch: &BatchBuffers,
    tb: &TaskBuffers,
    space: Option<GradSpace>,
) -> Result<Traced> {
    let gpu = tape.gpu;
    let k = batch.masks.len();
    let xv = tape.input(&batch.x);
    let (zs, gate_vars) = net.shared_forward_with_gates(tape, params, xv)?;
    let gates = gate_vars.iter().map(|&g| tape.value(g).clone()).collect();
    let z_shape = tape.value(zs[0]).shape().to_vec();
    let z_stride = aligned(gpu, z_shape.iter().product());
    let dz_rows = match space {
        Some(_) => Some(Tensor::zeros(
            gpu,
            &[k * z_stride],
            "per-task representation gradients",
        )?),
        None => None,
    };
    let mut outs = Vec::new();
    for (j, &z) in zs.iter().enumerate() {
        let input = match &dz_rows {
            Some(rows) => tape.stop_gradient(z, &rows.slice(j * z_stride, &z_shape)?)?,
            None => z,
        };
        outs.push(net.head_forward(tape, params, input, j)?);
    }
    let n_net = tape.forward.len();
    let mut loss_vars = Vec::new();
    for (j, &out) in outs.iter().enumerate() {
        let inputs = LossInputs {
            target: &batch.targets[j],
            mask: &batch.masks[j],
            seeds: &tb.seeds,
            losses: &tb.losses,
            slot: j,
        };
        loss_vars.push(batch.kinds[j].loss(tape, out, inputs)?);
    }
    let outputs = outs.iter().map(|&o| tape.value(o).clone()).collect();
    Ok(Traced {
        zs,
        z_shape,
        dz_rows,
        z_stride,
        outputs,
        loss_vars,
        n_net,
        gates,
    })
}

/// The dispatches of a per-task gradient path (phase 4).
#[derive(Default)]
pub struct PerTaskPath {
    pub gram: Vec<Dispatch>,
    pub combine: Vec<Dispatch>,
}

/// Where the combination of the K rows goes.
pub enum Combined {
    /// One buffer of N: Σ_k w_k g_k (or a coordinate-wise method's combination).
    Sum(Tensor),
    /// K rows of the rows' stride, each task's weighted on its own: w_k g_k.
    EachRow(Tensor),
}

/// The K per-task gradient rows of a step, before their reduction.
pub struct PerTaskRows {
    pub rows: GradRows,
    pub into: Combined,
}

impl PerTaskRows {
    /// The reduction, once `weighting` is built: its memory of past rows if
    /// it keeps one ([`Weighting::record_memory`]: DB-MTL, MoCo, ExcessMTL), the Gram
    /// matrix of the rows it uses, and their combination, a weighted sum or
    /// its own coordinate-wise one ([`Weighting::coordinate_wise`]:
    /// GradDrop, TrimmedMean).
    fn reduce(
        self,
        gpu: &Gpu,
        weighting: &mut dyn Weighting,
        space: GradSpace,
        tb: &TaskBuffers,
    ) -> Result<PerTaskPath> {
        let (mut gram, rows) = match weighting.record_memory(gpu, &self.rows, space)? {
            // Rows weighted one by one are the starts of backward passes, laid
            // out as the step's own rows: a memory's rows cannot stand in.
            Some(_) if matches!(self.into, Combined::EachRow(_)) => {
                return Err(Error::InvalidConfig(format!(
                    "{} keeps a memory of the task gradients, which cannot stand in for one \
                     representation per task (mmoe, cgc, ple): use --space params",
                    weighting.name()
                )))
            }
            Some((update, rows)) => (update, rows),
            None => (Vec::new(), self.rows),
        };
        if rows.k != tb.seeds.numel() {
            return Err(Error::internal(
                "per-task rows",
                format!(
                    "{} left {} rows to combine for {} tasks",
                    weighting.name(),
                    rows.k,
                    tb.seeds.numel()
                ),
            ));
        }
        let gd = gram::gram(gpu, &rows, &tb.gram)?;
        gram.extend([gd.partial, gd.finish]);
        let combine = match (&self.into, weighting.coordinate_wise()) {
            (Combined::Sum(out), false) => gram::combine(gpu, &rows, &tb.combine, out)?,
            (Combined::Sum(out), true) => weighting.record_combine(gpu, &rows, out)?,
            (Combined::EachRow(out), false) => gram::scale_rows(gpu, &rows, &tb.combine, out)?,
            (Combined::EachRow(_), true) => {
                return Err(Error::InvalidConfig(format!(
                    "{} combines the task gradients coordinate by coordinate, which cannot be \
                     done at one representation per task (mmoe, cgc, ple): take its gradients \
                     in parameter space (--space params)",
                    weighting.name()
                )))
            }
        };
        Ok(PerTaskPath {
            gram,
            combine: vec![combine],
        })
    }
}

/// Phase 4, parameter space: K passes through the trunk, pass k writing the
/// gradients of the shared parameters (`shared`, a range of the arena) to row k
/// of G (K×P); their combination goes over the shared gradients. With several
/// minibatches per step (MoDo, SDMGrad: one trace each), minibatch s's K
/// rows are rows sK..sK + K of G (SK×P), and the method says which it combines.
pub fn per_task_in_parameters(
    tape: &mut Tape,
    params: &ParamSet,
    traced: &[Traced],
    shared: Range<usize>,
    tb: &TaskBuffers,
) -> Result<PerTaskRows> {
    let gpu = tape.gpu;
    let k = tb.seeds.numel();
    let p = shared.len();
    let grads = params.grads()?;
    let g = Tensor::zeros(gpu, &[traced.len() * k * p], "per-task parameter gradients")?;
    let shared_params: Vec<(Var, usize)> = tape
        .param_vars()
        .into_iter()
        .filter_map(|v| {
            tape.grad_target(v)
                .and_then(|t| t.start_within(&grads.whole))
                .filter(|s| shared.contains(s))
                .map(|s| (v, s - shared.start))
        })
        .collect();
    // ANCHOR: per_task_rows
    for (s, traced) in traced.iter().enumerate() {
        let dz = (traced.dz_rows.as_ref())
            .ok_or_else(|| Error::internal("per-task gradients", "a trace without DZ"))?;
        for j in 0..k {
            let row = s * k + j;
            for &(v, at) in &shared_params {
                let shape = tape.value(v).shape().to_vec();
                tape.redirect_grad(v, &g.slice(row * p + at, &shape)?)?;
            }
            let seed = dz.slice(j * traced.z_stride, &traced.z_shape)?;
            tape.backward_from(traced.zs[j], &seed)?;
        }
    }
    // ANCHOR_END: per_task_rows
    let target = grads.whole.slice(shared.start, &[p])?;
    Ok(PerTaskRows {
        rows: GradRows::new(g, traced.len() * k, p, p)?,
        into: Combined::Sum(target),
    })
}

/// Phase 4, representation space (MGDA-UB): the rows are DZ, and with one
/// representation dz = Σ_k w_k DZ_k and one trunk pass from dz (when the
/// trunk has parameters); with one representation per task (MMoE, CGC, PLE)
/// each task's row weighted on its own, w_k DZ_k, and one pass from all the
/// tasks' representations at once (the shared experts sum what every task
/// sends them).
pub fn per_task_in_representation(
    tape: &mut Tape,
    traced: &Traced,
    dz: &Tensor,
    trunk_has_params: bool,
    tb: &TaskBuffers,
) -> Result<PerTaskRows> {
    let gpu = tape.gpu;
    let k = tb.seeds.numel();
    let z_len: usize = traced.z_shape.iter().product();
    let rows = GradRows::new(dz.clone(), k, z_len, traced.z_stride)?;
    if !traced.one_representation() {
        let scaled = Tensor::zeros(
            gpu,
            &[k * traced.z_stride],
            "weighted representation gradients",
        )?;
        let starts = traced
            .zs
            .iter()
            .enumerate()
            .map(|(j, &z)| Ok((z, scaled.slice(j * traced.z_stride, &traced.z_shape)?)))
            .collect::<Result<Vec<_>>>()?;
        tape.backward_from_many(&starts)?;
        return Ok(PerTaskRows {
            rows,
            into: Combined::EachRow(scaled),
        });
    }
    let dz_sum = Tensor::zeros(gpu, &traced.z_shape, "combined representation gradient")?;
    if trunk_has_params {
        tape.backward_from(traced.zs[0], &dz_sum)?;
    }
    Ok(PerTaskRows {
        rows,
        into: Combined::Sum(dz_sum.reshape(&[z_len])?),
    })
}

/// Every dispatch of a step, by phase.
#[derive(Default)]
pub struct StepPlan {
    /// Half precision: refresh the f16 copy of the weights.
    pub cast: Vec<Dispatch>,
    /// The weighting's seeds, before the forward pass.
    pub seeds: Vec<Dispatch>,
    pub network: Vec<Dispatch>,
    pub losses: Vec<Dispatch>,
    /// Seeds from this step's losses (FAMO); the losses run again after them.
    pub reseed: Vec<Dispatch>,
    /// Backward over the heads (and, with no gradient space, the trunk).
    pub heads_backward: Vec<Dispatch>,
    /// The trunk's backward passes of the per-task path.
    pub trunk_backward: Vec<Dispatch>,
    pub gram: Vec<Dispatch>,
    /// The weighting's solve: the Gram matrix to combination weights or seeds.
    pub solve: Vec<Dispatch>,
    pub combine: Vec<Dispatch>,
    pub after_backward: Vec<Dispatch>,
    pub track: Vec<Dispatch>,
    /// After the optimizer: the weighting's look at the losses that its step
    /// produced on the same batch (FAMO), run after the forward pass again.
    pub after_update: Vec<Dispatch>,
    /// Last of all: the GPU step counter advanced, when a layer draws a new
    /// random mask each step (dropout); the step's passes all read one value.
    pub advance: Vec<Dispatch>,
    /// Where per-task gradients are taken (None: one joint backward pass),
    /// decided once here: it orders the phases, and the trainer reads it to
    /// know whether each epoch has per-task gradient statistics.
    pub space: Option<GradSpace>,
}

impl StepPlan {
    /// A small MLP: the network, its losses and its backward pass as one
    /// dispatch, in place of theirs, where `mlp_step::MlpStep`
    /// takes the network and nothing runs between those phases.
    #[allow(clippy::too_many_arguments)]
    fn fuse_small_mlp(
        &mut self,
        gpu: &Gpu,
        net: &MultiTaskNet,
        params: &ParamSet,
        tasks: &[TaskSpec],
        (d, b): (usize, usize),
        tb: &TaskBuffers,
        opts: StepOptions,
        space: Option<GradSpace>,
    ) -> Result<Option<super::mlp_step::MlpStep>> {
        let seeds_only = self.reseed.is_empty()
            && self.solve.is_empty()
            && self.after_backward.is_empty()
            && self.after_update.is_empty();
        let fused = super::mlp_step::MlpStep::try_build(
            gpu,
            net,
            params,
            tasks,
            (d, b),
            tb,
            opts,
            space,
            seeds_only,
        )?;
        Ok(fused.map(|(step, dispatch)| {
            self.network = vec![dispatch];
            self.losses.clear();
            self.heads_backward.clear();
            self.trunk_backward.clear();
            step
        }))
    }

    // ANCHOR: step_order
    /// A training step, in order, without the optimizer.
    pub fn train(&self) -> Vec<&Dispatch> {
        let mut lists = vec![&self.cast, &self.seeds, &self.network, &self.losses];
        if !self.reseed.is_empty() {
            lists.extend([&self.reseed, &self.losses]);
        }
        lists.push(&self.heads_backward);
        match self.space {
            // The combination overwrites the shared gradients the trunk passes wrote.
            Some(GradSpace::Parameters) => {
                lists.extend([&self.trunk_backward, &self.gram, &self.solve, &self.combine])
            }
            // The trunk pass starts from the combined representation gradient.
            Some(GradSpace::Representation) => {
                lists.extend([&self.gram, &self.solve, &self.combine, &self.trunk_backward])
            }
            None => lists.push(&self.trunk_backward),
        }
        lists.extend([&self.after_backward, &self.track]);
        lists.into_iter().flatten().collect()
    }
    // ANCHOR_END: step_order

    /// What runs after the optimizer: nothing, or (FAMO) the forward pass and
    /// losses again on the same batch at the updated weights, then the
    /// weighting's `after_update`.
    pub fn after_update(&self) -> Vec<&Dispatch> {
        if self.after_update.is_empty() {
            return Vec::new();
        }
        [&self.cast, &self.network, &self.losses, &self.after_update]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// The GPU side of one training run.
pub struct Program {
    /// The step's minibatches: one, or one per sample a method draws (MoDo, SDMGrad: 3).
    pub batches: Vec<BatchBuffers>,
    pub tasks: TaskBuffers,
    /// Each head's output buffer.
    pub outputs: Vec<Tensor>,
    /// Each task's last gate (B×E) of a mixture of experts, as the step leaves it.
    pub gates: Vec<Tensor>,
    pub plan: StepPlan,
    pub optimizer: Box<dyn Optimizer>,
    /// The recorded graph (forward and backward of the loss terms), for
    /// drawing: see [`crate::train::graph_dot`].
    pub graph: Vec<crate::autodiff::GraphNode>,
    /// A small MLP's forward, losses and backward in one dispatch, in place
    /// of the plan's network, losses and backward lists (`train::mlp_step`).
    pub mlp_step: Option<super::mlp_step::MlpStep>,
}

/// Dispatches that copy the task weights and the Gram matrix into one slot
/// of a history on the GPU, so that a run can watch them at chosen steps
/// without a readback inside a step: slot i holds K seeds, K combination
/// weights and the K×K Gram matrix at `i · stride`.
pub struct StepWatch {
    pub history: Tensor,
    pub stride: usize,
    pub k: usize,
    /// Per slot: the three copies, appended to a watched step's dispatches.
    pub copies: Vec<[Dispatch; 3]>,
}

impl StepWatch {
    pub fn new(gpu: &Gpu, tb: &TaskBuffers, slots: usize) -> Result<StepWatch> {
        let k = tb.seeds.numel();
        // Each copy's destination starts at a storage-binding offset.
        let part = aligned(gpu, k * k);
        let stride = 3 * part;
        let history = Tensor::zeros(gpu, &[slots.max(1) * stride], "watched steps")?;
        let copies = (0..slots.max(1))
            .map(|i| {
                let at = |j: usize, shape: &[usize]| history.slice(i * stride + j * part, shape);
                Ok([
                    elementwise::scale(gpu, &tb.seeds, 1.0, &at(0, &[k])?)?,
                    elementwise::scale(gpu, &tb.combine, 1.0, &at(1, &[k])?)?,
                    elementwise::scale(gpu, &tb.gram.reshape(&[k * k])?, 1.0, &at(2, &[k * k])?)?,
                ])
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(StepWatch {
            history,
            stride,
            k,
            copies,
        })
    }

    /// Slot `i` of a read-back history: (seeds, combination weights, Gram matrix).
    pub fn slot<'a>(&self, history: &'a [f32], i: usize) -> (&'a [f32], &'a [f32], &'a [f32]) {
        let (k, part) = (self.k, self.stride / 3);
        let base = i * self.stride;
        (
            &history[base..base + k],
            &history[base + part..base + part + k],
            &history[base + 2 * part..base + 2 * part + k * k],
        )
    }
}

/// Each task's loss at every step of an epoch ([`TrainConfig::log_losses`]),
/// copied into slot i of a history on the GPU by step i's own submit, so
/// that a run logs every step's losses without a readback inside a step:
/// slot i holds the K losses at `i · stride`.
///
/// [`TrainConfig::log_losses`]: crate::train::TrainConfig::log_losses
pub struct LossLog {
    pub history: Tensor,
    pub stride: usize,
    pub k: usize,
    /// Per slot: the copy appended to that step's dispatches.
    pub copies: Vec<Dispatch>,
}

impl LossLog {
    pub fn new(gpu: &Gpu, tb: &TaskBuffers, slots: usize) -> Result<LossLog> {
        let k = tb.losses.numel();
        // Each copy's destination starts at a storage-binding offset.
        let stride = aligned(gpu, k);
        let history = Tensor::zeros(gpu, &[slots.max(1) * stride], "logged losses")?;
        let copies = (0..slots.max(1))
            .map(|i| elementwise::scale(gpu, &tb.losses, 1.0, &history.slice(i * stride, &[k])?))
            .collect::<Result<Vec<_>>>()?;
        Ok(LossLog {
            history,
            stride,
            k,
            copies,
        })
    }

    /// The first `steps` slots of a read-back history, one K-vector per step.
    pub fn read(&self, history: &[f32], steps: usize) -> Vec<Vec<f64>> {
        (0..steps)
            .map(|i| {
                let at = i * self.stride;
                history[at..at + self.k].iter().map(|&v| v as f64).collect()
            })
            .collect()
    }
}

/// The forward passes of a step's minibatches on one tape.
struct Minibatches {
    batches: Vec<BatchBuffers>,
    traces: Vec<Traced>,
    /// The network's dispatches and the losses', every minibatch's.
    network: Vec<Dispatch>,
    losses: Vec<Dispatch>,
}

/// One trace per minibatch of the step (several for MoDo and SDMGrad): each
/// its own activations over the same parameter nodes.
#[allow(clippy::too_many_arguments)]
fn trace_minibatches(
    tape: &mut Tape<'_>,
    net: &MultiTaskNet,
    params: &ParamSet,
    tasks: &[TaskSpec],
    (d, b): (usize, usize),
    tb: &TaskBuffers,
    space: Option<GradSpace>,
    samples: usize,
) -> Result<Minibatches> {
    let gpu = tape.gpu;
    let mut out = Minibatches {
        batches: Vec::new(),
        traces: Vec::new(),
        network: Vec::new(),
        losses: Vec::new(),
    };
    for _ in 0..samples {
        let batch = BatchBuffers::new(gpu, tasks, d, b)?;
        let start = tape.forward.len();
        let traced = trace(tape, net, params, &batch, tb, space)?;
        let mut forward = tape.forward.split_off(start);
        out.losses.extend(forward.split_off(traced.n_net - start));
        out.network.extend(forward);
        out.batches.push(batch);
        out.traces.push(traced);
    }
    Ok(out)
}

impl Program {
    /// Trace `net` on batches of `b` rows and build the step for `tasks`.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        gpu: &Gpu,
        net: &MultiTaskNet,
        params: &ParamSet,
        tasks: &[TaskSpec],
        d: usize,
        b: usize,
        weighting: &mut dyn Weighting,
        space: Option<GradSpace>,
        optimizer: OptimizerConfig,
    ) -> Result<Program> {
        let opts = StepOptions::default();
        Self::build_with(
            gpu, net, params, tasks, d, b, weighting, space, optimizer, opts,
        )
    }

    /// [`Program::build`] with [`StepOptions`]: the unfused backward (for
    /// benchmarks) or half precision.
    #[allow(clippy::too_many_arguments)]
    pub fn build_with(
        gpu: &Gpu,
        net: &MultiTaskNet,
        params: &ParamSet,
        tasks: &[TaskSpec],
        d: usize,
        b: usize,
        weighting: &mut dyn Weighting,
        space: Option<GradSpace>,
        optimizer: OptimizerConfig,
        opts: StepOptions,
    ) -> Result<Program> {
        check_half(gpu, params, opts)?;
        let samples = weighting.samples().max(1);
        let tb = TaskBuffers::new(gpu, tasks.len())?;
        let mut tape = Tape::new(gpu);
        tape.fuse = opts.fused;
        tape.half = opts.half;
        tape.training = true;
        let Minibatches {
            batches,
            mut traces,
            network,
            losses,
        } = trace_minibatches(&mut tape, net, params, tasks, (d, b), &tb, space, samples)?;
        let loss_vars: Vec<Var> = traces.iter().flat_map(|t| t.loss_vars.clone()).collect();
        tape.backward(&loss_vars)?;
        if samples > 1 {
            // Each minibatch's backward pass added to the heads' gradients:
            // their mean is the step's (the shared part is overwritten below).
            tape.backward.push(elementwise::rescale(
                gpu,
                &params.grads()?.whole,
                1.0 / samples as f32,
            )?);
        }
        let n_heads = tape.backward.len();
        let shared = net.shared_segment(params)?;
        // A frozen trunk has no gradients to take: per-task gradients are then taken at z.
        let trunk_trains =
            !shared.is_empty() && (net.shared_params().iter()).any(|&id| !params.is_frozen(id));
        if samples > 1 && !(space == Some(GradSpace::Parameters) && trunk_trains) {
            return Err(Error::InvalidConfig(format!(
                "{} draws {samples} minibatches per step and combines the gradients of the \
                 shared parameters: it needs --space params and a trunk that trains",
                weighting.name()
            )));
        }
        let rows = match (space, &traces[0].dz_rows) {
            (Some(GradSpace::Parameters), Some(_)) if trunk_trains => {
                let shared = shared.start..aligned(gpu, shared.end).min(params.values.layout.len());
                let rows = per_task_in_parameters(&mut tape, params, &traces, shared, &tb)?;
                Some((rows, GradSpace::Parameters))
            }
            // Representation space, or a trunk without parameters: combine at z.
            (Some(_), Some(dz)) => {
                let rows =
                    per_task_in_representation(&mut tape, &traces[0], dz, trunk_trains, &tb)?;
                Some((rows, GradSpace::Representation))
            }
            _ => None,
        };
        let ctx = WeightingContext {
            params,
            seeds: &tb.seeds,
            losses: &tb.losses,
            gram: &tb.gram,
            combine: &tb.combine,
        };
        let weights: WeightingPlan = weighting.build(gpu, &ctx)?;
        let path = match rows {
            Some((rows, space)) => rows.reduce(gpu, weighting, space, &tb)?,
            None => PerTaskPath::default(),
        };
        let graph = tape.graph();

        let cast = cast_weights(gpu, params, opts)?;
        let mut heads_backward = std::mem::take(&mut tape.backward);
        let trunk_backward = heads_backward.split_off(n_heads);
        let mut plan = StepPlan {
            cast,
            seeds: weights.before,
            network,
            losses,
            reseed: weights.after_forward,
            heads_backward,
            trunk_backward,
            gram: path.gram,
            solve: weights.after_gram,
            combine: path.combine,
            after_backward: weights.after_backward,
            track: vec![loss_tracking::track_losses(gpu, &tb.losses, &tb.state)?],
            advance: tape
                .step
                .as_ref()
                .map(|step| step_counter::advance(gpu, step))
                .into_iter()
                .collect::<Result<_>>()?,
            after_update: weights.after_update,
            // A parameter-space path over a trunk without trainable parameters ran in representation space.
            space: match space {
                Some(GradSpace::Parameters) if !trunk_trains => Some(GradSpace::Representation),
                s => s,
            },
        };
        let mlp_step = match samples {
            1 => plan.fuse_small_mlp(gpu, net, params, tasks, (d, b), &tb, opts, space)?,
            _ => None,
        };
        // What a step leaves to look at is its last minibatch's.
        let last = traces.pop().expect("at least one trace");
        Ok(Program {
            batches,
            tasks: tb,
            outputs: last.outputs,
            gates: last.gates,
            plan,
            optimizer: optimizer.build(gpu, params)?,
            graph,
            mlp_step,
        })
    }

    /// Batch rows B.
    pub fn b(&self) -> usize {
        self.batches[0].b
    }

    /// Minibatches per step (1; MoDo and SDMGrad draw 3).
    pub fn samples(&self) -> usize {
        self.batches.len()
    }

    /// Write the minibatch `idx` (tasks `subset` of `data`) into the batch
    /// buffers: into every sample's, for a method that draws several.
    pub fn write_batch(
        &self,
        gpu: &Gpu,
        data: &Dataset,
        idx: &[usize],
        subset: &[usize],
    ) -> Result<()> {
        if let Some(step) = &self.mlp_step {
            return step.write(gpu, data, idx, subset);
        }
        for batch in &self.batches {
            batch.write(gpu, data, idx, subset)?;
        }
        Ok(())
    }

    /// Write the minibatch `idx` into sample `s`'s buffers.
    pub fn write_sample(
        &self,
        gpu: &Gpu,
        s: usize,
        data: &Dataset,
        idx: &[usize],
        subset: &[usize],
    ) -> Result<()> {
        self.batches[s].write(gpu, data, idx, subset)
    }

    /// The dispatches of one training step: the step, the optimizer, and
    /// what the weighting runs after the update (FAMO).
    pub fn train_dispatches(&self) -> Vec<&Dispatch> {
        let mut ds = self.plan.train();
        ds.extend(self.optimizer.dispatches());
        ds.extend(self.plan.after_update());
        ds.extend(&self.plan.advance);
        ds
    }
}

/// Half precision: refresh the f16 copy of the weights (one dispatch over the arena).
fn cast_weights(gpu: &Gpu, params: &ParamSet, opts: StepOptions) -> Result<Vec<Dispatch>> {
    match &params.values16 {
        Some(v16) if opts.half => Ok(vec![matmul_f16::to_f16(
            gpu,
            &params.values.whole,
            &v16.whole,
        )?]),
        _ => Ok(Vec::new()),
    }
}

/// Half precision needs the feature, an f16 copy of the weights, and the fused backward.
fn check_half(gpu: &Gpu, params: &ParamSet, opts: StepOptions) -> Result<()> {
    if !opts.half {
        return Ok(());
    }
    if !gpu.has_f16() {
        return Err(Error::MissingFeature {
            feature: "SHADER_F16",
            why: format!("{} cannot compute in f16; train in f32", gpu.report),
        });
    }
    if params.values16.is_none() {
        return Err(Error::InvalidConfig(
            "half precision needs parameters built with ParamBuilder::new_half".into(),
        ));
    }
    if !opts.fused {
        return Err(Error::InvalidConfig(
            "half precision has only the fused backward".into(),
        ));
    }
    Ok(())
}
