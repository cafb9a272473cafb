//! CSV loading, task targets with missing labels, standardisation fitted on the
//! training split only, seeded splits and fixed-shape minibatches.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Error, Result};

/// A CSV file as text: header names and rows, with each row's line number.
#[derive(Clone, Debug)]
pub struct Table {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub lines: Vec<u64>,
}

fn data_err(path: &Path, line: u64, column: &str, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        line,
        column: column.to_string(),
        reason: reason.into(),
    }
}

/// Values read as a missing label or input.
pub fn is_missing(s: &str) -> bool {
    matches!(s.trim(), "" | "NA" | "N/A" | "na" | "null" | "NULL")
}

impl Table {
    /// Read a CSV file with a header row.
    pub fn from_csv(path: impl AsRef<Path>) -> Result<Table> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(file);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| data_err(path, 1, "", format!("cannot read the header: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
            return Err(data_err(
                path,
                1,
                "",
                "the file is empty: expected a header row naming the columns",
            ));
        }
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                data_err(path, line, "", format!("malformed CSV: {e}"))
            })?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            if record.len() == 1 && record[0].trim().is_empty() {
                continue; // blank line
            }
            if record.len() != headers.len() {
                return Err(data_err(
                    path,
                    line,
                    "",
                    format!(
                        "expected {} fields as in the header, found {}",
                        headers.len(),
                        record.len()
                    ),
                ));
            }
            rows.push(record.iter().map(|s| s.trim().to_string()).collect());
            lines.push(line);
        }
        if rows.is_empty() {
            return Err(data_err(
                path,
                1,
                "",
                "the file has a header but no data rows",
            ));
        }
        Ok(Table {
            path: path.to_path_buf(),
            headers,
            rows,
            lines,
        })
    }

    /// Index of a column by name.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| {
            data_err(
                &self.path,
                1,
                name,
                format!(
                    "no such column; the header has: {}",
                    self.headers.join(", ")
                ),
            )
        })
    }

    /// Parse cell (row, col) as a finite number; `Ok(None)` when missing.
    pub fn number(&self, row: usize, col: usize) -> Result<Option<f32>> {
        let s = &self.rows[row][col];
        if is_missing(s) {
            return Ok(None);
        }
        let v: f32 = s.parse().map_err(|_| {
            data_err(
                &self.path,
                self.lines[row],
                &self.headers[col],
                format!("{s:?} is not a number"),
            )
        })?;
        if !v.is_finite() {
            return Err(data_err(
                &self.path,
                self.lines[row],
                &self.headers[col],
                format!("{s:?} is not finite"),
            ));
        }
        Ok(Some(v))
    }
}

/// What a task predicts.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskKind {
    /// One of `classes` (softmax cross-entropy; accuracy).
    Classification { classes: Vec<String> },
    /// A real value (MSE on the standardised value; RMSE, MAE, R² in original units).
    Regression,
}

/// One task: a target column and how to learn it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    pub name: String,
    pub kind: TaskKind,
}

impl TaskSpec {
    /// Width of the task's head: classes, or 1.
    pub fn outputs(&self) -> usize {
        match &self.kind {
            TaskKind::Classification { classes } => classes.len(),
            TaskKind::Regression => 1,
        }
    }
    pub fn is_classification(&self) -> bool {
        matches!(self.kind, TaskKind::Classification { .. })
    }
}

/// The kind of task asked for on the command line or in code, before classes are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskType {
    Class,
    Reg,
}

/// Targets of one task over all rows; `mask[i]` is 0 where the label is missing.
#[derive(Clone, Debug)]
pub enum Target {
    Class {
        labels: Vec<u32>,
        mask: Vec<f32>,
    },
    /// Standardised values (NaN where missing); `mean`/`std` undo the standardisation.
    Value {
        values: Vec<f32>,
        mask: Vec<f32>,
        mean: f32,
        std: f32,
    },
}

impl Target {
    pub fn mask(&self) -> &[f32] {
        match self {
            Target::Class { mask, .. } | Target::Value { mask, .. } => mask,
        }
    }
}

/// Rows of the train, validation and test splits.
#[derive(Clone, Debug)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

impl Split {
    /// Seeded shuffle, then the first `test` fraction is the test set, the next `val` fraction validation.
    pub fn new(n: usize, val: f64, test: f64, seed: u64) -> Result<Split> {
        if !(0.0..1.0).contains(&val) || !(0.0..1.0).contains(&test) || val + test >= 1.0 {
            return Err(Error::InvalidConfig(format!(
                "split fractions val={val} test={test} must be in [0, 1) with sum < 1"
            )));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(seed));
        let n_test = (n as f64 * test).round() as usize;
        let n_val = (n as f64 * val).round() as usize;
        let test_rows = idx[..n_test].to_vec();
        let val_rows = idx[n_test..n_test + n_val].to_vec();
        let train = idx[n_test + n_val..].to_vec();
        if train.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "{n} rows leave no training rows after the split"
            )));
        }
        Ok(Split {
            train,
            val: val_rows,
            test: test_rows,
        })
    }
}

/// Inputs (standardised with training-split statistics) and targets of every task.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub input_names: Vec<String>,
    /// N×D, standardised.
    pub x: Vec<f32>,
    pub n: usize,
    pub d: usize,
    pub tasks: Vec<TaskSpec>,
    pub targets: Vec<Target>,
}

impl Dataset {
    /// Build inputs and task targets from `table` (numeric inputs standardised,
    /// non-numeric ones one-hot): a thin
    /// front to [`crate::encode::Schema`], which fits standardisation on the
    /// `train` rows only (classes are the sorted distinct labels). A missing
    /// input is an error naming its line and column.
    pub fn from_table(
        table: &Table,
        inputs: &[&str],
        tasks: &[(&str, TaskType)],
        train: &[usize],
    ) -> Result<Dataset> {
        let schema =
            crate::encode::Schema::fit(table, inputs, tasks, train, crate::encode::Missing::Drop)?;
        let rows: Vec<usize> = (0..table.rows.len()).collect();
        schema.encode(table, &rows)
    }
}

/// One fixed-shape minibatch on the host: `rows` real rows, padded to B with masked rows.
pub struct HostBatch {
    pub x: Vec<f32>,
    pub labels: Vec<Vec<u32>>,
    pub values: Vec<Vec<f32>>,
    pub masks: Vec<Vec<f32>>,
    pub rows: usize,
}

impl Dataset {
    /// Gather `idx` (at most `b` rows) for the tasks `subset`, padding to `b` rows whose masks are 0.
    pub fn batch(&self, idx: &[usize], b: usize, subset: &[usize]) -> HostBatch {
        let d = self.d;
        let mut x = vec![0.0f32; b * d];
        for (r, &i) in idx.iter().enumerate() {
            x[r * d..(r + 1) * d].copy_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        let (mut labels, mut values, mut masks) = (Vec::new(), Vec::new(), Vec::new());
        for &k in subset {
            let mut mask = vec![0.0f32; b];
            let mut lab = vec![0u32; b];
            let mut val = vec![0.0f32; b];
            for (r, &i) in idx.iter().enumerate() {
                mask[r] = self.targets[k].mask()[i];
                match &self.targets[k] {
                    Target::Class { labels, .. } => lab[r] = labels[i],
                    Target::Value { values, .. } => {
                        val[r] = if mask[r] > 0.0 { values[i] } else { 0.0 }
                    }
                }
            }
            labels.push(lab);
            values.push(val);
            masks.push(mask);
        }
        HostBatch {
            x,
            labels,
            values,
            masks,
            rows: idx.len(),
        }
    }
}
