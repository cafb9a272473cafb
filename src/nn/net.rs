//! The multi-task network: a shared trunk (a list of layers, [`super::layer`])
//! or a mixture of experts, and one head per task: its own tower (a list of
//! layers) and an output Linear as wide as its task's kind asks.

use std::ops::Range;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::cross_stitch::{CrossStitch, Joint};
use super::layer::{Image, LayerSpec, Stack};
use super::moe::{Arch, Moe};
use super::mtan::Mtan;
use super::{Activation, Init, Linear, ParamBuilder, ParamId, ParamSet};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};

/// A categorical input column looked up in a learned table (`--embed COLUMN:DIM`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embedding {
    /// The input column (parameters are named `embed.<column>`).
    pub column: String,
    /// Rows of the table: the levels seen in training.
    pub levels: usize,
    /// Its width.
    pub dim: usize,
}

/// Widths of a multi-task network.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    /// Input features D (with one level index per embedded column, last).
    pub inputs: usize,
    /// The inputs are one image's pixels, NHWC (`--image`): D = H·W·C, and
    /// the trunk's first layer reads the image (models saved before images
    /// have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// The embedded input columns, in the order of their index features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeddings: Vec<Embedding>,
    /// Hidden widths of the shared trunk (each Linear + activation): the
    /// shorthand for `trunk_layers`, used when that is empty.
    pub trunk: Vec<usize>,
    /// Hidden widths of each task's own tower (empty: the head reads the
    /// trunk directly): the shorthand for `tower_layers`.
    pub tower: Vec<usize>,
    /// The trunk as a list of layers (`--trunk`); models saved before layers
    /// were units have none, and their `trunk` widths stand for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunk_layers: Vec<LayerSpec>,
    /// Each tower as a list of layers (`--tower`), likewise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tower_layers: Vec<LayerSpec>,
    /// Each expert of a mixture as a list of layers (`--expert`); empty: one
    /// linear layer of the architecture's `expert_hidden` and `activation`
    /// (models saved before expert lists existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expert_layers: Vec<LayerSpec>,
    /// Output width of each head (classes, or 1 for a regression).
    pub outputs: Vec<usize>,
    /// Names of the heads (parameter names are `head.<name>...`).
    pub head_names: Vec<String>,
    /// The hidden layers' activation (trunk and towers); models saved before
    /// it existed used ReLU, the default.
    #[serde(default)]
    pub activation: Activation,
    /// The shared part: a trunk, or a mixture of experts (then `trunk` is
    /// empty); models saved before it existed are `Shared`.
    #[serde(default)]
    pub arch: Arch,
}

impl NetSpec {
    /// The trunk's layers: `trunk_layers`, or the `trunk` widths each with
    /// the activation (after a flatten over an image: the widths are an MLP
    /// over the pixels).
    pub fn trunk_specs(&self) -> Vec<LayerSpec> {
        if !self.trunk_layers.is_empty() {
            return self.trunk_layers.clone();
        }
        let mlp = LayerSpec::from_widths(&self.trunk, self.activation);
        match self.image {
            Some(_) => [LayerSpec::new("flatten", None)]
                .into_iter()
                .chain(mlp)
                .collect(),
            None => mlp,
        }
    }
    /// Each tower's layers: `tower_layers`, or the `tower` widths each with the activation.
    pub fn tower_specs(&self) -> Vec<LayerSpec> {
        if self.tower_layers.is_empty() {
            LayerSpec::from_widths(&self.tower, self.activation)
        } else {
            self.tower_layers.clone()
        }
    }
}

/// How large a network is: what must fit in the adapter's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetSize {
    /// Elements of the parameter arena (with alignment padding).
    pub params: usize,
    /// Elements per example of the widest activation (B of them in a
    /// batch): a layer's output or a convolution's patches.
    pub widest: usize,
}

/// Shared trunk (or mixture of experts) and one head (tower + output layer) per task.
pub struct MultiTaskNet {
    pub spec: NetSpec,
    /// Each embedded column's table (levels × dim), shared by every task.
    pub tables: Vec<ParamId>,
    pub trunk: Stack,
    /// The mixture of experts, for an `Arch` other than `Shared`, `CrossStitch` and `Ltb`.
    pub moe: Option<Moe>,
    /// The task columns and their units, for `Arch::CrossStitch` and `Arch::Ltb`.
    pub cross: Option<CrossStitch>,
    /// The shared stages and each task's attention masks, for `Arch::Mtan`.
    pub mtan: Option<Mtan>,
    pub heads: Vec<(Stack, Linear)>,
}

