//! The GPU runtime: adapter choice (hardware first, then software), device and
//! queue, the pipeline cache, wgpu errors as typed errors ([`Gpu`]); tensors,
//! flat arenas, upload and batched readback ([`Tensor`], [`Arena`]); recorded
//! kernel launches and one-submit execution ([`Dispatch`], [`Gpu::run`]); and
//! per-kernel timestamps ([`profile`]).

mod device;
pub mod dispatch;
pub mod env;
pub mod profile;
mod tensor;

pub use device::{
    list_adapters, parse_backend, quiet_graphics_stack, AdapterReport, Binding, CpuThreads, Gpu,
    Kernel,
};
pub use dispatch::Dispatch;
pub use env::KernelEnv;
pub use tensor::{Arena, ArenaLayout, DType, Slab, SlabGuard, Tensor};
