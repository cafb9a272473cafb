//! Layers over images: `conv`, `maxpool`, `avgpool` and `flatten`, and the
//! [`Image`] shape that flows between them.
//!
//! An image batch lives on the tape as a (B·H·W) × C matrix: NHWC, one row
//! per pixel, one column per channel. So the elementwise layers (`relu`,
//! `gelu`, `tanh`, `dropout`) work on images unchanged, `layernorm`
//! normalises each pixel over its channels, and `flatten` is a view that
//! reads the same storage as B rows of H·W·C features (pixel-major, channel
//! fastest), which is what `linear` takes.
//!
//! A convolution is im2col then the matmul ([`crate::kernels::im2col`],
//! `Tape::im2col` and `Tape::linear`): the patch rows (B·OH·OW) × (K·K·C)
//! times W (K·K·C × OUT), plus b, with ReLU fused into the matmul when
//! `relu` follows, as for `linear`. `TASKGRAD_CONV=direct` computes it
//! instead without the patch matrix (`Tape::conv_direct`,
//! shaders/conv_direct.wgsl): the same function of the same parameters. Pooling uses `shaders/maxpool.wgsl`
//! (the argmax kept for the backward) and `shaders/avgpool.wgsl`.
//!
//! | layer | parameters | output |
//! | --- | --- | --- |
//! | `conv:OUTxK[sS][pP]` | W (K·K·C × OUT, He), b (OUT, zeros) | OH×OW×OUT, OH = (H + 2P − K)/S + 1 |
//! | `maxpool:K[sS]`, `avgpool:K[sS]` | — | OH×OW×C, OH = (H − K)/S + 1 (stride K unless given) |
//! | `flatten` | — | H·W·C features |

use std::fmt;

use super::{arg, no_arg, Layer, LayerContext, LayerInfo};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::im2col::ConvGeometry;
use crate::nn::{Activation, Init, Linear, ParamId, ParamSet};

/// The shape of one image: H×W pixels with C channels, stored NHWC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Image {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl Image {
    pub fn new(height: usize, width: usize, channels: usize) -> Result<Image> {
        if height == 0 || width == 0 || channels == 0 {
            return Err(Error::InvalidConfig(format!(
                "an image needs every size at least 1, got {height}x{width}x{channels}"
            )));
        }
        Ok(Image {
            height,
            width,
            channels,
        })
    }

    /// `HxW` (one channel) or `HxWxC`.
    pub fn parse(text: &str) -> Result<Image> {
        let bad = || {
            Error::InvalidConfig(format!(
                "image size {text:?}: write HxW or HxWxC, e.g. 28x28 or 32x32x3"
            ))
        };
        let sizes: Vec<usize> = text
            .trim()
            .split(['x', 'X', '×'])
            .map(|s| s.trim().parse().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        match sizes[..] {
            [h, w] => Image::new(h, w, 1),
            [h, w, c] => Image::new(h, w, c),
            _ => Err(bad()),
        }
    }

    /// Values in one image, H·W·C: the input columns it takes.
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Pixels in one image, H·W: its rows on the tape.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// Never true: every size is at least 1.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The convolution (or pooling) geometry of `batch` such images.
    fn geometry(
        &self,
        batch: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Result<ConvGeometry> {
        ConvGeometry::new(
            (batch, self.height, self.width, self.channels),
            kernel,
            stride,
            pad,
        )
    }

    /// How many images `x` holds ((B·H·W) × C or B × (H·W·C)).
    fn batch_of(&self, tape: &Tape, x: Var, op: &'static str) -> Result<usize> {
        let n = tape.value(x).numel();
        if !n.is_multiple_of(self.len()) {
            return Err(Error::shape(
                op,
                format!("a multiple of {} ({self})", self.len()),
                n.to_string(),
            ));
        }
        Ok(n / self.len())
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.height, self.width, self.channels)
    }
}

