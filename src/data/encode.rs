//! From a CSV table to model inputs and targets, and back: the schema that a
//! trained model carries with it.
//!
//! - Numeric input columns are standardised with statistics of the training
//!   rows; categorical ones (no value is a number) are one-hot encoded over
//!   the categories seen in the training rows (an unseen category encodes as
//!   all zeros). A column asked to be embedded (`--embed COLUMN:DIM`, many
//!   levels) encodes as one feature, its level's index among the training
//!   rows' sorted values (−1 for an unseen or missing one, which the network's
//!   embedding reads as a row of zeros); embedded columns come last in x.
//! - A row with a missing input is dropped ([`Missing::Drop`], counted), or the
//!   value is replaced by the training mean ([`Missing::Mean`]; a missing
//!   category encodes as all zeros).
//! - A missing label masks that row for that task only.
//!
//! The schema is saved with the model (JSON in the checkpoint's metadata), so
//! `eval` and `predict` encode new data exactly as training did.

use serde::{Deserialize, Serialize};

use crate::data::{is_missing, Dataset, Table};
use crate::error::{Error, Result};
use crate::nn::layer::Image;
use crate::task::reg::mean_std;
use crate::task::{Labels, Target, TaskSpec, TaskType};

/// What to do with a row whose input value is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    Drop,
    Mean,
}

/// How one input column becomes features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InputColumn {
    /// One feature: (value - mean) / std.
    Numeric { name: String, mean: f32, std: f32 },
    /// One feature per category: one-hot.
    Categorical {
        name: String,
        categories: Vec<String>,
    },
    /// One feature, the level's index (−1: unseen or missing), looked up in a
    /// learned `dim`-wide embedding by the network.
    Embedded {
        name: String,
        levels: Vec<String>,
        dim: usize,
    },
}

impl InputColumn {
    pub fn name(&self) -> &str {
        match self {
            InputColumn::Numeric { name, .. }
            | InputColumn::Categorical { name, .. }
            | InputColumn::Embedded { name, .. } => name,
        }
    }
    pub fn width(&self) -> usize {
        match self {
            InputColumn::Numeric { .. } | InputColumn::Embedded { .. } => 1,
            InputColumn::Categorical { categories, .. } => categories.len(),
        }
    }
}

/// Input encoding and task specs of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub inputs: Vec<InputColumn>,
    /// Each task with its fitted kind (saved as `{"kind": …, "name": …, …}`).
    pub tasks: Vec<TaskSpec>,
    pub missing: Missing,
    /// The inputs are one image's pixels (`--image`, [`Schema::as_image`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
}

fn data_err(table: &Table, row: Option<usize>, column: &str, reason: impl Into<String>) -> Error {
    Error::Data {
        path: table.path.clone(),
        line: row.map_or(1, |r| table.lines[r]),
        column: column.to_string(),
        reason: reason.into(),
    }
}

/// A column is numeric when its values parse as numbers, categorical when none
/// does; a mix is a data error at the first value that is not a number.
fn is_numeric_column(table: &Table, col: usize) -> Result<bool> {
    let present: Vec<usize> = (0..table.n_rows())
        .filter(|&r| !is_missing(table.cell(r, col)))
        .collect();
    let numeric = |r: &usize| table.cell(*r, col).parse::<f64>().is_ok();
    if present.iter().all(numeric) {
        return Ok(true);
    }
    if !present.iter().any(numeric) {
        return Ok(false);
    }
    let r = present.iter().copied().find(|r| !numeric(r)).unwrap_or(0);
    Err(data_err(
        table,
        Some(r),
        &table.headers[col],
        format!("{:?} is not a number (other values of this column are; a categorical column must have no numbers)", table.cell(r, col)),
    ))
}

/// An input column's encoding, fitted on the training rows: a numeric
/// column's mean and spread, or a text column's categories.
fn fit_input(table: &Table, name: &str, train: &[usize]) -> Result<InputColumn> {
    let col = table.column(name)?;
    if is_numeric_column(table, col)? {
        let (mean, std) = mean_std(&numbers(table, col, train)?);
        return Ok(InputColumn::Numeric {
            name: name.to_string(),
            mean,
            std,
        });
    }
    let mut categories: Vec<String> = train
        .iter()
        .map(|&r| table.cell(r, col).to_string())
        .filter(|s| !is_missing(s))
        .collect();
    categories.sort();
    categories.dedup();
    if categories.is_empty() {
        let reason = "no value of this input in the training rows";
        return Err(data_err(table, None, name, reason));
    }
    Ok(InputColumn::Categorical {
        name: name.to_string(),
        categories,
    })
}

