//! Image augmentation as layers, one unit: `shift:S` (each image moved by
//! up to S pixels in each direction, zero padding) and `flip` (each image
//! mirrored left-right with probability ½), drawn anew for every image at
//! every training step on the GPU, inside the step's submit; the identity at
//! evaluation, where they record nothing (as Keras's preprocessing layers
//! `RandomTranslation` and `RandomFlip`). Their layer, tape op, kernel
//! wrapper and CPU twin are here; the WGSL is `shaders/augment.wgsl`.
//!
//! The draws are a hash of (image, the layer's seed, the GPU step counter),
//! as dropout's masks: the same seed gives the same images step for step,
//! and no host write happens per step. First in a trunk they augment the
//! input (`--augment shift:2` puts them there); anywhere over an image they
//! are a permutation with zero fill, whose backward is its transpose.
//! Rotations are not offered: the digits here are upright and the step
//! would need interpolation.

use rand::Rng;

use super::dropout::lowbias32;
use super::{arg, no_arg, Image, Layer, LayerContext, LayerInfo};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::{Binding, DType, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, Shader};
use crate::nn::{ParamId, ParamSet};

/// The kernel: `shaders/augment.wgsl`.
pub const SHADER: Shader = Shader {
    file: "augment.wgsl",
    source: include_str!("../../../shaders/augment.wgsl"),
};

/// What one augmentation layer draws: a shift of up to `shift` pixels
/// each way, and a left-right flip when `flip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    pub shift: u32,
    pub flip: bool,
    pub seed: u32,
}

#[derive(Debug)]
struct AugmentLayer {
    how: Augment,
    image: Image,
}

impl Layer for AugmentLayer {
    fn forward(&self, tape: &mut Tape, _params: &ParamSet, x: Var) -> Result<Var> {
        op(tape, x, self.image, self.how)
    }
    fn output(&self) -> usize {
        self.image.channels
    }
    fn image(&self) -> Option<Image> {
        Some(self.image)
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
}

fn image_of(c: &LayerContext<'_>, layer: &str) -> Result<Image> {
    c.image.ok_or_else(|| {
        Error::InvalidConfig(format!(
            "{layer} moves an image's pixels, and its input is {} features in a row: use it over an --image, before flatten",
            c.input
        ))
    })
}

/// The registry entry of `shift:S`.
pub const SHIFT: LayerInfo = LayerInfo {
    name: "shift",
    summary: "shift:S — while training, each image moved by a random offset of up to S pixels each way (zero padding), new every step; the identity at evaluation",
    shader: Some(SHADER),
    build: |a, c| {
        let image = image_of(c, "shift")?;
        let shift: u32 = arg(a, "shift", "a number of pixels (at least 1)")?;
        if shift == 0 || shift as usize >= image.height.max(image.width) {
            return Err(Error::InvalidConfig(format!(
                "shift:{shift}: a shift is at least 1 and less than the {image} image's sides"
            )));
        }
        let how = Augment {
            shift,
            flip: false,
            seed: c.rng.random(),
        };
        Ok(Box::new(AugmentLayer { how, image }))
    },
};

/// The registry entry of `flip`.
pub const FLIP: LayerInfo = LayerInfo {
    name: "flip",
    summary: "flip — while training, each image mirrored left-right with probability 1/2, drawn every step; the identity at evaluation",
    shader: Some(SHADER),
    build: |a, c| {
        no_arg(a, "flip")?;
        let image = image_of(c, "flip")?;
        let how = Augment {
            shift: 0,
            flip: true,
            seed: c.rng.random(),
        };
        Ok(Box::new(AugmentLayer { how, image }))
    },
};

// ---- the op -----------------------------------------------------------------------

/// `x` (B images of `image`, as (B·H·W) × C) augmented as `how` says, drawn
/// from (`how.seed`, the GPU step counter). The identity (no node, no
/// dispatch) when the tape is not recording a training step.
pub fn op(tape: &mut Tape, x: Var, image: Image, how: Augment) -> Result<Var> {
    if !tape.training {
        return Ok(x);
    }
    let gpu = tape.gpu;
    let step = tape.step_counter()?;
    let xv = tape.value(x).clone();
    let y = Tensor::zeros(gpu, xv.shape(), "augmented images")?;
    let fwd = shift_flip(gpu, &xv, &y, &step, image, how, false)?;
    // The transpose: each input pixel gathers the gradient from where it went.
    let rule = move |t: &mut Tape, dy: &Tensor| -> Result<()> {
        let gpu = t.gpu;
        t.contribute(x, |dx| shift_flip(gpu, dy, dx, &step, image, how, true))
    };
    Ok(tape.op("augment", &[x], y, vec![fwd], rule))
}

// ---- the kernel ---------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    shift: u32,
    flip: u32,
    seed: u32,
    backward: u32,
}

