//! Training: the step built once in named phases and replayed ([`step`]), the
//! trainer ([`fit`]: epochs, minibatches, schedules, early stopping,
//! evaluation), metrics and Δm%, and single-task baselines.

mod forward;
mod graph;
mod lockstep;
pub mod metrics;
pub mod mlp_step;
mod parallel;
mod schedule;
pub mod step;
mod trainer;

pub use forward::ForwardProgram;
pub use graph::graph_dot;
pub use lockstep::{fit_lockstep, fit_lockstep_async, Lockstep, LockstepRun, MakeWeighting};
pub use parallel::on_devices;
pub use schedule::Schedule;
pub use trainer::{
    finetune_per_task, fit, fit_async, grad_stats, single_task_baselines,
    single_task_baselines_async, EpochLog, FitReport, InitParams, StepHook, StepProgress,
    TrainConfig, WatchedStep,
};
