//! Layers and models: named parameters in flat arenas ([`ParamSet`]), Linear
//! layers, activations ([`Activation`]), and the multi-task network ([`MultiTaskNet`]: shared trunk, a head
//! and optional tower per task).

mod activation;
mod linear;
mod net;
mod params;

pub use activation::Activation;
pub use linear::{Init, Linear};
pub use net::{MultiTaskNet, NetSpec};
pub use params::{load_values, NamedTensor, ParamBuilder, ParamId, ParamSet, METHOD_PARAM_PREFIX};
