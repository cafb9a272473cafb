//! taskgrad: multi-task learning on any GPU, with every number computed by a
//! hand-written WGSL kernel.
//!
//! Layers, bottom to top: [`device`] (adapter, device, pipeline cache, typed
//! errors), [`tensor`] (GPU tensors and flat arenas), [`kernels`] (one Rust
//! wrapper per WGSL kernel family in `shaders/`), and [`reference`] (the plain
//! CPU statement of every kernel, used as the test oracle).

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