/// y = the images of x shifted and flipped (or, `backward`, the transpose),
/// the draws from (image, `how.seed`, `step[0]`).
pub fn shift_flip(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    step: &Tensor,
    image: Image,
    how: Augment,
    backward: bool,
) -> Result<Dispatch> {
    if x.dtype() != DType::F32 || step.dtype() != DType::U32 {
        return Err(Error::shape(
            "augment",
            "f32 images and a u32 step",
            format!("{:?} and {:?}", x.dtype(), step.dtype()),
        ));
    }
    if !x.numel().is_multiple_of(image.len()) {
        return Err(Error::shape(
            "augment",
            format!("whole {image} images"),
            format!("{} values", x.numel()),
        ));
    }
    y.expect_numel("augment y", x.numel())?;
    step.expect_numel("augment step", 1)?;
    use Binding::*;
    SHADER.record(
        gpu,
        "shift_flip",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &Params {
            n: x.numel() as u32,
            h: image.height as u32,
            w: image.width as u32,
            c: image.channels as u32,
            shift: how.shift,
            flip: how.flip as u32,
            seed: how.seed,
            backward: backward as u32,
        },
        &[y, x, step],
        grid_1d(gpu, x.numel())?,
    )
}

// ---- the CPU twin -------------------------------------------------------------------

/// What image `b` draws at step `step`: (dy, dx, flipped), as the kernel.
pub fn draws(b: u32, how: Augment, step: u32) -> (i64, i64, bool) {
    let u = |k: u32| {
        lowbias32(
            lowbias32(b.wrapping_mul(4).wrapping_add(k))
                ^ lowbias32(how.seed ^ lowbias32(step.wrapping_add(0x9e37_79b9))),
        )
    };
    let span = 2 * how.shift + 1;
    let s = how.shift as i64;
    let dy = (u(0) % span) as i64 - s;
    let dx = (u(1) % span) as i64 - s;
    (dy, dx, how.flip && u(2) & 1 == 1)
}

/// The kernel's CPU twin over B images of `image` (NHWC), forward or backward.
pub fn reference<T: Copy + Default>(
    x: &[T],
    image: Image,
    how: Augment,
    step: u32,
    backward: bool,
) -> Vec<T> {
    let (h, w, c) = (image.height as i64, image.width as i64, image.channels);
    let per = image.len();
    let mut y = vec![T::default(); x.len()];
    for b in 0..x.len() / per {
        let (dy, dx, flipped) = draws(b as u32, how, step);
        let g = |j: i64| if flipped { w - 1 - j } else { j };
        for row in 0..h {
            for col in 0..w {
                let (sy, sx) = match backward {
                    false => (row - dy, g(col - dx)),
                    true => (row + dy, g(col) + dx),
                };
                if sy < 0 || sy >= h || sx < 0 || sx >= w {
                    continue;
                }
                for ch in 0..c {
                    let to = b * per + (row * w + col) as usize * c + ch;
                    y[to] = x[b * per + (sy * w + sx) as usize * c + ch];
                }
            }
        }
    }
    y
}
