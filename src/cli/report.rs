//! What a training run leaves in its folder besides the model: a per-epoch
//! metrics log (CSV) and, per task, loss and metric curves (SVG and PNG).

use std::path::Path;

use plotters::prelude::*;

use crate::data::TaskSpec;
use crate::error::{Error, Result};
use crate::model::checkpoint::write_atomically;
use crate::train::metrics::TaskMetrics;
use crate::train::EpochLog;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Text needs a font; the one shipped in assets/ makes PNGs independent of
/// the system's fonts.
pub(crate) fn register_font() {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// The name of each task's metric column and its value.
fn metric(m: &TaskMetrics) -> (&'static str, f64) {
    match m {
        TaskMetrics::Classification { accuracy, .. } => ("accuracy", *accuracy),
        TaskMetrics::Regression { rmse, .. } => ("rmse", *rmse),
    }
}

/// Write metrics.csv: epoch, lr, then per task train_loss, val_loss, val metric
/// (accuracy or RMSE in original units) and, with per-task gradients, grad_norm.
pub fn write_metrics_csv(path: &Path, tasks: &[TaskSpec], history: &[EpochLog]) -> Result<()> {
    write_atomically(path, |tmp| write_metrics_to(tmp, tasks, history))
}

fn write_metrics_to(path: &Path, tasks: &[TaskSpec], history: &[EpochLog]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let mut header = vec!["epoch".to_string(), "lr".to_string()];
    let metric_names: Vec<&str> = tasks
        .iter()
        .map(|t| {
            if t.is_classification() {
                "accuracy"
            } else {
                "rmse"
            }
        })
        .collect();
    for (t, m) in tasks.iter().zip(&metric_names) {
        header.push(format!("{}_train_loss", t.name));
        header.push(format!("{}_val_loss", t.name));
        header.push(format!("{}_val_{m}", t.name));
        header.push(format!("{}_grad_norm", t.name));
        header.push(format!("{}_weight", t.name));
    }
    // Pairwise cosines of the per-task gradients, when they were taken.
    let k = tasks.len();
    let with_cos = history.iter().any(|l| !l.cosines.is_empty());
    let pairs: Vec<(usize, usize)> = match with_cos {
        true => (0..k)
            .flat_map(|a| (a + 1..k).map(move |b| (a, b)))
            .collect(),
        false => Vec::new(),
    };
    for &(a, b) in &pairs {
        header.push(format!("cos_{}_{}", tasks[a].name, tasks[b].name));
    }
    let csv_err = |e: csv::Error| Error::Io {
        path: path.to_path_buf(),
        source: e.into(),
    };
    w.write_record(&header).map_err(csv_err)?;
    for log in history {
        let mut row = vec![log.epoch.to_string(), format!("{}", log.lr)];
        for k in 0..tasks.len() {
            row.push(format!("{}", log.train_loss[k]));
            match log.val.get(k) {
                Some(m) => {
                    row.push(format!("{}", m.loss()));
                    row.push(format!("{}", metric(m).1));
                }
                None => row.extend([String::new(), String::new()]),
            }
            row.push(
                log.grad_norms
                    .get(k)
                    .map(|g| format!("{g}"))
                    .unwrap_or_default(),
            );
            row.push(
                log.weights
                    .get(k)
                    .map(|v| format!("{v}"))
                    .unwrap_or_default(),
            );
        }
        for &(a, b) in &pairs {
            row.push(
                log.cosines
                    .get(a * k + b)
                    .map(|c| format!("{c}"))
                    .unwrap_or_default(),
            );
        }
        w.write_record(&row).map_err(csv_err)?;
    }
    w.flush().map_err(io(path))
}

/// One task's chart: loss curves on the left, the metric on the right.
/// (Longer than most functions here: plotters' builder calls for two panes
/// read best in one place, top to bottom.)
fn plot_task<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    task: &TaskSpec,
    k: usize,
    history: &[EpochLog],
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let epochs = history.len().max(2) as f64;
    let train: Vec<(f64, f64)> = history
        .iter()
        .map(|h| (h.epoch as f64, h.train_loss[k]))
        .collect();
    let val: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|h| h.val.get(k).map(|m| (h.epoch as f64, m.loss())))
        .collect();
    let loss_max = train
        .iter()
        .chain(&val)
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold(1e-9, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("{}: loss", task.name), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..epochs, 0.0..loss_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(train, &BLUE))
        .map_err(err)?
        .label("train")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(val, &RED))
        .map_err(err)?
        .label("validation")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;

    let name = if task.is_classification() {
        "validation accuracy"
    } else {
        "validation RMSE"
    };
    let points: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|h| h.val.get(k).map(|m| (h.epoch as f64, metric(m).1)))
        .collect();
    let top = if task.is_classification() {
        1.0
    } else {
        points
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .fold(1e-9, f64::max)
            * 1.05
    };
    let mut chart = ChartBuilder::on(&right)
        .caption(format!("{}: {name}", task.name), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..epochs, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(points, &GREEN))
        .map_err(err)?;
    root.present().map_err(err)
}

/// Draw `<dir>/<task>.svg` and `<dir>/<task>.png` for every task; returns the files written.
pub fn write_plots(
    dir: &Path,
    tasks: &[TaskSpec],
    history: &[EpochLog],
) -> Result<Vec<std::path::PathBuf>> {
    register_font();
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();
    let mut used = std::collections::HashSet::new();
    for (k, task) in tasks.iter().enumerate() {
        // A file name from the task's name: other characters as '_', at most
        // 100 characters, and the task's index added where two would meet.
        let mut safe: String = task
            .name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(100)
            .collect();
        if !used.insert(safe.clone()) {
            safe = format!("{safe}-{k}");
            used.insert(safe.clone());
        }
        let svg = dir.join(format!("{safe}.svg"));
        let png = dir.join(format!("{safe}.png"));
        let plot_err = |p: &Path, m: String| Error::Io {
            path: p.to_path_buf(),
            source: std::io::Error::other(m),
        };
        write_atomically(&svg, |tmp| {
            let area = SVGBackend::new(tmp, (960, 400)).into_drawing_area();
            plot_task(area, task, k, history).map_err(|m| plot_err(&svg, m))
        })?;
        write_atomically(&png, |tmp| {
            let area = BitMapBackend::new(tmp, (960, 400)).into_drawing_area();
            plot_task(area, task, k, history).map_err(|m| plot_err(&png, m))
        })?;
        files.extend([svg, png]);
    }
    Ok(files)
}
