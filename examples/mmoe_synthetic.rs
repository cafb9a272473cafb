//! mmoe_synthetic: the synthetic experiment of Ma et al., "Modeling Task
//! Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts",
//! KDD 2018, §3.2–3.3 and §5.1–5.2, set up as the paper's text sets it up.
//!
//!     cargo run --release --example mmoe_synthetic                      # 20 runs, 4,000 steps
//!     cargo run --release --example mmoe_synthetic -- --runs 200 --out runs/mmoe-200
//!     cargo run --release --example mmoe_synthetic -- --runs 2 --steps 40 --tune-runs 1   # a smoke test
//!
//! Two regression tasks whose weight vectors have cosine p (`data::synthetic`:
//! 100 inputs, 10,000 training rows). c = 1, m = 10 and the α_i, β_i are fixed
//! for every run by `--function-seed` (the paper calls them "given
//! parameters" and does not publish them); each run draws its own u1, u2, x
//! and ε. Three models as the paper sizes them: Shared-Bottom (one hidden
//! layer of 113 units), OMoE and MMoE (8 experts of one 16-unit layer; one
//! gate, or a gate per task, softmax(Wx) without bias), each task a tower of
//! 8 units. Adam, its learning rate chosen per model and p from `--lrs` on
//! runs of their own (`--tune-runs` per rate, seeds apart from the reported
//! runs), then `--runs` runs per (model, p) of `--steps` steps each; no
//! early stopping or best-epoch selection: the weights where training ended.
//!
//! It writes into `--out`:
//! - `fig4_training_loss.svg`: task 1's training loss (each step's minibatch
//!   MSE, in the label's units) against steps, mean over runs with a band of
//!   ± one standard error, a panel per p (the paper's figure 4);
//! - `fig5_final_loss.svg`: histograms over runs of the final training loss
//!   of task 1 (the whole training set, final weights), a panel per p (the
//!   paper's figure 5, trainability);
//! - `summary.md`: the tables printed here (chosen rates, final losses with
//!   quantiles, paired differences with 95% intervals, the gap's change with
//!   p, the convergence check); `runs.csv` (every run) and `curves.csv`.
//!
//! Runs go `--jobs` at a time, each on a device of its own (one run leaves a
//! CPU adapter's second core idle), and with `--lockstep` a group of runs
//! steps together on each device; every run is seeded, so the numbers do
//! not depend on either.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use plotters::prelude::*;
use taskgrad::data::synthetic::{self, SyntheticSpec};
use taskgrad::data::{Dataset, Split, Table, TaskType};
use taskgrad::nn::{Arch, Freeze};
use taskgrad::train::{
    fit, fit_lockstep, on_devices, FitReport, ForwardProgram, LockstepRun, TrainConfig,
};
use taskgrad::{mtl, Error, Gpu};

#[derive(Parser, Clone)]
#[command(
    about = "Ma et al. (2018)'s synthetic experiment: Shared-Bottom, OMoE and MMoE as p varies"
)]
struct Args {
    /// Reported runs per (model, p).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Training steps per run (minibatches of --batch rows).
    #[arg(long, default_value_t = 4000)]
    steps: u64,
    /// Task correlations p, comma-separated (the paper's 0.5, 0.9, 1, and 0).
    #[arg(long, value_delimiter = ',', default_value = "0,0.5,0.9,1")]
    correlations: Vec<f64>,
    /// Adam learning rates to choose from, per model and p (the paper's grid).
    #[arg(long, value_delimiter = ',', default_value = "1e-4,1e-3,1e-2")]
    lrs: Vec<f32>,
    /// Runs per (model, p, rate) that choose the rate (0, or one rate: no tuning).
    #[arg(long, default_value_t = 2)]
    tune_runs: usize,
    /// Rows per minibatch.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Training rows per run.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Seeds α and β, the same for every run.
    #[arg(long, default_value_t = 0)]
    function_seed: u64,
    /// Runs trained at once, each on its own device.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Step the runs together (`train::fit_lockstep`): each model of up to
    /// 16 runs in one submit per step, their products shared as single
    /// dispatches; with --jobs J, J such groups side by side. The numbers
    /// do not change (each run's seconds are its group's time over its runs).
    #[arg(long)]
    lockstep: bool,
    /// Output folder.
    #[arg(long, default_value = "runs/mmoe_synthetic")]
    out: PathBuf,
    /// Redraw both figures from the runs.csv and curves.csv already in --out
    /// (with the same --correlations), without training.
    #[arg(long)]
    replot: bool,
}

