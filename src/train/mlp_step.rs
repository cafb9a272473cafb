//! A small MLP's training step but the optimizer in one dispatch of one
//! workgroup (`shaders/mlp_step.wgsl`): the forward pass, the losses and the
//! backward pass, where the general step records ~20 dispatches whose fixed
//! cost, not their arithmetic, sets the speed of a network this small. The
//! optimizer and the loss bookkeeping follow as in the general step, so a
//! step is three dispatches.
//!
//! An experiment of the speed issue (23), off by default: asked for with
//! [`StepOptions::mlp_step`] (`TASKGRAD_MLP_STEP=1` for the command line and
//! the workload runner), it runs where the network and the run allow it and
//! the general path runs elsewhere: a shared trunk of `linear:N,relu` pairs
//! (no embeddings, no image, no towers) with one linear head per task,
//! `class` and `reg` tasks, f32, no per-task gradients, a loss weighting that
//! writes its seeds before the forward pass at most (equal, fixed, DWA,
//! RLW), no method parameters, nothing frozen, and at most [`MAX_MACS`]
//! multiply-adds in the forward pass. It computes the general path's numbers
//! (tests/train.rs compares them step by step), but one workgroup runs on
//! one CPU core on lavapipe, and there it is slower than the general step
//! (BENCHMARKS.md, "One workgroup for the whole step"); on a GPU it is
//! unmeasured.

use crate::data::Dataset;
use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::Shader;
use crate::mtl::GradSpace;
use crate::nn::{MultiTaskNet, ParamSet};
use crate::task::{TargetData, TaskSpec};

use super::step::{StepOptions, TaskBuffers};

/// The kernel: `shaders/mlp_step.wgsl`.
pub const SHADER: Shader = Shader {
    file: "mlp_step.wgsl",
    source: include_str!("../../shaders/mlp_step.wgsl"),
};

/// The most multiply-adds of a forward pass the one-workgroup step takes
/// (W-iris: 0.55 M): beyond, the general path's many workgroups are faster.
pub const MAX_MACS: usize = 1 << 21;

/// Entries of the layout table (binding 0): room for 16 layers and 16 tasks.
const TABLE: usize = 256;
/// Header entries before the per-layer rows.
const HEADER: usize = 8;

/// The buffer the one-dispatch step reads its minibatch from.
pub struct MlpStep {
    /// x (B×D), then K×B targets (labels as f32), then K×B masks.
    pub batch: Tensor,
    b: usize,
    d: usize,
}

/// Whether the environment asks for the one-dispatch step (`TASKGRAD_MLP_STEP=1`).
pub fn requested() -> bool {
    std::env::var("TASKGRAD_MLP_STEP").is_ok_and(|v| matches!(v.trim(), "1" | "on" | "true"))
}

