//! Layers and models: named parameters in flat arenas ([`ParamSet`]), Linear
//! layers, activations ([`Activation`]), and the multi-task network ([`MultiTaskNet`]: shared trunk
//! or a mixture of experts ([`Arch`], [`moe`]), a head and optional tower per task).

mod activation;
pub mod branch;
pub mod cross_stitch;
mod freeze;
pub mod layer;
mod linear;
pub mod moe;
pub mod mtan;
mod net;
mod params;

pub use activation::Activation;
pub use freeze::Freeze;
pub use layer::{Layer, LayerSpec, Stack};
pub use linear::{Init, Linear};
pub use moe::Arch;
pub use net::{Embedding, MultiTaskNet, NetSize, NetSpec};
pub use params::{
    load_shared_values, load_values, NamedTensor, ParamBuilder, ParamId, ParamSet,
    METHOD_PARAM_PREFIX,
};
