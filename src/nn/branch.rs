//! Learning to Branch's choice of parent, one unit: the tape op, the
//! kernel's wrapper and its CPU twin. The WGSL is `shaders/branch.wgsl`.
//!
//! Each row of logits l (1×K: one child's score for each of K parents)
//! picks one parent by a hard Gumbel-softmax: while training, y =
//! one_hot(argmax((l + g)/τ)) with Gumbel noise g drawn from (seed, the GPU
//! step counter) and the straight-through gradient of s = softmax((l + g)/τ),
//! dl = s ⊙ (dy − s·dy)/τ; at evaluation y = one_hot(argmax l), without
//! noise. During warm-up every parent is taken (y = 1) and l gets no
//! gradient. τ and the warm-up flag are in a two-value schedule buffer the
//! host writes once an epoch ([`Schedule`]).

use super::layer::dropout::lowbias32;
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, Shader};

/// The kernel: `shaders/branch.wgsl`.
pub const SHADER: Shader = Shader {
    file: "branch.wgsl",
    source: include_str!("../../shaders/branch.wgsl"),
};

/// τ and warm-up for an epoch, as LibMTL's LTB: warm-up (every parent) while
/// epoch < epochs/100, then τ = (epochs/20)/√(epoch + 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub tau: f32,
    pub warm: bool,
}

impl Schedule {
    pub fn at(epoch: usize, epochs: usize) -> Schedule {
        Schedule {
            tau: (epochs as f64 / 20.0 / ((epoch + 1) as f64).sqrt()) as f32,
            warm: (epoch as f64) < epochs as f64 / 100.0,
        }
    }
    /// The two values the kernel reads.
    pub fn values(&self) -> [f32; 2] {
        [self.tau, if self.warm { 1.0 } else { 0.0 }]
    }
}

// ---- the op -----------------------------------------------------------------------

/// The parents `logits` (R×K) pick, as R one-hot rows (all ones in warm-up):
/// hard Gumbel-softmax with noise from (`seed`, the step counter) while the
/// tape records a training step, the plain argmax otherwise.
pub fn op(tape: &mut Tape, logits: Var, schedule: &Tensor, seed: u32) -> Result<Var> {
    let gpu = tape.gpu;
    let step = tape.step_counter()?;
    let lv = tape.value(logits).clone();
    let y = Tensor::zeros(gpu, lv.shape(), "branch choice")?;
    let soft = Tensor::zeros(gpu, lv.shape(), "branch soft choice")?;
    let training = tape.training;
    let fwd = forward(gpu, &lv, &y, &soft, schedule, &step, seed, training)?;
    let (s, sched) = (soft.clone(), schedule.clone());
    let rule = move |t: &mut Tape, dy: &Tensor| -> Result<()> {
        let gpu = t.gpu;
        t.contribute(logits, |dl| backward(gpu, &s, dy, &sched, dl))
    };
    Ok(tape.op("branch", &[logits], y, vec![fwd], rule))
}

// ---- the kernel ---------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    k: u32,
    seed: u32,
    training: u32,
}

fn rows_k(t: &Tensor) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, k] if (1..=64).contains(&k) && t.dtype() == DType::F32 => Ok((r, k)),
        _ => Err(Error::shape(
            "branch logits",
            "R×K f32, 1 ≤ K ≤ 64",
            format!("{:?} {:?}", t.shape(), t.dtype()),
        )),
    }
}

/// y (one-hot rows) and s (the soft choice) from `logits`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    gpu: &Gpu,
    logits: &Tensor,
    y: &Tensor,
    soft: &Tensor,
    schedule: &Tensor,
    step: &Tensor,
    seed: u32,
    training: bool,
) -> Result<Dispatch> {
    let (r, k) = rows_k(logits)?;
    y.expect_shape("branch y", &[r, k])?;
    soft.expect_shape("branch soft", &[r, k])?;
    schedule.expect_numel("branch schedule", 2)?;
    step.expect_numel("branch step", 1)?;
    use Binding::*;
    SHADER.record(
        gpu,
        "branch",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly],
        &[],
        &Params {
            rows: r as u32,
            k: k as u32,
            seed,
            training: training as u32,
        },
        &[y, soft, logits, schedule, step],
        grid_1d(gpu, r)?,
    )
}

/// dl = s ⊙ (dy − s·dy)/τ, row by row (0 in warm-up).
pub fn backward(
    gpu: &Gpu,
    soft: &Tensor,
    dy: &Tensor,
    schedule: &Tensor,
    dl: &Tensor,
) -> Result<Dispatch> {
    let (r, k) = rows_k(soft)?;
    dy.expect_shape("branch dy", &[r, k])?;
    dl.expect_shape("branch dl", &[r, k])?;
    use Binding::*;
    SHADER.record(
        gpu,
        "branch_backward",
        &[Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &Params {
            rows: r as u32,
            k: k as u32,
            seed: 0,
            training: 1,
        },
        &[dl, soft, dy, schedule],
        grid_1d(gpu, r)?,
    )
}

// ---- the CPU twin -------------------------------------------------------------------

/// u ∈ (0, 1) for element `i` at `step` (shaders/branch.wgsl's `uniform_open`).
pub fn uniform_open(i: u32, seed: u32, step: u32) -> f64 {
    let h = lowbias32(lowbias32(i) ^ lowbias32(seed ^ lowbias32(step.wrapping_add(0x9e37_79b9))));
    ((h >> 8) as f64 + 0.5) / 16_777_216.0
}

/// The kernel's CPU twin: (y, s) for R×K `logits`, in f64.
pub fn reference(
    logits: &[f64],
    k: usize,
    schedule: Schedule,
    seed: u32,
    step: u32,
    training: bool,
) -> (Vec<f64>, Vec<f64>) {
    if schedule.warm {
        return (vec![1.0; logits.len()], vec![0.0; logits.len()]);
    }
    let (mut y, mut s) = (Vec::new(), Vec::new());
    for (r, row) in logits.chunks(k).enumerate() {
        let z: Vec<f64> = (row.iter().enumerate())
            .map(|(j, &l)| match training {
                true => {
                    let u = uniform_open((r * k + j) as u32, seed, step);
                    (l - (-u.ln()).ln()) / schedule.tau as f64
                }
                false => l,
            })
            .collect();
        let best = (0..k).fold(0, |b, j| if z[j] > z[b] { j } else { b });
        let top = z[best];
        let e: Vec<f64> = z.iter().map(|v| (v - top).exp()).collect();
        let sum: f64 = e.iter().sum();
        s.extend(e.iter().map(|v| v / sum));
        y.extend((0..k).map(|j| if j == best { 1.0 } else { 0.0 }));
    }
    (y, s)
}

/// The backward's CPU twin: dl = s ⊙ (dy − s·dy)/τ per row (0 in warm-up).
pub fn reference_backward(soft: &[f64], dy: &[f64], k: usize, schedule: Schedule) -> Vec<f64> {
    if schedule.warm {
        return vec![0.0; soft.len()];
    }
    soft.chunks(k)
        .zip(dy.chunks(k))
        .flat_map(|(s, d)| {
            let dot: f64 = s.iter().zip(d).map(|(a, b)| a * b).sum();
            s.iter()
                .zip(d)
                .map(move |(a, b)| a * (b - dot) / schedule.tau as f64)
                .collect::<Vec<_>>()
        })
        .collect()
}
