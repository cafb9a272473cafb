//! The multi-task trainer.
//!
//! A training step is built once for the batch shape ([`super::step`]): the
//! loss weighting's seeds, the traced forward (network and fused losses), the
//! backward with its per-task gradient path, the weighting's solve, the loss
//! bookkeeping and one optimizer dispatch over the whole parameter arena. Each step writes the minibatch with
//! `queue.write_buffer`, re-encodes that list into one compute pass and submits
//! once; nothing is read back until the end of the epoch (one readback of the
//! per-task loss sums) or an evaluation.

use std::time::Duration;
use web_time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::forward::ForwardProgram;
use super::step::{LossLog, Program, StepOptions, StepWatch, TaskBuffers};
use super::Schedule;
use crate::data::{Dataset, Split, TaskSpec};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::mtl::{GradSpace, Weighting};
use crate::nn::{
    Activation, Arch, Freeze, LayerSpec, MultiTaskNet, NetSpec, ParamBuilder, ParamSet,
};
use crate::optim::{OptimizerConfig, OptimizerKind};
use crate::train::metrics::TaskMetrics;

/// Everything a training run is configured by.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// The optimizer (default Adam), its base learning rate, SGD's momentum,
    /// and the weight decay (L2 for SGD and Adam, decoupled for AdamW).
    pub optimizer: OptimizerKind,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub schedule: Schedule,
    /// Stop after this many epochs without a better validation loss; keep the best weights.
    pub patience: Option<usize>,
    pub seed: u64,
    /// Hidden widths of the shared trunk.
    pub trunk: Vec<usize>,
    /// Hidden widths of each task's tower.
    pub tower: Vec<usize>,
    /// The trunk as a list of layers (`linear:64`, `layernorm`, `dropout:0.1`,
    /// …); when not empty it replaces `trunk` and `activation` for the trunk.
    pub trunk_layers: Vec<LayerSpec>,
    /// Each task's tower as a list of layers; when not empty it replaces `tower`.
    pub tower_layers: Vec<LayerSpec>,
    /// Each expert of a mixture as a list of layers; empty: one linear layer
    /// of the architecture's `expert_hidden` and `activation`.
    pub expert_layers: Vec<LayerSpec>,
    /// The hidden layers' activation.
    pub activation: Activation,
    /// The shared part: a trunk of `trunk` widths, or a mixture of experts
    /// (which then replaces the trunk).
    pub arch: Arch,
    /// Where per-task gradients are taken, overriding the method's choice.
    pub grad_space: Option<GradSpace>,
    /// Compute per-task gradients every step even for methods that need none,
    /// so each epoch reports gradient norms and cosines.
    pub grad_stats: bool,
    /// Time every kernel of the first epoch's steps (after the first) with timestamp queries.
    pub profile: bool,
    /// Start from these parameter values (by name) instead of a fresh
    /// initialisation: resuming from a checkpoint, or a warm start
    /// ([`InitParams::warm`]).
    pub init: Option<std::sync::Arc<InitParams>>,
    /// Parameters held fixed ([`Freeze`]): fine-tuning heads over a frozen
    /// trunk. They get no gradient dispatch and no update.
    pub freeze: Freeze,
    /// Matmuls and hidden activations in f16 with f32 accumulation and f32
    /// master weights, gradients and optimizer (needs `SHADER_F16`).
    pub half: bool,
    /// Told after every training step how far the run is (a progress bar).
    pub on_step: Option<StepHook>,
    /// List the training step's dispatches in [`FitReport::step_listing`].
    pub dump_step: bool,
    /// Draw the step's graph, with the last step's values and gradients, in
    /// [`FitReport::graph`] (Graphviz DOT).
    pub dump_graph: bool,
    /// Every this many steps (0: never), record each task's weight and the
    /// per-task gradients' norms and cosines ([`EpochLog::steps`]): copies
    /// into a history on the GPU inside the step's submit, read back with the
    /// epoch's losses. Implies per-task gradients, as `grad_stats`.
    pub watch_every: usize,
    /// Record each task's loss at every training step
    /// ([`EpochLog::step_losses`]): copied aside on the GPU inside the step's
    /// submit and read back with the epoch's losses.
    pub log_losses: bool,
    /// Stop after this many training steps (None: after `epochs`); the last
    /// epoch may then be cut short, and its log covers the steps it ran.
    pub max_steps: Option<u64>,
    /// At the end, return to the weights of the epoch with the lowest
    /// monitored loss ([`EpochLog::monitored_loss`]; default). Off: keep the
    /// last step's weights, as an experiment that reports where training
    /// ended does.
    pub keep_best: bool,
}

/// How far a run is, after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepProgress {
    /// Steps done in this run.
    pub done: u64,
    /// Steps the run takes if it does not stop early (epochs × steps per epoch).
    pub total: u64,
    /// Rows per step.
    pub rows: usize,
}

/// A step callback that can sit in [`TrainConfig`] (cloned with it).
#[derive(Clone)]
pub struct StepHook(pub std::sync::Arc<dyn Fn(StepProgress) + Send + Sync>);