impl serde::Serialize for Image {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Image {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Image, D::Error> {
        let text = String::deserialize(d)?;
        Image::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The image a layer that needs one reads, or why it has none.
fn image_input(c: &LayerContext<'_>, layer: &str) -> Result<Image> {
    c.image.ok_or_else(|| {
        Error::InvalidConfig(format!(
            "{layer} reads an image, and its input is {} features in a row: declare the input an image (--image HxW[xC]) and put {layer} before any flatten or linear",
            c.input
        ))
    })
}

/// Split `text` as `N[sS][pP]` into N, S (default `stride`) and P (default 0).
fn sizes(text: &str, layer: &str, what: &str, stride: usize) -> Result<(usize, usize, usize)> {
    let bad = || {
        Error::InvalidConfig(format!(
            "{layer}:{text}: write {what} as a whole number, optionally followed by sS (stride) and pP (padding)"
        ))
    };
    let num = |s: &str| s.parse::<usize>().map_err(|_| bad());
    let (rest, pad) = match text.split_once('p') {
        Some((r, p)) => (r, num(p)?),
        None => (text, 0),
    };
    let (n, stride) = match rest.split_once('s') {
        Some((n, s)) => (num(n)?, num(s)?),
        None => (num(rest)?, stride),
    };
    Ok((n, stride, pad))
}

// ---- conv ---------------------------------------------------------------------------

/// A 2-D convolution: im2col, then x·W + b (ReLU fused when the builder says so).
#[derive(Debug)]
struct Conv {
    linear: Linear,
    relu: bool,
    input: Image,
    kernel: usize,
    stride: usize,
    pad: usize,
    out: Image,
}

impl Layer for Conv {
    // ANCHOR: conv_forward
    fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        let batch = self.input.batch_of(tape, x, "conv")?;
        let g = self
            .input
            .geometry(batch, self.kernel, self.stride, self.pad)?;
        if tape.gpu.env.conv_direct {
            let w = params.var_f32(tape, self.linear.w)?;
            let b = params.var_f32(tape, self.linear.b)?;
            return tape.conv_direct(x, w, b, &g, self.relu);
        }
        let cols = tape.im2col(x, &g)?;
        let act = if self.relu {
            Activation::Relu
        } else {
            Activation::Identity
        };
        // The image kernels read f32: a conv's output stays f32 in half precision.
        let half = std::mem::replace(&mut tape.half, false);
        let y = self.linear.forward(tape, params, cols, act);
        tape.half = half;
        y
    }
    // ANCHOR_END: conv_forward
    fn output(&self) -> usize {
        self.out.channels
    }
    fn image(&self) -> Option<Image> {
        Some(self.out)
    }
    fn widest(&self) -> usize {
        // The patches, OH·OW rows of K·K·C per image, or the output.
        let patches = self.out.pixels() * self.kernel * self.kernel * self.input.channels;
        patches.max(self.out.len())
    }
    fn params(&self) -> Vec<ParamId> {
        vec![self.linear.w, self.linear.b]
    }
}

/// Build `conv:OUTxK[sS][pP]`, with ReLU fused when `relu`.
pub(super) fn build_conv(
    a: Option<&str>,
    c: &mut LayerContext<'_>,
    relu: bool,
) -> Result<Box<dyn Layer>> {
    let text: String = arg(
        a,
        "conv",
        "OUTxK (output channels x kernel size), e.g. 20x5",
    )?;
    let (out, rest) = text.split_once(['x', 'X']).ok_or_else(|| {
        Error::InvalidConfig(format!(
            "conv:{text}: write OUTxK[sS][pP], e.g. conv:20x5 or conv:16x3s1p1"
        ))
    })?;
    let out: usize = out.parse().map_err(|_| {
        Error::InvalidConfig(format!(
            "conv:{text}: {out:?} is not a number of output channels"
        ))
    })?;
    let (kernel, stride, pad) = sizes(rest, "conv", "K", 1)?;
    let input = image_input(c, "conv")?;
    let g = input
        .geometry(1, kernel, stride, pad)
        .map_err(|e| match e {
            Error::InvalidConfig(m) => {
                Error::InvalidConfig(format!("its input is a {input} image: {m}"))
            }
            other => other,
        })?;
    let out = Image::new(g.out_h(), g.out_w(), out)?;
    let linear = Linear::new(c.params, &c.name, g.patch(), out.channels, Init::He, c.rng)?;
    Ok(Box::new(Conv {
        linear,
        relu,
        input,
        kernel,
        stride,
        pad,
        out,
    }))
}

/// The registry entry of `conv`.
pub const CONV: LayerInfo = LayerInfo {
    name: "conv",
    summary: "conv:OUTxK[sS][pP] — OUT channels from K×K patches, stride S (1), zero padding P (0); im2col then the matmul, fused with a following relu",
    shader: None,
    build: |a, c| build_conv(a, c, false),
};

// ---- pooling --------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pool {
    Max,
    Avg,
}

/// Max or average pooling over K×K windows moved by S (no padding).
#[derive(Debug)]
struct Pooling {
    pool: Pool,
    input: Image,
    kernel: usize,
    stride: usize,
    out: Image,
}

impl Layer for Pooling {
    fn forward(&self, tape: &mut Tape, _params: &ParamSet, x: Var) -> Result<Var> {
        let batch = self.input.batch_of(tape, x, "pooling")?;
        let g = self.input.geometry(batch, self.kernel, self.stride, 0)?;
        match self.pool {
            Pool::Max => tape.max_pool(x, &g),
            Pool::Avg => tape.avg_pool(x, &g),
        }
    }
    fn output(&self) -> usize {
        self.out.channels
    }
    fn image(&self) -> Option<Image> {
        Some(self.out)
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
}

fn build_pool(pool: Pool, a: Option<&str>, c: &LayerContext<'_>) -> Result<Box<dyn Layer>> {
    let name = match pool {
        Pool::Max => "maxpool",
        Pool::Avg => "avgpool",
    };
    let text: String = arg(a, name, "a window size K, e.g. 2")?;
    let (kernel, stride, pad) = sizes(&text, name, "K", 0)?;
    let stride = if stride == 0 { kernel } else { stride };
    if pad != 0 {
        return Err(Error::InvalidConfig(format!(
            "{name}:{text}: pooling takes no padding"
        )));
    }
    let input = image_input(c, name)?;
    let g = input.geometry(1, kernel, stride, 0).map_err(|e| match e {
        Error::InvalidConfig(m) => {
            Error::InvalidConfig(format!("its input is a {input} image: {m}"))
        }
        other => other,
    })?;
    Ok(Box::new(Pooling {
        pool,
        input,
        kernel,
        stride,
        out: Image::new(g.out_h(), g.out_w(), input.channels)?,
    }))
}

/// The registry entry of `maxpool`.
pub const MAXPOOL: LayerInfo = LayerInfo {
    name: "maxpool",
    summary:
        "maxpool:K[sS] — the largest value of each K×K window, windows S apart (S = K unless given)",
    shader: None,
    build: |a, c| build_pool(Pool::Max, a, c),
};

/// The registry entry of `avgpool`.
pub const AVGPOOL: LayerInfo = LayerInfo {
    name: "avgpool",
    summary: "avgpool:K[sS] — the mean of each K×K window, windows S apart (S = K unless given)",
    shader: None,
    build: |a, c| build_pool(Pool::Avg, a, c),
};

// ---- flatten ----------------------------------------------------------------------------

/// (B·H·W)×C pixels seen as B×(H·W·C) features: a view, no copy.
#[derive(Debug)]
struct Flatten {
    input: Image,
}

impl Layer for Flatten {
    fn forward(&self, tape: &mut Tape, _params: &ParamSet, x: Var) -> Result<Var> {
        let batch = self.input.batch_of(tape, x, "flatten")?;
        tape.reshape(x, &[batch, self.input.len()])
    }
    fn output(&self) -> usize {
        self.input.len()
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
}

/// The registry entry of `flatten`.
pub const FLATTEN: LayerInfo = LayerInfo {
    name: "flatten",
    summary: "flatten — an H×W×C image as H·W·C features in a row (a view: no copy)",
    shader: None,
    build: |a, c| {
        no_arg(a, "flatten")?;
        let input = image_input(c, "flatten")?;
        Ok(Box::new(Flatten { input }))
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sizes_parse_and_print() {
        assert_eq!(
            Image::parse("28x28").unwrap(),
            Image::new(28, 28, 1).unwrap()
        );
        assert_eq!(Image::parse("32X32x3").unwrap().to_string(), "32x32x3");
        assert!(Image::parse("28").is_err());
        assert!(Image::parse("0x28").is_err());
        assert!(Image::parse("28x28x1x1").is_err());
    }

    #[test]
    fn window_sizes_parse() {
        assert_eq!(sizes("5", "conv", "K", 1).unwrap(), (5, 1, 0));
        assert_eq!(sizes("3s2p1", "conv", "K", 1).unwrap(), (3, 2, 1));
        assert_eq!(sizes("2", "maxpool", "K", 0).unwrap(), (2, 0, 0));
        assert!(sizes("3q", "conv", "K", 1).is_err());
        assert!(sizes("s2", "conv", "K", 1).is_err());
    }
}
