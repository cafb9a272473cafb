//! Layers as units: a trunk or a tower is a list of layers, written as on
//! the command line (`--trunk "linear:64,relu,layernorm,dropout:0.1,linear:64,gelu"`).
//!
//! A layer owns its parameters in the arena (added when it is built, named
//! `<prefix>.<k>` for the k-th layer of its list that has any) and records
//! its forward on the tape, each op's backward beside its forward. A layer
//! with kernels of its own is one unit, one file of this folder
//! ([`layer_norm`], [`dropout`]: the layer, its registry entry, its tape op,
//! its kernels' wrappers and their CPU twins; the WGSL in `shaders/`);
//! `linear` and the activations use the crate's shared kernels (the matmul,
//! `autodiff/ops.rs`). Layers are looked up by name in a registry
//! ([`LAYERS`], and [`register`] for layers defined outside the crate);
//! nothing above matches on a layer's name.
//!
//! | layer | parameters | op |
//! | --- | --- | --- |
//! | `linear:N` | W (in×N, He), b (N, zeros) | x·W + b |
//! | `relu`, `gelu`, `tanh` | — | elementwise |
//! | `layernorm` | γ (ones), β (zeros) | per-row normalisation, learned scale and shift |
//! | `dropout:P` | — | inverted dropout at rate P while training (a seeded hash mask, new each step), the identity at evaluation |
//! | `shift:S`, `flip` | — | while training, each image moved by up to S pixels, or mirrored, drawn each step ([`augment`]); the identity at evaluation |
//! | `res(LAYERS)` | its layers', and a projection when the width changes | the layers' output plus the input ([`residual`]) |
//!
//! Fusions are the builder's, not the layers': `linear:N` followed by `relu`
//! becomes one Linear with ReLU in the matmul's epilogue (forward) and loads
//! (backward), as the shorthand `--hidden 64,64` always built.

pub mod augment;
pub mod dropout;
pub mod image;
pub mod layer_norm;
pub mod residual;

pub use image::Image;

use std::sync::RwLock;

use rand::rngs::StdRng;

use super::{Activation, Init, Linear, ParamBuilder, ParamId, ParamSet};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};

/// One layer of a list as written: `name` or `name:arg`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LayerSpec {
    pub name: String,
    pub arg: Option<String>,
}

impl LayerSpec {
    pub fn new(name: &str, arg: Option<&str>) -> LayerSpec {
        LayerSpec {
            name: name.to_string(),
            arg: arg.map(str::to_string),
        }
    }

    /// `name`, `name:arg`, or `name(arg)` for an argument that is itself a
    /// list (`res(linear:64,relu,linear:64)`); spaces around either part
    /// ignored, the name in any case.
    pub fn parse(text: &str) -> Result<LayerSpec> {
        let text = text.trim();
        let paren = text.find('(');
        let colon = text.find(':');
        let (name, arg) = match (paren, colon) {
            (Some(p), c) if c.is_none_or(|c| p < c) => {
                let inner = text[p + 1..].strip_suffix(')').ok_or_else(|| {
                    Error::InvalidConfig(format!("layer {text:?}: the ( has no ) at the end"))
                })?;
                (text[..p].trim(), Some(inner.trim()))
            }
            _ => match text.split_once(':') {
                Some((n, a)) => (n.trim(), Some(a.trim())),
                None => (text, None),
            },
        };
        if name.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "layer {text:?} has no name: write e.g. linear:64, relu, layernorm, dropout:0.1"
            )));
        }
        Ok(LayerSpec::new(&name.to_ascii_lowercase(), arg))
    }

    /// A comma-separated list: `"linear:64,relu,layernorm"`; a comma inside
    /// parentheses belongs to its layer (`"res(linear:8,relu,linear:8),relu"`).
    pub fn parse_list(text: &str) -> Result<Vec<LayerSpec>> {
        LayerSpec::split_list(text)?
            .iter()
            .map(|s| LayerSpec::parse(s))
            .collect()
    }

    /// The items of a comma-separated list, split at the commas outside
    /// parentheses, blanks dropped.
    pub fn split_list(text: &str) -> Result<Vec<String>> {
        let (mut items, mut depth, mut cur) = (Vec::new(), 0usize, String::new());
        for ch in text.chars() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth = depth.checked_sub(1).ok_or_else(|| {
                        Error::InvalidConfig(format!("layers {text:?}: a ) without its ("))
                    })?
                }
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(ch);
        }
        if depth != 0 {
            return Err(Error::InvalidConfig(format!(
                "layers {text:?}: a ( without its )"
            )));
        }
        items.push(cur);
        Ok(items
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    /// The layers `--hidden 64,64` stands for: each width a Linear, then the activation.
    pub fn from_widths(widths: &[usize], activation: Activation) -> Vec<LayerSpec> {
        let mut out = Vec::new();
        for w in widths {
            out.push(LayerSpec::new("linear", Some(&w.to_string())));
            if activation != Activation::Identity {
                out.push(LayerSpec::new(activation.name(), None));
            }
        }
        out
    }
}

