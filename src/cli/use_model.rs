//! Using a trained model from the command line: `taskgrad eval` (metrics on
//! a CSV: the training file's held-out rows, or every row of another) and
//! `taskgrad predict` (a CSV of predictions, written row by row through a
//! temporary file), beside `train` ([`super::run`]) and `compare`.

use std::path::Path;

use crate::data::encode::usable_rows;
use crate::data::{Split, Table};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::checkpoint;
use crate::model::{Model, Predictions};
/// The rows `eval` scores, and how to say which: the training file's
/// held-out test rows (the model's saved split, rebuilt) when `data` is the
/// training file — its usable rows as many as the model trained on, and its
/// contents' fingerprint the recorded one when the model keeps one
/// (`--record-data-fingerprint`), else its file name the recorded one — or
/// every row of any other file, or of any file with `--all-rows`.
fn rows_to_score(
    meta: &checkpoint::ModelMeta,
    (table, data): (&Table, &Path),
    rows: Vec<usize>,
    all_rows: bool,
) -> Result<(Vec<usize>, String)> {
    if all_rows {
        return Ok((rows, "every row (--all-rows)".into()));
    }
    let Some(rec) = &meta.split else {
        return Ok((
            rows,
            "every row (the model records no split: it was saved before taskgrad kept one)".into(),
        ));
    };
    let name = data.file_name().map(|n| n.to_string_lossy().into_owned());
    let (same, by) = match (&rec.fingerprint, &rec.file) {
        (Some(f), _) => (
            checkpoint::SplitRecord::fingerprint_of(table, &rows, &meta.schema).as_ref() == Some(f),
            "its contents' fingerprint",
        ),
        (None, Some(file)) => (name.as_ref() == Some(file), "its name and row count"),
        (None, None) => (false, ""),
    };
    if !(same && rows.len() == rec.rows) {
        return Ok((
            rows,
            "every row (not the file the model was trained on)".into(),
        ));
    }
    let split = Split::new(rec.rows, rec.val_fraction, rec.test_fraction, rec.seed)?;
    let test: Vec<usize> = split.test.iter().map(|&i| rows[i]).collect();
    Ok((
        test,
        format!(
            "the held-out test rows of the training file, recognised by {by} (seed {}, test fraction {}; --all-rows for every row)",
            rec.seed, rec.test_fraction
        ),
    ))
}

/// The model and the table, with the model's columns checked against the table's header.
fn load(model: &Path, data: &Path) -> Result<(Gpu, Model, Table)> {
    let ck = checkpoint::load(model)?;
    let table = Table::from_csv(data)?;
    ck.meta.check_consistent(model)?;
    ck.meta.check_inputs(&table, model)?;
    let all: Vec<usize> = (0..table.n_rows()).collect();
    for w in ck.meta.schema.drift(&table, &all) {
        eprintln!("warning: {}: {w}", data.display());
    }
    let gpu = Gpu::new()?;
    let m = Model::from_checkpoint(&gpu, &ck, model)?;
    Ok((gpu, m, table))
}

pub fn eval(model: &Path, data: &Path, all_rows: bool) -> Result<()> {
    let (gpu, m, table) = load(model, data)?;
    let schema = &m.meta.schema;
    let inputs = schema.input_names();
    let refs: Vec<&str> = inputs.iter().map(|s| s.as_str()).collect();
    let (rows, dropped) = usable_rows(&table, &refs, schema.missing)?;
    let (rows, which) = rows_to_score(&m.meta, (&table, data), rows, all_rows)?;
    let encoded = schema.encode(&table, &rows)?;
    // Rows with a label, per task: a task with none has nothing to score
    // (its metrics would read 0.0000, which looks like a result).
    let labelled: Vec<usize> = encoded
        .targets
        .iter()
        .map(|t| t.mask.iter().filter(|&&v| v > 0.5).count())
        .collect();
    let unscored: Vec<String> = schema
        .tasks
        .iter()
        .zip(&labelled)
        .filter(|(_, &n)| n == 0)
        .map(|(t, _)| match table.headers.iter().any(|h| h == t.name()) {
            true => format!("{} (every label is missing)", t.name()),
            false => format!("{} (no such column)", t.name()),
        })
        .collect();
    if !unscored.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "{}: nothing to score for {} among the {} rows evaluated ({which}): \
             eval needs each task's labels",
            data.display(),
            unscored.join(", "),
            rows.len()
        )));
    }
    let metrics = m.evaluate(&gpu, &encoded)?;
    println!(
        "{} rows evaluated: {which}{}",
        rows.len(),
        if dropped > 0 {
            format!(" ({dropped} dropped: missing input)")
        } else {
            String::new()
        }
    );
    println!("{:<18} {:>8} {:>10}  metrics", "task", "labelled", "loss");
    for ((t, met), n) in schema.tasks.iter().zip(&metrics).zip(&labelled) {
        let named: Vec<String> = met
            .metrics
            .iter()
            .map(|m| format!("{} {:.4}", m.name, m.value))
            .collect();
        println!(
            "{:<18} {n:>8} {:>10.4}  {}",
            t.name(),
            met.loss,
            named.join(", ")
        );
    }
    Ok(())
}

