//! The multi-task network: a shared MLP trunk and one head per task, each head
//! optionally with its own tower of hidden layers.

use std::ops::Range;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Activation, Init, Linear, ParamBuilder, ParamSet};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};

/// Widths of a multi-task network.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    /// Input features D.
    pub inputs: usize,
    /// Hidden widths of the shared trunk (each Linear + activation).
    pub trunk: Vec<usize>,
    /// Hidden widths of each task's own tower (empty: the head reads the trunk directly).
    pub tower: Vec<usize>,
    /// Output width of each head (classes, or 1 for a regression).
    pub outputs: Vec<usize>,
    /// Names of the heads (parameter names are `head.<name>...`).
    pub head_names: Vec<String>,
    /// The hidden layers' activation (trunk and towers); models saved before
    /// it existed used ReLU, the default.
    #[serde(default)]
    pub activation: Activation,
}

/// Shared trunk and one head (tower + output layer) per task.
pub struct MultiTaskNet {
    pub spec: NetSpec,
    pub trunk: Vec<Linear>,
    pub heads: Vec<(Vec<Linear>, Linear)>,
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
        let mut trunk = Vec::new();
        let mut width = spec.inputs;
        for (i, &h) in spec.trunk.iter().enumerate() {
            trunk.push(Linear::new(
                p,
                &format!("trunk.{i}"),
                width,
                h,
                Init::He,
                &mut rng,
            )?);
            width = h;
        }
        let mut heads = Vec::new();
        for (name, &out) in spec.head_names.iter().zip(&spec.outputs) {
            let mut tower = Vec::new();
            let mut w = width;
            for (i, &h) in spec.tower.iter().enumerate() {
                tower.push(Linear::new(
                    p,
                    &format!("head.{name}.tower.{i}"),
                    w,
                    h,
                    Init::He,
                    &mut rng,
                )?);
                w = h;
            }
            let output = Linear::new(
                p,
                &format!("head.{name}.out"),
                w,
                out,
                Init::Xavier,
                &mut rng,
            )?;
            heads.push((tower, output));
        }
        Ok(MultiTaskNet { spec, trunk, heads })
    }

    /// The elements of the parameter arena that hold the shared trunk: the
    /// part whose per-task gradients the MTL methods combine (empty without a
    /// trunk). Read from the layout, wherever the trunk was placed.
    pub fn shared_range(&self, params: &ParamSet) -> Range<usize> {
        let entries = params.values.layout.entries();
        let (lo, hi) = self
            .trunk
            .iter()
            .flat_map(|l| [l.w, l.b])
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

    /// Record the trunk: its output is the shared representation z (B×H).
    pub fn trunk_forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        let mut h = x;
        for layer in &self.trunk {
            h = layer.forward(tape, params, h, self.spec.activation)?;
        }
        Ok(h)
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
        let mut h = z;
        for layer in tower {
            h = layer.forward(tape, params, h, self.spec.activation)?;
        }
        out.forward(tape, params, h, Activation::Identity)
    }

    /// Record the whole network: one output per head.
    pub fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Vec<Var>> {
        let z = self.trunk_forward(tape, params, x)?;
        (0..self.heads.len())
            .map(|k| self.head_forward(tape, params, z, k))
            .collect()
    }
}