impl StepHook {
    pub fn new(f: impl Fn(StepProgress) + Send + Sync + 'static) -> StepHook {
        StepHook(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for StepHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepHook")
    }
}

/// Parameter values to start from, and where they came from (for error messages).
#[derive(Debug)]
pub struct InitParams {
    pub source: std::path::PathBuf,
    pub values: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// A warm start rather than a resume: the parameters the new network
    /// shares by name with `values` start from them (same shapes required),
    /// a new task's head keeps its fresh initial values, and what `values`
    /// has beyond the network (the heads of tasks left out) is ignored.
    /// A resume (false) needs every parameter and nothing else.
    pub warm: bool,
}

impl TrainConfig {
    /// The optimizer these settings name.
    pub fn optimizer_config(&self) -> OptimizerConfig {
        OptimizerConfig {
            kind: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
        }
    }
}

/// Every default of a training run, written here once: the command line's
/// flags and the config file take theirs from this (`cli::settings`), and
/// the optimizer's from [`OptimizerConfig::default`].
impl Default for TrainConfig {
    fn default() -> Self {
        let optimizer = OptimizerConfig::default();
        TrainConfig {
            epochs: 100,
            batch_size: 32,
            optimizer: optimizer.kind,
            lr: optimizer.lr,
            momentum: optimizer.momentum,
            weight_decay: optimizer.weight_decay,
            schedule: Schedule::Constant,
            patience: Some(30),
            seed: 0,
            trunk: vec![64, 64],
            tower: vec![],
            trunk_layers: vec![],
            tower_layers: vec![],
            expert_layers: vec![],
            activation: Activation::Relu,
            arch: Arch::Shared,
            grad_space: None,
            grad_stats: false,
            profile: false,
            init: None,
            freeze: Freeze::None,
            half: false,
            on_step: None,
            dump_step: false,
            dump_graph: false,
            watch_every: 0,
            log_losses: false,
            max_steps: None,
            keep_best: true,
        }
    }
}

/// One numbered line per dispatch of a training step (see `Dispatch::describe`).
fn describe_step(prog: &Program) -> Vec<String> {
    prog.train_dispatches()
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{:>3}  {}", i + 1, d.describe()))
        .collect()
}

/// What an epoch reads back.
pub(super) struct EpochReadback {
    /// Mean training loss per task.
    losses: Vec<f64>,
    /// The last step's Gram matrix, task weights and gates.
    gram: Vec<f32>,
    weights: Vec<f64>,
    gates: Vec<Vec<f64>>,
    /// The watched steps.
    steps: Vec<WatchedStep>,
    /// Each step's K losses, with `TrainConfig::log_losses`.
    step_losses: Vec<Vec<f64>>,
}

impl EpochReadback {
    /// The epoch's log: with per-task gradients (`per_task`), the last
    /// step's gradient norms and cosines from its Gram matrix.
    fn into_log(self, epoch: usize, lr: f32, val: Vec<TaskMetrics>, per_task: bool) -> EpochLog {
        let (grad_norms, cosines) = match per_task {
            true => grad_stats(&self.gram, self.losses.len()),
            false => (Vec::new(), Vec::new()),
        };
        EpochLog {
            epoch,
            lr,
            train_loss: self.losses,
            val,
            grad_norms,
            cosines,
            weights: self.weights,
            gates: self.gates,
            steps: self.steps,
            step_losses: self.step_losses,
        }
    }
}

/// Each task's weight in an update: its seed times its combination weight.
fn task_weights(seeds: &[f32], combine: &[f32]) -> Vec<f64> {
    seeds
        .iter()
        .zip(combine)
        .map(|(&s, &c)| s as f64 * c as f64)
        .collect()
}

/// One watched step ([`TrainConfig::watch_every`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WatchedStep {
    /// The step's number in the run, from 1.
    pub step: u64,
    pub epoch: usize,
    /// Each task's weight in this step's update: seed × combination weight.
    pub weights: Vec<f64>,
    /// ‖g_k‖ and the K×K cosines of the per-task gradients at this step.
    pub grad_norms: Vec<f64>,
    pub cosines: Vec<f64>,
}

/// One epoch's record.
#[derive(Clone, Debug)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f32,
    /// Mean training loss per task over the epoch's steps.
    pub train_loss: Vec<f64>,
    /// Validation metrics per task (empty without a validation split).
    pub val: Vec<TaskMetrics>,
    /// Per-task gradient norms ‖g_k‖ at the epoch's last step (empty without per-task gradients).
    pub grad_norms: Vec<f64>,
    /// Pairwise cosines of the per-task gradients, K×K row-major (empty without per-task gradients).
    pub cosines: Vec<f64>,
    /// The weight of each task's gradient in the epoch's last update: its
    /// seed (the loss weight) times its combination weight (a gradient
    /// method's; 1 otherwise).
    pub weights: Vec<f64>,
    /// With a mixture of experts, each task's gate weights over the experts
    /// of its last layer, averaged over the epoch's last minibatch (which
    /// experts each task uses); empty otherwise.
    pub gates: Vec<Vec<f64>>,
    /// The steps of this epoch watched by [`TrainConfig::watch_every`].
    pub steps: Vec<WatchedStep>,
    /// With [`TrainConfig::log_losses`], each task's training loss at each
    /// of the epoch's steps, in order (one K-vector per step; their mean is
    /// `train_loss`); empty otherwise.
    pub step_losses: Vec<Vec<f64>>,
}

