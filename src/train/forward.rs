//! The forward-only program: the network and its fused losses over fixed-shape
//! batches, with no optimizer and no parameter gradients. Evaluation during
//! training and every use of a saved model (metrics, predictions) run it.
//!
//! Each batch is one submit and one readback (the outputs and the losses).
//! The loss kernels are the training ones with zero seeds: they report each
//! task's mean loss over its labelled rows, and their gradient output is a
//! scratch buffer nothing reads.

use super::metrics::TaskMetrics;
use super::step::{trace, BatchBuffers, StepOptions, TaskBuffers};
use crate::autodiff::Tape;
use crate::data::{Dataset, TaskSpec};
use crate::error::Result;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::matmul_f16;
use crate::nn::{MultiTaskNet, ParamSet};

/// The network's forward pass over batches of B rows.
pub struct ForwardProgram {
    batch: BatchBuffers,
    losses: Tensor,
    outputs: Vec<Tensor>,
    dispatches: Vec<Dispatch>,
}

impl ForwardProgram {
    /// Trace `net` for `tasks` on batches of `b` rows of `d` inputs; `opts.half`
    /// computes in f16 as the training step does (the set needs its f16 copy).
    pub fn build(
        gpu: &Gpu,
        net: &MultiTaskNet,
        params: &ParamSet,
        tasks: &[TaskSpec],
        d: usize,
        b: usize,
        opts: StepOptions,
    ) -> Result<ForwardProgram> {
        let batch = BatchBuffers::new(gpu, tasks, d, b)?;
        let tb = TaskBuffers::new(gpu, tasks.len())?;
        let mut tape = Tape::new(gpu);
        tape.half = opts.half;
        let traced = trace(&mut tape, net, params, &batch, &tb, None)?;
        let mut dispatches = Vec::new();
        if let (true, Some(v16)) = (opts.half, &params.values16) {
            dispatches.push(matmul_f16::to_f16(gpu, &params.values.whole, &v16.whole)?);
        }
        dispatches.append(&mut tape.forward);
        Ok(ForwardProgram {
            batch,
            losses: tb.losses,
            outputs: traced.outputs,
            dispatches,
        })
    }

    /// Batch rows B.
    pub fn b(&self) -> usize {
        self.batch.b
    }

    /// The dispatches of one batch.
    pub fn dispatches(&self) -> Vec<&Dispatch> {
        self.dispatches.iter().collect()
    }

    /// Run over `rows` of `data` (tasks `subset`), batch by batch: each task's
    /// outputs (rows × width: logits, or standardised values) and its mean
    /// loss over the labelled rows.
    pub fn run(
        &self,
        gpu: &Gpu,
        data: &Dataset,
        rows: &[usize],
        subset: &[usize],
    ) -> Result<(Vec<Vec<f32>>, Vec<f64>)> {
        pollster::block_on(self.run_async(gpu, data, rows, subset))
    }

    /// [`ForwardProgram::run`] as a future (each batch's readback awaited).
    pub async fn run_async(
        &self,
        gpu: &Gpu,
        data: &Dataset,
        rows: &[usize],
        subset: &[usize],
    ) -> Result<(Vec<Vec<f32>>, Vec<f64>)> {
        let k = subset.len();
        let mut outputs: Vec<Vec<f32>> = vec![Vec::new(); k];
        let (mut loss_sum, mut valid) = (vec![0.0f64; k], vec![0.0f64; k]);
        let ds = self.dispatches();
        for chunk in rows.chunks(self.b()) {
            self.batch.write(gpu, data, chunk, subset)?;
            gpu.run(&ds)?;
            let mut wanted: Vec<&Tensor> = self.outputs.iter().collect();
            wanted.push(&self.losses);
            let got = gpu.read_async(&wanted).await?;
            for j in 0..k {
                let width = data.tasks[subset[j]].outputs();
                outputs[j].extend_from_slice(&got[j][..chunk.len() * width]);
                let mask = data.targets[subset[j]].mask();
                let n_valid: f64 = chunk.iter().map(|&i| mask[i] as f64).sum();
                loss_sum[j] += got[k][j] as f64 * n_valid;
                valid[j] += n_valid;
            }
        }
        let losses = (0..k)
            .map(|j| {
                if valid[j] > 0.0 {
                    loss_sum[j] / valid[j]
                } else {
                    0.0
                }
            })
            .collect();
        Ok((outputs, losses))
    }

    /// Metrics of every task of `subset` on `rows`.
    pub fn evaluate(
        &self,
        gpu: &Gpu,
        data: &Dataset,
        rows: &[usize],
        subset: &[usize],
    ) -> Result<Vec<TaskMetrics>> {
        pollster::block_on(self.evaluate_async(gpu, data, rows, subset))
    }

    /// [`ForwardProgram::evaluate`] as a future.
    pub async fn evaluate_async(
        &self,
        gpu: &Gpu,
        data: &Dataset,
        rows: &[usize],
        subset: &[usize],
    ) -> Result<Vec<TaskMetrics>> {
        let (outputs, losses) = self.run_async(gpu, data, rows, subset).await?;
        Ok(subset
            .iter()
            .enumerate()
            .map(|(j, &t)| {
                data.tasks[t]
                    .kind
                    .metrics(&outputs[j], &data.targets[t], rows, losses[j])
            })
            .collect())
    }
}