impl std::fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.arg {
            // A list as the argument: in parentheses, so that it reads back.
            Some(a) if a.contains([',', ':', '(']) => write!(f, "{}({a})", self.name),
            Some(a) => write!(f, "{}:{a}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

impl serde::Serialize for LayerSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for LayerSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<LayerSpec, D::Error> {
        let text = String::deserialize(d)?;
        LayerSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A built layer: its parameters are in the arena, its forward goes on the tape.
// ANCHOR: layer_trait
pub trait Layer: std::fmt::Debug + Send + Sync {
    /// Record y = layer(x) (B×input → B×output).
    fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var>;
    /// The width of its output: features per example, or an image's channels.
    fn output(&self) -> usize;
    /// The image its output is, when it is one ((B·H·W) × C on the tape,
    /// `output()` being C); `None` for B rows of features.
    fn image(&self) -> Option<Image> {
        None
    }
    /// Elements per example of the largest buffer it makes (its output; a
    /// convolution's patches): what must fit in the adapter's buffers.
    fn widest(&self) -> usize {
        self.output() * self.image().map_or(1, |i| i.pixels())
    }
    /// Its parameters (none for an activation).
    fn params(&self) -> Vec<ParamId>;
}
// ANCHOR_END: layer_trait

/// What building a layer needs.
pub struct LayerContext<'a> {
    pub params: &'a mut ParamBuilder,
    /// The prefix of the layer's parameter names, e.g. `trunk.2`.
    pub name: String,
    /// The width of the layer's input (an image's channels when it is one).
    pub input: usize,
    /// The image its input is, if it is one (then `input` is its channels).
    /// A layer that keeps the shape (an activation, dropout) passes it on.
    pub image: Option<Image>,
    /// Initial values and seeds are drawn from here (the network's seed).
    pub rng: &'a mut StdRng,
}

/// How a registered layer is built: from its argument (the text after `:`,
/// if any) and the context (parameters, names, input width, seeds).
pub type BuildLayer = fn(Option<&str>, &mut LayerContext<'_>) -> Result<Box<dyn Layer>>;

/// A layer's entry in the registry.
pub struct LayerInfo {
    /// The name in a layer list (`linear`, `layernorm`, …).
    pub name: &'static str,
    /// What it is and what its argument means, in one line (`--help` lists it).
    pub summary: &'static str,
    /// Its kernels' WGSL when the layer brings its own (`layernorm`,
    /// `dropout`), for the naga validation test; `None` when it uses the
    /// crate's kernels (`linear`, the activations).
    pub shader: Option<crate::kernels::Shader>,
    /// Build the layer with its argument (the text after `:`, if any).
    pub build: BuildLayer,
}

/// The layers this crate has.
pub const LAYERS: &[&LayerInfo] = &[
    &LINEAR,
    &act::RELU,
    &act::GELU,
    &act::TANH,
    &layer_norm::INFO,
    &dropout::INFO,
    &image::CONV,
    &image::MAXPOOL,
    &image::AVGPOOL,
    &image::FLATTEN,
    &residual::INFO,
    &augment::SHIFT,
    &augment::FLIP,
];

static REGISTERED: RwLock<Vec<&'static LayerInfo>> = RwLock::new(Vec::new());

/// Make a layer defined outside the crate usable by name in `--trunk`,
/// `--tower`, configs and saved models. A name already taken is an error.
pub fn register(info: &'static LayerInfo) -> Result<()> {
    let mut extra = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    let known: Vec<&LayerInfo> = LAYERS
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect();
    if known.iter().any(|l| std::ptr::eq(*l, info)) {
        return Ok(());
    }
    if known.iter().any(|l| l.name == info.name) {
        return Err(Error::InvalidConfig(format!(
            "layer {:?} is already registered",
            info.name
        )));
    }
    extra.push(info);
    Ok(())
}

/// Every layer known now: the crate's, then those registered.
pub fn layers() -> Vec<&'static LayerInfo> {
    let extra = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    LAYERS
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

fn lookup(name: &str) -> Result<&'static LayerInfo> {
    let all = layers();
    all.iter().copied().find(|l| l.name == name).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|l| l.name).collect();
        Error::InvalidConfig(format!(
            "unknown layer {name:?}: use one of {}",
            names.join(", ")
        ))
    })
}