/// The result of [`fit`].
pub struct FitReport {
    pub net: MultiTaskNet,
    pub params: ParamSet,
    pub tasks: Vec<TaskSpec>,
    pub history: Vec<EpochLog>,
    /// The epoch whose weights `params` holds: the best one, or the last
    /// with [`TrainConfig::keep_best`] off.
    pub best_epoch: usize,
    pub stopped_early: bool,
    pub steps: u64,
    /// Test metrics per task with the best weights.
    pub test: Vec<TaskMetrics>,
    pub wall: Duration,
    /// Time spent in training steps (submits until the epoch's loss readback), evaluation excluded.
    pub train_time: Duration,
    pub dispatches_per_step: usize,
    /// With `TrainConfig::dump_step`: one line per dispatch of a training
    /// step, in order (kernel, grid, bound tensors); see `Dispatch::describe`.
    pub step_listing: Vec<String>,
    /// Per-kernel GPU time over `profiled_steps` steps (with `TrainConfig::profile`).
    pub profile: Vec<crate::gpu::profile::KernelTime>,
    pub profiled_steps: usize,
    /// With `TrainConfig::dump_graph`: the step's graph in Graphviz DOT, each
    /// node with the last training step's value and gradient.
    pub graph: String,
}

impl EpochLog {
    /// What early stopping watches: the summed validation loss, or the summed
    /// training loss without a validation split.
    pub fn monitored_loss(&self) -> f64 {
        if self.val.is_empty() {
            self.train_loss.iter().sum()
        } else {
            self.val.iter().map(|m| m.loss()).sum()
        }
    }
}

impl FitReport {
    /// Mean milliseconds per training step.
    pub fn ms_per_step(&self) -> f64 {
        1e3 * self.train_time.as_secs_f64() / self.steps.max(1) as f64
    }
}

