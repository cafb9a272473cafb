//! Dropout (Srivastava et al., 2014), one unit: the layer (`dropout:P`),
//! its tape op, the kernel's wrapper and its CPU twin. The WGSL is
//! `shaders/dropout.wgsl`.
//!
//! Inverted dropout: while training, y = x ⊙ m / (1 − P), with m\[i\] = 1 when
//! a hash of (i, the layer's seed, the GPU step counter) is at or above P;
//! the backward is the same masked scaling of dy (the mask recomputed, not
//! stored). At evaluation the layer is the identity and records nothing.

use rand::Rng;

use super::{arg, Layer, LayerInfo};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, Shader};
use crate::nn::{ParamId, ParamSet};
use crate::reference::Real;

/// The kernel: `shaders/dropout.wgsl`.
pub const SHADER: Shader = Shader {
    file: "dropout.wgsl",
    source: include_str!("../../../shaders/dropout.wgsl"),
};

// ---- the layer ------------------------------------------------------------------

#[derive(Debug)]
struct Dropout {
    rate: f32,
    seed: u32,
    width: usize,
    /// The image it reads and outputs, if it is one.
    image: Option<super::Image>,
}

impl Layer for Dropout {
    fn forward(&self, tape: &mut Tape, _params: &ParamSet, x: Var) -> Result<Var> {
        op(tape, x, self.rate, self.seed)
    }
    fn output(&self) -> usize {
        self.width
    }
    fn image(&self) -> Option<super::Image> {
        self.image
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
}

/// The layer's registry entry.
pub const INFO: LayerInfo = LayerInfo {
    name: "dropout",
    summary: "dropout:P — while training, each value zeroed with probability P (a new seeded mask each step) and the rest scaled by 1/(1−P); the identity at evaluation",
    shader: Some(SHADER),
    build: |a, c| {
        let rate: f32 = arg(a, "dropout", "a rate in [0, 1)")?;
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::InvalidConfig(format!(
                "dropout:{rate}: the rate is in [0, 1)"
            )));
        }
        Ok(Box::new(Dropout {
            rate,
            seed: c.rng.random(),
            width: c.input,
            image: c.image,
        }))
    },
};

// ---- the op -----------------------------------------------------------------------

/// Inverted dropout of `x` at `rate` with masks drawn from (`seed`, the
/// GPU step counter): y = x ⊙ m / (1 − rate). The identity (no node, no
/// dispatch) when the tape is not recording a training step.
pub fn op(tape: &mut Tape, x: Var, rate: f32, seed: u32) -> Result<Var> {
    if !tape.training || rate == 0.0 {
        return Ok(x);
    }
    let gpu = tape.gpu;
    let step = tape.step_counter()?;
    let xv = tape.value(x).clone();
    let y = Tensor::zeros(gpu, xv.shape(), "dropout")?;
    let fwd = masked(gpu, &xv, &y, &step, seed, rate)?;
    // dx = dy ⊙ m / (1 − rate): the same mask, recomputed from (i, seed, step).
    let rule = move |t: &mut Tape, dy: &Tensor| -> Result<()> {
        let gpu = t.gpu;
        t.contribute(x, |dx| masked(gpu, dy, dx, &step, seed, rate))
    };
    Ok(tape.op("dropout", &[x], y, vec![fwd], rule))
}

// ---- the kernel ---------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    seed: u32,
    rate: f32,
    _pad: u32,
}

/// y = keep ? x / (1 − rate) : 0, keep drawn from (element, `seed`, `step[0]`).
/// The backward is the same call on dy.
pub fn masked(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    step: &Tensor,
    seed: u32,
    rate: f32,
) -> Result<Dispatch> {
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::InvalidConfig(format!(
            "a dropout rate is in [0, 1), got {rate}"
        )));
    }
    if x.dtype() != DType::F32 || step.dtype() != DType::U32 {
        return Err(Error::shape(
            "dropout",
            "f32 values and a u32 step",
            format!("{:?} and {:?}", x.dtype(), step.dtype()),
        ));
    }
    y.expect_shape("dropout y", x.shape())?;
    step.expect_numel("dropout step", 1)?;
    use Binding::*;
    SHADER.record(
        gpu,
        "masked",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &Params {
            n: x.numel() as u32,
            seed,
            rate,
            _pad: 0,
        },
        &[y, x, step],
        grid_1d(gpu, x.numel())?,
    )
}

// ---- the CPU twin -------------------------------------------------------------------

/// The "lowbias32" integer hash (C. Wellons), as shaders/dropout.wgsl.
pub(crate) fn lowbias32(v: u32) -> u32 {
    let mut h = v;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// Whether dropout keeps element `i` at training step `step` (shaders/dropout.wgsl).
pub fn keeps(i: u32, seed: u32, step: u32, rate: f32) -> bool {
    let h = lowbias32(lowbias32(i) ^ lowbias32(seed ^ lowbias32(step.wrapping_add(0x9e37_79b9))));
    ((h >> 8) as f32 / 16_777_216.0) >= rate
}

/// The kernel's CPU twin, inverted dropout: y\[i\] = keep ? x\[i\] / (1 − rate) : 0 (also its backward, on dy).
pub fn reference<T: Real>(x: &[T], seed: u32, step: u32, rate: f32) -> Vec<T> {
    let scale = T::one() / T::from_f64(1.0 - rate as f64);
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if keeps(i as u32, seed, step, rate) {
                v * scale
            } else {
                T::zero()
            }
        })
        .collect()
}
