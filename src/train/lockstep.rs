//! Many runs stepped together on one device: step i of every run in one
//! submit (issue 23, item 3).
//!
//! `compare`'s seeds, `iris_mtl --seeds` and a paper's repeated runs train
//! the same setting again and again. [`fit_lockstep`] keeps R runs (each
//! its own network, program, data order and seed) side by side on one
//! device and steps them together: it writes every run's minibatch, then
//! encodes step i of all of them into one compute pass and submits once;
//! each run's epoch ends with its own readback, validation and early
//! stopping, and a run that stops (patience, its last step, or an error)
//! drops out while the others go on. A run's dispatches are the ones it
//! records alone, in the same order, over buffers of its own, so each
//! run's numbers are the same as [`super::fit`]'s (tested bit for bit).
//!
//! Runs built alike also share dispatches: the runs are built in a
//! [`crate::gpu::Slab`] (allocation j of every run in buffer j, at one
//! stride), and each dispatch of the step whose kernel has a replica axis
//! (the products, the fused losses, the loss bookkeeping, the Gram
//! reduction and the optimizer: `Dispatch::replicable`) is recorded once
//! more for all runs, after a check that every run's copy binds its
//! tensors at exactly that stride with the same kernel, grid and
//! parameters. A step's submit then holds those shared dispatches and each
//! run's own for the rest (a gradient method's solve, and on llvmpipe the
//! written-out products, which cost less each on its own there). A run that ends
//! early (patience) rides along in the shared dispatches, which compute its
//! products into buffers no one reads again, while its own dispatches are
//! left out. The optimizer is shared only while every run takes the step:
//! its settings change each step (the learning rate, Adam's bias
//! corrections), so each run writes them into its own dispatch as alone,
//! the shared one takes them where all runs' agree, and otherwise each run
//! still training takes its own, leaving a stopped run's weights as they
//! ended. Each replicated kernel gives every replica the numbers of its
//! dispatch alone (tests/kernels.rs), so the shared step changes no run's
//! numbers.

use std::sync::Arc;

use super::trainer::Run;
use super::{EpochLog, FitReport, TrainConfig};
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Slab};
use crate::mtl::Weighting;

/// Makes a run's loss weighting (each call a fresh one: a run may be built twice).
pub type MakeWeighting<'a> = Box<dyn Fn() -> Result<Box<dyn Weighting>> + 'a>;

/// One run of [`fit_lockstep`]: what [`super::fit`] takes.
pub struct LockstepRun<'a> {
    pub data: &'a Dataset,
    pub split: &'a Split,
    pub subset: &'a [usize],
    pub weighting: MakeWeighting<'a>,
    pub cfg: &'a TrainConfig,
}

/// What [`fit_lockstep`] returns.
pub struct Lockstep {
    /// Each run's report, or its error, in order.
    pub reports: Vec<Result<FitReport>>,
    /// Dispatches in the submit of a step every run took together (0 when
    /// there was none): the shared ones and each run's own.
    pub dispatches_per_step: usize,
    /// Of run 0's step, how many dispatches were shared by all runs.
    pub shared: usize,
    /// The kernels (labels) of run 0's step that each run took on its own,
    /// in order (a gradient method's solve, and on llvmpipe the written-out
    /// products: `kernels::matmul_unrolled`).
    pub own: Vec<String>,
}