const INPUTS: usize = 100;
const TEST: usize = 2_000;
const MODELS: [&str; 3] = ["Shared-Bottom", "OMoE", "MMoE"];
/// Task 1's curve and histogram are the figures' (the paper shows one task).
const TASK: usize = 0;

fn main() {
    taskgrad::gpu::quiet_graphics_stack();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The model's settings: Shared-Bottom 113 units; the mixtures 8 experts of
/// 16, whose gate biases stay at 0 (frozen), so a gate is softmax(Wx).
fn config(model: usize, lr: f32, seed: u64, args: &Args) -> TrainConfig {
    let (arch, trunk, freeze) = match model {
        0 => (Arch::Shared, vec![113], Freeze::None),
        1 => (
            Arch::Omoe {
                experts: 8,
                expert_hidden: 16,
            },
            vec![],
            Freeze::Named(vec!["moe.0.gate.bias".into()]),
        ),
        _ => (
            Arch::Mmoe {
                experts: 8,
                expert_hidden: 16,
            },
            vec![],
            Freeze::Named(vec!["moe.0.gate0.bias".into(), "moe.0.gate1.bias".into()]),
        ),
    };
    TrainConfig {
        epochs: (args.steps as usize).div_ceil(args.rows.div_ceil(args.batch)),
        max_steps: Some(args.steps),
        batch_size: args.batch,
        lr,
        seed,
        trunk,
        tower: vec![8],
        arch,
        freeze,
        patience: None,
        keep_best: false,
        log_losses: true,
        ..Default::default()
    }
}

/// One run's data: `rows` training and 2,000 test rows, and each task's
/// label variance over the training rows (the trainer standardises labels;
/// times the variance, a loss is in the label's own units, as the paper's).
struct RunData {
    data: Dataset,
    split: Split,
    var: [f64; 2],
    /// Pearson correlation of y1 and y2 over the training rows.
    corr: f64,
}

fn run_data(p: f64, seed: u64, args: &Args) -> taskgrad::Result<RunData> {
    let n = args.rows + TEST;
    let t = synthetic::table(&SyntheticSpec {
        rows: n,
        inputs: INPUTS,
        correlation: p,
        seed,
        function_seed: Some(args.function_seed),
        ..Default::default()
    });
    let split = Split::new(n, 0.0, TEST as f64 / n as f64, seed)?;
    let names: Vec<String> = (0..INPUTS).map(|j| format!("x{j}")).collect();
    let inputs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let data = Dataset::from_table(
        &t,
        &inputs,
        &[("y1", TaskType::REG), ("y2", TaskType::REG)],
        &split.train,
    )?;
    let column = |t: &Table, j: usize| -> Vec<f64> {
        split
            .train
            .iter()
            .map(|&r| t.cell(r, j).parse::<f64>().unwrap_or(f64::NAN))
            .collect()
    };
    let (y1, y2) = (column(&t, INPUTS), column(&t, INPUTS + 1));
    let var = |v: &[f64]| {
        let (_, s) = taskgrad::task::reg::mean_std(v);
        (s as f64).powi(2)
    };
    Ok(RunData {
        var: [var(&y1), var(&y2)],
        corr: pearson(&y1, &y2),
        data,
        split,
    })
}

/// One job: the three models trained on one run's data.
#[derive(Clone)]
struct Job {
    tuning: bool,
    pi: usize,
    seed: u64,
    lrs: [f32; 3],
}

/// One trained model of a job.
#[derive(Clone)]
struct Outcome {
    tuning: bool,
    pi: usize,
    model: usize,
    seed: u64,
    lr: f32,
    /// Task 1's minibatch loss at every step (the label's units).
    curve: Vec<f32>,
    /// Final training-set and test MSE per task (the label's units).
    train: [f64; 2],
    test: [f64; 2],
    corr: f64,
    params: usize,
    seconds: f64,
}

fn train_job(
    gpu: &Gpu,
    job: &Job,
    args: &Args,
    say: &dyn Fn(&str),
) -> taskgrad::Result<Vec<Outcome>> {
    let p = args.correlations[job.pi];
    let rd = run_data(p, job.seed, args)?;
    let mut out = Vec::new();
    for (model, &lr) in job.lrs.iter().enumerate() {
        let clock = std::time::Instant::now();
        let cfg = config(model, lr, job.seed, args);
        let r = fit(
            gpu,
            &rd.data,
            &rd.split,
            &[0, 1],
            mtl::by_name("equal")?,
            &cfg,
            &mut |_| {},
        )?;
        let seconds = clock.elapsed().as_secs_f64();
        out.push(outcome(gpu, job, (&rd, model, &cfg), &r, seconds, args)?);
        say("a model trained");
    }
    Ok(out)
}

/// [`train_job`] for a group of jobs, each model of all of them stepped
/// together (`fit_lockstep`); outcomes in the same order (job, then model).
fn train_group(
    gpu: &Gpu,
    group: &[Job],
    args: &Args,
    say: &dyn Fn(&str),
) -> taskgrad::Result<Vec<Outcome>> {
    let rds = (group.iter())
        .map(|job| run_data(args.correlations[job.pi], job.seed, args))
        .collect::<taskgrad::Result<Vec<_>>>()?;
    let mut out: Vec<Vec<Outcome>> = group.iter().map(|_| Vec::new()).collect();
    for model in 0..MODELS.len() {
        let clock = std::time::Instant::now();
        let cfgs: Vec<TrainConfig> = (group.iter())
            .map(|job| config(model, job.lrs[model], job.seed, args))
            .collect();
        let runs = (rds.iter().zip(&cfgs))
            .map(|(rd, cfg)| LockstepRun {
                data: &rd.data,
                split: &rd.split,
                subset: &[0, 1],
                weighting: Box::new(|| mtl::by_name("equal")),
                cfg,
            })
            .collect();
        let reports = fit_lockstep(gpu, runs, &mut |_, _| {}).reports;
        let seconds = clock.elapsed().as_secs_f64() / group.len() as f64;
        for (j, r) in reports.into_iter().enumerate() {
            let at = (&rds[j], model, &cfgs[j]);
            out[j].push(outcome(gpu, &group[j], at, &r?, seconds, args)?);
            say("a model trained");
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// What a trained model of a job measured: its curve, final losses and size.
fn outcome(
    gpu: &Gpu,
    job: &Job,
    (rd, model, cfg): (&RunData, usize, &TrainConfig),
    r: &FitReport,
    seconds: f64,
    args: &Args,
) -> taskgrad::Result<Outcome> {
    let lr = job.lrs[model];
    let curve = r
        .history
        .iter()
        .flat_map(|l| {
            l.step_losses
                .iter()
                .map(|s| (s[TASK] * rd.var[TASK]) as f32)
        })
        .collect();
    let eval = ForwardProgram::build(
        gpu,
        &r.net,
        &r.params,
        &r.tasks,
        rd.data.d,
        256,
        Default::default(),
    )?;
    let mse = |rows: &[usize]| -> taskgrad::Result<[f64; 2]> {
        let m = eval.evaluate(gpu, &rd.data, rows, &[0, 1])?;
        Ok([m[0].loss() * rd.var[0], m[1].loss() * rd.var[1]])
    };
    if r.steps != args.steps {
        return Err(Error::InvalidConfig(format!(
            "a run took {} steps, not {}",
            r.steps, args.steps
        )));
    }
    // Trained parameters: the frozen (zero) gate biases are not the model's.
    let frozen =
        |name: &str| matches!(&cfg.freeze, Freeze::Named(n) if n.iter().any(|f| f == name));
    let params = r
        .params
        .values
        .layout
        .entries()
        .iter()
        .filter(|(name, _, _)| !frozen(name))
        .map(|(_, _, s)| s.iter().product::<usize>())
        .sum::<usize>();
    Ok(Outcome {
        tuning: job.tuning,
        pi: job.pi,
        model,
        seed: job.seed,
        lr,
        curve,
        train: mse(&rd.split.train)?,
        test: mse(&rd.split.test)?,
        corr: rd.corr,
        params,
        seconds,
    })
}

/// Train `jobs` on `args.jobs` devices at once (`train::on_devices`: the
/// results do not depend on how many); a progress bar counts the trained models.
fn train_all(gpu: &Gpu, jobs: Vec<Job>, args: &Args, what: &str) -> taskgrad::Result<Vec<Outcome>> {
    let models: usize = jobs.iter().map(|j| j.lrs.len()).sum();
    let bar = indicatif::ProgressBar::new(models as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:30} {pos}/{len} models, {elapsed_precise} elapsed, ETA {eta_precise}",
        )
        .expect("a valid template"),
    );
    bar.set_message(what.to_string());
    let done = match args.lockstep {
        false => on_devices(
            gpu,
            args.jobs,
            jobs,
            &mut |_| bar.inc(1),
            |gpu, job, say| train_job(gpu, &job, args, say),
        ),
        true => {
            let size = jobs.len().div_ceil(args.jobs.max(1)).clamp(1, 16);
            let groups: Vec<Vec<Job>> = jobs.chunks(size).map(|g| g.to_vec()).collect();
            on_devices(
                gpu,
                args.jobs,
                groups,
                &mut |_| bar.inc(1),
                |gpu, group, say| train_group(gpu, &group, args, say),
            )
        }
    };
    match done {
        Ok(runs) => {
            bar.finish_and_clear();
            Ok(runs.into_iter().flatten().collect())
        }
        Err(e) => {
            bar.abandon();
            Err(e)
        }
    }
}

/// Seeds: p's index in the high bits, so runs at different p are independent;
/// tuning runs from 1,000,000 on, apart from the reported runs.
fn seed(pi: usize, run: usize, tuning: bool) -> u64 {
    ((pi as u64) << 32) | (run as u64 + if tuning { 1_000_000 } else { 0 })
}

fn run(args: Args) -> taskgrad::Result<()> {
    let started = std::time::Instant::now();
    if args.runs < 2 || args.steps == 0 || args.lrs.is_empty() || args.correlations.is_empty() {
        return Err(Error::InvalidConfig(
            "need --runs ≥ 2 (for standard errors), --steps ≥ 1, a rate and a correlation".into(),
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| Error::Io {
        path: args.out.clone(),
        source: e,
    })?;
    if args.replot {
        return replot(&args);
    }
    // Each run's network is over CpuThreads' bound by size, but runs side by
    // side that fill the cores run better without llvmpipe's workers.
    let gpu = Gpu::new_with(taskgrad::gpu::CpuThreads::for_jobs(None, args.jobs))?;
    println!(
        "adapter: {}{} ({} at once)",
        gpu.report,
        gpu.threads_note(),
        args.jobs
    );
    let (alpha, beta) = synthetic::sines(args.function_seed, 10);
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut summary = format!(
        "# Ma et al. (2018), synthetic experiment\n\n\
         {} training rows of {INPUTS} inputs per run, minibatches of {}, {} steps \
         ({:.1} epochs), Adam; {} runs per (model, p); rates from {:?}, chosen on {} runs each.\n\
         c = 1, m = 10, function seed {}: α = [{}], β = [{}].\n\n",
        args.rows,
        args.batch,
        args.steps,
        args.steps as f64 * args.batch as f64 / args.rows as f64,
        args.runs,
        args.lrs,
        args.tune_runs,
        args.function_seed,
        fmt(&alpha),
        fmt(&beta)
    );
    println!("{summary}");

    // 1. The learning rate per (model, p): the lowest mean final training loss.
    let mut chosen = vec![[args.lrs[0]; 3]; args.correlations.len()];
    let mut tuned = Vec::new();
    if args.lrs.len() > 1 && args.tune_runs > 0 {
        let mut jobs = Vec::new();
        for pi in 0..args.correlations.len() {
            for i in 0..args.tune_runs {
                for &lr in &args.lrs {
                    jobs.push(Job {
                        tuning: true,
                        pi,
                        seed: seed(pi, i, true),
                        lrs: [lr; 3],
                    });
                }
            }
        }
        tuned = train_all(&gpu, jobs, &args, "choosing rates")?;
        summary +=
            "## Learning rates (mean final training loss of both tasks over the tuning runs)\n\n";
        summary += &format!(
            "| p | model | {} | chosen |\n| --- | --- |{} --- |\n",
            args.lrs
                .iter()
                .map(|l| format!("{l:e}"))
                .collect::<Vec<_>>()
                .join(" | "),
            " --- |".repeat(args.lrs.len())
        );
        for (pi, p) in args.correlations.iter().enumerate() {
            for (m, name) in MODELS.iter().enumerate() {
                let score = |lr: f32| {
                    let v: Vec<f64> = tuned
                        .iter()
                        .filter(|o| o.pi == pi && o.model == m && o.lr == lr)
                        .map(|o| (o.train[0] + o.train[1]) / 2.0)
                        .collect();
                    // A rate that diverged (non-finite) is never chosen.
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    if mean.is_finite() {
                        mean
                    } else {
                        f64::INFINITY
                    }
                };
                let best = args
                    .lrs
                    .iter()
                    .copied()
                    .min_by(|a, b| score(*a).total_cmp(&score(*b)))
                    .expect("a rate");
                chosen[pi][m] = best;
                summary += &format!(
                    "| {p} | {name} | {} | {best:e} |\n",
                    args.lrs
                        .iter()
                        .map(|&l| format!("{:.4}", score(l)))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
            }
        }
        summary += "\n";
    }

    // 2. The reported runs: the same data for the three models of a run.
    let jobs = (0..args.correlations.len())
        .flat_map(|pi| {
            let lrs = chosen[pi];
            (0..args.runs).map(move |i| Job {
                tuning: false,
                pi,
                seed: seed(pi, i, false),
                lrs,
            })
        })
        .collect();
    let runs = train_all(&gpu, jobs, &args, "reported runs")?;
    // [pi][model] → outcomes sorted by seed (pairs line up).
    let mut cells: BTreeMap<(usize, usize), Vec<&Outcome>> = BTreeMap::new();
    for o in &runs {
        cells.entry((o.pi, o.model)).or_default().push(o);
    }
    cells.values_mut().for_each(|v| v.sort_by_key(|o| o.seed));
    let cell = |pi: usize, m: usize| &cells[&(pi, m)];

    summary += &tables(&args, &cell);
    println!(
        "{}",
        summary.split_once("\n\n").map_or("", |(_, rest)| rest)
    );

    write(&args.out.join("summary.md"), &summary)?;
    write(
        &args.out.join("runs.csv"),
        &runs_csv(tuned.iter().chain(&runs)),
    )?;
    let window = (args.steps as usize / 100).max(1);
    let bands: Vec<Vec<Band>> = (0..args.correlations.len())
        .map(|pi| (0..3).map(|m| band(cell(pi, m), window)).collect())
        .collect();
    write(
        &args.out.join("curves.csv"),
        &curves_csv(&args, &bands, window),
    )?;
    taskgrad::cli::report::register_font();
    let finals: Vec<Vec<Vec<f64>>> = (0..args.correlations.len())
        .map(|pi| {
            (0..3)
                .map(|m| cell(pi, m).iter().map(|o| o.train[TASK]).collect())
                .collect()
        })
        .collect();
    plot(&args.out.join("fig4_training_loss.svg"), |root| {
        fig4(root, &args, &bands, window)
    })?;
    plot(&args.out.join("fig5_final_loss.svg"), |root| {
        fig5(root, &args, &finals)
    })?;
    println!(
        "wrote summary.md, runs.csv, curves.csv, fig4_training_loss.svg and fig5_final_loss.svg in {} ({:.0} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A row of curves.csv and of runs.csv, as `--replot` reads them (by header).
#[derive(serde::Deserialize)]
struct CurveRow {
    p: f64,
    model: String,
    first_step: usize,
    last_step: usize,
    mean_loss_y1: f64,
    standard_error: f64,
}

#[derive(serde::Deserialize)]
struct RunRow {
    phase: String,
    p_index: usize,
    model: String,
    train_mse_y1: f64,
}

/// `--replot`: both figures again from the files a run wrote.
fn replot(args: &Args) -> taskgrad::Result<()> {
    fn rows<T: serde::de::DeserializeOwned>(path: PathBuf) -> taskgrad::Result<Vec<T>> {
        let bad =
            |e: csv::Error| Error::InvalidConfig(format!("--replot: {}: {e}", path.display()));
        csv::Reader::from_path(&path)
            .map_err(bad)?
            .deserialize()
            .collect::<Result<Vec<T>, _>>()
            .map_err(bad)
    }
    let model = |name: &str| {
        MODELS
            .iter()
            .position(|m| *m == name)
            .ok_or_else(|| Error::InvalidConfig(format!("--replot: unknown model {name:?}")))
    };
    let ps = &args.correlations;
    let mut bands: Vec<Vec<Band>> = ps
        .iter()
        .map(|_| {
            (0..3)
                .map(|_| Band {
                    mean: Vec::new(),
                    se: Vec::new(),
                })
                .collect()
        })
        .collect();
    let (mut window, mut steps) = (1, 0);
    for r in rows::<CurveRow>(args.out.join("curves.csv"))? {
        let Some(pi) = ps.iter().position(|&q| (q - r.p).abs() < 1e-9) else {
            continue;
        };
        window = window.max(r.last_step + 1 - r.first_step);
        steps = steps.max(r.last_step as u64);
        let b = &mut bands[pi][model(&r.model)?];
        b.mean.push(r.mean_loss_y1);
        b.se.push(r.standard_error);
    }
    let mut finals: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 3]; ps.len()];
    for r in rows::<RunRow>(args.out.join("runs.csv"))? {
        if r.phase == "report" && r.p_index < ps.len() {
            finals[r.p_index][model(&r.model)?].push(r.train_mse_y1);
        }
    }
    if bands.iter().flatten().any(|b| b.mean.is_empty())
        || finals.iter().flatten().any(|f| f.is_empty())
    {
        return Err(Error::InvalidConfig(format!(
            "--replot: no runs for some model and p in {} (are --correlations the run's?)",
            args.out.display()
        )));
    }
    let args = Args {
        steps,
        ..args.clone()
    };
    taskgrad::cli::report::register_font();
    plot(&args.out.join("fig4_training_loss.svg"), |root| {
        fig4(root, &args, &bands, window)
    })?;
    plot(&args.out.join("fig5_final_loss.svg"), |root| {
        fig5(root, &args, &finals)
    })?;
    println!(
        "redrew fig4_training_loss.svg and fig5_final_loss.svg in {}",
        args.out.display()
    );
    Ok(())
}

/// The printed tables: final losses, paired differences, the gap's change with p, convergence.
fn tables<'a>(args: &Args, cell: &dyn Fn(usize, usize) -> &'a Vec<&'a Outcome>) -> String {
    let ps = &args.correlations;
    let mut s = String::from(
        "## Label correlation (the paper's figure 2 check: Pearson r of y1, y2 over the training rows, mean over runs)\n\n| p | r |\n| --- | --- |\n",
    );
    for (pi, p) in ps.iter().enumerate() {
        let r: Vec<f64> = cell(pi, 0).iter().map(|o| o.corr).collect();
        s += &format!("| {p} | {:.3} |\n", mean(&r));
    }
    s += "\n## Final loss (MSE in the label's units, final weights; mean ± standard error over runs)\n\n\
          | p | model | params | rate | train y1 | train y2 | test y1 | test y2 | task 1 train: min / median / 90% / max |\n\
          | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for (pi, p) in ps.iter().enumerate() {
        for (m, name) in MODELS.iter().enumerate() {
            let c = cell(pi, m);
            let col =
                |f: &dyn Fn(&Outcome) -> f64| -> Vec<f64> { c.iter().map(|o| f(o)).collect() };
            let ms = |v: Vec<f64>| format!("{:.4} ± {:.4}", mean(&v), se(&v));
            let q = quantiles(&col(&|o| o.train[TASK]), &[0.0, 0.5, 0.9, 1.0]);
            s += &format!(
                "| {p} | {name} | {} | {:e} | {} | {} | {} | {} | {} |\n",
                c[0].params,
                c[0].lr,
                ms(col(&|o| o.train[0])),
                ms(col(&|o| o.train[1])),
                ms(col(&|o| o.test[0])),
                ms(col(&|o| o.test[1])),
                q.iter()
                    .map(|v| format!("{v:.4}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
        }
    }
    // Paired over runs (same data, same p): mean of both tasks' final training loss.
    let both = |o: &Outcome| (o.train[0] + o.train[1]) / 2.0;
    let diffs = |pi: usize, a: usize, b: usize| -> Vec<f64> {
        cell(pi, a)
            .iter()
            .zip(cell(pi, b))
            .map(|(x, y)| both(x) - both(y))
            .collect()
    };
    s += "\n## Paired differences (mean of both tasks' final training loss; − favours the first model; 95% t interval over runs)\n\n\
          | p | OMoE − Shared-Bottom | MMoE − Shared-Bottom | MMoE − OMoE |\n| --- | --- | --- | --- |\n";
    for (pi, p) in ps.iter().enumerate() {
        let f = |a, b| interval(&diffs(pi, a, b));
        s += &format!("| {p} | {} | {} | {} |\n", f(1, 0), f(2, 0), f(2, 1));
    }
    // The gap's change with p: independent runs at each p (Welch).
    let at = |v: f64| ps.iter().position(|&p| (p - v).abs() < 1e-9);
    if let (Some(lo), Some(hi)) = (at(0.5), at(1.0)) {
        s += "\n## The gap's change with p (gap at 0.5 minus gap at 1.0; − means the model's advantage over Shared-Bottom grows as p falls; 95% Welch interval)\n\n\
              | model | change |\n| --- | --- |\n";
        for m in [1, 2] {
            s += &format!(
                "| {} | {} |\n",
                MODELS[m],
                welch(&diffs(lo, m, 0), &diffs(hi, m, 0))
            );
        }
    }
    // Converged: the mean loss over the last tenth of steps against the tenth before.
    s += "\n## Convergence (task 1's training loss, mean over runs: last tenth of the steps against the tenth before it)\n\n\
          | p | model | tenth before | last tenth | change |\n| --- | --- | --- | --- | --- |\n";
    for (pi, p) in ps.iter().enumerate() {
        for (m, name) in MODELS.iter().enumerate() {
            let steps = cell(pi, m)[0].curve.len();
            let tenth = (steps / 10).max(1);
            let span = |from: usize| -> f64 {
                let v: Vec<f64> = cell(pi, m)
                    .iter()
                    .map(|o| {
                        o.curve[from..(from + tenth).min(steps)]
                            .iter()
                            .map(|&x| x as f64)
                            .sum::<f64>()
                            / tenth as f64
                    })
                    .collect();
                mean(&v)
            };
            let (before, last) = (span(steps.saturating_sub(2 * tenth)), span(steps - tenth));
            s += &format!(
                "| {p} | {name} | {before:.4} | {last:.4} | {:+.1}% |\n",
                100.0 * (last - before) / before
            );
        }
    }
    s
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn var(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64
}

fn se(v: &[f64]) -> f64 {
    (var(v) / v.len().max(1) as f64).sqrt()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Linear-interpolated quantiles of `v`.
fn quantiles(v: &[f64], qs: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    qs.iter()
        .map(|q| {
            let x = q * (s.len() - 1) as f64;
            let (i, f) = (x.floor() as usize, x - x.floor());
            s[i] + f * (s[(i + 1).min(s.len() - 1)] - s[i])
        })
        .collect()
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom: from the
/// table up to 30 (a fractional df rounded down, the wider interval), above
/// that the Cornish–Fisher expansion around the normal's 1.96 (within 1e-4).
fn t975(df: f64) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if df < 31.0 {
        return TABLE[(df.floor() as usize).clamp(1, 30) - 1];
    }
    let z: f64 = 1.959_963_985;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3))
}

/// Mean and 95% t interval of paired differences.
fn interval(d: &[f64]) -> String {
    let h = t975((d.len() - 1) as f64) * se(d);
    let m = mean(d);
    format!("{m:+.4} [{:+.4}, {:+.4}]", m - h, m + h)
}

/// Difference of means of two independent samples, with Welch's 95% interval.
fn welch(a: &[f64], b: &[f64]) -> String {
    let (va, vb) = (var(a) / a.len() as f64, var(b) / b.len() as f64);
    let df = (va + vb).powi(2)
        / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64).max(f64::MIN_POSITIVE);
    let (m, h) = (mean(a) - mean(b), t975(df) * (va + vb).sqrt());
    format!("{m:+.4} [{:+.4}, {:+.4}]", m - h, m + h)
}

/// Task 1's training loss over runs in windows of `window` steps: each
/// run's window mean, then their mean and standard error across runs.
struct Band {
    mean: Vec<f64>,
    se: Vec<f64>,
}

fn band(runs: &[&Outcome], window: usize) -> Band {
    let steps = runs.iter().map(|o| o.curve.len()).min().unwrap_or(0);
    let (mut m, mut s) = (Vec::new(), Vec::new());
    for w in 0..steps.div_ceil(window) {
        let (a, b) = (w * window, ((w + 1) * window).min(steps));
        let per_run: Vec<f64> = runs
            .iter()
            .map(|o| o.curve[a..b].iter().map(|&x| x as f64).sum::<f64>() / (b - a) as f64)
            .collect();
        m.push(mean(&per_run));
        s.push(se(&per_run));
    }
    Band { mean: m, se: s }
}

fn runs_csv<'a>(runs: impl Iterator<Item = &'a Outcome>) -> String {
    let mut s = String::from(
        "phase,p_index,model,seed,lr,params,train_mse_y1,train_mse_y2,test_mse_y1,test_mse_y2,label_corr,seconds\n",
    );
    for o in runs {
        s += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{:.2}\n",
            if o.tuning { "tune" } else { "report" },
            o.pi,
            MODELS[o.model],
            o.seed,
            o.lr,
            o.params,
            o.train[0],
            o.train[1],
            o.test[0],
            o.test[1],
            o.corr,
            o.seconds
        );
    }
    s
}

fn curves_csv(args: &Args, bands: &[Vec<Band>], window: usize) -> String {
    let mut s = String::from("p,model,first_step,last_step,mean_loss_y1,standard_error\n");
    for (pi, p) in args.correlations.iter().enumerate() {
        for (m, b) in bands[pi].iter().enumerate() {
            for (w, (mu, e)) in b.mean.iter().zip(&b.se).enumerate() {
                let last = ((w + 1) * window).min(args.steps as usize);
                s += &format!("{p},{},{},{last},{mu},{e}\n", MODELS[m], w * window + 1);
            }
        }
    }
    s
}

fn write(path: &Path, text: &str) -> taskgrad::Result<()> {
    taskgrad::model::checkpoint::write_atomically(path, |tmp| {
        std::fs::write(tmp, text).map_err(|e| Error::Io {
            path: tmp.to_path_buf(),
            source: e,
        })
    })
}

type Root<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Draw an SVG into a temporary file and move it into place.
fn plot(path: &Path, draw: impl FnOnce(&Root) -> Result<(), String>) -> taskgrad::Result<()> {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, (1000, 330)).into_drawing_area();
        draw(&root).and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    drawn.map_err(|m| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(m),
    })?;
    write(path, &svg)
}

const COLOURS: [RGBColor; 3] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
];

