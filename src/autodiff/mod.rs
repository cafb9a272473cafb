//! Reverse-mode automatic differentiation over GPU tensors: the [`Tape`] and
//! its ops, each op's backward rule written right below its forward.

mod ops;
mod tape;

pub use ops::FUSE_MASK_MAX_MACS;
pub use tape::{GraphNode, NodeKind, Tape, Var};
