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
        let mut sums = Sums::new(subset.len());
        let ds = self.dispatches();
        for chunk in rows.chunks(self.b()) {
            self.batch.write(gpu, data, chunk, subset)?;
            gpu.run(&ds)?;
            let got = gpu.read_async(&self.wanted()).await?;
            sums.add(data, chunk, subset, &got);
        }
        Ok(sums.finish())
    }

    /// What a batch reads back: each task's outputs, then the losses.
    fn wanted(&self) -> Vec<&Tensor> {
        let mut wanted: Vec<&Tensor> = self.outputs.iter().collect();
        wanted.push(&self.losses);
        wanted
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

    /// [`ForwardProgram::evaluate_async`] of several programs at once
    /// (`jobs`: program, data, rows, tasks), batch i of each in one submit
    /// and one readback; each job's metrics as its own evaluation gives.
    pub async fn evaluate_together(
        gpu: &Gpu,
        jobs: &[(&ForwardProgram, &Dataset, &[usize], &[usize])],
    ) -> Result<Vec<Vec<TaskMetrics>>> {
        let mut sums: Vec<Sums> = jobs.iter().map(|j| Sums::new(j.3.len())).collect();
        let batches = (jobs.iter())
            .map(|(p, _, rows, _)| rows.len().div_ceil(p.b().max(1)))
            .max()
            .unwrap_or(0);
        for i in 0..batches {
            let chunk = |j: usize| batch_of(jobs[j].2, jobs[j].0.b(), i);
            let taking: Vec<usize> = (0..jobs.len()).filter(|&j| !chunk(j).is_empty()).collect();
            let mut ds = Vec::new();
            let mut wanted = Vec::new();
            for &j in &taking {
                let (p, data, _, subset) = jobs[j];
                p.batch.write(gpu, data, chunk(j), subset)?;
                ds.extend(p.dispatches());
                wanted.extend(p.wanted());
            }
            gpu.run(&ds)?;
            let mut got = gpu.read_async(&wanted).await?.into_iter();
            for &j in &taking {
                let (p, data, _, subset) = jobs[j];
                let mine: Vec<Vec<f32>> = got.by_ref().take(p.wanted().len()).collect();
                sums[j].add(data, chunk(j), subset, &mine);
            }
        }
        Ok((jobs.iter().zip(sums))
            .map(|((_, data, rows, subset), sums)| {
                let (outputs, losses) = sums.finish();
                metrics(data, rows, subset, &outputs, &losses)
            })
            .collect())
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
        Ok(metrics(data, rows, subset, &outputs, &losses))
    }
}

/// Batch `i` of `rows` in batches of `b`.
fn batch_of(rows: &[usize], b: usize, i: usize) -> &[usize] {
    let start = (i * b).min(rows.len());
    &rows[start..(start + b).min(rows.len())]
}

/// Each task's metrics from its outputs and mean loss over `rows`.
fn metrics(
    data: &Dataset,
    rows: &[usize],
    subset: &[usize],
    outputs: &[Vec<f32>],
    losses: &[f64],
) -> Vec<TaskMetrics> {
    (subset.iter().enumerate())
        .map(|(j, &t)| (data.tasks[t].kind).metrics(&outputs[j], &data.targets[t], rows, losses[j]))
        .collect()
}

/// An evaluation's running outputs and loss sums, batch by batch.
struct Sums {
    outputs: Vec<Vec<f32>>,
    loss_sum: Vec<f64>,
    valid: Vec<f64>,
}

impl Sums {
    fn new(k: usize) -> Sums {
        Sums {
            outputs: vec![Vec::new(); k],
            loss_sum: vec![0.0; k],
            valid: vec![0.0; k],
        }
    }

    /// Add a batch of `chunk` rows: `got` is each task's outputs, then the losses.
    fn add(&mut self, data: &Dataset, chunk: &[usize], subset: &[usize], got: &[Vec<f32>]) {
        let k = subset.len();
        for j in 0..k {
            let width = data.tasks[subset[j]].outputs();
            self.outputs[j].extend_from_slice(&got[j][..chunk.len() * width]);
            let mask = data.targets[subset[j]].mask();
            let n_valid: f64 = chunk.iter().map(|&i| mask[i] as f64).sum();
            self.loss_sum[j] += got[k][j] as f64 * n_valid;
            self.valid[j] += n_valid;
        }
    }

    /// Each task's outputs and mean loss over its labelled rows.
    fn finish(self) -> (Vec<Vec<f32>>, Vec<f64>) {
        let losses = (self.loss_sum.iter().zip(&self.valid))
            .map(|(&sum, &valid)| if valid > 0.0 { sum / valid } else { 0.0 })
            .collect();
        (self.outputs, losses)
    }
}