enum State<'a> {
    Training(Box<Run<'a>>),
    Ended(Box<Run<'a>>),
    Failed(Error),
}

/// Train `runs` together, step i of each in one submit, and return each
/// run's report (or its error) in order; `on_epoch(r, log)` sees run r's
/// epochs. Each report equals [`super::fit`]'s for that run alone, except
/// its timings: the steps are shared, so each run's `train_time` is the
/// time of all runs' steps. Profiling needs a run's steps alone, so runs
/// with [`TrainConfig::profile`] are trained one after another.
pub fn fit_lockstep(
    gpu: &Gpu,
    runs: Vec<LockstepRun<'_>>,
    on_epoch: &mut dyn FnMut(usize, &EpochLog),
) -> Lockstep {
    pollster::block_on(fit_lockstep_async(gpu, runs, on_epoch))
}

/// [`fit_lockstep`] as a future (see [`super::fit_async`]).
pub async fn fit_lockstep_async(
    gpu: &Gpu,
    runs: Vec<LockstepRun<'_>>,
    on_epoch: &mut dyn FnMut(usize, &EpochLog),
) -> Lockstep {
    let mut outcome = Lockstep {
        reports: Vec::with_capacity(runs.len()),
        dispatches_per_step: 0,
        shared: 0,
        own: Vec::new(),
    };
    if runs.iter().any(|r| r.cfg.profile) {
        for (i, r) in runs.into_iter().enumerate() {
            let mut tell = |log: &EpochLog| on_epoch(i, log);
            let report = match (r.weighting)() {
                Ok(w) => {
                    super::fit_async(gpu, r.data, r.split, r.subset, w, r.cfg, &mut tell).await
                }
                Err(e) => Err(e),
            };
            outcome.reports.push(report);
        }
        return outcome;
    }
    let epochs = runs.iter().map(|r| r.cfg.epochs).max().unwrap_or(0);
    // A run's step graph shows its last step's gradients, which a run
    // riding along in shared dispatches after it ended would overwrite.
    let slab = match runs.len() {
        0 | 1 => None,
        _ if runs.iter().any(|r| r.cfg.dump_graph) => None,
        n => slab_for(gpu, &runs[0], n).await,
    };
    let mut states = start_runs(gpu, &runs, slab.as_ref()).await;
    let shared = slab.and_then(|slab| SharedStep::plan(gpu, &states, &slab));
    if let Some(plan) = &shared {
        outcome.shared = plan.shared_of_run_0;
        outcome.own = plan.own.clone();
    }
    for epoch in 0..epochs {
        // Runs with fewer epochs than the longest end before it.
        for state in states.iter_mut() {
            if let State::Training(run) = state {
                if epoch >= run.epochs() {
                    end(state);
                } else if let Err(e) = run.begin_epoch(gpu, epoch) {
                    *state = State::Failed(e);
                }
            }
        }
        if !states.iter().any(|s| matches!(s, State::Training(_))) {
            break;
        }
        if let Some(n) = step_epoch(gpu, &mut states, shared.as_ref()) {
            outcome.dispatches_per_step = n;
        }
        end_epoch_together(gpu, &mut states, epoch, on_epoch).await;
    }
    drop(shared);
    for state in states {
        outcome.reports.push(match state {
            State::Training(run) | State::Ended(run) => run.finish(gpu).await,
            State::Failed(e) => Err(e),
        });
    }
    outcome
}

/// Build every run, run r in region r of `slab` where there is one.
async fn start_runs<'a>(
    gpu: &Gpu,
    runs: &[LockstepRun<'a>],
    slab: Option<&Arc<Slab>>,
) -> Vec<State<'a>> {
    let mut states = Vec::with_capacity(runs.len());
    for (i, r) in runs.iter().enumerate() {
        let region = slab.map(|slab| gpu.slab_region(slab, i));
        let started = match (r.weighting)() {
            Ok(w) => Run::start(gpu, r.data, r.split, r.subset, w, r.cfg).await,
            Err(e) => Err(e),
        };
        drop(region);
        states.push(match started {
            Ok(run) => State::Training(Box::new(run)),
            Err(e) => State::Failed(e),
        });
    }
    states
}

