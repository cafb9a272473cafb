//! Predictions in the units of the training data: a class task's label and
//! its probabilities (softmax of the logits), a regression's value with the
//! standardisation undone.

use crate::data::encode::SavedTask;

/// One task's predictions, one entry per predicted row.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskPrediction {
    Class {
        name: String,
        classes: Vec<String>,
        /// The most probable class of each row.
        labels: Vec<String>,
        /// rows × classes, each row summing to 1.
        probabilities: Vec<Vec<f64>>,
    },
    Value {
        name: String,
        values: Vec<f32>,
    },
}

impl TaskPrediction {
    /// From one task's raw outputs (rows × width: logits, or a standardised value).
    pub(crate) fn from_outputs(task: &SavedTask, out: &[f32], rows: usize) -> TaskPrediction {
        match task {
            SavedTask::Class { name, classes } => {
                let c = classes.len();
                let probabilities: Vec<Vec<f64>> = (0..rows)
                    .map(|i| softmax(&out[i * c..(i + 1) * c]))
                    .collect();
                let labels = probabilities
                    .iter()
                    .map(|p| {
                        let arg = (0..c).fold(0, |b, j| if p[j] > p[b] { j } else { b });
                        classes[arg].clone()
                    })
                    .collect();
                TaskPrediction::Class {
                    name: name.clone(),
                    classes: classes.clone(),
                    labels,
                    probabilities,
                }
            }
            SavedTask::Reg { name, mean, std } => TaskPrediction::Value {
                name: name.clone(),
                values: (0..rows).map(|i| out[i] * std + mean).collect(),
            },
        }
    }

    pub fn name(&self) -> &str {
        match self {
            TaskPrediction::Class { name, .. } | TaskPrediction::Value { name, .. } => name,
        }
    }
}

/// softmax(z) in f64, shifted by max z.
fn softmax(z: &[f32]) -> Vec<f64> {
    let zmax = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = z.iter().map(|&v| ((v - zmax) as f64).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// What [`super::Model::predict`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// The table rows predicted, in order (every row: missing inputs are imputed).
    pub rows: Vec<usize>,
    /// How many of them had a missing input filled with its training mean.
    pub imputed: usize,
    /// One entry per task of the model.
    pub tasks: Vec<TaskPrediction>,
}