/// An embedded column's levels: the training rows' distinct values, sorted
/// (numbers in their shortest form, so codes like 1 and 1.0 are one level).
fn fit_embedded(table: &Table, name: &str, dim: usize, train: &[usize]) -> Result<InputColumn> {
    let col = table.column(name)?;
    let mut levels = Vec::new();
    for &r in train {
        let cell = table.cell(r, col);
        if !is_missing(cell) {
            levels.push(
                crate::task::label_text(cell).map_err(|e| data_err(table, Some(r), name, e))?,
            );
        }
    }
    levels.sort();
    levels.dedup();
    if levels.is_empty() {
        let reason = "no value of this input in the training rows";
        return Err(data_err(table, None, name, reason));
    }
    Ok(InputColumn::Embedded {
        name: name.to_string(),
        levels,
        dim,
    })
}

/// The numbers of column `col` on `rows` (missing values skipped).
fn numbers(table: &Table, col: usize, rows: &[usize]) -> Result<Vec<f64>> {
    let mut values = Vec::new();
    for &r in rows {
        if let Some(v) = table.number(r, col)? {
            values.push(v as f64);
        }
    }
    Ok(values)
}

/// A task's kind fitted on its column (every labelled row, and the
/// training rows), then every labelled row encoded once, so that a label
/// the kind cannot take is an error naming its line now.
fn fit_task(table: &Table, name: &str, ty: TaskType, train: &[usize]) -> Result<TaskSpec> {
    let col = table.column(name)?;
    let present: Vec<usize> = (0..table.n_rows())
        .filter(|&r| !is_missing(table.cell(r, col)))
        .collect();
    if present.is_empty() {
        return Err(data_err(
            table,
            None,
            name,
            "every value of this task is missing",
        ));
    }
    let labels = Labels {
        column: name,
        present: present.iter().map(|&r| table.cell(r, col)).collect(),
        train: train
            .iter()
            .map(|&r| table.cell(r, col))
            .filter(|c| !is_missing(c))
            .collect(),
    };
    let kind = (ty.0.fit)(&labels).map_err(|reason| {
        // A reason about one value names its line.
        let row = present
            .iter()
            .copied()
            .find(|&r| reason.starts_with(&format!("{:?}", table.cell(r, col))));
        data_err(table, row, name, reason)
    })?;
    for &r in &present {
        kind.encode(table.cell(r, col))
            .map_err(|reason| data_err(table, Some(r), name, reason))?;
    }
    Ok(TaskSpec {
        name: name.to_string(),
        kind,
    })
}

/// Rows of `table` usable under `missing`: all rows, or those whose `inputs` are all present.
pub fn usable_rows(
    table: &Table,
    inputs: &[&str],
    missing: Missing,
) -> Result<(Vec<usize>, usize)> {
    let cols = inputs
        .iter()
        .map(|c| table.column(c))
        .collect::<Result<Vec<_>>>()?;
    let rows: Vec<usize> = (0..table.n_rows())
        .filter(|&r| {
            missing == Missing::Mean || cols.iter().all(|&c| !is_missing(table.cell(r, c)))
        })
        .collect();
    let dropped = table.n_rows() - rows.len();
    if rows.is_empty() {
        return Err(data_err(
            table,
            None,
            "",
            "every row has a missing input value; impute them with the training means (Missing::Mean) to keep the rows",
        ));
    }
    Ok((rows, dropped))
}

impl Schema {
    /// What is wrong with a schema read from a file, if anything: a spread
    /// that is not a positive finite number, a mean that is not finite, a
    /// category or level named twice, an embedding of width 0.
    pub fn untrusted_problem(&self) -> Option<String> {
        let twice = |names: &[String]| {
            names
                .iter()
                .enumerate()
                .find(|(i, n)| names[..*i].contains(n))
                .map(|(_, n)| n.clone())
        };
        for input in &self.inputs {
            match input {
                InputColumn::Numeric { name, mean, std } => {
                    if !(mean.is_finite() && std.is_finite() && std > &0.0) {
                        return Some(format!(
                            "input {name:?} has mean {mean} and spread {std}: a spread is a positive finite number"
                        ));
                    }
                }
                InputColumn::Categorical { name, categories } => {
                    if let Some(c) = twice(categories.as_slice()) {
                        return Some(format!("input {name:?} names category {c:?} twice"));
                    }
                }
                InputColumn::Embedded { name, levels, dim } => {
                    if let Some(l) = twice(levels.as_slice()) {
                        return Some(format!("input {name:?} names level {l:?} twice"));
                    }
                    if *dim == 0 {
                        return Some(format!("input {name:?} is embedded 0 wide"));
                    }
                }
            }
        }
        let names: Vec<String> = self.inputs.iter().map(|i| i.name().to_string()).collect();
        if let Some(n) = twice(&names) {
            return Some(format!("input {n:?} is named twice"));
        }
        let tasks: Vec<String> = self.tasks.iter().map(|t| t.name.clone()).collect();
        if let Some(n) = twice(&tasks) {
            return Some(format!("task {n:?} is named twice"));
        }
        None
    }

