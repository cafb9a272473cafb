//! Task kinds: everything a kind of target needs, in one place.
//!
//! A task is a target column and its [`TaskKind`]: how wide its head is,
//! how a label cell becomes a target on the GPU, which fused loss the step
//! records, which metrics it reports (and which one Δm% compares), how raw
//! outputs become predictions, and what a saved model keeps of it. The step,
//! the trainer, the metrics, checkpoints, `predict`, the command line and
//! the browser page all ask the kind; nothing above this module matches on
//! which kind it is.
//!
//! | kind | `--task NAME:…` | head | loss (WGSL) | metrics (primary first) |
//! | --- | --- | --- | --- | --- |
//! | [`Class`] | `class` | C logits | softmax cross-entropy (`softmax_ce.wgsl`) | accuracy ↑ |
//! | [`Reg`] | `reg` | 1 value | MSE on the standardised value (`mse.wgsl`) | RMSE ↓, MAE, R² |
//! | [`Binary`] | `binary` | 1 logit | binary cross-entropy with logits (`bce.wgsl`) | ROC AUC ↑, log-loss, accuracy |
//!
//! Before the data is seen a task is asked for by a [`TaskType`] (a
//! registry entry, [`KindInfo`]); [`KindInfo::fit`] looks at the column's
//! labels and returns the fitted kind (a class task's classes, a regression's
//! mean and spread, a binary task's two values). A kind with a loss of its
//! own is one unit, one file here ([`binary`]: the [`TaskKind`]
//! implementation, its `INFO`, its kernel's wrapper and CPU twin; the WGSL
//! in `shaders/`), and a line in [`REGISTRY`]. A kind
//! defined outside the crate registers itself with [`register`] and trains
//! like any other (`examples/custom_loss.rs`).

pub mod binary;
mod class;
pub mod metrics;
pub mod reg;

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Tensor;

pub use binary::Binary;
pub use class::Class;
pub use metrics::{Metric, TaskMetrics};
pub use reg::Reg;

/// Everything a kind of target needs. Implementations are fitted (they hold
/// what they learned from the training labels) and immutable.
// ANCHOR: task_kind
pub trait TaskKind: std::fmt::Debug + Send + Sync {
    /// Its registry entry (name, summary, how to fit and load it).
    fn info(&self) -> &'static KindInfo;
    /// Width of the task's head.
    fn outputs(&self) -> usize;
    /// How each row's target is stored on the GPU.
    fn storage(&self) -> Storage;
    /// The target of one present label cell (a missing one never gets here),
    /// or why this kind cannot take it.
    fn encode(&self, cell: &str) -> std::result::Result<Encoded, String>;
    /// Record the task's fused loss of the head's output `out` on the tape.
    fn loss(&self, tape: &mut Tape, out: Var, batch: LossInputs<'_>) -> Result<Var>;
    /// Metrics over `rows` of `target`, from the head's outputs on those
    /// rows (`rows.len() × outputs()`); `loss` is the mean loss the kernel gave.
    fn metrics(&self, outputs: &[f32], target: &Target, rows: &[usize], loss: f64) -> TaskMetrics;
    /// Predictions in the data's own terms from raw outputs (`rows × outputs()`).
    fn predict(&self, name: &str, outputs: &[f32], rows: usize) -> TaskPrediction;
    /// What a saved model keeps (JSON fields beside `kind` and `name`), read
    /// back by [`KindInfo::load`].
    fn save(&self) -> serde_json::Map<String, serde_json::Value>;
    /// One line for a run's summary: "3 classes", "mean 3.76, spread 1.76", …
    fn describe(&self) -> String;
    /// What the loss is, for a plot's axis: "cross-entropy", …
    fn loss_name(&self) -> &'static str;
}
// ANCHOR_END: task_kind

/// How a row's target is stored: one class index, or one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// A u32 class index per row.
    Labels,
    /// An f32 value per row.
    Values,
}

/// One row's encoded target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoded {
    Label(u32),
    Value(f32),
}

/// What a task's loss reads in a step: the batch's targets (B, u32 or f32 as
/// the kind stores them) and row mask (B, 1 = labelled), the K seeds (each
/// task's weight in the total) and the K losses, of which this task is `slot`.
#[derive(Clone, Copy)]
pub struct LossInputs<'a> {
    pub target: &'a Tensor,
    pub mask: &'a Tensor,
    pub seeds: &'a Tensor,
    pub losses: &'a Tensor,
    pub slot: usize,
}

/// A column's labels, for fitting a kind: every present cell (all rows, in
/// row order) and the present cells of the training rows.
pub struct Labels<'a> {
    pub column: &'a str,
    pub present: Vec<&'a str>,
    pub train: Vec<&'a str>,
}

/// A kind's saved fields (the JSON object beside `kind` and `name`).
pub type SavedFields = serde_json::Map<String, serde_json::Value>;

/// A fitted kind, or why it could not be made.
pub type KindResult = std::result::Result<Arc<dyn TaskKind>, String>;