pub fn predict(
    model: &Path,
    data: &Path,
    output: Option<&Path>,
    probabilities: bool,
) -> Result<()> {
    if let Some(out) = output {
        refuse_to_overwrite_inputs(out, &[data, model])?;
    }
    let (gpu, m, table) = load(model, data)?;
    let preds = m.predict(&gpu, &table)?;
    // Rows are written as they are formed, straight to the file (through a
    // temporary one, renamed at the end) or to standard output.
    match output {
        Some(path) => {
            checkpoint::write_atomically(path, |tmp| {
                let file = std::fs::File::create(tmp).map_err(|e| Error::Io {
                    path: tmp.to_path_buf(),
                    source: e,
                })?;
                let file = std::io::BufWriter::new(file);
                write_predictions(file, tmp, &table, &preds, probabilities)
            })?;
            eprintln!("wrote {} predictions to {}", table.n_rows(), path.display());
        }
        None => {
            let stdout = Path::new("standard output");
            write_predictions(
                std::io::stdout().lock(),
                stdout,
                &table,
                &preds,
                probabilities,
            )?
        }
    }
    if preds.imputed > 0 {
        let imputed = preds.imputed;
        eprintln!("{imputed} rows had a missing input, filled with the training mean (a missing category as none)");
    }
    Ok(())
}

/// `--output` naming the data or the model file would destroy an input.
fn refuse_to_overwrite_inputs(out: &Path, inputs: &[&Path]) -> Result<()> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if inputs.iter().any(|i| same(out, i)) {
        return Err(Error::InvalidConfig(format!(
            "--output {} would overwrite an input of this command; choose another file",
            out.display()
        )));
    }
    Ok(())
}

/// The header and one row per input row, written as each is formed: its CSV
/// line number first; per task the label or value, then with `probabilities`
/// one column per class (empty cells for a row that could not be predicted).
fn write_predictions(
    out: impl std::io::Write,
    where_to: &Path,
    table: &Table,
    preds: &Predictions,
    probabilities: bool,
) -> Result<()> {
    let err = |e: csv::Error| Error::Io {
        path: where_to.to_path_buf(),
        source: e.into(),
    };
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["line".to_string()];
    for t in &preds.tasks {
        header.push(t.name.clone());
        if probabilities {
            header.extend(t.classes.iter().map(|c| format!("p({}={c})", t.name)));
        }
    }
    w.write_record(&header).map_err(err)?;
    // preds.rows is ascending: walk it beside the table's rows.
    let mut next = preds.rows.iter().enumerate().peekable();
    let mut cells: Vec<String> = Vec::with_capacity(header.len());
    for r in 0..table.n_rows() {
        cells.clear();
        cells.push(table.lines[r].to_string());
        match next.peek() {
            Some(&(i, &row)) if row == r => {
                next.next();
                for t in &preds.tasks {
                    cells.push(t.cells[i].clone());
                    if probabilities && !t.probabilities.is_empty() {
                        cells.extend(t.probabilities[i].iter().map(|v| format!("{v:.6}")));
                    }
                }
            }
            _ => cells.resize(header.len(), String::new()),
        }
        w.write_record(&cells).map_err(err)?;
    }
    w.flush().map_err(|e| Error::Io {
        path: where_to.to_path_buf(),
        source: e,
    })
}