    /// The inputs read as one image's pixels, in order: NHWC (row by row,
    /// left to right, a pixel's C channels together). Every input must be a
    /// number and there must be H·W·C of them. Each channel is standardised
    /// with one mean and spread, those of all its pixels over the `train`
    /// rows (as torchvision's `Normalize` with the data set's statistics),
    /// not column by column: a border pixel that is almost always 0 must not
    /// be blown up by its own tiny spread.
    pub fn as_image(mut self, image: Image, table: &Table, train: &[usize]) -> Result<Schema> {
        if self.inputs.len() != image.len() {
            return Err(Error::InvalidConfig(format!(
                "--image {image} is {} pixel values a row, and there are {} input columns{}",
                image.len(),
                self.inputs.len(),
                if self.inputs.len() > image.len() {
                    " (list the pixel columns with --inputs)"
                } else {
                    ""
                }
            )));
        }
        let mut per_channel = vec![Vec::new(); image.channels];
        for (j, input) in self.inputs.iter().enumerate() {
            let InputColumn::Numeric { name, .. } = input else {
                return Err(Error::InvalidConfig(format!(
                    "input {:?} is not a number, and every pixel of an image must be",
                    input.name()
                )));
            };
            per_channel[j % image.channels].extend(numbers(table, table.column(name)?, train)?);
        }
        let stats: Vec<(f32, f32)> = per_channel.iter().map(|v| mean_std(v)).collect();
        for (j, input) in self.inputs.iter_mut().enumerate() {
            if let InputColumn::Numeric { mean, std, .. } = input {
                (*mean, *std) = stats[j % image.channels];
            }
        }
        self.image = Some(image);
        Ok(self)
    }