impl MlpStep {
    /// The one-dispatch step for this run and its batch buffer, or None
    /// where the general path must run (see the module's conditions);
    /// `seeds_only`: the weighting records nothing after the forward pass.
    #[allow(clippy::too_many_arguments)]
    pub fn try_build(
        gpu: &Gpu,
        net: &MultiTaskNet,
        params: &ParamSet,
        tasks: &[TaskSpec],
        (d, b): (usize, usize),
        tb: &TaskBuffers,
        opts: StepOptions,
        space: Option<GradSpace>,
        seeds_only: bool,
    ) -> Result<Option<(MlpStep, Dispatch)>> {
        if !opts.mlp_step || opts.half || space.is_some() || !seeds_only {
            return Ok(None);
        }
        let spec = &net.spec;
        if spec.arch != crate::nn::Arch::Shared
            || !net.tables.is_empty()
            || spec.image.is_some()
            || net.moe.is_some()
            || net.cross.is_some()
            || net.mtan.is_some()
        {
            return Ok(None);
        }
        let specs = spec.trunk_specs();
        let pairs = specs.len() / 2;
        let linear_relu = !specs.is_empty()
            && specs.len().is_multiple_of(2)
            && (0..pairs).all(|i| specs[2 * i].name == "linear" && specs[2 * i + 1].name == "relu");
        if !linear_relu || net.trunk.layers.len() != pairs || pairs > 16 {
            return Ok(None);
        }
        if net.heads.iter().any(|(tower, _)| !tower.layers.is_empty()) || tasks.len() > 16 {
            return Ok(None);
        }
        let names_ok =
            (params.names.iter()).all(|n| n.starts_with("trunk.") || n.starts_with("head."));
        let frozen = (0..params.names.len()).any(|i| params.is_frozen(crate::nn::ParamId(i)));
        if !names_ok || frozen {
            return Ok(None);
        }
        // class (softmax cross-entropy over its outputs) or reg (one output).
        let mut kinds = Vec::new();
        for t in tasks {
            match (t.kind.info().name, t.kind.outputs()) {
                ("class", c) if c >= 1 => kinds.push((0u32, c)),
                ("reg", 1) => kinds.push((1u32, 1)),
                _ => return Ok(None),
            }
        }
        let entries = params.values.layout.entries();
        let start = |id: crate::nn::ParamId| entries[id.0].1;
        let mut widths = vec![d];
        let mut layer_params = Vec::new();
        for layer in &net.trunk.layers {
            let ids = layer.params();
            if ids.len() != 2 {
                return Ok(None);
            }
            widths.push(layer.output());
            layer_params.push((start(ids[0]), start(ids[1])));
        }
        let t_all: usize = kinds.iter().map(|&(_, c)| c).sum();
        let wl = *widths.last().unwrap_or(&d);
        let macs = b * (widths.windows(2).map(|w| w[0] * w[1]).sum::<usize>() + wl * t_all);
        if macs > MAX_MACS {
            return Ok(None);
        }
        // The activations: h_l and dh_l per layer, then z and dz.
        let mut table = [0u32; TABLE];
        let mut at = 0usize;
        let mut layers = Vec::new();
        for (l, &(w, bias)) in layer_params.iter().enumerate() {
            let (n_in, n_out) = (widths[l], widths[l + 1]);
            let (h, dh) = (at, at + b * n_out);
            at += 2 * b * n_out;
            layers.push([n_in, n_out, w, bias, h, dh]);
        }
        let (z, dz) = (at, at + b * t_all);
        at += 2 * b * t_all;
        let x = at;
        at += b * d;
        let head = [b, d, pairs, tasks.len(), t_all, z, dz, x];
        for (i, v) in head.iter().enumerate() {
            table[i] = *v as u32;
        }
        for (l, row) in layers.iter().enumerate() {
            for (f, v) in row.iter().enumerate() {
                table[HEADER + 6 * l + f] = *v as u32;
            }
        }
        let mut col = 0;
        for (k, ((_, out), &(kind, c))) in net.heads.iter().zip(&kinds).enumerate() {
            let row = [c, start(out.w), start(out.b), kind as usize, col];
            for (f, v) in row.iter().enumerate() {
                table[HEADER + 6 * pairs + 5 * k + f] = *v as u32;
            }
            col += c;
        }
        let act = Tensor::zeros(gpu, &[at.max(1)], "mlp step activations")?;
        let k = tasks.len();
        let batch = Tensor::zeros(gpu, &[b * d + 2 * k * b], "mlp step batch")?;
        let grads = params.grads()?;
        use Binding::*;
        let dispatch = SHADER.record(
            gpu,
            "mlp_step",
            &[
                ReadOnly, ReadOnly, ReadWrite, ReadOnly, ReadOnly, ReadWrite, ReadWrite,
            ],
            &[],
            &table,
            &[
                &params.values.whole,
                &grads.whole,
                &batch,
                &tb.seeds,
                &tb.losses,
                &act,
            ],
            [1, 1, 1],
        )?;
        Ok(Some((MlpStep { batch, b, d }, dispatch)))
    }

    /// Write the minibatch `idx` (tasks `subset` of `data`), padded to B
    /// masked rows, into the step's one batch buffer.
    pub fn write(&self, gpu: &Gpu, data: &Dataset, idx: &[usize], subset: &[usize]) -> Result<()> {
        let hb = data.batch(idx, self.b, subset);
        let mut all = hb.x;
        all.resize(self.b * self.d, 0.0);
        for target in &hb.targets {
            match target {
                TargetData::Labels(l) => all.extend(l.iter().map(|&v| v as f32)),
                TargetData::Values(v) => all.extend_from_slice(v),
            }
        }
        for m in &hb.masks {
            all.extend_from_slice(m);
        }
        self.batch.write(gpu, &all)
    }
}