/// The epoch's steps, one submit each for every run taking it. Returns
/// the dispatches in a step's submit where every run took it through the
/// shared step (None if no step did).
fn step_epoch(gpu: &Gpu, states: &mut [State<'_>], shared: Option<&SharedStep>) -> Option<usize> {
    let longest = (states.iter())
        .filter_map(|s| match s {
            State::Training(run) => Some(run.steps_in_epoch()),
            _ => None,
        })
        .max()?;
    let mut all_shared = None;
    for i in 0..longest {
        let mut stepping = vec![false; states.len()];
        for (state, step) in states.iter_mut().zip(stepping.iter_mut()) {
            if let State::Training(run) = state {
                match run.write_step(gpu, i) {
                    Ok(takes) => *step = takes,
                    Err(e) => *state = State::Failed(e),
                }
            }
        }
        // The shared step runs while every run still training takes step
        // i; runs that ended ride along in its shared dispatches (their
        // own are left out, and so is the shared optimizer, so their
        // weights stay as they ended).
        let together = (states.iter().zip(&stepping))
            .all(|(s, &step)| step || !matches!(s, State::Training(_)))
            && stepping.iter().any(|&s| s);
        let runs: Vec<Option<&Run>> = (states.iter().zip(&stepping))
            .map(|(s, &step)| match s {
                State::Training(run) if step => Some(&**run),
                _ => None,
            })
            .collect();
        let ds: Vec<&Dispatch> = match (shared, together) {
            (Some(plan), true) => {
                let mut ds = plan.dispatches(gpu, &runs);
                ds.extend(
                    runs.iter()
                        .flatten()
                        .flat_map(|run| run.extra_dispatches(i)),
                );
                if runs.iter().all(|r| r.is_some()) {
                    all_shared = Some(ds.len());
                }
                ds
            }
            _ => (runs.iter().flatten())
                .flat_map(|run| run.step_dispatches(i))
                .collect(),
        };
        if ds.is_empty() {
            break;
        }
        // A failed submit is the device's, not one run's: every run
        // still training ends with it.
        if let Err(e) = gpu.run(&ds) {
            drop(ds);
            let training: Vec<usize> = (0..states.len())
                .filter(|&r| matches!(states[r], State::Training(_)))
                .collect();
            fail_all(states, &training, e);
            break;
        }
        drop(ds);
        for (state, &step) in states.iter_mut().zip(&stepping) {
            if let (State::Training(run), true) = (state, step) {
                run.after_step(i);
            }
        }
    }
    all_shared
}

/// A slab with a region per run, each as large as `first` takes when built
/// alone (counted by building it once); None where it cannot be made.
async fn slab_for(gpu: &Gpu, first: &LockstepRun<'_>, runs: usize) -> Option<Arc<Slab>> {
    let count = gpu.count_tensor_bytes();
    let w = (first.weighting)().ok()?;
    let probe = Run::start(gpu, first.data, first.split, first.subset, w, first.cfg).await;
    let sizes = count.sizes();
    drop(count);
    drop(probe.ok()?);
    gpu.slab(runs, &sizes).map(Arc::new)
}

/// Where a dispatch of the shared step comes from.
enum Entry {
    /// One dispatch over the replica axis, for all runs.
    Shared(usize),
    /// Dispatch j of each run's own step, in run order.
    Each(usize),
    /// A dispatch whose settings change each step (the optimizer's): the
    /// shared one, `.0`, where every run takes the step with the same
    /// settings (they are copied into it), else dispatch `.1` of each run
    /// taking it. A run that has ended must not take it (its weights stay).
    PerStep(usize, usize, std::ops::Range<usize>),
}

/// The step of all runs in one list: run 0's step with each dispatch that
/// can be shared recorded over the replica axis, the others each run's own.
struct SharedStep {
    shared: Vec<Dispatch>,
    entries: Vec<Entry>,
    shared_of_run_0: usize,
    /// The kernels of the `Each` entries.
    own: Vec<String>,
}

impl SharedStep {
    /// Plan the shared step of runs built in the regions of `slab`; None
    /// where a run failed to start or nothing can be shared.
    fn plan(gpu: &Gpu, states: &[State<'_>], slab: &Slab) -> Option<SharedStep> {
        let lists = (states.iter())
            .map(|s| match s {
                State::Training(run) => Some(run.program_dispatches()),
                _ => None,
            })
            .collect::<Option<Vec<Vec<&Dispatch>>>>()?;
        let lists = &lists[..];
        let n = lists[0].len();
        if lists.iter().any(|l| l.len() != n) {
            return None;
        }
        let runs = lists.len();
        let mut step = SharedStep {
            shared: Vec::new(),
            entries: Vec::new(),
            shared_of_run_0: 0,
            own: Vec::new(),
        };
        let mut j = 0;
        while j < n {
            if let Some(group) = step.try_group(gpu, lists, j, slab) {
                let len = group.len();
                for (t, d) in group.into_iter().enumerate() {
                    let k = step.shared.len();
                    let per_step =
                        (lists[0][j + t].replicable.as_ref()).and_then(|r| r.per_step.clone());
                    step.entries.push(match per_step {
                        Some(bytes) => Entry::PerStep(k, j + t, bytes),
                        None => Entry::Shared(k),
                    });
                    step.shared.push(d);
                }
                step.shared_of_run_0 += len;
                j += len;
            } else {
                step.entries.push(Entry::Each(j));
                step.own.push(lists[0][j].kernel.label.clone());
                j += 1;
            }
        }
        debug_assert!(runs > 1);
        (step.shared_of_run_0 > 0).then_some(step)
    }

    /// The group starting at dispatch `j`, recorded over the replica axis,
    /// where every run's copy of each of its dispatches is run 0's moved
    /// by the slab's stride.
    fn try_group(
        &self,
        gpu: &Gpu,
        lists: &[Vec<&Dispatch>],
        j: usize,
        slab: &Slab,
    ) -> Option<Vec<Dispatch>> {
        let rep = lists[0][j].replicable.as_ref()?;
        if rep.index != 0 {
            return None;
        }
        // Checked below: every tensor of the group's dispatches is in the slab.
        let stride = |t: &crate::gpu::Tensor| slab.stride_of(t).unwrap_or(0);
        let group = (rep.group)(gpu, lists.len(), &stride).ok()?;
        let alike = (0..group.len()).all(|t| {
            let Some(first) = lists[0].get(j + t) else {
                return false;
            };
            let same_group = first
                .replicable
                .as_ref()
                .is_some_and(|r| Arc::ptr_eq(&r.group, &rep.group) && r.index == t);
            same_group
                && (lists.iter().enumerate()).all(|(r, l)| moved_by(first, l[j + t], r, slab))
        });
        alike.then_some(group)
    }

    /// The dispatches of a step the runs still training (`Some`) take, in
    /// order: the shared ones (for every run) and each training run's own.
    /// A shared dispatch with per-step settings gets them written here.
    fn dispatches<'a>(&'a self, gpu: &Gpu, runs: &[Option<&'a Run<'_>>]) -> Vec<&'a Dispatch> {
        let every_run = runs.iter().all(|r| r.is_some());
        let lists: Vec<Vec<&Dispatch>> = runs
            .iter()
            .flatten()
            .map(|r| r.program_dispatches())
            .collect();
        let mut ds = Vec::new();
        for entry in &self.entries {
            match entry {
                Entry::Shared(k) => ds.push(&self.shared[*k]),
                Entry::Each(j) => ds.extend(lists.iter().map(|l| l[*j])),
                Entry::PerStep(k, j, bytes) => {
                    let settings = every_run
                        .then(|| same_settings(lists.iter().map(|l| l[*j]), bytes))
                        .flatten();
                    match settings {
                        Some(now) => {
                            let shared = &self.shared[*k];
                            gpu.queue
                                .write_buffer(&shared.params, bytes.start as u64, &now);
                            ds.push(shared);
                        }
                        None => ds.extend(lists.iter().map(|l| l[*j])),
                    }
                }
            }
        }
        ds
    }
}