/// A kind's entry in the registry.
pub struct KindInfo {
    /// The name in `--task NAME:KIND`, in a saved model, in \[`by_name`\].
    pub name: &'static str,
    /// Other names it takes.
    pub aliases: &'static [&'static str],
    /// What it is, in one line (the command line's help lists it).
    pub summary: &'static str,
    /// Its loss's WGSL when the kind brings its own (`binary`: `bce.wgsl`),
    /// for the naga validation test; `None` when the loss is one of
    /// [`crate::kernels::SHADERS`] (`class`, `reg`) or defined outside the crate.
    pub shader: Option<crate::kernels::Shader>,
    /// Fit the kind on a column's labels (or say why it cannot).
    pub fit: fn(&Labels<'_>) -> KindResult,
    /// Rebuild it from the fields [`TaskKind::save`] wrote.
    pub load: fn(&SavedFields) -> KindResult,
}

/// The kinds this crate has.
pub const REGISTRY: &[&KindInfo] = &[&class::INFO, &reg::INFO, &binary::INFO];

/// Kinds registered at run time (from outside the crate).
static REGISTERED: RwLock<Vec<&'static KindInfo>> = RwLock::new(Vec::new());

/// Make a kind defined outside the crate known by name: to
/// [`TaskType::by_name`] (so `--task NAME:KIND` and configs take it) and to
/// checkpoints that saved it. A name (or alias) already taken is an error.
pub fn register(info: &'static KindInfo) -> Result<()> {
    let mut extra = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    let known = all_with(&extra);
    if known.iter().any(|k| std::ptr::eq(*k, info)) {
        return Ok(()); // the same entry twice
    }
    let taken = |n: &str| known.iter().any(|k| k.name == n || k.aliases.contains(&n));
    if let Some(n) = std::iter::once(&info.name)
        .chain(info.aliases)
        .find(|n| taken(n))
    {
        return Err(Error::InvalidConfig(format!(
            "task kind {n:?} is already registered"
        )));
    }
    extra.push(info);
    Ok(())
}

fn all_with(extra: &[&'static KindInfo]) -> Vec<&'static KindInfo> {
    REGISTRY
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// Every kind known now: the crate's, then those registered.
pub fn kinds() -> Vec<&'static KindInfo> {
    all_with(&REGISTERED.read().unwrap_or_else(|e| e.into_inner()))
}

/// The kind a task asks for before its labels are seen.
#[derive(Clone, Copy)]
pub struct TaskType(pub &'static KindInfo);

impl TaskType {
    /// One of classes: softmax cross-entropy, accuracy.
    pub const CLASS: TaskType = TaskType(&class::INFO);
    /// A real value: MSE on the standardised value; RMSE, MAE, R².
    pub const REG: TaskType = TaskType(&reg::INFO);
    /// One of two outcomes: binary cross-entropy with logits; ROC AUC, log-loss, accuracy.
    pub const BINARY: TaskType = TaskType(&binary::INFO);

    /// The kind named `name` (or an alias), among the crate's and the registered ones.
    pub fn by_name(name: &str) -> Result<TaskType> {
        let want = name.trim().to_ascii_lowercase();
        let all = kinds();
        all.iter()
            .find(|k| k.name == want || k.aliases.contains(&want.as_str()))
            .map(|k| TaskType(k))
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|k| k.name).collect();
                Error::InvalidConfig(format!(
                    "unknown task kind {name:?}: use one of {}",
                    names.join(", ")
                ))
            })
    }

    pub fn name(&self) -> &'static str {
        self.0.name
    }
}

impl PartialEq for TaskType {
    fn eq(&self, other: &TaskType) -> bool {
        self.0.name == other.0.name
    }
}
impl Eq for TaskType {}

impl std::fmt::Debug for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TaskType({})", self.0.name)
    }
}

/// One task: a target column and its fitted kind. Saved with a model as a
/// JSON object `{"kind": …, "name": …, …the kind's own fields}`.
#[derive(Clone)]
pub struct TaskSpec {
    pub name: String,
    pub kind: Arc<dyn TaskKind>,
}

impl TaskSpec {
    pub fn new(name: impl Into<String>, kind: impl TaskKind + 'static) -> TaskSpec {
        TaskSpec {
            name: name.into(),
            kind: Arc::new(kind),
        }
    }
    /// Width of the task's head.
    pub fn outputs(&self) -> usize {
        self.kind.outputs()
    }
    /// The kind's registry name.
    pub fn kind_name(&self) -> &'static str {
        self.kind.info().name
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The kind's saved fields, with `kind` and `name`.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = self.kind.save();
        m.insert("kind".into(), self.kind_name().into());
        m.insert("name".into(), self.name.clone().into());
        m
    }
    /// A saved task back, its kind looked up by name.
    pub fn from_json(mut m: serde_json::Map<String, serde_json::Value>) -> Result<TaskSpec> {
        let text =
            |m: &mut serde_json::Map<String, serde_json::Value>, key: &str| match m.remove(key) {
                Some(serde_json::Value::String(s)) => Ok(s),
                _ => Err(Error::InvalidConfig(format!(
                    "a saved task has no {key:?} string"
                ))),
            };
        let kind = text(&mut m, "kind")?;
        let name = text(&mut m, "name")?;
        let info = TaskType::by_name(&kind)?.0;
        let kind = (info.load)(&m)
            .map_err(|e| Error::InvalidConfig(format!("saved task {name:?} ({kind}): {e}")))?;
        Ok(TaskSpec { name, kind })
    }
}