/// A list of built layers: a trunk, a tower, an expert.
#[derive(Debug)]
pub struct Stack {
    pub layers: Vec<Box<dyn Layer>>,
    /// Its input width (an image's channels when it reads one).
    pub input: usize,
    /// The image it reads, if it reads one.
    pub image: Option<Image>,
}

impl Stack {
    /// Build `specs` over inputs of width `input`, parameters named
    /// `<prefix>.<k>`. `linear` or `conv` then `relu` become one layer with
    /// the ReLU fused into its matmul.
    pub fn build(
        p: &mut ParamBuilder,
        prefix: &str,
        specs: &[LayerSpec],
        input: usize,
        rng: &mut StdRng,
    ) -> Result<Stack> {
        Stack::build_over(p, prefix, specs, input, None, rng)
    }

    /// [`Stack::build`] over images when `image` is given (then `input` is
    /// its channels): each layer is told the shape it reads, so a spec that
    /// does not fit the image fails here, naming the layer and the sizes.
    pub fn build_over(
        p: &mut ParamBuilder,
        prefix: &str,
        specs: &[LayerSpec],
        input: usize,
        image: Option<Image>,
        rng: &mut StdRng,
    ) -> Result<Stack> {
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        let (mut width, mut shape) = (input, image);
        let mut k = 0;
        let mut i = 0;
        while i < specs.len() {
            let spec = &specs[i];
            let fuse_relu = (spec.name == "linear" || spec.name == "conv")
                && specs.get(i + 1).is_some_and(|n| n.name == "relu");
            let mut ctx = LayerContext {
                params: p,
                name: format!("{prefix}.{k}"),
                input: width,
                image: shape,
                rng,
            };
            let layer = if fuse_relu && spec.name == "linear" {
                build_linear(spec.arg.as_deref(), &mut ctx, true)
            } else if fuse_relu {
                image::build_conv(spec.arg.as_deref(), &mut ctx, true)
            } else {
                (lookup(&spec.name)?.build)(spec.arg.as_deref(), &mut ctx)
            }
            .map_err(|e| in_layer(e, spec, prefix))?;
            if fuse_relu {
                i += 1;
            }
            if !layer.params().is_empty() {
                k += 1;
            }
            // A layer given an image keeps it (an activation), makes another
            // (conv, pooling) or ends it (flatten: all of it in a row).
            if let (Some(im), None) = (shape, layer.image()) {
                if layer.output() != im.len() {
                    return Err(in_layer(
                        Error::InvalidConfig(format!(
                            "it does not take images, and its input is a {im} image: put flatten before it"
                        )),
                        spec,
                        prefix,
                    ));
                }
            }
            width = layer.output();
            shape = layer.image();
            layers.push(layer);
            i += 1;
        }
        Ok(Stack {
            layers,
            input,
            image,
        })
    }

    /// The width of its output (its input's, for an empty list).
    pub fn output(&self) -> usize {
        self.layers.last().map_or(self.input, |l| l.output())
    }

    /// The image it outputs, if it does (its input's, for an empty list).
    pub fn output_image(&self) -> Option<Image> {
        match self.layers.last() {
            Some(l) => l.image(),
            None => self.image,
        }
    }

    /// Elements per example of the largest buffer its layers make.
    pub fn widest(&self) -> usize {
        let input = self.input * self.image.map_or(1, |i| i.pixels());
        self.layers
            .iter()
            .map(|l| l.widest())
            .fold(input, usize::max)
    }