/// Bytes `range` of the parameters each of `ds` was last given, where they
/// are the same in all.
fn same_settings<'a>(
    mut ds: impl Iterator<Item = &'a Dispatch>,
    range: &std::ops::Range<usize>,
) -> Option<Vec<u8>> {
    let first = ds.next()?.written_params(range.clone())?;
    ds.all(|d| d.written_params(range.clone()).as_ref() == Some(&first))
        .then_some(first)
}

/// Whether `other` is `first` for run `r`: the same kernel, grid and
/// recorded parameters, each tensor the same shape in the same slab buffer,
/// `r` strides on.
fn moved_by(first: &Dispatch, other: &Dispatch, r: usize, slab: &Slab) -> bool {
    Arc::ptr_eq(&first.kernel, &other.kernel)
        && first.workgroups == other.workgroups
        && first.recorded_params == other.recorded_params
        && first.tensors.len() == other.tensors.len()
        && (first.tensors.iter().zip(&other.tensors)).all(|(a, b)| {
            let Some(stride) = slab.stride_bytes(a) else {
                return false;
            };
            std::ptr::eq(a.buffer(), b.buffer())
                && a.dtype() != DType::F16
                && a.dtype() == b.dtype()
                && a.shape() == b.shape()
                && b.offset() == a.offset() + stride * r as u64
        })
}

