//! The training step, built once per batch shape and replayed: every buffer,
//! bind group and dispatch is made here, and a step is one ordered list of
//! dispatches encoded into one compute pass and submitted once.
//!
//! Order of a step (indices into one pool of dispatches):
//!
//! 1. the weighting's `before` (seeds);
//! 2. the forward pass: trunk, heads, fused losses;
//! 3. if the weighting has `after_forward` (seeds from this step's losses):
//!    those, then the loss kernels again;
//! 4. backward:
//!    - no per-task gradients: one joint pass from all losses;
//!    - per-task, parameter space: a pass over the heads (each head reads the
//!      trunk output through a stop-gradient, so task k's gradient at the
//!      representation lands in row k of DZ), then K trunk passes, pass k
//!      writing the trunk's parameter gradients to row k of G; the Gram matrix
//!      of G; the weighting's solve; Σ_k w_k G_k written over the trunk's part
//!      of the gradient arena;
//!    - per-task, representation space: the heads pass; the Gram matrix of DZ;
//!      the solve; dz = Σ_k w_k DZ_k; one trunk pass from dz;
//! 5. the weighting's `after_backward`; loss bookkeeping; Adam.

use crate::autodiff::Tape;
use crate::data::{Dataset, TaskSpec};
use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::Gpu;
use crate::gpu::{Arena, Tensor};
use crate::kernels::gram::{self, GradRows};
use crate::kernels::loss_tracking;
use crate::kernels::optim::{Adam, AdamConfig};
use crate::mtl::{GradSpace, Weighting, WeightingContext};
use crate::nn::{MultiTaskNet, ParamSet};

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
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            fused: true,
            half: false,
        }
    }
}

