//! Cross-stitch networks: Misra, Shrivastava, Gupta & Hebert, "Cross-stitch
//! Networks for Multi-task Learning", CVPR 2016.
//!
//! Each task has a column of its own, a copy of the trunk's layer list
//! (`--hidden` or `--trunk`), and after each stage the columns' activations
//! are mixed by a learned K×K matrix, the cross-stitch unit:
//!
//!   x̃_k = Σ_j α_kj y_j      (y_j: column j's output of the stage, all B×H)
//!
//! so each task learns how much to share at each depth (α = I: separate
//! networks; α = 1/K everywhere: one shared network). A stage ends at each
//! activation or pooling layer and at the end of the list (the paper puts
//! units after the pooling and fully connected layers). As the paper, α
//! starts at α_kk = 0.9 and α_kj = 0.1 spread over the K − 1 others (the
//! paper's two tasks: 0.9 and 0.1); the paper's larger learning rate for α
//! is not followed (one optimizer for every parameter). Everything here
//! reaches every task through the units, so all of it is shared.
//!
//! A unit is the gated mixture of the experts' kernels with the columns as
//! experts: ones(B×1)·α_k (B×K) mixes [y_0 … y_{K−1}] (B×(K·H)), so its
//! gradient (to α and to each column) is what `Tape::mixture` and
//! `Tape::matmul` already compute.

//!
//! Learning to Branch (Guo, Lee & Ulbricht, ICML 2020; as LibMTL's `LTB`)
//! is the same columns with another joint ([`Joint::Branch`]): before each
//! stage but the first, task k's column reads one parent column j, picked
//! from learned logits by a hard Gumbel-softmax (`nn::branch`):
//!
//!   x̃_k = Σ_j y_kj y_j,   y_k = one_hot(argmax((l_k + g)/τ))   (straight-through)
//!
//! so the columns grow into a tree whose branches the tasks choose. As
//! LibMTL's: logits start at 1, every parent is summed (y = 1) during the
//! warm-up epochs (epoch < epochs/100), then τ = (epochs/20)/√(epoch + 1);
//! the first stage reads the input. At evaluation the argmax of the logits
//! picks, without noise (LibMTL draws noise there too); a model loaded from
//! a file evaluates so even if its training ended inside the warm-up (one
//! epoch). The architecture search of the paper (a tree grown layer by
//! layer, then fine-tuned) is LibMTL's simplification too: one run, every
//! column trained from the start.

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::Rng;

use super::branch::{self, Schedule};
use super::layer::Image;
use super::{LayerSpec, ParamBuilder, ParamId, ParamSet, Stack};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};

/// What joins the columns between stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joint {
    /// Cross-stitch units: a learned linear mix after every stage.
    Stitch,
    /// Learning to Branch: one parent picked before every stage but the first.
    Branch,
}

/// The layers after which a stage ends and a unit mixes the columns.
const STAGE_ENDS: [&str; 5] = ["relu", "gelu", "tanh", "maxpool", "avgpool"];

/// The columns and units of a cross-stitch network.
pub struct CrossStitch {
    /// columns[s][k]: task k's layers of stage s.
    columns: Vec<Vec<Stack>>,
    /// alpha[s][k]: row k of stage s's unit (1×K): its mixing weights, or
    /// (Branch) the logits of the parents stage s + 1's column k reads.
    alpha: Vec<Vec<ParamId>>,
    joint: Joint,
    /// seeds[s][k]: the Gumbel noise's seed of each branch choice.
    seeds: Vec<Vec<u32>>,
    /// [τ, warm] for the branch choices, made on the first forward pass.
    schedule: OnceLock<Tensor>,
    width: usize,
    /// Every parameter (each reaches every task's output).
    pub shared_params: Vec<ParamId>,
}