/// Train a multi-task network on the tasks `subset` (indices into `data.tasks`)
/// with `weighting`; `on_epoch` sees each epoch's log. Blocks until done; in
/// a browser, where nothing may block, use [`fit_async`].
pub fn fit(
    gpu: &Gpu,
    data: &Dataset,
    split: &Split,
    subset: &[usize],
    weighting: Box<dyn Weighting>,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<FitReport> {
    pollster::block_on(fit_async(
        gpu, data, split, subset, weighting, cfg, on_epoch,
    ))
}

/// [`fit`] as a future: each epoch's one readback (and each evaluation's)
/// is awaited rather than waited for, so a browser's event loop runs between
/// epochs (and `on_epoch` can redraw a page). Natively the device is polled
/// before each await, so the future never waits on anything else.
pub async fn fit_async(
    gpu: &Gpu,
    data: &Dataset,
    split: &Split,
    subset: &[usize],
    weighting: Box<dyn Weighting>,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<FitReport> {
    let mut run = Run::start(gpu, data, split, subset, weighting, cfg).await?;
    for epoch in 0..cfg.epochs {
        run.begin_epoch(gpu, epoch)?;
        run.run_steps(gpu, epoch)?;
        if run.end_epoch(gpu, epoch, on_epoch).await? {
            break;
        }
    }
    run.finish(gpu).await
}

/// One training run between its steps: everything [`fit_async`] holds, cut
/// at the places where several runs can take turns (`super::lockstep`
/// steps many runs in one submit each). A run's numbers do not depend on
/// whether it is stepped alone or beside others.
pub(super) struct Run<'a> {
    data: &'a Dataset,
    split: &'a Split,
    subset: &'a [usize],
    cfg: &'a TrainConfig,
    weighting: Box<dyn Weighting>,
    tasks: Vec<TaskSpec>,
    net: MultiTaskNet,
    params: ParamSet,
    prog: Program,
    eval: ForwardProgram,
    epochs: Epochs,
    initial: Vec<f64>,
    history: Vec<EpochLog>,
    dispatches_per_step: usize,
    step_listing: Vec<String>,
    start: Instant,
    /// The learning rate of the epoch under way.
    lr: f32,
}

impl<'a> Run<'a> {
    /// Build the network, its step and its evaluation, and measure the
    /// losses before training (the yardstick of divergence).
    pub(super) async fn start(
        gpu: &Gpu,
        data: &'a Dataset,
        split: &'a Split,
        subset: &'a [usize],
        mut weighting: Box<dyn Weighting>,
        cfg: &'a TrainConfig,
    ) -> Result<Run<'a>> {
        let start = Instant::now();
        check_settings(data, subset, cfg)?;
        let tasks: Vec<TaskSpec> = subset.iter().map(|&k| data.tasks[k].clone()).collect();
        let b = cfg.batch_size.min(split.train.len());
        let (net, params) = build_model(gpu, data, &tasks, cfg, weighting.as_mut())?;
        let (prog, eval) = build_programs(
            gpu,
            (&net, &params),
            (&tasks, data.d, b),
            weighting.as_mut(),
            cfg,
        )?;
        let dispatches_per_step = prog.train_dispatches().len();
        let step_listing = match cfg.dump_step {
            true => describe_step(&prog),
            false => Vec::new(),
        };
        let epochs = Epochs::new(gpu, &params, &prog.tasks, split, cfg)?;
        let initial = initial_losses(gpu, &eval, data, split, subset, b).await?;
        Ok(Run {
            data,
            split,
            subset,
            cfg,
            weighting,
            tasks,
            net,
            params,
            prog,
            eval,
            epochs,
            initial,
            history: Vec::new(),
            dispatches_per_step,
            step_listing,
            start,
            lr: cfg.lr,
        })
    }

    /// The run's epochs.
    pub(super) fn epochs(&self) -> usize {
        self.cfg.epochs
    }

    /// Steps in each of its epochs.
    pub(super) fn steps_in_epoch(&self) -> usize {
        self.epochs.steps_in_epoch()
    }

    /// The epoch's learning rate and schedule, and its minibatch order.
    pub(super) fn begin_epoch(&mut self, gpu: &Gpu, epoch: usize) -> Result<()> {
        let cfg = self.cfg;
        self.lr = cfg.lr * cfg.schedule.factor(epoch, cfg.epochs);
        self.prog.optimizer.set_lr(self.lr);
        self.net.set_epoch(gpu, epoch, cfg.epochs)?;
        self.epochs.begin();
        Ok(())
    }

    /// The epoch's steps, one submit each.
    fn run_steps(&mut self, gpu: &Gpu, epoch: usize) -> Result<()> {
        for i in 0..self.epochs.steps_in_epoch() {
            if !self.write_step(gpu, i)? {
                break;
            }
            // Profile the first epoch's steps but its first (pipelines still warming).
            if self.epochs.profile_first_epoch && epoch == 0 && self.epochs.steps > 0 {
                let mut profile = std::mem::take(&mut self.epochs.profile);
                let ds = self.step_dispatches(i);
                let ms = gpu.run_profiled(&ds)?;
                crate::gpu::profile::accumulate(&mut profile, &ds, &ms);
                self.epochs.profile = profile;
                self.epochs.profiled_steps += 1;
            } else {
                gpu.run(&self.step_dispatches(i))?;
            }
            self.after_step(i);
        }
        Ok(())
    }

    /// Write step `i`'s minibatch(es) and per-step values; false when the
    /// run takes no step `i` (its last step is behind it, or its epoch is shorter).
    pub(super) fn write_step(&mut self, gpu: &Gpu, i: usize) -> Result<bool> {
        self.epochs
            .write_step(gpu, &mut self.prog, self.data, self.subset, i)
    }

    /// Step `i`'s dispatches, after [`Run::write_step`] said it takes one.
    pub(super) fn step_dispatches(&self, i: usize) -> Vec<&crate::gpu::Dispatch> {
        let mut ds = self.prog.train_dispatches();
        ds.extend(self.epochs.extra_dispatches(i));
        ds
    }

    /// The program's step (the same every step).
    pub(super) fn program_dispatches(&self) -> Vec<&crate::gpu::Dispatch> {
        self.prog.train_dispatches()
    }

    /// The copies that follow step `i` (watched and logged steps).
    pub(super) fn extra_dispatches(&self, i: usize) -> Vec<&crate::gpu::Dispatch> {
        self.epochs.extra_dispatches(i)
    }

    /// Count step `i` as run.
    pub(super) fn after_step(&mut self, i: usize) {
        self.epochs.after_step(i);
    }

    /// The epoch's one readback, its checks (non-finite and diverging
    /// losses), the weighting's epoch hook, validation, `on_epoch`, and the
    /// best weights so far; true when the run ends here (patience or its
    /// last step).
    pub(super) async fn end_epoch(
        &mut self,
        gpu: &Gpu,
        epoch: usize,
        on_epoch: &mut dyn FnMut(&EpochLog),
    ) -> Result<bool> {
        let got = gpu.read_async(&self.epoch_reads()).await?;
        let read = self.epoch_read(gpu, epoch, got)?;
        let val = match self.validation() {
            Some((eval, data, rows, subset)) => {
                eval.evaluate_async(gpu, data, rows, subset).await?
            }
            None => Vec::new(),
        };
        self.epoch_log(gpu, epoch, (read, val), on_epoch)
    }

    /// What the end of an epoch reads back (in one readback).
    pub(super) fn epoch_reads(&self) -> Vec<&Tensor> {
        self.epochs.reads(&self.prog)
    }

    /// The epoch's readback (`got`, of [`Run::epoch_reads`]) checked
    /// (non-finite and diverging losses), and the weighting's epoch hook.
    pub(super) fn epoch_read(
        &mut self,
        gpu: &Gpu,
        epoch: usize,
        got: Vec<Vec<f32>>,
    ) -> Result<EpochReadback> {
        let read = (self.epochs).end(gpu, &self.prog, &self.tasks, epoch, got)?;
        check_divergence(&self.tasks, &self.initial, &read.losses, epoch)?;
        self.weighting
            .on_epoch_end(gpu, &self.prog.tasks.seeds, &read.losses)?;
        Ok(read)
    }

    /// The evaluation of a validation epoch: program, data, rows, tasks
    /// (None without validation rows).
    pub(super) fn validation(&self) -> Option<(&ForwardProgram, &Dataset, &[usize], &[usize])> {
        (!self.split.val.is_empty()).then_some((
            &self.eval,
            self.data,
            &self.split.val[..],
            self.subset,
        ))
    }

    /// The epoch's log from its readback and validation metrics, told to
    /// `on_epoch`, and the best weights so far; true when the run ends here.
    pub(super) fn epoch_log(
        &mut self,
        gpu: &Gpu,
        epoch: usize,
        (read, val): (EpochReadback, Vec<TaskMetrics>),
        on_epoch: &mut dyn FnMut(&EpochLog),
    ) -> Result<bool> {
        let log = read.into_log(epoch, self.lr, val, self.prog.plan.space.is_some());
        on_epoch(&log);
        let stop = self
            .epochs
            .keep_best(gpu, &self.params, epoch, log.monitored_loss())?;
        self.history.push(log);
        Ok(stop || self.epochs.steps >= self.epochs.total_steps)
    }

    /// The run's report: the best (or last) weights, their test metrics.
    pub(super) async fn finish(self, gpu: &Gpu) -> Result<FitReport> {
        let Run {
            data,
            split,
            subset,
            cfg,
            tasks,
            net,
            params,
            prog,
            eval,
            epochs,
            history,
            dispatches_per_step,
            step_listing,
            start,
            ..
        } = self;
        let graph = match cfg.dump_graph {
            true => super::graph::graph_dot(gpu, &prog.graph, &params).await?,
            false => String::new(),
        };
        // The weights returned: the best epoch's, or with `keep_best` off the last step's.
        let best_epoch = match cfg.keep_best {
            true => {
                gpu.copy(&epochs.best, &params.values.whole)?;
                epochs.best_epoch
            }
            false => history.len().saturating_sub(1),
        };
        let test = match split.test.is_empty() {
            true => Vec::new(),
            false => eval.evaluate_async(gpu, data, &split.test, subset).await?,
        };
        Ok(FitReport {
            net,
            params,
            tasks,
            history,
            best_epoch,
            stopped_early: epochs.stopped_early,
            steps: epochs.steps,
            test,
            wall: start.elapsed(),
            train_time: epochs.train_time,
            dispatches_per_step,
            step_listing,
            profile: crate::gpu::profile::summarize(&epochs.profile),
            profiled_steps: epochs.profiled_steps,
            graph,
        })
    }
}

