//! Activations of hidden layers, as a type stored in the network's spec.
//!
//! ReLU is fused into the matmul (bias + max(·, 0) in the epilogue, the mask
//! into the backward products); GELU and tanh run as a separate elementwise
//! pass after the Linear layer, forward and backward (shaders/elementwise.wgsl).
//! Adding one: its two kernels there with their CPU reference, a tape op in
//! `autodiff/ops.rs` (forward and backward rule together), and a variant here.

use serde::{Deserialize, Serialize};

use crate::autodiff::{Tape, Var};
use crate::error::Result;

/// A hidden layer's nonlinearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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
    /// Record y = act(x) on the tape as a pass of its own (ReLU unfused).
    pub fn apply(self, tape: &mut Tape, x: Var) -> Result<Var> {
        match self {
            Activation::Relu => tape.relu(x),
            Activation::Gelu => tape.gelu(x),
            Activation::Tanh => tape.tanh(x),
            Activation::Identity => Ok(x),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Tanh => "tanh",
            Activation::Identity => "identity",
        }
    }
}