impl CrossStitch {
    /// Columns of `specs` over `input` (an image's channels when `image`
    /// is given) for `tasks` tasks, stage by stage: each stage's columns,
    /// then its unit.
    pub fn new(
        p: &mut ParamBuilder,
        specs: &[LayerSpec],
        input: usize,
        image: Option<Image>,
        tasks: usize,
        joint: Joint,
        rng: &mut StdRng,
    ) -> Result<CrossStitch> {
        let arch = match joint {
            Joint::Stitch => "cross_stitch",
            Joint::Branch => "ltb",
        };
        if specs.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "the {arch} architecture copies the trunk's layers per task: give \
                 --hidden or --trunk"
            )));
        }
        let stages = stages(specs);
        if joint == Joint::Branch && stages.len() < 2 {
            return Err(Error::InvalidConfig(format!(
                "ltb branches between stages, and {:?} is one stage: give at least two \
                 (e.g. --hidden 32,16, a stage ending at each activation)",
                specs.iter().map(|l| l.to_string()).collect::<Vec<_>>()
            )));
        }
        let prefix = match joint {
            Joint::Stitch => "cross",
            Joint::Branch => "ltb",
        };
        let (mut width, mut shape) = (input, image);
        let (mut columns, mut alpha, mut shared_params) = (Vec::new(), Vec::new(), Vec::new());
        let mut seeds = Vec::new();
        for (s, stage) in stages.iter().enumerate() {
            let mut stage_columns = Vec::new();
            for k in 0..tasks {
                let name = format!("{prefix}.{s}.t{k}");
                let column = Stack::build_over(p, &name, stage, width, shape, rng)?;
                shared_params.extend(column.params());
                stage_columns.push(column);
            }
            width = stage_columns[0].output();
            shape = stage_columns[0].output_image();
            columns.push(stage_columns);
            // Branch: no choice after the last stage (the heads read each column).
            if joint == Joint::Branch && s + 1 == stages.len() {
                continue;
            }
            let mut rows = Vec::new();
            for k in 0..tasks {
                let id = match joint {
                    Joint::Stitch => {
                        let row = initial_row(tasks, k);
                        p.add_drawn(&format!("cross.{s}.alpha{k}"), &[1, tasks], || row)?
                    }
                    Joint::Branch => {
                        p.add_drawn(&format!("ltb.{s}.logits{k}"), &[1, tasks], || {
                            vec![1.0; tasks]
                        })?
                    }
                };
                shared_params.push(id);
                rows.push(id);
            }
            alpha.push(rows);
            if joint == Joint::Branch {
                seeds.push((0..tasks).map(|_| rng.random()).collect());
            }
        }
        if let Some(im) = shape {
            return Err(Error::InvalidConfig(format!(
                "the {arch} columns end on a {}x{}x{} image: end the layer list flat \
                 (flatten, then linear) so the heads can read it",
                im.height, im.width, im.channels
            )));
        }
        Ok(CrossStitch {
            columns,
            alpha,
            joint,
            seeds,
            schedule: OnceLock::new(),
            width,
            shared_params,
        })
    }

    /// Learning to Branch: set τ and the warm-up for `epoch` of `epochs`
    /// (nothing for cross-stitch units, or before the first forward pass).
    pub fn set_epoch(&self, gpu: &Gpu, epoch: usize, epochs: usize) -> Result<()> {
        match self.schedule.get() {
            Some(t) if self.joint == Joint::Branch => {
                t.write(gpu, &Schedule::at(epoch, epochs).values())
            }
            _ => Ok(()),
        }
    }

    /// The [τ, warm] buffer, made (τ 1, no warm-up) on first use.
    fn schedule(&self, gpu: &Gpu) -> Result<Tensor> {
        if let Some(t) = self.schedule.get() {
            return Ok(t.clone());
        }
        let fresh = Schedule {
            tau: 1.0,
            warm: false,
        };
        let t = Tensor::from_slice(gpu, &[2], &fresh.values(), "ltb schedule")?;
        Ok(self.schedule.get_or_init(|| t).clone())
    }

    /// Record the columns and units on input x: each task's representation (B×H).
    pub fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Vec<Var>> {
        let tasks = self.columns[0].len();
        let mut xs = vec![x; tasks];
        for (s, stage) in self.columns.iter().enumerate() {
            if self.joint == Joint::Branch && s > 0 {
                xs = self.join(tape, params, s - 1, &xs)?;
            }
            xs = stage
                .iter()
                .zip(&xs)
                .map(|(column, &x)| column.forward(tape, params, x))
                .collect::<Result<Vec<_>>>()?;
            if self.joint == Joint::Stitch {
                xs = self.join(tape, params, s, &xs)?;
            }
        }
        Ok(xs)
    }

    /// Unit `s` over the columns' outputs `ys`: each task's Σ_j α_kj y_j,
    /// α_k the unit's row (Stitch) or the branch choice from its logits.
    fn join(&self, tape: &mut Tape, params: &ParamSet, s: usize, ys: &[Var]) -> Result<Vec<Var>> {
        if ys.len() == 1 {
            return Ok(ys.to_vec());
        }
        let b = tape.value(ys[0]).shape()[0];
        let ones = Tensor::from_slice(tape.gpu, &[b, 1], &vec![1.0; b], "cross-stitch ones")?;
        let ones = tape.input(&ones);
        let z = tape.concat_columns(ys)?;
        let schedule = match self.joint {
            Joint::Branch => Some(self.schedule(tape.gpu)?),
            Joint::Stitch => None,
        };
        (self.alpha[s].iter().enumerate())
            .map(|(k, &row)| {
                let mut a = params.var(tape, row)?;
                if let Some(schedule) = &schedule {
                    a = branch::op(tape, a, schedule, self.seeds[s][k])?;
                }
                let g = tape.matmul(ones, a, false, false)?;
                tape.mixture(g, z)
            })
            .collect()
    }

    /// The seed of each branch choice's Gumbel noise, `[s][k]` (Learning
    /// to Branch; for the CPU twin of a step).
    pub fn branch_seeds(&self) -> &[Vec<u32>] {
        &self.seeds
    }

    /// Each task's representation width.
    pub fn width(&self) -> usize {
        self.width
    }
}

/// `specs` cut into stages: each ends at an activation or pooling layer, or
/// at the end of the list.
pub(crate) fn stages(specs: &[LayerSpec]) -> Vec<&[LayerSpec]> {
    let mut stages: Vec<&[LayerSpec]> = Vec::new();
    let mut start = 0;
    for (i, spec) in specs.iter().enumerate() {
        if STAGE_ENDS.contains(&spec.name.as_str()) || i + 1 == specs.len() {
            stages.push(&specs[start..=i]);
            start = i + 1;
        }
    }
    stages
}

/// Row k of a unit at the start: 0.9 on the task itself, 0.1 over the others.
pub fn initial_row(tasks: usize, k: usize) -> Vec<f32> {
    if tasks == 1 {
        return vec![1.0];
    }
    (0..tasks)
        .map(|j| {
            if j == k {
                0.9
            } else {
                0.1 / (tasks - 1) as f32
            }
        })
        .collect()
}
