//! What a training run leaves in its folder besides the model: a per-epoch
//! metrics log (CSV) and, per task, loss and metric curves (SVG and PNG).

use std::path::Path;

use plotters::prelude::*;

use crate::data::TaskSpec;
use crate::error::{Error, Result};
use crate::model::checkpoint::write_atomically;
use crate::train::EpochLog;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Text needs a font; the one shipped in assets/ makes PNGs independent of
/// the system's fonts.
pub fn register_font() {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Write metrics.csv: epoch, lr, then per task train_loss, val_loss, each of
/// its kind's validation metrics (the primary one first: accuracy, RMSE in
/// original units, AUC, …), grad_norm and weight.
pub fn write_metrics_csv(path: &Path, tasks: &[TaskSpec], history: &[EpochLog]) -> Result<()> {
    write_atomically(path, |tmp| write_metrics_to(tmp, tasks, history))
}

fn write_metrics_to(path: &Path, tasks: &[TaskSpec], history: &[EpochLog]) -> Result<()> {
    let csv_err = |e: csv::Error| Error::Io {
        path: path.to_path_buf(),
        source: e.into(),
    };
    let mut w = csv::Writer::from_path(path).map_err(csv_err)?;
    let columns = metrics_columns(tasks, history);
    let header = ["epoch", "lr"]
        .into_iter()
        .map(String::from)
        .chain(columns.iter().map(|(name, _)| name.clone()));
    w.write_record(header).map_err(csv_err)?;
    for log in history {
        let mut row = vec![log.epoch.to_string(), format!("{}", log.lr)];
        row.extend(
            columns
                .iter()
                .map(|(_, value)| value(log).map(|v| format!("{v}")).unwrap_or_default()),
        );
        w.write_record(&row).map_err(csv_err)?;
    }
    w.flush().map_err(io(path))
}

/// steps.csv: one row per watched step (`--grad-stats-every N`): the step,
/// its epoch, each task's weight and gradient norm, and the pairwise cosines.
pub fn write_steps_csv(path: &Path, tasks: &[TaskSpec], history: &[EpochLog]) -> Result<()> {
    write_atomically(path, |tmp| {
        let csv_err = |e: csv::Error| Error::Io {
            path: tmp.to_path_buf(),
            source: e.into(),
        };
        let mut w = csv::Writer::from_path(tmp).map_err(csv_err)?;
        let k = tasks.len();
        let mut header = vec!["step".to_string(), "epoch".to_string()];
        header.extend(tasks.iter().map(|t| format!("{}_weight", t.name)));
        header.extend(tasks.iter().map(|t| format!("{}_grad_norm", t.name)));
        for i in 0..k {
            for j in i + 1..k {
                header.push(format!("cos_{}_{}", tasks[i].name, tasks[j].name));
            }
        }
        w.write_record(&header).map_err(csv_err)?;
        for s in history.iter().flat_map(|h| &h.steps) {
            let mut row = vec![s.step.to_string(), s.epoch.to_string()];
            row.extend(s.weights.iter().map(|v| format!("{v}")));
            row.extend(s.grad_norms.iter().map(|v| format!("{v}")));
            for i in 0..k {
                for j in i + 1..k {
                    row.push(format!("{}", s.cosines[i * k + j]));
                }
            }
            w.write_record(&row).map_err(csv_err)?;
        }
        w.flush().map_err(io(tmp))
    })
}

/// A plotting backend's failure as the I/O error inside it where it names
/// one ("… ImageError(IoError(… (os error 28) …" is "No space left on
/// device (os error 28)"), else as its text.
fn plot_io_error(message: String) -> std::io::Error {
    let code = message
        .split("(os error ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse::<i32>().ok());
    match code {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::other(message),
    }
}

/// A text file, written atomically.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    write_atomically(path, |tmp| std::fs::write(tmp, text).map_err(io(tmp)))
}

/// A metrics.csv column: its name and its value in an epoch's log (empty when absent).
type Column<'a> = (String, Box<dyn Fn(&EpochLog) -> Option<f64> + 'a>);

