//! Activations of hidden layers, as a type stored in the network's spec.
//!
//! ReLU is fused into the matmul (bias + max(·, 0) in the epilogue, the mask
//! into the backward products); GELU and tanh run as a separate elementwise
//! pass after the Linear layer, forward and backward (shaders/elementwise.wgsl).
//! Adding one: its two kernels there with their CPU reference, a tape op in
//! `autodiff/ops.rs` (`Tape::activation`), and a variant here.

use serde::{Deserialize, Serialize};

/// A hidden layer's nonlinearity.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(x, 0), fused into the matmul.
    #[default]
    Relu,
    /// ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))), the tanh form of GELU.
    Gelu,
    /// tanh(x).
    Tanh,
    /// x (no nonlinearity; output layers).
    Identity,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Tanh => "tanh",
            Activation::Identity => "identity",
        }
    }
}