/// Each task of `subset` fine-tuned alone from a trained multi-task
/// model (`from`): a network with that task's head alone, warm-started from
/// `from`'s parameters (its other heads and its method's parameters left
/// out), trained on that task with `cfg` (its epochs, learning rate and
/// [`TrainConfig::freeze`]; early stopping keeps the best validation
/// epoch). One report per task, in the order of `subset`.
pub fn finetune_per_task(
    gpu: &Gpu,
    data: &Dataset,
    split: &Split,
    subset: &[usize],
    from: &FitReport,
    cfg: &TrainConfig,
) -> Result<Vec<FitReport>> {
    let init = std::sync::Arc::new(InitParams {
        source: "the multi-task model".into(),
        values: from.params.read_all(gpu)?,
        warm: true,
    });
    let cfg = TrainConfig {
        init: Some(init),
        ..cfg.clone()
    };
    subset
        .iter()
        .map(|&k| {
            let one = crate::mtl::by_name("equal")?;
            fit(gpu, data, split, &[k], one, &cfg, &mut |_| {})
        })
        .collect()
}

/// The training step and the forward-only program for evaluation, over
/// batches of `b` rows of `d` inputs.
fn build_programs(
    gpu: &Gpu,
    (net, params): (&MultiTaskNet, &ParamSet),
    (tasks, d, b): (&[TaskSpec], usize, usize),
    weighting: &mut dyn Weighting,
    cfg: &TrainConfig,
) -> Result<(Program, ForwardProgram)> {
    let space = grad_space(cfg, weighting);
    let opts = StepOptions {
        fused: true,
        half: cfg.half,
        mlp_step: super::mlp_step::requested(),
    };
    let optimizer = cfg.optimizer_config();
    let prog = Program::build_with(
        gpu, net, params, tasks, d, b, weighting, space, optimizer, opts,
    )?;
    let eval = ForwardProgram::build(gpu, net, params, tasks, d, b, opts)?;
    Ok((prog, eval))
}

/// Each task's loss before any step, the yardstick of divergence (a first
/// epoch that already diverged has nothing sane to be compared with): on
/// the first four batches of `b` training rows, four readbacks before training.
async fn initial_losses(
    gpu: &Gpu,
    eval: &ForwardProgram,
    data: &Dataset,
    split: &Split,
    subset: &[usize],
    b: usize,
) -> Result<Vec<f64>> {
    let sample = &split.train[..split.train.len().min(4 * b)];
    let metrics = eval.evaluate_async(gpu, data, sample, subset).await?;
    Ok(metrics.iter().map(|m| m.loss).collect())
}

/// A task's mean training loss this many times its loss before training
/// (the initialised or resumed model's, on the training rows) is divergence,
/// not training: the run stops with [`Error::Diverged`].
pub const DIVERGENCE_FACTOR: f64 = 100.0;

fn check_divergence(tasks: &[TaskSpec], initial: &[f64], now: &[f64], epoch: usize) -> Result<()> {
    for (k, t) in tasks.iter().enumerate() {
        if initial[k] > 0.0 && now[k] > DIVERGENCE_FACTOR * initial[k] {
            return Err(Error::Diverged {
                task: t.name.clone(),
                epoch,
                initial: initial[k],
                now: now[k],
            });
        }
    }
    Ok(())
}

/// Refuse settings no run can use, before any GPU work.
fn check_settings(data: &Dataset, subset: &[usize], cfg: &TrainConfig) -> Result<()> {
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(Error::InvalidConfig(
            "epochs and batch size must be at least 1".into(),
        ));
    }
    cfg.optimizer_config().validate()?;
    if subset.is_empty() || subset.iter().any(|&k| k >= data.tasks.len()) {
        return Err(Error::InvalidConfig(format!(
            "task subset {subset:?} is not within the {} tasks",
            data.tasks.len()
        )));
    }
    Ok(())
}