/// The columns after epoch and lr: per task its training and validation
/// loss, validation metric, gradient norm and weight; the pairwise cosines
/// when per-task gradients were taken; each task's gate weights with a
/// mixture of experts. Header and rows both come from this one list.
fn metrics_columns<'a>(tasks: &'a [TaskSpec], history: &[EpochLog]) -> Vec<Column<'a>> {
    let mut cols: Vec<Column> = Vec::new();
    for (k, t) in tasks.iter().enumerate() {
        let n = &t.name;
        cols.push((
            format!("{n}_train_loss"),
            Box::new(move |l| l.train_loss.get(k).copied()),
        ));
        cols.push((
            format!("{n}_val_loss"),
            Box::new(move |l| l.val.get(k).map(|v| v.loss())),
        ));
        let names: Vec<&'static str> = history
            .iter()
            .find_map(|l| l.val.get(k))
            .map(|m| m.metrics.iter().map(|m| m.name).collect())
            .unwrap_or_default();
        for m in names {
            cols.push((
                format!("{n}_val_{m}"),
                Box::new(move |l| l.val.get(k).and_then(|v| v.get(m))),
            ));
        }
        cols.push((
            format!("{n}_grad_norm"),
            Box::new(move |l| l.grad_norms.get(k).copied()),
        ));
        cols.push((
            format!("{n}_weight"),
            Box::new(move |l| l.weights.get(k).copied()),
        ));
    }
    let k = tasks.len();
    if history.iter().any(|l| !l.cosines.is_empty()) {
        for a in 0..k {
            for b in a + 1..k {
                let name = format!("cos_{}_{}", tasks[a].name, tasks[b].name);
                cols.push((name, Box::new(move |l| l.cosines.get(a * k + b).copied())));
            }
        }
    }
    let gate_widths: Vec<usize> = history
        .last()
        .map(|l| l.gates.iter().map(|g| g.len()).collect())
        .unwrap_or_default();
    for (t, (task, &e)) in tasks.iter().zip(&gate_widths).enumerate() {
        for j in 0..e {
            let name = format!("{}_gate{j}", task.name);
            cols.push((
                name,
                Box::new(move |l| l.gates.get(t).and_then(|g| g.get(j)).copied()),
            ));
        }
    }
    cols
}

/// The Okabe-Ito palette: told apart with every common colour-vision deficiency.
const BLUE_OI: RGBColor = RGBColor(0, 114, 178);
const ORANGE_OI: RGBColor = RGBColor(230, 159, 0);
const GREEN_OI: RGBColor = RGBColor(0, 158, 115);
const GREY: RGBColor = RGBColor(110, 110, 110);

/// What one task's chart draws: this run's curves, the best epoch (the
/// weights kept), and the single-task baseline's curves when one ran.
pub struct TaskCurves<'a> {
    pub task: &'a TaskSpec,
    /// The task's index in `history`'s per-task vectors.
    pub k: usize,
    pub history: &'a [EpochLog],
    /// The epoch whose weights were kept (0-based).
    pub best_epoch: Option<usize>,
    /// The baseline's history (one task: index 0).
    pub stl: Option<&'a [EpochLog]>,
}

/// An epoch axis label: the integer at whole epochs, nothing between.
pub fn epoch_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

/// A curve to draw: its points, colour, and whether it is dashed.
type Line<'a> = (&'a [(f64, f64)], RGBColor, bool);

/// (epoch counted from 1, value) of each epoch that has one.
fn series(history: &[EpochLog], f: impl Fn(&EpochLog) -> Option<f64>) -> Vec<(f64, f64)> {
    history
        .iter()
        .filter_map(|h| {
            f(h).filter(|v| v.is_finite())
                .map(|v| (h.epoch as f64 + 1.0, v))
        })
        .collect()
}

/// An axis range that fits the values with 5% to spare (`floor`/`ceil` bound it).
fn fit_range(values: impl Iterator<Item = f64>, floor: f64, ceil: f64) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return floor.max(0.0)..ceil.min(1.0);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-3).max(1e-9);
    (lo - pad).max(floor)..(hi + pad).min(ceil)
}

