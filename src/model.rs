//! A trained model in use: rebuilt from a checkpoint, it evaluates and
//! predicts on new data encoded with the schema it was trained with.

use crate::checkpoint::{Checkpoint, ModelMeta};
use crate::data::Dataset;
use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::kernels::optim::AdamConfig;
use crate::metrics::TaskMetrics;
use crate::mtl::Equal;
use crate::nn::{MultiTaskNet, ParamBuilder, ParamSet};
use crate::step::Program;

/// Parameters named in `values` overwrite those of `params` (same names and
/// shapes required); names under `weighting.` are skipped unless `params` has them.
pub fn load_values(
    gpu: &Gpu,
    params: &ParamSet,
    values: &[(String, Vec<usize>, Vec<f32>)],
    source: &std::path::Path,
) -> Result<()> {
    let bad = |reason: String| Error::Checkpoint {
        path: source.to_path_buf(),
        reason,
    };
    let mut seen = vec![false; params.len()];
    for (name, shape, v) in values {
        match params.id(name) {
            Some(id) => {
                if params.shape(id) != shape.as_slice() {
                    return Err(bad(format!(
                        "tensor {name} has shape {shape:?}, the model needs {:?}",
                        params.shape(id)
                    )));
                }
                params.value(id).write(gpu, v)?;
                seen[id.0] = true;
            }
            None if name.starts_with("weighting.") => {}
            None => return Err(bad(format!("tensor {name} does not belong to this model"))),
        }
    }
    if let Some(i) =
        (0..params.len()).find(|&i| !seen[i] && !params.names[i].starts_with("weighting."))
    {
        return Err(bad(format!(
            "tensor {} is missing from the checkpoint",
            params.names[i]
        )));
    }
    Ok(())
}

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
            AdamConfig::default(),
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
