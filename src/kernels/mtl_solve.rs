//! Task-weight solves on the GPU (one invocation, K ≤ 16). See
//! shaders/mtl_solve.wgsl and the CPU reference in `mtl::solve`.

use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::Tensor;
use crate::gpu::{Binding, Gpu};
use crate::kernels::record;

/// Values of method memory every solve gets (kept between steps).
pub const STATE_LEN: usize = 80;
/// Most tasks a solve handles.
pub const MAX_TASKS: usize = 16;

/// A solve and its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Solve {
    PcGrad { seed: u32 },
    Mgda { iters: u32 },
    CaGrad { c: f32, iters: u32 },
    ImtlG,
    NashMtl { iters: u32 },
    UpGrad { sweeps: u32 },
    GradNorm { alpha: f32, lr: f32 },
    Rlw { seed: u32 },
    Famo { lr: f32, gamma: f32 },
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    seed: u32,
    iters: u32,
    _pad: u32,
    f: [f32; 4],
}

impl Solve {
    fn entry_and_params(&self, k: u32) -> (&'static str, Params) {
        let mut p = Params {
            k,
            seed: 0,
            iters: 0,
            _pad: 0,
            f: [0.0; 4],
        };
        let entry = match *self {
            Solve::PcGrad { seed } => {
                p.seed = seed;
                "pcgrad"
            }
            Solve::Mgda { iters } => {
                p.iters = iters;
                "mgda"
            }
            Solve::CaGrad { c, iters } => {
                p.iters = iters;
                p.f[0] = c;
                "cagrad"
            }
            Solve::ImtlG => "imtl_g",
            Solve::NashMtl { iters } => {
                p.iters = iters;
                "nash_mtl"
            }
            Solve::UpGrad { sweeps } => {
                p.iters = sweeps;
                "upgrad"
            }
            Solve::GradNorm { alpha, lr } => {
                p.f = [alpha, lr, 0.0, 0.0];
                "gradnorm"
            }
            Solve::Rlw { seed } => {
                p.seed = seed;
                "rlw"
            }
            Solve::Famo { lr, gamma } => {
                p.f = [lr, gamma, 0.0, 0.0];
                "famo"
            }
        };
        (entry, p)
    }
}

/// Record the solve writing `weights` (K) from `gram` (K×K) and `losses` (K),
/// with its memory in `state` (at least [`STATE_LEN`] values, zeroed at the start).
pub fn solve(
    gpu: &Gpu,
    method: Solve,
    gram: &Tensor,
    losses: &Tensor,
    state: &Tensor,
    weights: &Tensor,
) -> Result<Dispatch> {
    let k = weights.numel();
    if k == 0 || k > MAX_TASKS {
        return Err(Error::InvalidConfig(format!(
            "task-weight solves handle 1 to {MAX_TASKS} tasks, got {k}"
        )));
    }
    gram.expect_numel("solve gram", k * k)?;
    losses.expect_numel("solve losses", k)?;
    if state.numel() < STATE_LEN {
        return Err(Error::shape(
            "solve state",
            format!("at least {STATE_LEN} values"),
            format!("{}", state.numel()),
        ));
    }
    let (entry, params) = method.entry_and_params(k as u32);
    use Binding::*;
    record(
        gpu,
        "mtl_solve.wgsl",
        entry,
        &[Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &params,
        &[weights, state, gram, losses],
        [1, 1, 1],
    )
}