/// One pane: lines (label, points, colour, dashed) over epochs 1..=n,
/// integer epoch ticks, the y axis named, the best epoch marked.
#[allow(clippy::too_many_arguments)]
fn pane<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    lines: &[Line],
    y: std::ops::Range<f64>,
    epochs: usize,
    best: Option<usize>,
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(62)
        .build_cartesian_2d(0.5..epochs as f64 + 0.5, y.clone())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_labels(epochs.min(10))
        .x_label_formatter(&epoch_label)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    if let Some(b) = best {
        let x = b as f64 + 1.0;
        chart
            .draw_series(DashedLineSeries::new(
                [(x, y.start), (x, y.end)],
                4,
                4,
                GREY.stroke_width(1),
            ))
            .map_err(err)?;
    }
    for &(points, colour, dashed) in lines {
        if dashed {
            chart
                .draw_series(DashedLineSeries::new(
                    points.iter().copied(),
                    6,
                    4,
                    colour.stroke_width(2),
                ))
                .map_err(err)?;
        } else {
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// A legend strip: each item's line (dashed or solid) and label, left to right.
fn draw_legend<DB: DrawingBackend>(
    legend: &DrawingArea<DB, plotters::coord::Shift>,
    items: &[(&str, RGBColor, bool)],
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut x = 60;
    for &(label, colour, dashed) in items {
        let y = 15;
        let style = colour.stroke_width(2);
        if dashed {
            legend
                .draw(&PathElement::new([(x, y), (x + 8, y)], style))
                .map_err(err)?;
            legend
                .draw(&PathElement::new([(x + 14, y), (x + 22, y)], style))
                .map_err(err)?;
        } else {
            legend
                .draw(&PathElement::new([(x, y), (x + 22, y)], style))
                .map_err(err)?;
        }
        legend
            .draw(&Text::new(label, (x + 28, y - 8), ("sans-serif", 14)))
            .map_err(err)?;
        x += 40 + 8 * label.chars().count() as i32;
    }
    Ok(())
}

/// The top of a metric's axis: 1 for a score that is better higher and never
/// above 1 (accuracy, AUC), else wherever the curves go.
fn metric_ceiling(primary: Option<&crate::task::Metric>, lines: &[Line]) -> f64 {
    let bounded = lines.iter().flat_map(|l| l.0.iter()).all(|p| p.1 <= 1.0);
    match primary {
        Some(m) if m.higher_is_better && bounded => 1.0,
        _ => f64::MAX,
    }
}

/// One task's chart: a legend strip on top (outside the curves), loss curves
/// on the left, the validation metric on the right.
fn plot_task<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    c: &TaskCurves,
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let (legend, body) = root.split_vertically(30);
    let (left, right) = body.split_horizontally(body.dim_in_pixel().0 / 2);
    let (k, history) = (c.k, c.history);
    let epochs = history.len().max(1);
    let train = series(history, |h| h.train_loss.get(k).copied());
    let val = series(history, |h| h.val.get(k).map(|m| m.loss()));
    let metric_of = |h: &EpochLog, i: usize| h.val.get(i).map(|m| m.primary().0);
    let points = series(history, |h| metric_of(h, k));
    let stl_val = c
        .stl
        .map(|s| series(s, |h| h.val.first().map(|m| m.loss())));
    let stl_metric = c.stl.map(|s| series(s, |h| metric_of(h, 0)));

    // The legend: what each line and mark is.
    let mut items: Vec<(&str, RGBColor, bool)> =
        vec![("train", BLUE_OI, false), ("validation", ORANGE_OI, false)];
    if c.stl.is_some() {
        items.push(("single-task validation", GREEN_OI, true));
    }
    if c.best_epoch.is_some() {
        items.push(("best epoch (weights kept)", GREY, true));
    }
    draw_legend(&legend, &items)?;

    let loss_desc = c.task.kind.loss_name();
    let primary = history
        .iter()
        .find_map(|h| h.val.get(k))
        .map(|m| m.primary_metric().clone());
    let metric_desc = primary.as_ref().map_or("metric", |m| m.label);
    let metric_title = format!(
        "validation {}",
        primary.as_ref().map_or("metric", |m| m.name)
    );
    let mut loss_lines: Vec<Line> = vec![(&train, BLUE_OI, false), (&val, ORANGE_OI, false)];
    if let Some(s) = &stl_val {
        loss_lines.push((s, GREEN_OI, true));
    }
    let loss_y = fit_range(
        loss_lines.iter().flat_map(|l| l.0.iter().map(|p| p.1)),
        0.0,
        f64::MAX,
    );
    pane(
        &left,
        &format!("{}: loss", c.task.name),
        loss_desc,
        &loss_lines,
        loss_y,
        epochs,
        c.best_epoch,
    )?;
    let mut metric_lines: Vec<Line> = vec![(&points, ORANGE_OI, false)];
    if let Some(s) = &stl_metric {
        metric_lines.push((s, GREEN_OI, true));
    }
    let ceil = metric_ceiling(primary.as_ref(), &metric_lines);
    let metric_y = fit_range(
        metric_lines.iter().flat_map(|l| l.0.iter().map(|p| p.1)),
        0.0,
        ceil,
    );
    pane(
        &right,
        &format!("{}: {metric_title}", c.task.name),
        metric_desc,
        &metric_lines,
        metric_y,
        epochs,
        c.best_epoch,
    )?;
    root.present().map_err(err)
}

/// Draw `<dir>/<task>.svg` and `<dir>/<task>.png` for every task; returns the files written.
pub fn write_plots(
    dir: &Path,
    tasks: &[TaskSpec],
    history: &[EpochLog],
    best_epoch: Option<usize>,
    baselines: &[&[EpochLog]],
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
            source: plot_io_error(m),
        };
        let curves = TaskCurves {
            task,
            k,
            history,
            best_epoch,
            stl: baselines.get(k).copied(),
        };
        write_atomically(&svg, |tmp| {
            let area = SVGBackend::new(tmp, (1000, 430)).into_drawing_area();
            plot_task(area, &curves).map_err(|m| plot_err(&svg, m))
        })?;
        write_atomically(&png, |tmp| {
            let area = BitMapBackend::new(tmp, (1000, 430)).into_drawing_area();
            plot_task(area, &curves).map_err(|m| plot_err(&png, m))
        })?;
        files.extend([svg, png]);
    }
    Ok(files)
}

