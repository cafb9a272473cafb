//! Classification: one of C classes. Softmax cross-entropy over C logits
//! (`shaders/softmax_ce.wgsl`); accuracy. The classes are the column's sorted
//! distinct labels (numbers in their shortest form, so `1` and `1.0` are one).

use std::sync::Arc;

use super::metrics::{accuracy, Metric, TaskMetrics};
use super::{
    field, label_text, softmax, Encoded, KindInfo, LossInputs, Storage, Target, TaskKind,
    TaskPrediction,
};
use crate::autodiff::{Tape, Var};
use crate::error::Result;

/// A class task, fitted: its classes in index order.
#[derive(Clone, Debug, PartialEq)]
pub struct Class {
    pub classes: Vec<String>,
}

pub(super) const INFO: KindInfo = KindInfo {
    name: "class",
    aliases: &["classification"],
    summary: "one of several classes: softmax cross-entropy; accuracy",
    shader: None,
    fit: |labels| {
        let mut classes = labels
            .present
            .iter()
            .map(|c| label_text(c))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        classes.sort();
        classes.dedup();
        if classes.len() < 2 {
            return Err(format!(
                "a classification task needs at least two classes; only {:?} occurs",
                classes[0]
            ));
        }
        Ok(Arc::new(Class { classes }))
    },
    load: |m| {
        let classes: Vec<String> = field(m, "classes")?;
        if classes.len() < 2 {
            return Err(format!(
                "a class task has at least two classes, not {classes:?}"
            ));
        }
        if let Some(twice) = classes
            .iter()
            .enumerate()
            .find(|(i, c)| classes[..*i].contains(c))
        {
            return Err(format!("class {:?} is named twice", twice.1));
        }
        Ok(Arc::new(Class { classes }))
    },
};

impl TaskKind for Class {
    fn info(&self) -> &'static KindInfo {
        &INFO
    }
    fn outputs(&self) -> usize {
        self.classes.len()
    }
    fn storage(&self) -> Storage {
        Storage::Labels
    }
    fn encode(&self, cell: &str) -> std::result::Result<Encoded, String> {
        let label = label_text(cell)?;
        // Models saved before labels were normalised hold them as written.
        let found = self
            .classes
            .binary_search(&label)
            .or_else(|_| self.classes.binary_search_by(|c| c.as_str().cmp(cell)));
        found.map(|k| Encoded::Label(k as u32)).map_err(|_| {
            format!(
                "class {cell:?} was not seen in training (classes: {})",
                self.classes.join(", ")
            )
        })
    }
    fn loss(&self, tape: &mut Tape, out: Var, b: LossInputs<'_>) -> Result<Var> {
        tape.softmax_ce(out, b.target, b.mask, b.seeds, b.losses, b.slot)
    }
    fn metrics(&self, outputs: &[f32], target: &Target, rows: &[usize], loss: f64) -> TaskMetrics {
        let acc = accuracy(
            outputs,
            self.outputs(),
            &target.labels_of(rows),
            &target.mask_of(rows),
        );
        TaskMetrics {
            loss,
            metrics: vec![Metric::new("accuracy", "accuracy", acc, true)],
        }
    }
    fn predict(&self, name: &str, out: &[f32], rows: usize) -> TaskPrediction {
        let c = self.classes.len();
        let probabilities: Vec<Vec<f64>> = (0..rows)
            .map(|i| softmax(&out[i * c..(i + 1) * c]))
            .collect();
        let cells = probabilities
            .iter()
            .map(|p| {
                let arg = (0..c).fold(0, |b, j| if p[j] > p[b] { j } else { b });
                self.classes[arg].clone()
            })
            .collect();
        TaskPrediction {
            name: name.to_string(),
            cells,
            values: Vec::new(),
            classes: self.classes.clone(),
            probabilities,
        }
    }
    fn save(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("classes".into(), self.classes.clone().into());
        m
    }
    fn describe(&self) -> String {
        format!("{} classes", self.classes.len())
    }
    fn loss_name(&self) -> &'static str {
        "cross-entropy (nats)"
    }
}