impl TrainConfig {
    /// The network these settings make for `tasks` of `data`: the one
    /// conversion from the training settings to the network's (a mixture of
    /// experts replaces the trunk).
    pub fn net_spec(&self, data: &Dataset, tasks: &[TaskSpec]) -> NetSpec {
        // A mixture of experts replaces the trunk; cross-stitch copies it per task.
        let shared = matches!(
            self.arch,
            Arch::Shared | Arch::CrossStitch | Arch::Ltb | Arch::Mtan
        );
        NetSpec {
            inputs: data.d,
            image: data.image,
            embeddings: data.embeddings.clone(),
            trunk: if shared {
                self.trunk.clone()
            } else {
                Vec::new()
            },
            tower: self.tower.clone(),
            trunk_layers: if shared {
                self.trunk_layers.clone()
            } else {
                Vec::new()
            },
            tower_layers: self.tower_layers.clone(),
            expert_layers: if shared {
                Vec::new()
            } else {
                self.expert_layers.clone()
            },
            outputs: tasks.iter().map(|t| t.outputs()).collect(),
            head_names: tasks.iter().map(|t| t.name.clone()).collect(),
            activation: self.activation,
            arch: self.arch.clone(),
        }
    }
}

/// The network for `tasks` on `d` inputs, then the weighting's own
/// parameters; initial values from `cfg.init` when resuming.
fn build_model(
    gpu: &Gpu,
    data: &Dataset,
    tasks: &[TaskSpec],
    cfg: &TrainConfig,
    weighting: &mut dyn Weighting,
) -> Result<(MultiTaskNet, ParamSet)> {
    let spec = cfg.net_spec(data, tasks);
    let mut builder = if cfg.half {
        ParamBuilder::new_half(gpu)
    } else {
        ParamBuilder::new(gpu)
    };
    let net = MultiTaskNet::new(&mut builder, spec, cfg.seed)?;
    weighting.add_params(&mut builder, tasks.len())?;
    let mut params = builder.build(gpu)?;
    if let Some(init) = &cfg.init {
        if init.warm {
            crate::nn::load_shared_values(gpu, &params, &init.values, &init.source)?;
        } else {
            crate::nn::load_values(gpu, &params, &init.values, &init.source)?;
        }
    }
    let frozen = cfg.freeze.resolve(&net, &params)?;
    params.freeze(&frozen);
    Ok((net, params))
}

/// Where per-task gradients are taken: the configured space for a method
/// that needs them, else the method's own; with `grad_stats`, always somewhere.
fn grad_space(cfg: &TrainConfig, weighting: &dyn Weighting) -> Option<GradSpace> {
    let own = weighting.grad_space();
    match (own, cfg.grad_space) {
        (Some(_), Some(given)) => Some(given),
        (Some(own), None) => Some(own),
        (None, given) if cfg.grad_stats || cfg.watch_every > 0 => {
            Some(given.unwrap_or(GradSpace::Parameters))
        }
        (None, _) => None,
    }
}

/// The epoch loop's state: minibatch order, best weights, counters, profile.
struct Epochs {
    rng: StdRng,
    order: Vec<usize>,
    batch: usize,
    profile_first_epoch: bool,
    patience: Option<usize>,
    best: Tensor,
    best_loss: f64,
    best_epoch: usize,
    since_best: usize,
    stopped_early: bool,
    steps: u64,
    train_time: Duration,
    profile: std::collections::BTreeMap<String, (usize, f64)>,
    profiled_steps: usize,
    on_step: Option<StepHook>,
    /// The run's last step: `TrainConfig::max_steps`, or all epochs' steps.
    total_steps: u64,
    /// The history of watched steps and how often to watch.
    watch: Option<(StepWatch, usize)>,
    /// Every step's losses, with `TrainConfig::log_losses`.
    loss_log: Option<LossLog>,
    /// Copy the best epoch's weights aside (`TrainConfig::keep_best`).
    keep_best: bool,
    /// The epoch under way: its first step, when it began, the steps
    /// watched so far and whether the step being written is one of them.
    epoch_start: u64,
    clock: Instant,
    watched: Vec<u64>,
    watch_now: bool,
}

impl Epochs {
    fn new(
        gpu: &Gpu,
        params: &ParamSet,
        tb: &TaskBuffers,
        split: &Split,
        cfg: &TrainConfig,
    ) -> Result<Epochs> {
        let batch = cfg.batch_size.min(split.train.len());
        let per_epoch = split.train.len().div_ceil(batch.max(1)).max(1);
        // Watched steps per epoch: at most one in every `watch_every`.
        let watch = match cfg.watch_every {
            0 => None,
            every => Some((StepWatch::new(gpu, tb, per_epoch.div_ceil(every))?, every)),
        };
        let loss_log = match cfg.log_losses {
            true => Some(LossLog::new(gpu, tb, per_epoch)?),
            false => None,
        };
        let all_steps = (cfg.epochs * per_epoch) as u64;
        let total_steps = cfg.max_steps.map_or(all_steps, |m| m.min(all_steps));
        Ok(Epochs {
            rng: StdRng::seed_from_u64(cfg.seed ^ 0x005e_ed0f_ba7c),
            order: split.train.clone(),
            batch,
            profile_first_epoch: cfg.profile,
            patience: cfg.patience,
            best: Tensor::zeros(gpu, &[params.values.whole.numel()], "best parameters")?,
            best_loss: f64::INFINITY,
            best_epoch: 0,
            since_best: 0,
            stopped_early: false,
            steps: 0,
            train_time: Duration::ZERO,
            profile: Default::default(),
            profiled_steps: 0,
            on_step: cfg.on_step.clone(),
            total_steps,
            watch,
            loss_log,
            keep_best: cfg.keep_best,
            epoch_start: 0,
            clock: Instant::now(),
            watched: Vec::new(),
            watch_now: false,
        })
    }