impl PartialEq for TaskSpec {
    fn eq(&self, other: &TaskSpec) -> bool {
        self.to_json() == other.to_json()
    }
}

impl std::fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TaskSpec({:?}: {:?})", self.name, self.kind)
    }
}

impl Serialize for TaskSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for TaskSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<TaskSpec, D::Error> {
        let m = serde_json::Map::deserialize(d)?;
        TaskSpec::from_json(m).map_err(serde::de::Error::custom)
    }
}

/// A task's encoded targets over all rows of a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub data: TargetData,
    /// 1 where the row is labelled, 0 where the label is missing.
    pub mask: Vec<f32>,
}

/// Targets as the kind stores them ([`Storage`]).
#[derive(Clone, Debug, PartialEq)]
pub enum TargetData {
    Labels(Vec<u32>),
    /// NaN where missing.
    Values(Vec<f32>),
}

impl Target {
    /// `n` unlabelled rows of a kind's storage.
    pub fn unlabelled(storage: Storage, n: usize) -> Target {
        Target {
            data: match storage {
                Storage::Labels => TargetData::Labels(vec![0; n]),
                Storage::Values => TargetData::Values(vec![f32::NAN; n]),
            },
            mask: vec![0.0; n],
        }
    }
    pub fn mask(&self) -> &[f32] {
        &self.mask
    }
    /// Row `i`'s target set (and labelled).
    pub fn set(&mut self, i: usize, value: Encoded) -> std::result::Result<(), String> {
        match (&mut self.data, value) {
            (TargetData::Labels(l), Encoded::Label(v)) => l[i] = v,
            (TargetData::Values(l), Encoded::Value(v)) => l[i] = v,
            (_, v) => return Err(format!("{v:?} does not match the kind's storage")),
        }
        self.mask[i] = 1.0;
        Ok(())
    }
    /// The class indices of `rows` (0 for value targets).
    pub fn labels_of(&self, rows: &[usize]) -> Vec<u32> {
        match &self.data {
            TargetData::Labels(l) => rows.iter().map(|&i| l[i]).collect(),
            TargetData::Values(_) => vec![0; rows.len()],
        }
    }
    /// The values of `rows` (NaN where missing; class indices as numbers).
    pub fn values_of(&self, rows: &[usize]) -> Vec<f32> {
        match &self.data {
            TargetData::Values(v) => rows.iter().map(|&i| v[i]).collect(),
            TargetData::Labels(l) => rows.iter().map(|&i| l[i] as f32).collect(),
        }
    }
    /// The mask of `rows`.
    pub fn mask_of(&self, rows: &[usize]) -> Vec<f32> {
        rows.iter().map(|&i| self.mask[i]).collect()
    }
}

/// One task's predictions, one entry per predicted row.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskPrediction {
    pub name: String,
    /// What `predict` writes in the task's column for each row: the most
    /// probable class, the value in the data's units, a binary task's
    /// probability of its positive value.
    pub cells: Vec<String>,
    /// The numbers behind `cells`, one per row: the value, the probability
    /// of the positive value (empty for class tasks).
    pub values: Vec<f64>,
    /// A task over classes: the classes, and each row's probabilities over
    /// them (each row sums to 1). Empty for values.
    pub classes: Vec<String>,
    pub probabilities: Vec<Vec<f64>>,
}

/// A number cell as the data's numeric columns read it: f32, finite.
pub fn parse_number(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() {
        return Ok(v);
    }
    // 1e39 parses (as infinity) but is a finite number too large for f32.
    if s.trim().parse::<f64>().is_ok_and(f64::is_finite) {
        Err(format!(
            "{s:?} is too large: taskgrad computes in f32, whose largest value is 3.4e38"
        ))
    } else {
        Err(format!("{s:?} is not finite"))
    }
}

/// A label as a model keeps it: a number in its shortest form (so `1` and
/// `1.0` are one class), other text as written. NaN and infinities are refused.
pub fn label_text(cell: &str) -> std::result::Result<String, String> {
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(format!("{v}")),
        Ok(_) => Err(format!("{cell:?} is not finite")),
        Err(_) => Ok(cell.to_string()),
    }
}

/// softmax(z) in f64, shifted by max z.
pub(crate) fn softmax(z: &[f32]) -> Vec<f64> {
    let zmax = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = z.iter().map(|&v| ((v - zmax) as f64).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// A saved field read back.
pub(crate) fn field<T: serde::de::DeserializeOwned>(
    m: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> std::result::Result<T, String> {
    let v = m.get(key).ok_or_else(|| format!("no {key:?} field"))?;
    serde_json::from_value(v.clone()).map_err(|e| format!("field {key:?}: {e}"))
}