impl MultiTaskNet {
    /// Add the network's parameters to `p`, drawn from `seed`.
    pub fn new(p: &mut ParamBuilder, spec: NetSpec, seed: u64) -> Result<Self> {
        if spec.outputs.len() != spec.head_names.len() || spec.outputs.is_empty() {
            return Err(Error::InvalidConfig(
                "a network needs one name per head and at least one head".into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let dense = spec
            .inputs
            .checked_sub(spec.embeddings.len())
            .ok_or_else(|| Error::InvalidConfig("more embedded columns than inputs".into()))?;
        // Shared by every task: made first, next to the trunk in the arena.
        let mut tables = Vec::new();
        for e in &spec.embeddings {
            let n = e.levels * e.dim;
            let name = format!("embed.{}", e.column);
            let draw = || super::linear::normal(&mut rng, n, 1.0);
            tables.push(p.add_drawn(&name, &[e.levels, e.dim], draw)?);
        }
        let mut width = dense + spec.embeddings.iter().map(|e| e.dim).sum::<usize>();
        check_image(&spec)?;
        // Cross-stitch copies the trunk's layers per task: no trunk after it.
        let joint = match &spec.arch {
            Arch::CrossStitch => Some(Joint::Stitch),
            Arch::Ltb => Some(Joint::Branch),
            _ => None,
        };
        let cross = match joint {
            Some(joint) => {
                let input = spec.image.map_or(width, |im| im.channels);
                let specs = spec.trunk_specs();
                let k = spec.outputs.len();
                let cross = CrossStitch::new(p, &specs, input, spec.image, k, joint, &mut rng)?;
                width = cross.width();
                Some(cross)
            }
            None => None,
        };
        let mtan = match &spec.arch {
            Arch::Mtan => {
                let input = spec.image.map_or(width, |im| im.channels);
                let specs = spec.trunk_specs();
                let k = spec.outputs.len();
                let mtan = Mtan::new(p, &specs, input, spec.image, k, &mut rng)?;
                width = mtan.width();
                Some(mtan)
            }
            _ => None,
        };
        let moe = match &spec.arch {
            Arch::Shared | Arch::CrossStitch | Arch::Ltb | Arch::Mtan => None,
            arch => {
                if !spec.trunk_specs().is_empty() {
                    return Err(Error::InvalidConfig(format!(
                        "the {} architecture has experts instead of a trunk: the trunk layers {:?} do not apply",
                        arch.name(),
                        spec.trunk_specs().iter().map(|l| l.to_string()).collect::<Vec<_>>()
                    )));
                }
                let moe = Moe::new(
                    p,
                    arch,
                    &spec.expert_layers,
                    width,
                    spec.outputs.len(),
                    spec.activation,
                    &mut rng,
                )?;
                width = moe.width();
                Some(moe)
            }
        };
        // Over an image the trunk's input width is its channels.
        let trunk = if cross.is_some() || mtan.is_some() {
            Stack::build(p, "trunk", &[], width, &mut rng)?
        } else {
            let trunk_input = spec.image.map_or(width, |im| im.channels);
            Stack::build_over(
                p,
                "trunk",
                &spec.trunk_specs(),
                trunk_input,
                spec.image,
                &mut rng,
            )?
        };
        let heads = build_heads(p, &spec, &trunk, &mut rng)?;
        Ok(MultiTaskNet {
            spec,
            tables,
            trunk,
            moe,
            cross,
            mtan,
            heads,
        })
    }

    /// The size of the network `spec` describes, from its built layout (every
    /// architecture, every layer, as training would build it) without drawing
    /// a weight: see [`NetSize`].
    pub fn size(gpu: &crate::gpu::Gpu, spec: NetSpec) -> Result<NetSize> {
        let mut p = ParamBuilder::layout_only(gpu);
        let inputs = spec.inputs;
        let net = MultiTaskNet::new(&mut p, spec, 0)?;
        let layers = net
            .heads
            .iter()
            .map(|(tower, _)| tower.widest())
            .chain([net.trunk.widest()]);
        let layout = p.layout();
        // A 2-D parameter in×out (a weight, a group of experts, a gate, an
        // embedding table) makes a B×out activation.
        let widest = layout
            .entries()
            .iter()
            .filter_map(|(_, _, shape)| match shape.as_slice() {
                [_, out] => Some(*out),
                _ => None,
            })
            .chain([inputs])
            .chain(layers)
            .max()
            .unwrap_or(inputs);
        Ok(NetSize {
            params: layout.len(),
            widest,
        })
    }

    /// Multiply-adds of one forward pass over `batch` rows, for choosing how
    /// to run a step ([`crate::gpu::CpuThreads::for_step`]): `batch` × the
    /// parameters, exact for linear layers and mixtures of experts, an
    /// overcount for embedding tables (a row reads one entry of each). None
    /// for a network over images, whose convolutions use each weight at every
    /// pixel. Needs no device: the network is laid out, not built.
    pub fn forward_multiply_adds(spec: &NetSpec, batch: usize) -> Result<Option<u64>> {
        if spec.image.is_some() {
            return Ok(None);
        }
        let mut p = ParamBuilder::scratch();
        MultiTaskNet::new(&mut p, spec.clone(), 0)?;
        Ok(Some(batch as u64 * p.layout().len() as u64))
    }

    /// Tell the network which epoch of how many is next (Learning to
    /// Branch's temperature and warm-up; nothing for the others).
    pub fn set_epoch(&self, gpu: &crate::gpu::Gpu, epoch: usize, epochs: usize) -> Result<()> {
        match &self.cross {
            Some(cross) => cross.set_epoch(gpu, epoch, epochs),
            None => Ok(()),
        }
    }

    /// The parameters that reach more than one task's output: the trunk, or
    /// the shared experts and gates of a mixture.
    pub fn shared_params(&self) -> Vec<ParamId> {
        let mut shared = self.tables.clone();
        match (&self.moe, &self.cross, &self.mtan) {
            (Some(moe), _, _) => shared.extend(&moe.shared_params),
            (None, Some(cross), _) => shared.extend(&cross.shared_params),
            (None, None, Some(mtan)) => shared.extend(&mtan.shared_params),
            (None, None, None) => shared.extend(self.trunk.params()),
        }
        shared
    }

    /// x with its embedded columns looked up (x itself without any).
    fn input_stage(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        if self.tables.is_empty() {
            return Ok(x);
        }
        let dense = self.spec.inputs - self.tables.len();
        let tables = self
            .tables
            .iter()
            .enumerate()
            .map(|(j, &id)| Ok((params.var_f32(tape, id)?, dense + j)))
            .collect::<Result<Vec<_>>>()?;
        tape.embed_inputs(x, dense, &tables)
    }

    /// The elements of the parameter arena that hold the shared parameters:
    /// the part whose per-task gradients the MTL methods combine (empty
    /// without a trunk). Read from the layout, wherever they were placed;
    /// created first, they are one segment, and [`Self::shared_segment`]
    /// checks that they are.
    pub fn shared_range(&self, params: &ParamSet) -> Range<usize> {
        let entries = params.values.layout.entries();
        let (lo, hi) = self
            .shared_params()
            .into_iter()
            .map(|id| {
                let (_, start, shape) = &entries[id.0];
                (*start, start + shape.iter().product::<usize>())
            })
            .fold((usize::MAX, 0), |(lo, hi), (s, e)| (lo.min(s), hi.max(e)));
        if lo < hi {
            lo..hi
        } else {
            0..0
        }
    }

    /// [`Self::shared_range`], checked to hold the shared parameters and no
    /// other: per-task gradients in parameter space are rows over that
    /// range, and a task's own parameter inside it would be mixed with the
    /// others' gradients.
    pub fn shared_segment(&self, params: &ParamSet) -> Result<Range<usize>> {
        let range = self.shared_range(params);
        let shared: std::collections::HashSet<usize> =
            self.shared_params().iter().map(|id| id.0).collect();
        let entries = params.values.layout.entries();
        let intruder = entries.iter().enumerate().find(|(i, (_, start, shape))| {
            let n: usize = shape.iter().product();
            !shared.contains(i) && n > 0 && *start < range.end && start + n > range.start
        });
        match intruder {
            None => Ok(range),
            Some((_, (name, _, _))) => Err(Error::Internal {
                operation: "laying out the shared parameters".into(),
                reason: format!(
                    "{name}, not shared, lies inside the shared segment {}..{}",
                    range.start, range.end
                ),
            }),
        }
    }

    /// Record the trunk: its output is the shared representation z (B×H).
    pub fn trunk_forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        self.trunk.forward(tape, params, x)
    }

    /// Record head `k` on the shared representation `z`: logits or predictions.
    pub fn head_forward(
        &self,
        tape: &mut Tape,
        params: &ParamSet,
        z: Var,
        k: usize,
    ) -> Result<Var> {
        let (tower, out) = &self.heads[k];
        let h = tower.forward(tape, params, z)?;
        out.forward(tape, params, h, Activation::Identity)
    }

    /// Record the shared part: each task's representation (B×H). A trunk
    /// and OMoE give every task the same one; MMoE, CGC and PLE one each.
    pub fn shared_forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Vec<Var>> {
        Ok(self.shared_forward_with_gates(tape, params, x)?.0)
    }

    /// [`MultiTaskNet::shared_forward`], and each task's last gate (B×E) for a
    /// mixture of experts (none for a trunk).
    pub fn shared_forward_with_gates(
        &self,
        tape: &mut Tape,
        params: &ParamSet,
        x: Var,
    ) -> Result<(Vec<Var>, Vec<Var>)> {
        let x = self.input_stage(tape, params, x)?;
        if let Some(cross) = &self.cross {
            return Ok((cross.forward(tape, params, x)?, Vec::new()));
        }
        if let Some(mtan) = &self.mtan {
            return Ok((mtan.forward(tape, params, x)?, Vec::new()));
        }
        match &self.moe {
            Some(moe) => moe.forward(tape, params, x, self.heads.len()),
            None => Ok((
                vec![self.trunk_forward(tape, params, x)?; self.heads.len()],
                Vec::new(),
            )),
        }
    }

    /// Record the whole network: one output per head.
    pub fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Vec<Var>> {
        let zs = self.shared_forward(tape, params, x)?;
        zs.into_iter()
            .enumerate()
            .map(|(k, z)| self.head_forward(tape, params, z, k))
            .collect()
    }
}

/// An image input fits the inputs (H·W·C pixel columns, no embeddings)
/// and a shared trunk.
fn check_image(spec: &NetSpec) -> Result<()> {
    let Some(im) = spec.image else {
        return Ok(());
    };
    if im.len() != spec.inputs || !spec.embeddings.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "a {im} image is {} input columns of pixels, and the network has {} inputs{}",
            im.len(),
            spec.inputs,
            if spec.embeddings.is_empty() {
                ""
            } else {
                " with embedded columns"
            }
        )));
    }
    if !matches!(spec.arch, Arch::Shared | Arch::Mtan) {
        return Err(Error::InvalidConfig(format!(
            "the {} experts read features in a row: image inputs (--image) work with a shared \
             trunk or mtan",
            spec.arch.name()
        )));
    }
    Ok(())
}

/// One head per task over the trunk's output: its tower, which must end in
/// a row of features, then its output layer.
fn build_heads(
    p: &mut ParamBuilder,
    spec: &NetSpec,
    trunk: &Stack,
    rng: &mut StdRng,
) -> Result<Vec<(Stack, Linear)>> {
    let tower_specs = spec.tower_specs();
    let mut heads = Vec::new();
    for (name, &out) in spec.head_names.iter().zip(&spec.outputs) {
        let prefix = format!("head.{name}.tower");
        let image = trunk.output_image();
        let tower = Stack::build_over(p, &prefix, &tower_specs, trunk.output(), image, rng)?;
        if let Some(im) = tower.output_image() {
            let (part, list) = if tower_specs.is_empty() {
                ("trunk", "--trunk")
            } else {
                ("tower", "--tower")
            };
            return Err(Error::InvalidConfig(format!(
                "the {part} ends on a {im} image, and task {name}'s output layer reads features in a row: end {list} with flatten (and a linear layer if you like)"
            )));
        }
        let output = Linear::new(
            p,
            &format!("head.{name}.out"),
            tower.output(),
            out,
            Init::Xavier,
            rng,
        )?;
        heads.push((tower, output));
    }
    Ok(heads)
}
