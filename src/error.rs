//! One error type for the whole crate. Every variant carries the context a
//! user needs to act on it; user input never panics.

use std::path::PathBuf;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- device --------------------------------------------------------
    #[error(
        "no GPU adapter found (backends tried: {tried}). On Linux without a GPU, install a \
         software Vulkan driver with `apt-get install mesa-vulkan-drivers` (lavapipe), or \
         set TASKGRAD_BACKEND=gl to use Mesa's llvmpipe through OpenGL{detail}"
    )]
    NoAdapter { tried: String, detail: String },

    #[error(
        "unknown backend {name:?} in TASKGRAD_BACKEND: expected one of vulkan, gl, metal, dx12 (or webgpu, in a browser)"
    )]
    UnknownBackend { name: String },

    #[error("could not open a device on adapter {adapter:?}: {reason}")]
    RequestDevice { adapter: String, reason: String },

    #[error("GPU error during {context}: {message}")]
    Gpu { context: String, message: String },

    #[error("GPU out of memory during {context}: {message}")]
    OutOfMemory { context: String, message: String },

    #[error("adapter lacks feature {feature}: {why}")]
    MissingFeature { feature: &'static str, why: String },

    // ---- shapes and sizes ----------------------------------------------
    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    ShapeMismatch {
        op: &'static str,
        expected: String,
        got: String,
    },

    #[error(
        "tensor of {bytes} bytes exceeds this adapter's maximum storage binding of {limit} bytes"
    )]
    BufferTooLarge { bytes: u64, limit: u64 },

    #[error("dispatch of {workgroups} workgroups exceeds {limit} even when folded into 2-D")]
    DispatchTooLarge { workgroups: u64, limit: u64 },

    // ---- data and configuration ----------------------------------------
    #[error("{path}:{line}:{column}: {reason}")]
    Data {
        path: PathBuf,
        line: u64,
        column: String,
        reason: String,
    },

    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    #[error(
        "non-finite loss for task {task:?} at step {step}: lower the learning rate, \
         or look for extreme values in the data"
    )]
    NonFinite { step: u64, task: String },

    #[error(
        "training diverged: task {task:?}'s mean training loss went from {initial:.4} before \
         training to {now:.4e} in epoch {} (epochs counted from 1); lower the learning rate",
        .epoch + 1
    )]
    Diverged {
        task: String,
        /// The epoch, counted from 0.
        epoch: usize,
        /// The task's loss on the training rows before the first step.
        initial: f64,
        now: f64,
    },

    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A step that should not fail did (a bug to report, not a setting to change).
    #[error("internal error while {operation}: {reason}")]
    Internal { operation: String, reason: String },
}

impl Error {
    /// The error with `what` in front of its message, said once: an invalid
    /// configuration becomes "`what`: the reason" (not "invalid
    /// configuration: what: invalid configuration: the reason"); other errors
    /// keep their own context.
    pub fn context(self, what: impl std::fmt::Display) -> Error {
        match self {
            Error::InvalidConfig(m) => Error::InvalidConfig(format!("{what}: {m}")),
            other => other,
        }
    }

    /// An internal failure while doing `operation`.
    pub fn internal(operation: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Internal {
            operation: operation.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn shape(
        op: &'static str,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Error::ShapeMismatch {
            op,
            expected: expected.into(),
            got: got.into(),
        }
    }
}
