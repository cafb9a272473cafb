//! `taskgrad finetune`: a trained multi-task model specialised per task.
//! For each task, a copy of the model keeps that task's head alone and
//! trains on that task (`train --init MODEL --task NAME`, with `--freeze`
//! as given), into `--out/<task>/`; the table sets each task's test
//! metrics before (the multi-task model) and after, on the same rows: a
//! warm start splits the file as the model's run did.

use std::path::{Path, PathBuf};

use super::run::{for_seed, load_data, RunOutcome, RunSettings};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{checkpoint, Model};
use crate::train::metrics::TaskMetrics;

/// One run's settings per task to fine-tune: the tasks `s` names (the
/// model's names), or every task of the model; each into `out/<task>`.
pub fn per_task_settings(s: &RunSettings, model: &Path) -> Result<Vec<RunSettings>> {
    if s.resume.is_some() || s.init.is_some() {
        return Err(Error::InvalidConfig(
            "finetune starts from --model; --init and --resume do not apply".into(),
        ));
    }
    let ck = checkpoint::load(model)?;
    let names: Vec<String> = match s.tasks.is_empty() {
        true => ck
            .meta
            .schema
            .tasks
            .iter()
            .map(|t| t.name.clone())
            .collect(),
        false => s.tasks.iter().map(|t| t.trim().to_string()).collect(),
    };
    names
        .iter()
        .map(|name| {
            if !ck.meta.schema.tasks.iter().any(|t| &t.name == name) {
                let theirs: Vec<&str> = ck.meta.schema.tasks.iter().map(|t| t.name()).collect();
                return Err(Error::InvalidConfig(format!(
                    "--task {name}: the model has no task of that name (it has {})",
                    theirs.join(", ")
                )));
            }
            Ok(RunSettings {
                init: Some(model.to_path_buf()),
                tasks: vec![name.clone()],
                out: s.out.join(safe_folder(name)),
                ..s.clone()
            })
        })
        .collect()
}

/// A task's name as a folder name: path separators and dots replaced.
fn safe_folder(name: &str) -> PathBuf {
    let clean: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' => '_',
            c => c,
        })
        .collect();
    match clean.trim_matches('.') {
        "" => PathBuf::from("task"),
        c => PathBuf::from(c),
    }
}

/// The model's own test metrics, each task's by its name, on the rows the
/// fine-tuning runs test on (the model's split of `s.data`, as `--init` makes it).
pub fn parent_metrics(
    gpu: &Gpu,
    s: &RunSettings,
    model: &Path,
) -> Result<Vec<(String, TaskMetrics)>> {
    let ck = checkpoint::load(model)?;
    let parent = (model.to_path_buf(), ck);
    let split = parent.1.meta.split.clone();
    let s = RunSettings {
        resume: Some(model.to_path_buf()),
        tasks: Vec::new(),
        seed: split.as_ref().map_or(s.seed, |r| r.seed),
        val_fraction: split.as_ref().map_or(s.val_fraction, |r| r.val_fraction),
        test_fraction: split.as_ref().map_or(s.test_fraction, |r| r.test_fraction),
        ..s.clone()
    };
    let loaded = load_data(&s, Some(&parent), &mut |_, _| {})?;
    let seeded = for_seed(&loaded, &s, s.seed, Some(&parent))?;
    let net = Model::from_checkpoint(gpu, &parent.1, model)?;
    let metrics = net.evaluate_rows(gpu, &seeded.data, &seeded.split.test)?;
    let names = parent.1.meta.schema.tasks.iter().map(|t| t.name.clone());
    Ok(names.zip(metrics).collect())
}

/// Each fine-tuned task's test metrics beside the model's own (`parent`,
/// all its tasks, by name), one line per metric.
pub fn table(parent: &[(String, TaskMetrics)], runs: &[RunOutcome]) -> String {
    let mut t = format!(
        "{:<18} {:<10} {:>9} {:>9}\n",
        "task", "metric", "MTL", "MTL+FT"
    );
    for run in runs {
        let (Some(task), Some(after)) = (run.report.tasks.first(), run.report.test.first()) else {
            continue;
        };
        let before = parent.iter().find(|(n, _)| *n == task.name).map(|p| &p.1);
        for (i, m) in after.metrics.iter().enumerate() {
            let label = if i == 0 { task.name.as_str() } else { "" };
            let b = before
                .and_then(|b| b.get(m.name))
                .map_or("-".to_string(), |v| format!("{v:.4}"));
            t += &format!("{label:<18} {:<10} {b:>9} {:>9.4}\n", m.name, m.value);
        }
    }
    t
}
