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

use rand::rngs::StdRng;

use super::layer::Image;
use super::{LayerSpec, ParamBuilder, ParamId, ParamSet, Stack};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Tensor;

/// The layers after which a stage ends and a unit mixes the columns.
const STAGE_ENDS: [&str; 5] = ["relu", "gelu", "tanh", "maxpool", "avgpool"];

/// The columns and units of a cross-stitch network.
pub struct CrossStitch {
    /// columns[s][k]: task k's layers of stage s.
    columns: Vec<Vec<Stack>>,
    /// alpha[s][k]: row k of stage s's unit (1×K).
    alpha: Vec<Vec<ParamId>>,
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
        rng: &mut StdRng,
    ) -> Result<CrossStitch> {
        if specs.is_empty() {
            return Err(Error::InvalidConfig(
                "the cross_stitch architecture copies the trunk's layers per task: give \
                 --hidden or --trunk"
                    .into(),
            ));
        }
        let mut stages: Vec<&[LayerSpec]> = Vec::new();
        let mut start = 0;
        for (i, spec) in specs.iter().enumerate() {
            if STAGE_ENDS.contains(&spec.name.as_str()) || i + 1 == specs.len() {
                stages.push(&specs[start..=i]);
                start = i + 1;
            }
        }
        let (mut width, mut shape) = (input, image);
        let (mut columns, mut alpha, mut shared_params) = (Vec::new(), Vec::new(), Vec::new());
        for (s, stage) in stages.iter().enumerate() {
            let mut stage_columns = Vec::new();
            for k in 0..tasks {
                let name = format!("cross.{s}.t{k}");
                let column = Stack::build_over(p, &name, stage, width, shape, rng)?;
                shared_params.extend(column.params());
                stage_columns.push(column);
            }
            width = stage_columns[0].output();
            shape = stage_columns[0].output_image();
            columns.push(stage_columns);
            let mut rows = Vec::new();
            for k in 0..tasks {
                let row = initial_row(tasks, k);
                let id = p.add_drawn(&format!("cross.{s}.alpha{k}"), &[1, tasks], || row)?;
                shared_params.push(id);
                rows.push(id);
            }
            alpha.push(rows);
        }
        if let Some(im) = shape {
            return Err(Error::InvalidConfig(format!(
                "the cross_stitch columns end on a {}x{}x{} image: end the layer list flat \
                 (flatten, then linear) so the heads can read it",
                im.height, im.width, im.channels
            )));
        }
        Ok(CrossStitch {
            columns,
            alpha,
            width,
            shared_params,
        })
    }

    /// Record the columns and units on input x: each task's representation (B×H).
    pub fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Vec<Var>> {
        let tasks = self.alpha.first().map_or(0, Vec::len);
        let mut xs = vec![x; tasks];
        for (stage, rows) in self.columns.iter().zip(&self.alpha) {
            let ys = stage
                .iter()
                .zip(&xs)
                .map(|(column, &x)| column.forward(tape, params, x))
                .collect::<Result<Vec<_>>>()?;
            if tasks == 1 {
                xs = ys;
                continue;
            }
            let b = tape.value(ys[0]).shape()[0];
            let ones = Tensor::from_slice(tape.gpu, &[b, 1], &vec![1.0; b], "cross-stitch ones")?;
            let ones = tape.input(&ones);
            let z = tape.concat_columns(&ys)?;
            xs = rows
                .iter()
                .map(|&row| {
                    let a = params.var(tape, row)?;
                    let g = tape.matmul(ones, a, false, false)?;
                    tape.mixture(g, z)
                })
                .collect::<Result<Vec<_>>>()?;
        }
        Ok(xs)
    }

    /// Each task's representation width.
    pub fn width(&self) -> usize {
        self.width
    }
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