/// The end of an epoch for every run still training: one readback for
/// all, their validations together (batch i of each in one submit), then
/// each run's log, `on_epoch` and best weights. A run whose epoch fails
/// (a non-finite loss, say) ends with its error; a failed readback ends them all.
async fn end_epoch_together(
    gpu: &Gpu,
    states: &mut [State<'_>],
    epoch: usize,
    on_epoch: &mut dyn FnMut(usize, &EpochLog),
) {
    let training: Vec<usize> = (0..states.len())
        .filter(|&r| matches!(states[r], State::Training(_)))
        .collect();
    let mut counts = Vec::new();
    let got = {
        let mut reads = Vec::new();
        for &r in &training {
            if let State::Training(run) = &states[r] {
                let mine = run.epoch_reads();
                counts.push(mine.len());
                reads.extend(mine);
            }
        }
        gpu.read_async(&reads).await
    };
    let got = match got {
        Ok(got) => got,
        Err(e) => {
            fail_all(states, &training, e);
            return;
        }
    };
    let mut got = got.into_iter();
    let mut read = Vec::new();
    for (&r, &n) in training.iter().zip(&counts) {
        let mine: Vec<Vec<f32>> = got.by_ref().take(n).collect();
        if let State::Training(run) = &mut states[r] {
            match run.epoch_read(gpu, epoch, mine) {
                Ok(epoch_read) => read.push((r, epoch_read)),
                Err(e) => states[r] = State::Failed(e),
            }
        }
    }
    let (validated, vals) = {
        let mut validated = Vec::new();
        let mut jobs = Vec::new();
        for (r, _) in &read {
            if let State::Training(run) = &states[*r] {
                if let Some(job) = run.validation() {
                    validated.push(*r);
                    jobs.push(job);
                }
            }
        }
        (
            validated,
            crate::train::ForwardProgram::evaluate_together(gpu, &jobs).await,
        )
    };
    let mut vals = match vals {
        Ok(vals) => {
            let mut by_run: Vec<Option<Vec<_>>> = states.iter().map(|_| None).collect();
            for (r, val) in validated.into_iter().zip(vals) {
                by_run[r] = Some(val);
            }
            by_run
        }
        Err(e) => {
            let still: Vec<usize> = read.iter().map(|(r, _)| *r).collect();
            fail_all(states, &still, e);
            return;
        }
    };
    for (r, epoch_read) in read {
        let state = &mut states[r];
        if let State::Training(run) = state {
            let val = vals[r].take().unwrap_or_default();
            let mut tell = |log: &EpochLog| on_epoch(r, log);
            match run.epoch_log(gpu, epoch, (epoch_read, val), &mut tell) {
                Ok(true) => end(state),
                Ok(false) => {}
                Err(e) => *state = State::Failed(e),
            }
        }
    }
}

/// End the runs `which` with `e` (the first) and its message (the others).
fn fail_all(states: &mut [State<'_>], which: &[usize], e: Error) {
    let why = e.to_string();
    let mut first = Some(e);
    for &r in which {
        let e = first.take();
        states[r] =
            State::Failed(e.unwrap_or_else(|| Error::internal("runs stepped together", &why)));
    }
}

/// Move a training run to the ended ones.
fn end(state: &mut State<'_>) {
    let taken = std::mem::replace(state, State::Failed(Error::internal("lockstep", "ending")));
    *state = match taken {
        State::Training(run) => State::Ended(run),
        other => other,
    };
}