    pub fn params(&self) -> Vec<ParamId> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// Record the layers on `x`: B rows of features, or B images as
    /// B × (H·W·C) or (B·H·W) × C (seen as the latter, a view).
    pub fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        let mut h = x;
        if let Some(im) = self.image {
            let n = tape.value(x).numel();
            if tape.value(x).shape() != [n / im.channels, im.channels] {
                h = tape.reshape(x, &[n / im.channels, im.channels])?;
            }
        }
        for layer in &self.layers {
            h = layer.forward(tape, params, h)?;
        }
        Ok(h)
    }
}

fn in_layer(e: Error, spec: &LayerSpec, prefix: &str) -> Error {
    match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(format!("layer {spec} of {prefix}: {m}")),
        other => other,
    }
}

/// A layer's argument (the text after `:`) read as a number of a kind.
pub fn arg<T: std::str::FromStr>(arg: Option<&str>, layer: &str, what: &str) -> Result<T> {
    let text = arg.ok_or_else(|| {
        Error::InvalidConfig(format!("{layer} needs {what}: write {layer}:VALUE"))
    })?;
    text.parse()
        .map_err(|_| Error::InvalidConfig(format!("{layer}:{text}: {text:?} is not {what}")))
}

/// A layer that takes no argument was given none.
pub fn no_arg(arg: Option<&str>, layer: &str) -> Result<()> {
    match arg {
        None => Ok(()),
        Some(a) => Err(Error::InvalidConfig(format!(
            "{layer} takes no argument, got {layer}:{a}"
        ))),
    }
}

// ---- linear -----------------------------------------------------------------

/// y = x·W + b, with ReLU fused into the matmul when the builder says so.
#[derive(Debug)]
struct LinearLayer {
    linear: Linear,
    relu: bool,
}

impl Layer for LinearLayer {
    fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        let act = if self.relu {
            Activation::Relu
        } else {
            Activation::Identity
        };
        self.linear.forward(tape, params, x, act)
    }
    fn output(&self) -> usize {
        self.linear.fan_out
    }
    fn params(&self) -> Vec<ParamId> {
        vec![self.linear.w, self.linear.b]
    }
}

fn build_linear(a: Option<&str>, c: &mut LayerContext<'_>, relu: bool) -> Result<Box<dyn Layer>> {
    let width: usize = arg(a, "linear", "a width (a whole number above 0)")?;
    if let Some(im) = c.image {
        return Err(Error::InvalidConfig(format!(
            "linear reads features in a row, and its input is a {im} image: put flatten before it"
        )));
    }
    let linear = Linear::new(c.params, &c.name, c.input, width, Init::He, c.rng)?;
    Ok(Box::new(LinearLayer { linear, relu }))
}

const LINEAR: LayerInfo = LayerInfo {
    name: "linear",
    summary: "linear:N — N outputs, x·W + b (He initialisation); fused with a following relu",
    shader: None,
    build: |a, c| build_linear(a, c, false),
};

// ---- activations --------------------------------------------------------------

mod act {
    use super::*;

    /// An elementwise activation as a layer of its own.
    #[derive(Debug)]
    pub(super) struct Act {
        pub act: Activation,
        pub width: usize,
        pub image: Option<Image>,
    }

    impl Layer for Act {
        fn forward(&self, tape: &mut Tape, _params: &ParamSet, x: Var) -> Result<Var> {
            self.act.apply(tape, x)
        }
        fn output(&self) -> usize {
            self.width
        }
        fn image(&self) -> Option<Image> {
            self.image
        }
        fn params(&self) -> Vec<ParamId> {
            Vec::new()
        }
    }

    fn build(act: Activation, a: Option<&str>, c: &LayerContext<'_>) -> Result<Box<dyn Layer>> {
        no_arg(a, act.name())?;
        Ok(Box::new(Act {
            act,
            width: c.input,
            image: c.image,
        }))
    }

    pub(super) const RELU: LayerInfo = LayerInfo {
        name: "relu",
        summary: "relu — max(x, 0)",
        shader: None,
        build: |a, c| build(Activation::Relu, a, c),
    };
    pub(super) const GELU: LayerInfo = LayerInfo {
        name: "gelu",
        summary: "gelu — ½x(1 + tanh(√(2/π)(x + 0.044715x³)))",
        shader: None,
        build: |a, c| build(Activation::Gelu, a, c),
    };
    pub(super) const TANH: LayerInfo = LayerInfo {
        name: "tanh",
        summary: "tanh — tanh(x)",
        shader: None,
        build: |a, c| build(Activation::Tanh, a, c),
    };
}
