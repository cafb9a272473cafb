//! MTAN: Liu, Johns & Davison, "End-to-End Multi-Task Learning with
//! Attention", CVPR 2019; after LibMTL's `MTAN` (which builds it over a
//! ResNet's four layer groups), here over the stages of any trunk.
//!
//! One shared network, the trunk's layers (`--hidden` or `--trunk`), cut
//! into stages as cross-stitch cuts them (each ends at an activation or
//! pooling layer, or at the end); p^s is stage s's output. Each task k has a
//! soft-attention module per stage that picks, feature by feature (channel
//! by channel and pixel by pixel for an image), what of the shared features
//! it uses:
//!
//!   â_k^s = σ(g_k^s([p^s ; f^s(â_k^{s−1})])) ⊙ p^s,    â_k^0's term left out at s = 0,
//!
//! g_k^s two 1×1 layers (linear, or conv:Cx1 over an image: C·(1 or 2) → C,
//! ReLU, C → C) and σ the logistic function, so the mask is in (0, 1); f^s
//! brings the task's previous features to stage s's shape, and is a copy of
//! stage s's own layers (the paper's f: a 3×3 convolution and the block's
//! pooling), shared by the tasks. Each head reads its task's â_k^S.
//!
//! Differences from LibMTL's, on purpose: the mask reads the stage's output
//! p^s where LibMTL's reads the output of all but the last residual block of
//! the group (a stage here is often one fused layer); no batch normalisation
//! in the masks (the crate has none); f^s a copy of the stage rather than a
//! ResNet basic block. Shared, for the per-task gradient methods: the
//! trunk's stages and the f^s; each task's masks are its own.

use rand::rngs::StdRng;

use super::cross_stitch::stages;
use super::layer::Image;
use super::{LayerSpec, ParamBuilder, ParamId, ParamSet, Stack};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};

/// The shared stages, the carries and each task's attention masks.
pub struct Mtan {
    /// The trunk's stages, shared.
    stages: Vec<Stack>,
    /// carry[s − 1] = f^s: a copy of stage s's layers for the task features, shared.
    carry: Vec<Stack>,
    /// masks[s][k]: task k's g_k^s.
    masks: Vec<Vec<Stack>>,
    /// Each stage's output: its channels (or width) and image, if one.
    outputs: Vec<(usize, Option<Image>)>,
    width: usize,
    /// The stages' and the carries' parameters (the masks are each task's own).
    pub shared_params: Vec<ParamId>,
}

impl Mtan {
    pub fn new(
        p: &mut ParamBuilder,
        specs: &[LayerSpec],
        input: usize,
        image: Option<Image>,
        tasks: usize,
        rng: &mut StdRng,
    ) -> Result<Mtan> {
        if specs.is_empty() {
            return Err(Error::InvalidConfig(
                "the mtan architecture puts attention on the trunk's stages: give --hidden or \
                 --trunk"
                    .into(),
            ));
        }
        let cut = stages(specs);
        // The shared parameters first, side by side in the arena: the
        // stages, then the carries.
        let (mut width, mut shape) = (input, image);
        let (mut shared, mut outputs, mut shared_params) = (Vec::new(), Vec::new(), Vec::new());
        for (s, stage) in cut.iter().enumerate() {
            let stack =
                Stack::build_over(p, &format!("mtan.{s}.shared"), stage, width, shape, rng)?;
            shared_params.extend(stack.params());
            width = stack.output();
            shape = stack.output_image();
            outputs.push((width, shape));
            shared.push(stack);
        }
        let mut carry = Vec::new();
        for (s, stage) in cut.iter().enumerate().skip(1) {
            let (w, im) = outputs[s - 1];
            let channels = im.map_or(w, |im| im.channels);
            let stack = Stack::build_over(p, &format!("mtan.{s}.carry"), stage, channels, im, rng)?;
            shared_params.extend(stack.params());
            carry.push(stack);
        }
        if let Some(im) = shape {
            return Err(Error::InvalidConfig(format!(
                "the mtan trunk ends on a {}x{}x{} image: end the layer list flat (flatten, \
                 then linear) so the heads can read it",
                im.height, im.width, im.channels
            )));
        }
        let mut masks = Vec::new();
        for (s, &(w, im)) in outputs.iter().enumerate() {
            let c = im.map_or(w, |im| im.channels);
            let reads = if s == 0 { c } else { 2 * c };
            let one = match im {
                Some(_) => format!("conv:{c}x1"),
                None => format!("linear:{c}"),
            };
            let specs = [
                LayerSpec::parse(&one)?,
                LayerSpec::new("relu", None),
                LayerSpec::parse(&one)?,
            ];
            let read_image = match im {
                Some(im) => Some(Image::new(im.height, im.width, reads)?),
                None => None,
            };
            let stage_masks = (0..tasks)
                .map(|k| {
                    let name = format!("mtan.{s}.att{k}");
                    Stack::build_over(p, &name, &specs, reads, read_image, rng)
                })
                .collect::<Result<Vec<_>>>()?;
            masks.push(stage_masks);
        }
        Ok(Mtan {
            stages: shared,
            carry,
            masks,
            outputs,
            width,
            shared_params,
        })
    }

    /// Record the shared stages and each task's attention on input x: each
    /// task's representation â_k^S (B×H).
    pub fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Vec<Var>> {
        let tasks = self.masks[0].len();
        let mut h = x;
        let mut att: Vec<Option<Var>> = vec![None; tasks];
        for (s, stage) in self.stages.iter().enumerate() {
            h = stage.forward(tape, params, h)?;
            let (w, im) = self.outputs[s];
            let c = im.map_or(w, |im| im.channels);
            // Features in rows of C: (B·H·W)×C over an image, B×C flat.
            let rows = |tape: &mut Tape, v: Var| -> Result<Var> {
                let n = tape.value(v).numel();
                match tape.value(v).shape() == [n / c, c] {
                    true => Ok(v),
                    false => tape.reshape(v, &[n / c, c]),
                }
            };
            let shared = rows(tape, h)?;
            for (k, task) in att.iter_mut().enumerate() {
                let reads = match *task {
                    None => shared,
                    Some(prev) => {
                        let carried = self.carry[s - 1].forward(tape, params, prev)?;
                        let carried = rows(tape, carried)?;
                        tape.concat_columns(&[shared, carried])?
                    }
                };
                let logits = self.masks[s][k].forward(tape, params, reads)?;
                let logits = rows(tape, logits)?;
                let mask = tape.sigmoid(logits)?;
                *task = Some(tape.mul(mask, shared)?);
            }
        }
        att.into_iter()
            .map(|a| a.ok_or_else(|| Error::internal("mtan", "a network without stages")))
            .collect()
    }

    /// Each task's representation width.
    pub fn width(&self) -> usize {
        self.width
    }
}