/// With a mixture of experts, `<dir>/gates.svg|png`: one pane per task, each
/// expert's gate weight over the epochs (which experts each task uses).
/// Returns the files written (none without gates).
pub fn write_gate_plot(
    dir: &Path,
    tasks: &[TaskSpec],
    history: &[EpochLog],
) -> Result<Vec<std::path::PathBuf>> {
    if history.iter().all(|l| l.gates.is_empty()) {
        return Ok(Vec::new());
    }
    register_font();
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();
    for ext in ["svg", "png"] {
        let path = dir.join(format!("gates.{ext}"));
        let fail = |m: String| Error::Io {
            path: path.clone(),
            source: plot_io_error(m),
        };
        let size = (360 * tasks.len().max(1) as u32, 340);
        write_atomically(&path, |tmp| {
            match ext {
                "svg" => draw_gates(
                    SVGBackend::new(tmp, size).into_drawing_area(),
                    tasks,
                    history,
                ),
                _ => draw_gates(
                    BitMapBackend::new(tmp, size).into_drawing_area(),
                    tasks,
                    history,
                ),
            }
            .map_err(fail)
        })?;
        files.push(path);
    }
    Ok(files)
}

fn draw_gates<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    tasks: &[TaskSpec],
    history: &[EpochLog],
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let panes = root.split_evenly((1, tasks.len().max(1)));
    // Okabe-Ito, then greys for more than seven experts.
    let palette = [
        RGBColor(0, 114, 178),
        RGBColor(230, 159, 0),
        RGBColor(0, 158, 115),
        RGBColor(213, 94, 0),
        RGBColor(204, 121, 167),
        RGBColor(86, 180, 233),
        RGBColor(240, 228, 66),
    ];
    let epochs = history.len().max(1);
    for (k, (task, pane)) in tasks.iter().zip(&panes).enumerate() {
        let experts = history
            .last()
            .and_then(|l| l.gates.get(k))
            .map_or(0, |g| g.len());
        let mut chart = ChartBuilder::on(pane)
            .caption(format!("{}: gate weights", task.name), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(46)
            .build_cartesian_2d(0.5..epochs as f64 + 0.5, 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("weight (mean over a minibatch)")
            .x_labels(epochs.min(10))
            .x_label_formatter(&epoch_label)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for j in 0..experts {
            let colour = palette.get(j).copied().unwrap_or(GREY);
            let points = series(history, |h| h.gates.get(k).and_then(|g| g.get(j)).copied());
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(err)?
                .label(format!("expert {j}"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 14, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(GREY)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plot_that_could_not_be_written_says_the_io_error_inside() {
        // What plotters said on a full disk (issue 24: a full disk with --force).
        let said = "Drawing backend error: ImageError(IoError(Custom { kind: Other, \
                    error: \"No space left on device (os error 28)\" }))";
        let e = super::plot_io_error(said.to_string());
        assert_eq!(e.raw_os_error(), Some(28));
        let other = super::plot_io_error("the font is missing".to_string());
        assert_eq!(other.to_string(), "the font is missing");
    }
}
