//! A trained model in use: rebuilt from a checkpoint, it evaluates and
//! predicts on new data encoded with the schema it was trained with.

pub mod checkpoint;

use crate::data::Dataset;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::mtl::Equal;
use crate::nn::{load_values, MultiTaskNet, ParamBuilder, ParamSet};
use crate::optim::OptimizerConfig;
use crate::train::metrics::TaskMetrics;
use crate::train::step::Program;
use checkpoint::{Checkpoint, ModelMeta};

/// A model ready for inference.
pub struct Model {
    pub meta: ModelMeta,
    pub net: MultiTaskNet,
    pub params: ParamSet,
}

impl Model {
    /// Rebuild the network from a checkpoint and load its weights.
    pub fn from_checkpoint(gpu: &Gpu, ck: &Checkpoint, source: &std::path::Path) -> Result<Model> {
        let mut builder = ParamBuilder::new(gpu);
        let net = MultiTaskNet::new(&mut builder, ck.meta.net.clone(), 0)?;
        let params = builder.build(gpu)?;
        let own: Vec<_> = ck
            .tensors
            .iter()
            .filter(|(n, _, _)| !n.starts_with("weighting."))
            .cloned()
            .collect();
        load_values(gpu, &params, &own, source)?;
        Ok(Model {
            meta: ck.meta.clone(),
            net,
            params,
        })
    }

    fn program(&self, gpu: &Gpu, data: &Dataset) -> Result<Program> {
        let b = data.n.clamp(1, 256);
        Program::build(
            gpu,
            &self.net,
            &self.params,
            &data.tasks,
            data.d,
            b,
            &mut Equal,
            None,
            OptimizerConfig::default(),
        )
    }

    /// Metrics of every task on all rows of `data` (rows without a label are skipped per task).
    pub fn evaluate(&self, gpu: &Gpu, data: &Dataset) -> Result<Vec<TaskMetrics>> {
        let prog = self.program(gpu, data)?;
        let rows: Vec<usize> = (0..data.n).collect();
        let subset: Vec<usize> = (0..data.tasks.len()).collect();
        crate::train::evaluate(gpu, &prog, data, &rows, &subset, &data.tasks)
    }

    /// Raw outputs per task (rows × outputs: logits, or standardised values), all rows.
    pub fn outputs(&self, gpu: &Gpu, data: &Dataset) -> Result<Vec<Vec<f32>>> {
        let prog = self.program(gpu, data)?;
        let subset: Vec<usize> = (0..data.tasks.len()).collect();
        let rows: Vec<usize> = (0..data.n).collect();
        Ok(crate::train::forward_rows(gpu, &prog, data, &rows, &subset, &data.tasks)?.0)
    }
}
