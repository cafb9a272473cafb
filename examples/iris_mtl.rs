//! iris_mtl: the front door of taskgrad.
//!
//! Fisher's Iris, two inputs (sepal length and width), three tasks learned
//! together through a shared trunk: species (3-class softmax cross-entropy),
//! petal length and petal width (MSE). The same network is also trained on
//! each task alone (single-task baselines, same architecture and budget), and
//! one table compares them on the test split, with Δm%.
//!
//!     cargo run --release --example iris_mtl -- [--weighting METHOD] [--space params|rep]
//!                                               [--seed S] [--seeds N [--jobs J | --lockstep]] [--epochs N] [--grad-stats] [--half] [--profile]
//!                                               [--arch shared|cross_stitch|omoe|mmoe|cgc|ple|dselect_k:K --experts E --expert-hidden H]
//!                                               [--dump-step] [--dump-graph FILE.dot] [--grad-stats-every N]
//!                                               [--finetune EPOCHS [--freeze trunk]]
//!
//! METHOD: equal, uncertainty, dwa, rlw, famo, gradnorm, pcgrad, mgda, cagrad,
//! imtl_g, nash_mtl, upgrad, or fixed:w1,w2,w3.

use std::time::Instant;

use clap::Parser;
use taskgrad::data::{Dataset, Split, Table, TaskType};
use taskgrad::gpu::CpuThreads;
use taskgrad::mtl::{self, GradSpace};
use taskgrad::nn::{Arch, Freeze};
use taskgrad::train::metrics::delta_m;
use taskgrad::train::{
    finetune_per_task, fit, fit_lockstep, on_devices, single_task_baselines, EpochLog, FitReport,
    LockstepRun, TrainConfig, WatchedStep,
};
use taskgrad::Gpu;

#[derive(Parser)]
#[command(about = "Multi-task learning on Iris: MTL against single-task baselines")]
struct Args {
    /// The multi-task method.
    #[arg(long, default_value = "equal", long_help = taskgrad::mtl::weighting_help())]
    weighting: String,
    /// Where gradient-based methods take per-task gradients: params or rep.
    #[arg(long)]
    space: Option<String>,
    /// The shared part: shared (a trunk), cross_stitch, omoe, mmoe, cgc, ple or dselect_k:K.
    #[arg(long, default_value = "shared")]
    arch: String,
    /// Experts of a mixture (the shared ones for cgc and ple).
    #[arg(long, default_value_t = 4)]
    experts: usize,
    /// Each task's own experts (cgc, ple).
    #[arg(long, default_value_t = 1)]
    task_experts: usize,
    /// Width of each expert's output.
    #[arg(long, default_value_t = 32)]
    expert_hidden: usize,
    /// Stacked extraction layers (ple).
    #[arg(long, default_value_t = 2)]
    levels: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also train seeds seed+1, … (this many in all) and print Δm% as mean ± std.
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Train this many of the further seeds at once, each on a device of its
    /// own (the same adapter); the numbers do not depend on it.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Step the further seeds together on one device (their products and
    /// losses as single dispatches); the numbers do not depend on it.
    #[arg(long, conflicts_with = "jobs")]
    lockstep: bool,
    #[arg(long, default_value_t = 150)]
    epochs: usize,
    /// Print each task's gradient norm and the pairwise cosines every 10 epochs.
    #[arg(long)]
    grad_stats: bool,
    /// Train the multi-task model with f16 matmuls and activations (f32 master weights).
    #[arg(long)]
    half: bool,
    /// Report dispatches and time per step, and per-kernel GPU times (timestamp queries).
    #[arg(long)]
    profile: bool,
    /// Print the training step's dispatches, in order (kernel, grid, tensors).
    #[arg(long)]
    dump_step: bool,
    /// Write the step's graph (Graphviz DOT), each node with the last step's
    /// value and gradient; `dot -Tsvg FILE.dot > graph.svg` draws it.
    #[arg(long)]
    dump_graph: Option<std::path::PathBuf>,
    /// Every N steps, print each task's weight in the update and the
    /// gradients' cosines (per-task gradients for any method).
    #[arg(long, default_value_t = 0)]
    grad_stats_every: usize,
    /// Also fine-tune the multi-task model per task for this many epochs
    /// (each task's head alone, warm-started from it): the column MTL+FT.
    #[arg(long, value_name = "EPOCHS")]
    finetune: Option<usize>,
    /// What the fine-tuning holds fixed: none, trunk, or parameter names.
    #[arg(long, default_value = "none")]
    freeze: String,
}

/// The fine-tuning's settings: the run's, with --finetune's epochs and --freeze.
fn finetune_config(args: &Args, cfg: &TrainConfig) -> taskgrad::Result<Option<TrainConfig>> {
    let Some(epochs) = args.finetune else {
        return Ok(None);
    };
    Ok(Some(TrainConfig {
        epochs,
        freeze: Freeze::parse(&args.freeze)?,
        ..cfg.clone()
    }))
}