/// Figure 4: a panel per p, each model's mean loss with a ± SE band, log scale.
fn fig4(root: &Root, args: &Args, bands: &[Vec<Band>], window: usize) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let values = bands
        .iter()
        .flatten()
        .flat_map(|b| b.mean.iter().zip(&b.se));
    let lo = values
        .clone()
        .map(|(m, s)| m - s)
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min);
    let hi = values.map(|(m, s)| m + s).fold(0.0, f64::max);
    // A log scale, drawn as log10 of the loss with the loss on the labels.
    let (lo, hi) = ((lo.min(hi) * 0.9).log10(), (hi.max(lo) * 1.1).log10());
    let l = |v: f64| v.max(1e-300).log10();
    for (pi, area) in root
        .split_evenly((1, args.correlations.len()))
        .iter()
        .enumerate()
    {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("p = {}", args.correlations[pi]), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..args.steps as f64, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("training step")
            .y_desc(if pi == 0 {
                "task 1 training loss (MSE, log)"
            } else {
                ""
            })
            .x_labels(4)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_labels(6)
            .y_label_formatter(&|y| format!("{:.3}", 10f64.powf(*y)))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for (m, b) in bands[pi].iter().enumerate() {
            let c = COLOURS[m];
            let x = |w: usize| ((w * window) as f64 + window as f64 / 2.0).min(args.steps as f64);
            let upper = b
                .mean
                .iter()
                .zip(&b.se)
                .enumerate()
                .map(|(w, (m, s))| (x(w), l(m + s)));
            let lower = b
                .mean
                .iter()
                .zip(&b.se)
                .enumerate()
                .rev()
                .map(|(w, (m, s))| (x(w), l(m - s).max(lo)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    c.mix(0.2),
                )))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    b.mean.iter().enumerate().map(|(w, &v)| (x(w), l(v))),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(MODELS[m])
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], c.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Figure 5: a panel per p, each model's histogram of final task-1 training
/// loss over runs (outlined, shared bins on a log scale).
fn fig5(root: &Root, args: &Args, finals: &[Vec<Vec<f64>>]) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let all = finals
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| *v > 0.0 && v.is_finite());
    let lo = all.clone().fold(f64::MAX, f64::min).ln();
    let hi = all.fold(0.0, f64::max).ln().max(lo + 1e-6);
    // Shared bins over ln(loss), a little wider than the values.
    let (lo, hi) = (lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo));
    const BINS: usize = 20;
    let width = (hi - lo) / BINS as f64;
    let bin = |v: f64| (((v.ln() - lo) / width) as usize).min(BINS - 1);
    let counts: Vec<Vec<Vec<usize>>> = finals
        .iter()
        .map(|per_model| {
            per_model
                .iter()
                .map(|v| {
                    let mut c = vec![0; BINS];
                    v.iter()
                        .filter(|x| **x > 0.0 && x.is_finite())
                        .for_each(|&x| c[bin(x)] += 1);
                    c
                })
                .collect()
        })
        .collect();
    let top = counts
        .iter()
        .flatten()
        .flatten()
        .copied()
        .max()
        .unwrap_or(1) as f64
        * 1.7; // headroom for the legend above the bars
    for (pi, area) in root
        .split_evenly((1, args.correlations.len()))
        .iter()
        .enumerate()
    {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("p = {}", args.correlations[pi]), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(40)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("final task 1 training loss (log)")
            .y_desc(if pi == 0 { "runs" } else { "" })
            .x_labels(4)
            .x_label_formatter(&|x| format!("{:.3}", x.exp()))
            .y_labels((top as usize).clamp(2, 6))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for (m, c) in counts[pi].iter().enumerate() {
            let colour = COLOURS[m];
            // An outlined step histogram, so the three models overlap readably.
            let edge = |i: usize| lo + i as f64 * width;
            let mut path = vec![(edge(0), 0.0)];
            for (i, &n) in c.iter().enumerate() {
                path.extend([(edge(i), n as f64), (edge(i + 1), n as f64)]);
            }
            path.push((edge(BINS), 0.0));
            chart
                .draw_series(LineSeries::new(path, colour.stroke_width(2)))
                .map_err(err)?
                .label(MODELS[m])
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 14, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}