    /// A new epoch: shuffle the minibatch order, start its clock.
    fn begin(&mut self) {
        self.order.shuffle(&mut self.rng);
        self.epoch_start = self.steps;
        self.clock = Instant::now();
        self.watched.clear();
        self.watch_now = false;
    }

    /// Minibatches in an epoch.
    fn steps_in_epoch(&self) -> usize {
        self.order.len().div_ceil(self.batch.max(1))
    }

    /// Minibatch `i` of the epoch's order.
    fn chunk(&self, i: usize) -> &[usize] {
        let start = (i * self.batch).min(self.order.len());
        &self.order[start..(start + self.batch).min(self.order.len())]
    }

    /// Write step `i`'s minibatch(es) and the optimizer's per-step values;
    /// false when there is no step `i` to take.
    fn write_step(
        &mut self,
        gpu: &Gpu,
        prog: &mut Program,
        data: &Dataset,
        subset: &[usize],
        i: usize,
    ) -> Result<bool> {
        // `TrainConfig::max_steps` may end the run inside an epoch.
        let n = self.steps_in_epoch();
        if self.steps >= self.total_steps || i >= n {
            return Ok(false);
        }
        // A method that draws S minibatches a step (MoDo, SDMGrad) takes
        // the next S of the epoch's order, cyclically: step i reads
        // minibatches iS..iS + S (mod their number), so each minibatch
        // is read S times an epoch and the epoch keeps its steps.
        let samples = prog.samples();
        if samples == 1 {
            prog.write_batch(gpu, data, self.chunk(i), subset)?;
        } else {
            for s in 0..samples {
                prog.write_sample(gpu, s, data, self.chunk((i * samples + s) % n), subset)?;
            }
        }
        prog.optimizer.prepare_step(gpu);
        self.watch_now = match &self.watch {
            Some((watch, every)) => {
                (self.steps + 1).is_multiple_of(*every as u64)
                    && self.watched.len() < watch.copies.len()
            }
            None => false,
        };
        if self.watch_now {
            self.watched.push(self.steps + 1);
        }
        Ok(true)
    }

    /// What follows the program's dispatches in step `i`'s one submit:
    /// the copies of a watched or logged step.
    fn extra_dispatches(&self, i: usize) -> Vec<&crate::gpu::Dispatch> {
        let mut ds = Vec::new();
        // A watched step copies its weights and Gram matrix aside, inside its own submit.
        // ANCHOR: watch_copy
        if let (Some((watch, _)), true) = (&self.watch, self.watch_now) {
            ds.extend(watch.copies[self.watched.len() - 1].iter());
        }
        // ANCHOR_END: watch_copy
        if let Some(log) = &self.loss_log {
            ds.push(&log.copies[i]);
        }
        ds
    }

    /// Count step `i` as taken and tell the step hook.
    fn after_step(&mut self, i: usize) {
        self.steps += 1;
        if let Some(hook) = &self.on_step {
            (hook.0)(StepProgress {
                done: self.steps,
                total: self.total_steps,
                rows: self.chunk(i).len(),
            });
        }
    }

    /// The epoch's end from its one readback (`got`, of [`Epochs::reads`]):
    /// each task's mean training loss, and the last step's Gram matrix. A
    /// non-finite loss stops the run with its task and step.
    fn end(
        &mut self,
        gpu: &Gpu,
        prog: &Program,
        tasks: &[TaskSpec],
        epoch: usize,
        got: Vec<Vec<f32>>,
    ) -> Result<EpochReadback> {
        let ran = (self.steps - self.epoch_start) as usize;
        self.train_time += self.clock.elapsed();
        let (read, st) = self.read_back(prog, tasks, (epoch, ran), got)?;
        prog.tasks.state.write(gpu, &vec![0.0; 3 * tasks.len()])?;
        if let Some((j, t)) = tasks.iter().enumerate().find(|(j, _)| st[3 * j + 1] > 0.0) {
            return Err(Error::NonFinite {
                step: self.epoch_start + st[3 * j + 1] as u64,
                task: t.name.clone(),
            });
        }
        Ok(read)
    }

    /// The epoch's one readback, and the loss bookkeeping it holds (3K
    /// values per task: loss sum, first non-finite step, count).
    fn reads<'p>(&'p self, prog: &'p Program) -> Vec<&'p Tensor> {
        // Per task: the loss bookkeeping; the Gram matrix, seeds and
        // combination weights of the last step.
        let tb = &prog.tasks;
        let mut reads = vec![&tb.state, &tb.gram, &tb.seeds, &tb.combine];
        reads.extend(prog.gates.iter());
        if let Some((watch, _)) = &self.watch {
            reads.push(&watch.history);
        }
        if let Some(log) = &self.loss_log {
            reads.push(&log.history);
        }
        reads
    }

