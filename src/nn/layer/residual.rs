//! `res(LAYERS)`: a residual block (He et al., "Deep Residual Learning for
//! Image Recognition", CVPR 2016): its layers' output added to its input,
//!
//!   y = F(x) + x            when F keeps the width (or an image's channels),
//!   y = F(x) + x·P + p      otherwise, P a learned projection
//!
//! (a linear layer over features; over an image, a 1×1 convolution, the
//! paper's option B). F is any layer list that keeps the kind and size of
//! its input: rows of features stay rows, an H×W image stays H×W (padded
//! convolutions, no pooling or stride inside). `res(linear:64,relu,linear:64)`,
//! `res(conv:16x3p1,relu,conv:16x3p1)`.
//!
//! No kernel of its own: F's layers, the projection's matmul and the tape's
//! `add`, whose backward hands dy to both branches (the tape sums the two
//! contributions at x). Parameters: F's named `<prefix>.<k>` inside the
//! block's prefix (`trunk.0.0.weight`), the projection's `<prefix>.proj`.

use super::{image, Layer, LayerContext, LayerInfo, LayerSpec, Stack};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::DType;
use crate::nn::{Init, Linear, ParamId, ParamSet};

#[derive(Debug)]
struct Residual {
    inner: Stack,
    /// The projection of x when F changes the width.
    proj: Option<Box<dyn Layer>>,
}

impl Layer for Residual {
    fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        // In half precision the block runs in f32 (as a convolution does), so
        // that its output and the skip are added in one precision.
        if tape.value(x).dtype() != DType::F32 {
            return Err(Error::InvalidConfig(
                "res reads f16 activations here (--half stores a linear+relu's output in f16): \
                 put the block where its input is f32 (first, or after a conv), or train in f32"
                    .into(),
            ));
        }
        let half = std::mem::replace(&mut tape.half, false);
        let y = self.forward_f32(tape, params, x);
        tape.half = half;
        y
    }
    fn output(&self) -> usize {
        self.inner.output()
    }
    fn image(&self) -> Option<image::Image> {
        self.inner.output_image()
    }
    fn widest(&self) -> usize {
        let proj = self.proj.as_ref().map_or(0, |p| p.widest());
        self.inner.widest().max(proj)
    }
    fn params(&self) -> Vec<ParamId> {
        let mut ids = self.inner.params();
        ids.extend(self.proj.iter().flat_map(|p| p.params()));
        ids
    }
}

fn build(a: Option<&str>, c: &mut LayerContext<'_>) -> Result<Box<dyn Layer>> {
    let text = a.unwrap_or("").trim();
    let specs = LayerSpec::parse_list(text)?;
    if specs.is_empty() {
        return Err(Error::InvalidConfig(
            "res needs its layers: write e.g. res(linear:64,relu,linear:64)".into(),
        ));
    }
    let inner = Stack::build_over(c.params, &c.name, &specs, c.input, c.image, c.rng)?;
    let (out, out_image) = (inner.output(), inner.output_image());
    match (c.image, out_image) {
        (Some(i), Some(o)) if (i.height, i.width) != (o.height, o.width) => {
            return Err(Error::InvalidConfig(format!(
                "its layers make a {o} image of its {i} input; a residual block keeps \
                 the image's size (pad its convolutions, pool outside it)"
            )))
        }
        (Some(i), None) => {
            return Err(Error::InvalidConfig(format!(
                "its layers end the {i} image; a residual block keeps its input's kind (flatten outside it)"
            )))
        }
        _ => {}
    }
    let proj: Option<Box<dyn Layer>> = match (out == c.input, c.image) {
        (true, _) => None,
        (false, Some(_)) => {
            let mut ctx = LayerContext {
                params: c.params,
                name: format!("{}.proj", c.name),
                input: c.input,
                image: c.image,
                rng: c.rng,
            };
            Some(image::build_conv(
                Some(&format!("{out}x1")),
                &mut ctx,
                false,
            )?)
        }
        (false, None) => {
            let name = format!("{}.proj", c.name);
            let linear = Linear::new(c.params, &name, c.input, out, Init::He, c.rng)?;
            Some(Box::new(Projection(linear)))
        }
    };
    Ok(Box::new(Residual { inner, proj }))
}

impl Residual {
    fn forward_f32(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        let fx = self.inner.forward(tape, params, x)?;
        let skip = match &self.proj {
            Some(p) => p.forward(tape, params, x)?,
            None => x,
        };
        tape.add(fx, skip)
    }
}

/// x·P + p: the skip path when the block changes the width.
#[derive(Debug)]
struct Projection(Linear);

impl Layer for Projection {
    fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        self.0
            .forward(tape, params, x, crate::nn::Activation::Identity)
    }
    fn output(&self) -> usize {
        self.0.fan_out
    }
    fn params(&self) -> Vec<ParamId> {
        vec![self.0.w, self.0.b]
    }
}

/// The registry entry of `res`.
pub const INFO: LayerInfo = LayerInfo {
    name: "res",
    summary: "res(LAYERS) — a residual block: the layers' output plus the input (a learned projection when the width changes); keeps an image's size",
    shader: None,
    build,
};
