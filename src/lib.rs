//! taskgrad: multi-task learning on any GPU, with every number computed by a
//! hand-written WGSL kernel.
//!
//! Layers, bottom to top (each uses only those above it in this list):
//!
//! | layer | module | owns |
//! | --- | --- | --- |
//! | GPU runtime | [`gpu`] | adapter choice, device, pipeline cache, typed wgpu errors; tensors, flat arenas, readback; [`gpu::Dispatch`] and one-submit execution; timestamps |
//! | kernels | [`kernels`] | one Rust wrapper per WGSL file in `shaders/` (same stem): shape checks, grid, dispatch |
//! | reference | [`reference`](mod@reference) | the plain-loop CPU statement of every kernel, the test oracle |
//! | autodiff | [`autodiff`] | the reverse-mode tape; each op's backward beside its forward |
//! | nn | [`nn`] | named parameters in arenas, Linear, layers as units (a trunk or tower is a list of them), embedded inputs, the multi-task net, mixtures of experts |
//! | mtl | [`mtl`] | the multi-task methods, one file each, and their registry |
//! | optim | [`optim`] | SGD with momentum, Adam, AdamW behind one interface |
//! | task | [`task`] | task kinds (class, regression, binary, and any registered): head width, fused loss, label encoding, metrics, predictions, saved form |
//! | data | [`data`] | CSV tables, schema and encoding, datasets, splits, the synthetic generator (no GPU) |
//! | train | [`train`] | the step in named phases, the trainer, schedules, metrics, baselines |
//! | model | [`model`] | checkpoints, a forward-only inference program, predictions |
//! | front ends | `cli` (the default `cli` feature), `src/bin/`, `examples/` | settings, run folders, reports, `compare`, the examples |
//!
//! [`error`] holds the one error type every layer returns.
//!
//! Where to start: [`Gpu::new`] opens an adapter (a hardware GPU first, then
//! lavapipe or llvmpipe); [`Table::from_csv`], [`Split`] and
//! [`Dataset::from_table`] turn a CSV into targets, one [`TaskType`] per task
//! column; [`fit`] trains a multi-task network with a method from
//! [`mtl::by_name`] under a [`TrainConfig`]; [`Model`] loads a saved
//! checkpoint for `evaluate` and `predict`. A task kind of your own
//! implements [`task::TaskKind`] (`examples/custom_loss.rs`), a layer of your
//! own [`nn::Layer`] (`examples/custom_layer.rs`). The taskgrad book
//! (`docs/book` in the repository; `mdbook serve docs/book`) teaches the code
//! from one step's dispatches to Δm%.
//!
//! Training in code (the README's example, compiled here so it stays true):
//!
//! ```no_run
//! use taskgrad::data::{Dataset, Split, Table, TaskType};
//! use taskgrad::train::{fit, TrainConfig};
//!
//! fn main() -> taskgrad::Result<()> {
//!     let gpu = taskgrad::Gpu::new()?;
//!     let table = Table::from_csv("data/iris.csv")?;
//!     let split = Split::new(table.n_rows(), 0.2, 0.2, 0)?;
//!     let tasks = [("species", TaskType::CLASS), ("petal_length", TaskType::REG)];
//!     let data = Dataset::from_table(&table, &["sepal_length", "sepal_width"], &tasks, &split.train)?;
//!     let method = taskgrad::mtl::by_name("uncertainty")?;
//!     let report = fit(&gpu, &data, &split, &[0, 1], method, &TrainConfig::default(), &mut |epoch| {
//!         println!("epoch {}: train losses {:?}", epoch.epoch, epoch.train_loss)
//!     })?;
//!     println!("test metrics: {:?}", report.test);
//!     Ok(())
//! }
//! ```
//!
//! The gradient methods on per-task gradients of your own (a Jacobian),
//! through the same Gram, solve and combination kernels training uses:
//!
//! ```no_run
//! fn main() -> taskgrad::Result<()> {
//!     let gpu = taskgrad::Gpu::new()?;
//!     let rows = [1.0, 0.0, 1.0, -0.5, 1.0, 0.0]; // K = 2 task gradients of P = 3, row-major
//!     let d = taskgrad::mtl::aggregate(&gpu, "upgrad", &rows, 2)?; // the combined direction
//!     let a = taskgrad::mtl::aggregate_with(&gpu, &mut taskgrad::mtl::CaGrad { c: 0.5 }, &rows, 2)?;
//!     println!("{d:?} {:?} {:?}", a.direction, a.weights);
//!     Ok(())
//! }
//! ```

pub mod autodiff;
#[cfg(feature = "cli")]
pub mod cli;
pub mod data;
pub mod error;
pub mod gpu;
pub mod kernels;
pub mod model;
pub mod mtl;
pub mod nn;
pub mod optim;
pub mod reference;
pub mod task;
pub mod train;

pub use autodiff::{Tape, Var};
pub use data::{Dataset, Split, Table};
pub use error::{Error, Result};
pub use gpu::{AdapterReport, Arena, ArenaLayout, DType, Gpu, Tensor};
pub use model::Model;
pub use task::{TaskMetrics, TaskSpec, TaskType};
pub use train::{fit, FitReport, TrainConfig};
pub use wgpu;
