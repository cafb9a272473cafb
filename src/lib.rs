//! taskgrad: multi-task learning on any GPU, with every number computed by a
//! hand-written WGSL kernel.
//!
//! Layers, bottom to top: [`device`] (adapter, device, pipeline cache, typed
//! errors), [`tensor`] (GPU tensors and flat arenas), [`kernels`] (one Rust
//! wrapper per WGSL kernel family in `shaders/`), and [`reference`] (the plain
//! CPU statement of every kernel, used as the test oracle).
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
//!     let split = Split::new(table.rows.len(), 0.2, 0.2, 0)?;
//!     let tasks = [("species", TaskType::Class), ("petal_length", TaskType::Reg)];
//!     let data = Dataset::from_table(&table, &["sepal_length", "sepal_width"], &tasks, &split.train)?;
//!     let method = taskgrad::mtl::by_name("uncertainty")?;
//!     let report = fit(&gpu, &data, &split, &[0, 1], method, &TrainConfig::default(), &mut |epoch| {
//!         println!("epoch {}: train losses {:?}", epoch.epoch, epoch.train_loss)
//!     })?;
//!     println!("test metrics: {:?}", report.test);
//!     Ok(())
//! }
//! ```

pub mod checkpoint;
pub mod data;
pub mod device;
pub mod encode;
pub mod error;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod mtl;
pub mod nn;
pub mod ops;
pub mod profile;
pub mod reference;
pub mod report;
pub mod run;
pub mod step;
pub mod synthetic;
pub mod tape;
pub mod tensor;
pub mod train;
pub mod workloads;

pub use device::{AdapterReport, Gpu};
pub use error::{Error, Result};
pub use metrics::TaskMetrics;
pub use tape::{Tape, Var};
pub use tensor::{Arena, ArenaLayout, DType, Tensor};
pub use wgpu;