/// The GPU side of one training run.
pub struct Program {
    pub b: usize,
    x: Tensor,
    labels: Vec<Option<Tensor>>,
    values: Vec<Option<Tensor>>,
    masks: Vec<Tensor>,
    pub seeds: Tensor,
    pub losses: Tensor,
    /// Per-task loss sums, first non-finite step and count (3K).
    pub state: Tensor,
    /// K×K Gram matrix of the per-task gradients (meaningful when `space` is set).
    pub gram: Tensor,
    pub space: Option<GradSpace>,
    pub outputs: Vec<Tensor>,
    pool: Vec<Dispatch>,
    train_order: Vec<usize>,
    eval_order: Vec<usize>,
    pub adam: Adam,
    _keep: Vec<Tensor>,
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
        adam_cfg: AdamConfig,
    ) -> Result<Program> {
        Self::build_with(
            gpu,
            net,
            params,
            tasks,
            d,
            b,
            weighting,
            space,
            adam_cfg,
            StepOptions::default(),
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
        adam_cfg: AdamConfig,
        opts: StepOptions,
    ) -> Result<Program> {
        if opts.half {
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
        }
        let k = tasks.len();
        let x = Tensor::zeros(gpu, &[b, d], "batch x")?;
        let (mut labels, mut values, mut masks) = (Vec::new(), Vec::new(), Vec::new());
        for t in tasks {
            if t.is_classification() {
                labels.push(Some(Tensor::from_u32(
                    gpu,
                    &[b],
                    &vec![0; b],
                    "batch labels",
                )?));
                values.push(None);
            } else {
                labels.push(None);
                values.push(Some(Tensor::zeros(gpu, &[b, 1], "batch targets")?));
            }
            masks.push(Tensor::zeros(gpu, &[b], "batch mask")?);
        }
        let seeds = Tensor::zeros(gpu, &[k], "task seeds")?;
        let losses = Tensor::zeros(gpu, &[k], "task losses")?;
        let state = Tensor::zeros(gpu, &[3 * k], "loss bookkeeping")?;
        let gram_m = Tensor::zeros(gpu, &[k, k], "task gradient gram")?;
        let combine = Tensor::from_slice(gpu, &[k], &vec![1.0; k], "combination weights")?;
        let mut keep = Vec::new();

        // ---- trace: trunk, heads (through stop-gradients when per-task), losses
        let mut tape = Tape::new(gpu);
        tape.fuse = opts.fused;
        tape.half = opts.half;
        let xv = tape.input(&x);
        let z = net.trunk_forward(&mut tape, params, xv)?;
        let z_shape = tape.value(z).shape().to_vec();
        let z_len: usize = z_shape.iter().product();
        let z_stride = aligned(gpu, z_len);
        let dz_rows = match space {
            Some(_) => Some(Tensor::zeros(
                gpu,
                &[k * z_stride],
                "per-task representation gradients",
            )?),
            None => None,
        };
        let mut outs = Vec::new();
        for j in 0..k {
            let input = match &dz_rows {
                Some(rows) => tape.stop_gradient(z, &rows.slice(j * z_stride, &z_shape)?)?,
                None => z,
            };
            outs.push(net.head_forward(&mut tape, params, input, j)?);
        }
        let n_net = tape.forward.len();
        let mut loss_vars = Vec::new();
        for (j, &out) in outs.iter().enumerate() {
            let l = match (&labels[j], &values[j]) {
                (Some(lab), _) => tape.softmax_ce(out, lab, &masks[j], &seeds, &losses, j)?,
                (None, Some(val)) => tape.mse(out, val, &masks[j], &seeds, &losses, j)?,
                (None, None) => {
                    return Err(Error::InvalidConfig(
                        "a task has neither labels nor values".into(),
                    ))
                }
            };
            loss_vars.push(l);
        }
        let n_forward = tape.forward.len();
        let outputs: Vec<Tensor> = outs.iter().map(|&o| tape.value(o).clone()).collect();

        // ---- backward passes
        tape.backward(&loss_vars)?;
        let n_heads = tape.backward.len();
        let mut gram_ds = Vec::new();
        let mut combine_d = None;
        // Parameters of the trunk occupy the start of the arena: [0, shared).
        let shared = match net.trunk.last() {
            Some(last) => {
                let entries = params.values.layout.entries();
                let (_, start, shape) = &entries[last.b.0];
                aligned(gpu, start + shape.iter().product::<usize>())
            }
            None => 0,
        };
        match (space, &dz_rows) {
            (Some(GradSpace::Parameters), Some(dz)) if shared > 0 => {
                let g = Tensor::zeros(gpu, &[k * shared], "per-task parameter gradients")?;
                let trunk_params: Vec<_> = tape
                    .param_vars()
                    .into_iter()
                    .filter_map(|v| {
                        tape.grad_target(v)
                            .and_then(|t| t.start_within(&params.grads.whole))
                            .filter(|&s| s < shared)
                            .map(|s| (v, s))
                    })
                    .collect();
                for j in 0..k {
                    for &(v, start) in &trunk_params {
                        let shape = tape.value(v).shape().to_vec();
                        tape.redirect_grad(v, &g.slice(j * shared + start, &shape)?)?;
                    }
                    tape.backward_from(z, &dz.slice(j * z_stride, &z_shape)?)?;
                }
                let rows = GradRows::new(g.clone(), k, shared, shared)?;
                let gd = gram::gram(gpu, &rows, &gram_m)?;
                keep.push(gd.scratch.clone());
                gram_ds = vec![gd.partial, gd.finish];
                combine_d = Some(gram::combine(
                    gpu,
                    &rows,
                    &combine,
                    &params.grads.whole.slice(0, &[shared])?,
                )?);
                keep.push(g);
            }
            (Some(_), Some(dz)) => {
                // Representation space (or a trunk without parameters): combine at z, one trunk pass.
                let rows = GradRows::new(dz.clone(), k, z_len, z_stride)?;
                let gd = gram::gram(gpu, &rows, &gram_m)?;
                keep.push(gd.scratch.clone());
                gram_ds = vec![gd.partial, gd.finish];
                let dz_sum = Tensor::zeros(gpu, &z_shape, "combined representation gradient")?;
                combine_d = Some(gram::combine(
                    gpu,
                    &rows,
                    &combine,
                    &dz_sum.reshape(&[z_len])?,
                )?);
                if shared > 0 {
                    tape.backward_from(z, &dz_sum)?;
                }
                keep.push(dz_sum);
            }
            _ => {}
        }
        let plan = weighting.build(
            gpu,
            &WeightingContext {
                params,
                seeds: &seeds,
                losses: &losses,
                gram: &gram_m,
                combine: &combine,
            },
        )?;
        keep.extend([combine, x.clone()]);

        // ---- order the pool
        let mut pool: Vec<Dispatch> = Vec::new();
        let push_all = |pool: &mut Vec<Dispatch>, ds: Vec<Dispatch>| -> Vec<usize> {
            let start = pool.len();
            pool.extend(ds);
            (start..pool.len()).collect()
        };
        // Half precision: refresh the f16 copy of the weights (one dispatch over the arena).
        let cast = match &params.values16 {
            Some(v16) if opts.half => push_all(
                &mut pool,
                vec![crate::kernels::matmul_f16::to_f16(
                    gpu,
                    &params.values.whole,
                    &v16.whole,
                )?],
            ),
            _ => Vec::new(),
        };
        let before = push_all(&mut pool, plan.before);
        let mut forward_ds: Vec<Dispatch> = std::mem::take(&mut tape.forward);
        let loss_ds = forward_ds.split_off(n_net);
        debug_assert_eq!(loss_ds.len(), n_forward - n_net);
        let net_idx = push_all(&mut pool, forward_ds);
        let loss_idx = push_all(&mut pool, loss_ds);
        let after_forward = push_all(&mut pool, plan.after_forward);
        let mut backward_ds = std::mem::take(&mut tape.backward);
        let trunk_tail = backward_ds.split_off(n_heads);
        let heads_idx = push_all(&mut pool, backward_ds);
        let trunk_idx = push_all(&mut pool, trunk_tail);
        let gram_idx = push_all(&mut pool, gram_ds);
        let solve_idx = push_all(&mut pool, plan.after_gram);
        let combine_idx = push_all(&mut pool, combine_d.into_iter().collect());
        let after_backward = push_all(&mut pool, plan.after_backward);
        let track_idx = push_all(
            &mut pool,
            vec![loss_tracking::track_losses(gpu, &losses, &state)?],
        );

        let eval_order: Vec<usize> = cast
            .iter()
            .chain(&before)
            .chain(&net_idx)
            .chain(&loss_idx)
            .copied()
            .collect();
        let mut train_order = eval_order.clone();
        if !after_forward.is_empty() {
            train_order.extend(&after_forward);
            train_order.extend(&loss_idx);
        }
        train_order.extend(&heads_idx);
        match space {
            Some(GradSpace::Parameters) if shared > 0 => {
                for list in [&trunk_idx, &gram_idx, &solve_idx, &combine_idx] {
                    train_order.extend(list);
                }
            }
            Some(_) => {
                for list in [&gram_idx, &solve_idx, &combine_idx, &trunk_idx] {
                    train_order.extend(list);
                }
            }
            None => train_order.extend(&trunk_idx),
        }
        train_order.extend(&after_backward);
        train_order.extend(&track_idx);

        let (m, v) = (
            Arena::new(gpu, &params.values.layout, "adam m")?,
            Arena::new(gpu, &params.values.layout, "adam v")?,
        );
        let adam = Adam::new(
            gpu,
            adam_cfg,
            &params.values.whole,
            &m.whole,
            &v.whole,
            &params.grads.whole,
        )?;
        keep.extend([m.whole, v.whole]);
        if let Some(dz) = dz_rows {
            keep.push(dz);
        }
        Ok(Program {
            b,
            x,
            labels,
            values,
            masks,
            seeds,
            losses,
            state,
            gram: gram_m,
            space,
            outputs,
            pool,
            train_order,
            eval_order,
            adam,
            _keep: keep,
        })
    }

    /// Write the minibatch `idx` (tasks `subset` of `data`) into the batch buffers.
    pub fn write_batch(
        &self,
        gpu: &Gpu,
        data: &Dataset,
        idx: &[usize],
        subset: &[usize],
    ) -> Result<()> {
        let hb = data.batch(idx, self.b, subset);
        self.x.write(gpu, &hb.x)?;
        for k in 0..subset.len() {
            if let Some(l) = &self.labels[k] {
                l.write_u32(gpu, &hb.labels[k])?;
            }
            if let Some(v) = &self.values[k] {
                v.write(gpu, &hb.values[k])?;
            }
            self.masks[k].write(gpu, &hb.masks[k])?;
        }
        Ok(())
    }

    /// The dispatches of one training step, Adam last.
    pub fn train_dispatches(&self) -> Vec<&Dispatch> {
        self.train_order
            .iter()
            .map(|&i| &self.pool[i])
            .chain(std::iter::once(&self.adam.dispatch))
            .collect()
    }

    /// The dispatches of an evaluation batch: seeds, forward, losses.
    pub fn eval_dispatches(&self) -> Vec<&Dispatch> {
        self.eval_order.iter().map(|&i| &self.pool[i]).collect()
    }
}
