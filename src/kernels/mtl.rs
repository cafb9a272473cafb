//! Task-weight solves on the GPU: one invocation turns the K×K Gram matrix
//! (and the losses) into K combination weights or seeds. Each method's solve
//! is `shaders/mtl/prelude.wgsl` followed by `shaders/mtl/<method>.wgsl`,
//! joined at build time in the method's file under `src/mtl/` (its
//! [`SolveShader`]); this wrapper checks shapes and records the dispatch.

use crate::error::{Error, Result};
use crate::gpu::dispatch::record;
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::MAX_TASKS;

/// Values of method memory every solve gets (kept between steps); each
/// method's WGSL file names the offsets it uses. Room for a step counter and
/// a K×K table at the largest K (GradVac's target cosines).
pub const STATE_LEN: usize = 1 + MAX_TASKS * MAX_TASKS + 15;

/// The shared prelude of every solve (bindings, Gram matrix, helpers).
pub const PRELUDE: &str = include_str!("../../shaders/mtl/prelude.wgsl");

/// One method's solve: prelude + its own file, and its entry point.
pub struct SolveShader {
    /// `mtl/<method>.wgsl`: the pipeline cache's key and the kernel's label.
    pub file: &'static str,
    pub entry: &'static str,
    /// The whole WGSL text, prelude first.
    pub source: &'static str,
}

/// The [`SolveShader`] of `shaders/mtl/<stem>.wgsl`, joined to the prelude
/// at build time; used in `src/mtl/<stem>.rs`.
#[macro_export]
macro_rules! solve_shader {
    ($stem:literal) => {
        $crate::kernels::mtl::SolveShader {
            file: concat!("mtl/", $stem, ".wgsl"),
            entry: $stem,
            source: concat!(
                include_str!("../../shaders/mtl/prelude.wgsl"),
                include_str!(concat!("../../shaders/mtl/", $stem, ".wgsl"))
            ),
        }
    };
}

/// Record `shader`'s solve writing `out` (K) from `gram` (K×K, or 2K×2K for
/// a solve over two minibatches' rows) and `losses`
/// (K), with its memory in `state` (at least [`STATE_LEN`] values, zero at
/// the start). `params` is the `#[repr(C)]` twin of the file's WGSL
/// `Params`, whose first field is K.
pub fn solve<P: bytemuck::Pod>(
    gpu: &Gpu,
    shader: &SolveShader,
    params: P,
    gram: &Tensor,
    losses: &Tensor,
    state: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let k = out.numel();
    if k == 0 || k > MAX_TASKS {
        return Err(Error::InvalidConfig(format!(
            "task-weight solves handle 1 to {MAX_TASKS} tasks, got {k}"
        )));
    }
    // K×K, or (MoDo, SDMGrad) the 2K×2K Gram matrix of two minibatches' rows.
    if gram.numel() != k * k && gram.numel() != 4 * k * k {
        gram.expect_numel("solve gram", k * k)?;
    }
    losses.expect_numel("solve losses", k)?;
    if state.numel() < STATE_LEN {
        return Err(Error::shape(
            "solve state",
            format!("at least {STATE_LEN} values"),
            format!("{}", state.numel()),
        ));
    }
    use Binding::*;
    record(
        gpu,
        shader.file,
        shader.source,
        shader.entry,
        // The parameters in a storage buffer, not a uniform one: on lavapipe
        // (Mesa 22.3) a solve whose loops a uniform value bounds cost 2-14 ms
        // per call, spent in the driver and malloc (Mesa inlines such uniforms
        // and compiles the variant when the dispatch runs, as far as measured),
        // where the same solve with storage parameters takes 0.02-0.2 ms
        // (BENCHMARKS.md, "Bisecting the slow solves").
        &[ReadOnly, ReadWrite, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &params,
        &[out, state, gram, losses],
        [1, 1, 1],
    )
}