fn main() {
    taskgrad::gpu::quiet_graphics_stack();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// A Δm% over seeds: mean ± sample standard deviation, and each seed's.
fn print_over_seeds(what: &str, (first, last): (u64, u64), dms: &[f64]) {
    let n = dms.len() as f64;
    let mean = dms.iter().sum::<f64>() / n;
    let sd = (dms.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let each: Vec<String> = dms.iter().map(|d| format!("{d:+.2}")).collect();
    println!(
        "{what} over seeds {first}..={last}: {mean:+.2} ± {sd:.2} (each: {})",
        each.join(", ")
    );
}

fn print_grad_stats(log: &EpochLog) {
    if !log.epoch.is_multiple_of(10) || log.grad_norms.is_empty() {
        return;
    }
    let (n, c) = (&log.grad_norms, &log.cosines);
    println!(
        "epoch {:>3}: ‖g‖ species {:.4}, length {:.4}, width {:.4} | cos(s,l) {:+.3}, cos(s,w) {:+.3}, cos(l,w) {:+.3}",
        log.epoch, n[0], n[1], n[2], c[1], c[2], c[5]
    );
}

/// One watched step: each task's weight in the update, the cosines.
fn print_step(s: &WatchedStep) {
    let (w, c) = (&s.weights, &s.cosines);
    println!(
        "step {:>4} (epoch {:>3}): weights species {:.3}, length {:.3}, width {:.3} | cos(s,l) {:+.3}, cos(s,w) {:+.3}, cos(l,w) {:+.3}",
        s.step, s.epoch, w[0], w[1], w[2], c[1], c[2], c[5]
    );
}

const INPUTS: [&str; 2] = ["sepal_length", "sepal_width"];
const TASKS: [(&str, TaskType); 3] = [
    ("species", TaskType::CLASS),
    ("petal_length", TaskType::REG),
    ("petal_width", TaskType::REG),
];

/// Δm% of the method against the single-task baselines on another seed's
/// split, and of the method fine-tuned per task (with --finetune).
fn delta_m_for_seed(
    gpu: &Gpu,
    table: &Table,
    seed: u64,
    args: &Args,
    grad_space: Option<GradSpace>,
) -> taskgrad::Result<(f64, Option<f64>)> {
    let (data, split, cfg, mtl_cfg) = seed_setting(table, seed, args, grad_space)?;
    let method = mtl::by_name_seeded(&args.weighting, seed)?;
    let run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        method,
        &mtl_cfg,
        &mut |_| {},
    )?;
    let stl = single_task_baselines(gpu, &data, &split, &[0, 1, 2], &cfg)?;
    delta_ms(gpu, (&data, &split), args, &mtl_cfg, &run, &stl)
}

/// Seed `seed`'s split, data, and the single-task and multi-task settings.
fn seed_setting(
    table: &Table,
    seed: u64,
    args: &Args,
    grad_space: Option<GradSpace>,
) -> taskgrad::Result<(Dataset, Split, TrainConfig, TrainConfig)> {
    let split = Split::new(table.n_rows(), 0.2, 0.2, seed)?;
    let data = Dataset::from_table(table, &INPUTS, &TASKS, &split.train)?;
    let cfg = TrainConfig {
        epochs: args.epochs,
        seed,
        grad_space,
        ..Default::default()
    };
    let mtl_cfg = TrainConfig {
        half: args.half,
        arch: Arch::parse(
            &args.arch,
            args.experts,
            args.task_experts,
            args.expert_hidden,
            args.levels,
        )?,
        ..cfg.clone()
    };
    Ok((data, split, cfg, mtl_cfg))
}

/// [`delta_m_for_seed`] for several seeds, each model of all seeds stepped
/// together on one device (`fit_lockstep`): the same numbers.
fn delta_m_lockstep(
    gpu: &Gpu,
    table: &Table,
    seeds: &[u64],
    args: &Args,
    grad_space: Option<GradSpace>,
) -> taskgrad::Result<Vec<(f64, Option<f64>)>> {
    let settings = (seeds.iter())
        .map(|&seed| seed_setting(table, seed, args, grad_space))
        .collect::<taskgrad::Result<Vec<_>>>()?;
    let together = |subset: &[usize], multi: bool| {
        let runs = (settings.iter())
            .map(|(data, split, cfg, mtl_cfg)| LockstepRun {
                data,
                split,
                subset,
                weighting: match multi {
                    true => Box::new(move || mtl::by_name_seeded(&args.weighting, cfg.seed)),
                    false => Box::new(|| mtl::by_name("equal")),
                },
                cfg: if multi { mtl_cfg } else { cfg },
            })
            .collect();
        fit_lockstep(gpu, runs, &mut |_, _| {})
            .reports
            .into_iter()
            .collect::<taskgrad::Result<Vec<FitReport>>>()
    };
    let runs = together(&[0, 1, 2], true)?;
    let mut stl: Vec<Vec<FitReport>> = seeds.iter().map(|_| Vec::new()).collect();
    for k in 0..TASKS.len() {
        for (per_seed, r) in stl.iter_mut().zip(together(&[k], false)?) {
            per_seed.push(r);
        }
    }
    (settings.iter().zip(runs.iter().zip(&stl)))
        .map(|((data, split, _, mtl_cfg), (run, stl))| {
            delta_ms(gpu, (data, split), args, mtl_cfg, run, stl)
        })
        .collect()
}

/// Δm% of `run` against the single-task runs `stl`, and of `run` fine-tuned
/// per task (with --finetune).
fn delta_ms(
    gpu: &Gpu,
    (data, split): (&Dataset, &Split),
    args: &Args,
    mtl_cfg: &TrainConfig,
    run: &FitReport,
    stl: &[FitReport],
) -> taskgrad::Result<(f64, Option<f64>)> {
    let m: Vec<_> = run.test.iter().map(|t| t.primary()).collect();
    let s: Vec<_> = stl.iter().map(|r| r.test[0].primary()).collect();
    let ft = match finetune_config(args, mtl_cfg)? {
        Some(ft) => {
            let runs = finetune_per_task(gpu, data, split, &[0, 1, 2], run, &ft)?;
            let f: Vec<_> = runs.iter().map(|r| r.test[0].primary()).collect();
            Some(delta_m(&f, &s))
        }
        None => None,
    };
    Ok((delta_m(&m, &s), ft))
}

fn run(args: Args) -> taskgrad::Result<()> {
    let started = Instant::now();

    // Data: 150 rows; 60% train, 20% validation (early stopping), 20% test.
    let table = Table::from_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv"))?;
    let split = Split::new(table.n_rows(), 0.2, 0.2, args.seed)?;
    let tasks = TASKS;
    let data = Dataset::from_table(&table, &INPUTS, &tasks, &split.train)?;
    let grad_space = args.space.as_deref().map(GradSpace::parse).transpose()?;
    let arch = Arch::parse(
        &args.arch,
        args.experts,
        args.task_experts,
        args.expert_hidden,
        args.levels,
    )?;
    let cfg = TrainConfig {
        epochs: args.epochs,
        seed: args.seed,
        grad_space,
        ..Default::default()
    };

    // A CPU adapter runs a step this small on one thread
    // (`CpuThreads`: a dispatch handed to worker threads costs more here
    // than its arithmetic).
    let net = TrainConfig {
        arch: arch.clone(),
        ..cfg.clone()
    };
    // --lockstep steps the further seeds together: their products share dispatches.
    let runs = if args.lockstep { args.seeds.max(1) } else { 1 };
    let work = taskgrad::cli::run::step_work(&net, &data, &split, runs)?;
    let gpu = Gpu::new_with(CpuThreads::for_jobs(work, args.jobs))?;
    // The matmul's timed search (first run on an adapter only) is a step of
    // its own, announced and timed apart from training.
    let tuning = taskgrad::cli::tune_matmul(&gpu)?;

    // The multi-task model, then one single-task model per task.
    let method = mtl::by_name_seeded(&args.weighting, args.seed)?;
    let profile = args.profile && gpu.can_profile();
    let mtl_cfg = TrainConfig {
        grad_stats: args.grad_stats,
        profile,
        half: args.half,
        arch: arch.clone(),
        dump_step: args.dump_step,
        dump_graph: args.dump_graph.is_some(),
        watch_every: args.grad_stats_every,
        ..cfg.clone()
    };
    let mut on_epoch = |log: &EpochLog| {
        if args.grad_stats {
            print_grad_stats(log)
        }
        for s in &log.steps {
            print_step(s);
        }
    };
    let mtl_run = fit(
        &gpu,
        &data,
        &split,
        &[0, 1, 2],
        method,
        &mtl_cfg,
        &mut on_epoch,
    )?;
    let stl_runs = single_task_baselines(&gpu, &data, &split, &[0, 1, 2], &cfg)?;
    // The multi-task model fine-tuned per task (its own settings, no profiling or dumps).
    let ft_cfg = TrainConfig {
        half: args.half,
        arch: arch.clone(),
        ..cfg.clone()
    };
    let ft_runs = match finetune_config(&args, &ft_cfg)? {
        Some(ft) => finetune_per_task(&gpu, &data, &split, &[0, 1, 2], &mtl_run, &ft)?,
        None => Vec::new(),
    };
    let ft_col = |v: Option<f64>| match ft_runs.is_empty() {
        true => String::new(),
        false => format!(" {:>9.3}", v.unwrap_or(f64::NAN)),
    };

    // The table: per task, the test metric of MTL and of STL, then Δm%.
    println!(
        "taskgrad iris_mtl | adapter: {}{} | weighting: {} | arch: {} | seed {}",
        gpu.report,
        gpu.threads_note(),
        args.weighting,
        args.arch,
        args.seed
    );
    println!(
        "test split: {} rows (train {}, validation {})\n",
        split.test.len(),
        split.train.len(),
        split.val.len()
    );
    let ft_head = if ft_runs.is_empty() { "" } else { "    MTL+FT" };
    println!(
        "{:<14} {:<12} {:>9} {:>9}{ft_head}",
        "task", "metric", "MTL", "STL"
    );
    for (k, (name, _)) in tasks.iter().enumerate() {
        let (m, s) = (&mtl_run.test[k], &stl_runs[k].test[0]);
        // Each of the task's metrics (the primary one first), MTL beside STL.
        for (i, metric) in m.metrics.iter().enumerate() {
            let label = if i == 0 { *name } else { "" };
            let b = s.get(metric.name).unwrap_or(f64::NAN);
            let (a, what) = (metric.value, metric.name);
            let f = ft_col(ft_runs.get(k).and_then(|r| r.test[0].get(what)));
            println!("{label:<14} {what:<12} {a:>9.3} {b:>9.3}{f}");
        }
    }
    let mtl_primary: Vec<_> = mtl_run.test.iter().map(|m| m.primary()).collect();
    let stl_primary: Vec<_> = stl_runs.iter().map(|r| r.test[0].primary()).collect();
    let dm = delta_m(&mtl_primary, &stl_primary);
    println!("\nΔm% (MTL vs STL, accuracy and RMSE): {dm:+.2}");
    let dm_ft = match ft_runs.is_empty() {
        true => None,
        false => {
            let f: Vec<_> = ft_runs.iter().map(|r| r.test[0].primary()).collect();
            let d = delta_m(&f, &stl_primary);
            println!("Δm% (MTL+FT vs STL): {d:+.2}");
            Some(d)
        }
    };
    if args.seeds > 1 {
        let (mut dms, mut fts) = (vec![dm], dm_ft.into_iter().collect::<Vec<_>>());
        let more: Vec<u64> = (args.seed + 1..args.seed + args.seeds as u64).collect();
        let runs = match args.lockstep {
            true => delta_m_lockstep(&gpu, &table, &more, &args, grad_space)?,
            false => on_devices(&gpu, args.jobs, more, &mut |_| {}, |gpu, seed, _| {
                delta_m_for_seed(gpu, &table, seed, &args, grad_space)
            })?,
        };
        for (d, f) in runs {
            dms.push(d);
            fts.extend(f);
        }
        let seeds = (args.seed, args.seed + args.seeds as u64 - 1);
        print_over_seeds("Δm%", seeds, &dms);
        if !fts.is_empty() {
            print_over_seeds("Δm% of MTL+FT", seeds, &fts);
        }
    }
    let stl_wall: f64 = stl_runs.iter().map(|r| r.wall.as_secs_f64()).sum();
    println!(
        "MTL: {} steps, best epoch {}{}; wall time MTL {:.2} s, STL {:.2} s, matmul tuning {:.2} s, total {:.2} s",
        mtl_run.steps,
        mtl_run.best_epoch,
        if mtl_run.stopped_early {
            " (early stop)"
        } else {
            ""
        },
        mtl_run.wall.as_secs_f64(),
        stl_wall,
        tuning,
        started.elapsed().as_secs_f64()
    );
    if args.dump_step {
        println!(
            "\none training step: {} dispatches, one submit",
            mtl_run.step_listing.len()
        );
        for line in &mtl_run.step_listing {
            println!("{line}");
        }
    }
    if let Some(path) = &args.dump_graph {
        std::fs::write(path, &mtl_run.graph).map_err(|e| taskgrad::Error::Io {
            path: path.clone(),
            source: e,
        })?;
        println!(
            "\nwrote the step's graph to {} (draw it: dot -Tsvg {} > graph.svg)",
            path.display(),
            path.display()
        );
    }
    if args.profile {
        println!(
            "\nprofile: {} dispatches per step, {:.3} ms per training step (wall clock, evaluation excluded)",
            mtl_run.dispatches_per_step,
            mtl_run.ms_per_step()
        );
        if gpu.can_profile() {
            print!(
                "{}",
                taskgrad::gpu::profile::format_table(&mtl_run.profile, mtl_run.profiled_steps)
            );
        } else {
            println!(
                "(no per-kernel table: {} offers no timestamp queries)",
                gpu.report
            );
        }
    }
    Ok(())
}
