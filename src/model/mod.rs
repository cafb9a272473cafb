//! A trained model in use: checkpoints ([`checkpoint`]), and a [`Model`]
//! rebuilt from one that evaluates and predicts on new data, encoded with the
//! schema it was trained with, through the forward-only program.
//!
//! ```no_run
//! use taskgrad::model::{checkpoint, Model};
//!
//! fn main() -> taskgrad::Result<()> {
//!     let path = std::path::Path::new("runs/penguins/model.safetensors");
//!     let gpu = taskgrad::Gpu::new()?;
//!     let model = Model::from_checkpoint(&gpu, &checkpoint::load(path)?, path)?;
//!     let table = taskgrad::data::Table::from_csv("data/penguins.csv")?;
//!     for task in model.predict(&gpu, &table)?.tasks {
//!         // The class, the value or the probability, as `predict` writes it.
//!         println!("{}: {:?}", task.name, &task.cells[..3]);
//!     }
//!     Ok(())
//! }
//! ```

pub mod checkpoint;

mod predict;

use std::path::Path;

use crate::data::encode::{usable_rows, Missing, Schema};
use crate::data::{Dataset, Table};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{load_values, MultiTaskNet, ParamBuilder, ParamSet, METHOD_PARAM_PREFIX};
use crate::train::metrics::TaskMetrics;
use crate::train::step::StepOptions;
use crate::train::ForwardProgram;
use checkpoint::{Checkpoint, ModelMeta};
pub use predict::{Predictions, TaskPrediction};

/// A model ready for inference.
pub struct Model {
    pub meta: ModelMeta,
    pub net: MultiTaskNet,
    pub params: ParamSet,
}

impl Model {
    /// Rebuild the network from a checkpoint and load its weights (values
    /// only: a model in use has no gradients or optimizer state).
    pub fn from_checkpoint(gpu: &Gpu, ck: &Checkpoint, source: &Path) -> Result<Model> {
        ck.meta.check_consistent(source)?;
        let mut builder = ParamBuilder::new(gpu);
        let net = MultiTaskNet::new(&mut builder, ck.meta.net.clone(), 0)?;
        let params = builder.build_frozen(gpu)?;
        let own: Vec<_> = ck
            .tensors
            .iter()
            .filter(|(n, _, _)| !n.starts_with(METHOD_PARAM_PREFIX))
            .cloned()
            .collect();
        load_values(gpu, &params, &own, source)?;
        Ok(Model {
            meta: ck.meta.clone(),
            net,
            params,
        })
    }

    /// The forward-only program over batches of up to 256 rows of `data`.
    fn program(&self, gpu: &Gpu, data: &Dataset) -> Result<ForwardProgram> {
        let b = data.n.clamp(1, 256);
        let opts = StepOptions::default();
        ForwardProgram::build(gpu, &self.net, &self.params, &data.tasks, data.d, b, opts)
    }

    /// Metrics of every task on all rows of `data` (rows without a label are skipped per task).
    pub fn evaluate(&self, gpu: &Gpu, data: &Dataset) -> Result<Vec<TaskMetrics>> {
        let rows: Vec<usize> = (0..data.n).collect();
        let subset: Vec<usize> = (0..data.tasks.len()).collect();
        self.program(gpu, data)?.evaluate(gpu, data, &rows, &subset)
    }

    /// Metrics of every task on the rows `rows` of `data`.
    pub fn evaluate_rows(
        &self,
        gpu: &Gpu,
        data: &Dataset,
        rows: &[usize],
    ) -> Result<Vec<TaskMetrics>> {
        let subset: Vec<usize> = (0..data.tasks.len()).collect();
        self.program(gpu, data)?.evaluate(gpu, data, rows, &subset)
    }

    /// Raw outputs per task (rows × outputs: logits, or standardised values), all rows.
    pub fn outputs(&self, gpu: &Gpu, data: &Dataset) -> Result<Vec<Vec<f32>>> {
        let subset: Vec<usize> = (0..data.tasks.len()).collect();
        let rows: Vec<usize> = (0..data.n).collect();
        Ok(self.program(gpu, data)?.run(gpu, data, &rows, &subset)?.0)
    }

    /// Predictions for every row of `table`, in the units of the training data:
    /// each class task's label and probabilities, each regression's value with
    /// the standardisation undone. A missing input is filled with its training
    /// mean (a missing category encodes as none), so every row gets one.
    pub fn predict(&self, gpu: &Gpu, table: &Table) -> Result<Predictions> {
        let schema = Schema {
            missing: Missing::Mean,
            ..self.meta.schema.clone()
        };
        let inputs = schema.input_names();
        let refs: Vec<&str> = inputs.iter().map(|s| s.as_str()).collect();
        let (rows, _) = usable_rows(table, &refs, Missing::Mean)?;
        // Counted for the report only: a table with no complete row still predicts.
        let imputed = usable_rows(table, &refs, Missing::Drop).map_or(table.n_rows(), |(_, n)| n);
        let encoded = schema.encode_unlabelled(table, &rows)?;
        let outputs = self.outputs(gpu, &encoded)?;
        let tasks = schema
            .tasks
            .iter()
            .zip(&outputs)
            .map(|(t, out)| t.kind.predict(&t.name, out, rows.len()))
            .collect();
        Ok(Predictions {
            rows,
            imputed,
            tasks,
        })
    }
}

impl ModelMeta {
    /// Refuse a table that lacks one of the model's input columns, naming it.
    pub fn check_inputs(&self, table: &Table, source: &Path) -> Result<()> {
        for name in self.schema.input_names() {
            if !table.headers.contains(&name) {
                return Err(Error::Checkpoint {
                    path: source.to_path_buf(),
                    reason: format!(
                        "the model needs input column {name:?}, which {} lacks (it has: {})",
                        table.path.display(),
                        table.headers.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// The network the metadata describes must fit the encoding it records:
    /// as many input features as the schema makes, one head per task, each
    /// as wide as its task's classes (1 for a regression). An edited or
    /// foreign file fails here with a message, not later with a panic.
    pub fn check_consistent(&self, source: &Path) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::Checkpoint {
                path: source.to_path_buf(),
                reason,
            })
        };
        if self.net.inputs != self.schema.width() {
            return bad(format!(
                "the network takes {} input features, but the saved encoding of its inputs makes {}",
                self.net.inputs,
                self.schema.width()
            ));
        }
        if self.net.outputs.len() != self.schema.tasks.len() {
            return bad(format!(
                "the network has {} heads for {} tasks",
                self.net.outputs.len(),
                self.schema.tasks.len()
            ));
        }
        for (t, &width) in self.schema.tasks.iter().zip(&self.net.outputs) {
            let want = t.outputs();
            if width != want {
                return bad(format!(
                    "task {:?} has {want} outputs in the saved schema but its head has {width}",
                    t.name()
                ));
            }
        }
        Ok(())
    }
}