    /// Numeric input columns of `table` (over `rows`) that do not look like
    /// the data the encoding was fitted on: a mean more than 3 training
    /// standard deviations away, or a spread 4× larger or smaller. A column
    /// renamed in the header only (two inputs swapped, say) trains or
    /// predicts silently on the wrong values; this is how it shows. One line
    /// per column; none with fewer than 10 values.
    /// An image's columns are checked channel by channel, all their pixels together.
    pub fn drift(&self, table: &Table, rows: &[usize]) -> Vec<String> {
        if let Some(image) = self.image {
            return self.image_drift(image, table, rows);
        }
        let mut out = Vec::new();
        for input in &self.inputs {
            let InputColumn::Numeric { name, mean, std } = input else {
                continue;
            };
            let Ok(col) = table.column(name) else {
                continue;
            };
            let values: Vec<f64> = rows
                .iter()
                .filter_map(|&r| table.number(r, col).ok().flatten())
                .map(|v| v as f64)
                .collect();
            if values.len() < 10 || *std <= 0.0 {
                continue;
            }
            let n = values.len() as f64;
            let m = values.iter().sum::<f64>() / n;
            let sd = (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
            let (mean, std) = (*mean as f64, *std as f64);
            // A column constant at the value it was trained on (saved with
            // spread 1, standardised to 0) is the same column.
            if sd == 0.0 && (m - mean).abs() <= 1e-6 * mean.abs().max(1.0) {
                continue;
            }
            if (m - mean).abs() > 3.0 * std || sd > 4.0 * std || sd < std / 4.0 {
                out.push(format!(
                    "column {name:?} has mean {m:.4} and spread {sd:.4} here, \
                     where the model was trained on mean {mean:.4} and spread {std:.4}: \
                     is it the same column (a renamed or swapped header)?"
                ));
            }
        }
        out
    }

    /// [`Schema::drift`] for an image: each channel's pixels pooled.
    fn image_drift(&self, image: Image, table: &Table, rows: &[usize]) -> Vec<String> {
        let mut out = Vec::new();
        for ch in 0..image.channels {
            let mut values = Vec::new();
            let mut trained = (0.0, 1.0);
            for input in self.inputs.iter().skip(ch).step_by(image.channels) {
                let InputColumn::Numeric { name, mean, std } = input else {
                    continue;
                };
                trained = (*mean as f64, *std as f64);
                if let Ok(col) = table.column(name) {
                    values.extend(
                        rows.iter()
                            .filter_map(|&r| table.number(r, col).ok().flatten()),
                    );
                }
            }
            if values.len() < 10 {
                continue;
            }
            let n = values.len() as f64;
            let m = values.iter().map(|&v| v as f64).sum::<f64>() / n;
            let sd = (values.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n).sqrt();
            let (mean, std) = trained;
            if (m - mean).abs() > 3.0 * std || sd > 4.0 * std || sd < std / 4.0 {
                out.push(format!(
                    "the image's channel {ch} has mean {m:.4} and spread {sd:.4} here, \
                     where the model was trained on mean {mean:.4} and spread {std:.4}: \
                     are the pixels scaled as in training (0–255, or 0–1)?"
                ));
            }
        }
        out
    }

    /// Fit the encoding on the `train` rows of `table`.
    pub fn fit(
        table: &Table,
        inputs: &[&str],
        tasks: &[(&str, TaskType)],
        train: &[usize],
        missing: Missing,
    ) -> Result<Schema> {
        Schema::fit_embedding(table, inputs, tasks, train, missing, &[])
    }

    /// [`Schema::fit`] with the input columns `embed` names (column, width)
    /// looked up in learned embeddings instead of one-hot encoded; they come
    /// last in x, in the order given.
    pub fn fit_embedding(
        table: &Table,
        inputs: &[&str],
        tasks: &[(&str, TaskType)],
        train: &[usize],
        missing: Missing,
        embed: &[(&str, usize)],
    ) -> Result<Schema> {
        if inputs.is_empty() || tasks.is_empty() {
            return Err(Error::InvalidConfig(
                "need at least one input column and one task".into(),
            ));
        }
        for (name, dim) in embed {
            if !inputs.contains(name) {
                return Err(Error::InvalidConfig(format!(
                    "embedded column {name:?} is not among the inputs"
                )));
            }
            if *dim == 0 {
                return Err(Error::InvalidConfig(format!(
                    "embedded column {name:?} needs a width of at least 1"
                )));
            }
        }
        let embedded = |n: &str| embed.iter().find(|(e, _)| *e == n).map(|e| e.1);
        let mut columns = inputs
            .iter()
            .filter(|&&n| embedded(n).is_none())
            .map(|&name| fit_input(table, name, train))
            .collect::<Result<Vec<_>>>()?;
        for &(name, dim) in embed {
            columns.push(fit_embedded(table, name, dim, train)?);
        }
        let mut saved = Vec::new();
        for &(name, ty) in tasks {
            if inputs.contains(&name) {
                return Err(Error::InvalidConfig(format!(
                    "column {name:?} is both an input and a task"
                )));
            }
            saved.push(fit_task(table, name, ty, train)?);
        }
        Ok(Schema {
            inputs: columns,
            tasks: saved,
            missing,
            image: None,
        })
    }

    /// A warm start's encoding over this (a trained model's) schema: its
    /// inputs as they are, and for each of `tasks` the model's own fitted
    /// task when it has one of that name and kind (its classes and scale, so
    /// that its head's outputs keep their meaning), else the task fitted on
    /// the `train` rows of `table` (a new task, a fresh head).
    pub fn with_tasks(
        &self,
        table: &Table,
        tasks: &[(&str, TaskType)],
        train: &[usize],
    ) -> Result<Schema> {
        let mut saved = Vec::new();
        for &(name, ty) in tasks {
            if self.input_names().iter().any(|i| i == name) {
                return Err(Error::InvalidConfig(format!(
                    "column {name:?} is both an input of the model and a task"
                )));
            }
            let known = self.tasks.iter().find(|t| t.name == name);
            saved.push(match known {
                Some(t) if TaskType(t.kind.info()) == ty => t.clone(),
                _ => fit_task(table, name, ty, train)?,
            });
        }
        Ok(Schema {
            tasks: saved,
            ..self.clone()
        })
    }

    /// Feature count D.
    pub fn width(&self) -> usize {
        self.inputs.iter().map(|c| c.width()).sum()
    }

    /// The embedded input columns (name, levels, width), in the order of
    /// their index features (the last of x).
    pub fn embeddings(&self) -> Vec<crate::nn::Embedding> {
        self.inputs
            .iter()
            .filter_map(|c| match c {
                InputColumn::Embedded { name, levels, dim } => Some(crate::nn::Embedding {
                    column: name.clone(),
                    levels: levels.len(),
                    dim: *dim,
                }),
                _ => None,
            })
            .collect()
    }

    /// Names of the input columns.
    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|c| c.name().to_string()).collect()
    }

    /// Encode the inputs of `rows` (N×D, standardised / one-hot).
    pub fn encode_inputs(&self, table: &Table, rows: &[usize]) -> Result<Vec<f32>> {
        let d = self.width();
        let mut x = vec![0.0f32; rows.len() * d];
        let mut offset = 0;
        for column in &self.inputs {
            let col = table.column(column.name())?;
            for (i, &r) in rows.iter().enumerate() {
                let cell = table.cell(r, col);
                match column {
                    InputColumn::Numeric { mean, std, name } => {
                        let v = if is_missing(cell) {
                            match self.missing {
                                Missing::Mean => *mean,
                                Missing::Drop => {
                                    return Err(data_err(
                                        table,
                                        Some(r),
                                        name,
                                        "input value is missing",
                                    ))
                                }
                            }
                        } else {
                            table.number(r, col)?.unwrap_or(*mean)
                        };
                        x[i * d + offset] = (v - mean) / std;
                    }
                    InputColumn::Categorical { categories, .. } => {
                        if let Ok(k) = categories.binary_search_by(|c| c.as_str().cmp(cell)) {
                            x[i * d + offset + k] = 1.0;
                        }
                    }
                    InputColumn::Embedded { levels, .. } => {
                        let level = crate::task::label_text(cell)
                            .ok()
                            .filter(|_| !is_missing(cell))
                            .and_then(|l| levels.binary_search(&l).ok());
                        x[i * d + offset] = level.map_or(-1.0, |k| k as f32);
                    }
                }
            }
            offset += column.width();
        }
        Ok(x)
    }

    /// Encode `rows` of `table` with their targets (labels may be missing; a
    /// task column absent from the table masks every row for that task).
    pub fn encode(&self, table: &Table, rows: &[usize]) -> Result<Dataset> {
        self.encode_with(table, rows, true)
    }

    /// [`Schema::encode`] for prediction: the inputs alone, every label masked,
    /// so label columns are never read (they may be absent, or hold classes
    /// or text the model never saw).
    pub fn encode_unlabelled(&self, table: &Table, rows: &[usize]) -> Result<Dataset> {
        self.encode_with(table, rows, false)
    }

    fn encode_with(&self, table: &Table, rows: &[usize], labels: bool) -> Result<Dataset> {
        let x = self.encode_inputs(table, rows)?;
        let n = rows.len();
        let mut targets = Vec::new();
        for task in &self.tasks {
            let col = match labels {
                true => table.headers.iter().position(|h| *h == task.name),
                false => None,
            };
            let mut target = Target::unlabelled(task.kind.storage(), n);
            if let Some(col) = col {
                for (i, &r) in rows.iter().enumerate() {
                    let cell = table.cell(r, col);
                    if is_missing(cell) {
                        continue;
                    }
                    let err = |reason| data_err(table, Some(r), &task.name, reason);
                    let value = task.kind.encode(cell).map_err(err)?;
                    target.set(i, value).map_err(err)?;
                }
            }
            targets.push(target);
        }
        Ok(Dataset {
            embeddings: self.embeddings(),
            image: self.image,
            input_names: self.input_names(),
            x,
            n,
            d: self.width(),
            tasks: self.tasks.clone(),
            targets,
        })
    }
}

impl Dataset {
    /// Build inputs and task targets from `table` (numeric inputs standardised,
    /// non-numeric ones one-hot): a thin
    /// front to [`Schema`], which fits standardisation on the
    /// `train` rows only (classes are the sorted distinct labels). A missing
    /// input is an error naming its line and column.
    pub fn from_table(
        table: &Table,
        inputs: &[&str],
        tasks: &[(&str, TaskType)],
        train: &[usize],
    ) -> Result<Dataset> {
        let schema = Schema::fit(table, inputs, tasks, train, Missing::Drop)?;
        let rows: Vec<usize> = (0..table.n_rows()).collect();
        schema.encode(table, &rows)
    }
}