    /// What [`Epochs::reads`] read back, made into the epoch's record.
    fn read_back(
        &self,
        prog: &Program,
        tasks: &[TaskSpec],
        (epoch, ran): (usize, usize),
        got: Vec<Vec<f32>>,
    ) -> Result<(EpochReadback, Vec<f32>)> {
        let watched = &self.watched;
        let mut got = got.into_iter();
        let mut next = || {
            got.next()
                .ok_or_else(|| Error::InvalidConfig("epoch readback: a buffer is missing".into()))
        };
        let (st, gram, seeds, combine) = (next()?, next()?, next()?, next()?);
        // Each task's gate, averaged over the minibatch's rows.
        let gates = prog
            .gates
            .iter()
            .map(|g| {
                let v = next()?;
                let (rows, e) = (g.shape()[0].max(1), g.shape()[1]);
                Ok((0..e)
                    .map(|j| (0..rows).map(|r| v[r * e + j] as f64).sum::<f64>() / rows as f64)
                    .collect())
            })
            .collect::<Result<Vec<Vec<f64>>>>()?;
        let steps = match &self.watch {
            Some((watch, _)) => {
                let history = next()?;
                let step = |(i, &step): (usize, &u64)| {
                    let (s, c, g) = watch.slot(&history, i);
                    let (grad_norms, cosines) = grad_stats(g, tasks.len());
                    WatchedStep {
                        step,
                        epoch,
                        weights: task_weights(s, c),
                        grad_norms,
                        cosines,
                    }
                };
                watched.iter().enumerate().map(step).collect()
            }
            None => Vec::new(),
        };
        let step_losses = match &self.loss_log {
            Some(log) => log.read(&next()?, ran),
            None => Vec::new(),
        };
        let losses = (0..tasks.len())
            .map(|j| st[3 * j] as f64 / st[3 * j + 2].max(1.0) as f64)
            .collect();
        let read = EpochReadback {
            losses,
            gram,
            weights: task_weights(&seeds, &combine),
            gates,
            steps,
            step_losses,
        };
        Ok((read, st))
    }

    /// Keep the weights of the best epoch so far; true when patience has run out.
    fn keep_best(&mut self, gpu: &Gpu, params: &ParamSet, epoch: usize, loss: f64) -> Result<bool> {
        if loss < self.best_loss {
            self.best_loss = loss;
            self.best_epoch = epoch;
            self.since_best = 0;
            if self.keep_best {
                gpu.copy(&params.values.whole, &self.best)?;
            }
        } else {
            self.since_best += 1;
            self.stopped_early = self.patience.is_some_and(|p| self.since_best >= p);
        }
        Ok(self.stopped_early)
    }
}

/// Norms √G_kk and cosines G_ij / √(G_ii G_jj) from a K×K Gram matrix.
pub fn grad_stats(gram: &[f32], k: usize) -> (Vec<f64>, Vec<f64>) {
    let norms: Vec<f64> = (0..k)
        .map(|i| (gram[i * k + i].max(0.0) as f64).sqrt())
        .collect();
    let cos = (0..k * k)
        .map(|ij| {
            let (i, j) = (ij / k, ij % k);
            let d = norms[i] * norms[j];
            if d > 0.0 {
                gram[ij] as f64 / d
            } else {
                0.0
            }
        })
        .collect();
    (norms, cos)
}

/// Single-task baselines: the same architecture and budget trained on each
/// task of `subset` alone (equal weighting), in order.
pub fn single_task_baselines(
    gpu: &Gpu,
    data: &Dataset,
    split: &Split,
    subset: &[usize],
    cfg: &TrainConfig,
) -> Result<Vec<FitReport>> {
    pollster::block_on(single_task_baselines_async(gpu, data, split, subset, cfg))
}

/// [`single_task_baselines`] as a future (see [`fit_async`]).
pub async fn single_task_baselines_async(
    gpu: &Gpu,
    data: &Dataset,
    split: &Split,
    subset: &[usize],
    cfg: &TrainConfig,
) -> Result<Vec<FitReport>> {
    let mut reports = Vec::with_capacity(subset.len());
    for &k in subset {
        let equal = Box::new(crate::mtl::Equal);
        reports.push(fit_async(gpu, data, split, &[k], equal, cfg, &mut |_| {}).await?);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Reg;

    #[test]
    fn a_loss_grown_past_the_divergence_factor_stops_the_run() {
        let reg = Reg {
            mean: 0.0,
            std: 1.0,
        };
        let tasks = vec![TaskSpec::new("a", reg.clone()), TaskSpec::new("b", reg)];
        let initial = vec![1.0, 0.5];
        // Epoch 0 is judged too: the first epoch is no reference.
        assert!(check_divergence(&tasks, &initial, &[1e30, 0.1], 0).is_err());
        assert!(check_divergence(&tasks, &initial, &[99.0, 49.0], 3).is_ok());
        match check_divergence(&tasks, &initial, &[2.0, 51.0], 4) {
            Err(Error::Diverged { task, epoch, .. }) => {
                assert_eq!((task.as_str(), epoch), ("b", 4))
            }
            other => panic!("expected divergence, got {other:?}"),
        }
        let msg = check_divergence(&tasks, &initial, &[101.0, 0.1], 2)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("\"a\"") && msg.contains("learning rate"),
            "{msg}"
        );
    }
}
