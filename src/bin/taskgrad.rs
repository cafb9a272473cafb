//! taskgrad: train, evaluate and use multi-task models on your own CSV, on
//! whatever GPU the machine has.
//!
//!     taskgrad train --data penguins.csv --inputs bill_length_mm,island \
//!         --task species:class --task body_mass_g:reg --out runs/penguins
//!     taskgrad eval --model runs/penguins/model.safetensors --data penguins.csv
//!     taskgrad predict --model runs/penguins/model.safetensors --data new.csv --output preds.csv
//!     taskgrad info

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use taskgrad::cli::compare::{execute_compare, prepare_compare};
use taskgrad::cli::run::{execute_run, prepare_run_with_progress, results_table, RunSettings};
use taskgrad::cli::use_model::{eval, predict};
use taskgrad::train::{StepHook, StepProgress};
use taskgrad::{Gpu, Result};

#[derive(Parser)]
#[command(
    name = "taskgrad",
    version,
    about = "Multi-task learning on any GPU, from a CSV file"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a multi-task model; writes model.safetensors, metrics.csv and plots/ to --out.
    Train(Box<TrainArgs>),
    /// Metrics of a saved model on a CSV that has the model's input and task
    /// columns: on the training file, its held-out test rows (the split is
    /// saved with the model); on any other file, every row.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        /// Score every row, even of the training file (its training rows included).
        #[arg(long)]
        all_rows: bool,
    },
    /// Predictions of a saved model for every row of a CSV (one column per task).
    Predict {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        /// Output CSV (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Also write each class's probability.
        #[arg(long)]
        probabilities: bool,
    },
    /// Several methods on one CSV over several seeds, against single-task
    /// baselines: writes results.txt, results.csv and compare.svg|png to --out.
    Compare(Box<CompareArgs>),
    /// Fine-tune a saved multi-task model per task: for each task (the
    /// model's, or those --task names), a copy of the model with that task's
    /// head alone, trained on that task from the model's weights (as `train
    /// --init MODEL --task NAME`; --freeze trunk trains the head alone), into
    /// --out/<task>/; prints each task's test metrics before and after, on
    /// the model's test rows, and writes them to --out/results.txt.
    Finetune(Box<FinetuneArgs>),
    /// MultiMNIST (Sener & Koltun, 2018) from MNIST digits: two digits
    /// overlapping on one 28×28 image, tasks `left` and `right`; writes
    /// multimnist_train.csv and multimnist_test.csv (from disjoint digits) to --out.
    MakeMultimnist {
        /// MNIST as CSV lines of 784 pixels and a label (gzipped or not).
        #[arg(long, default_value = "data/mnist_5k.csv.gz")]
        mnist: PathBuf,
        #[arg(long, default_value = "data/multimnist")]
        out: PathBuf,
        /// Share of the source digits kept for the test images.
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        /// Images per source digit (as the left digit, each with a random right one).
        #[arg(long, default_value_t = 1)]
        pairs_per_digit: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Adapters found, the one chosen, its backend, limits and features.
    Info,
}

#[derive(Args)]
struct CompareArgs {
    /// The methods to compare, comma-separated (any name --weighting takes),
    /// or `all`: every registered method defined for the data's tasks.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "equal,uncertainty,pcgrad,mgda"
    )]
    methods: Vec<String>,
    /// Seeds: --seed, --seed + 1, …; each splits the rows, initialises and
    /// orders every model trained for it.
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Also fine-tune each method's model per task for this many epochs
    /// (each task's head alone kept, warm-started from the model; the best
    /// validation epoch kept; --freeze trunk trains the head alone): the
    /// rows <method>+ft.
    #[arg(long, value_name = "EPOCHS")]
    finetune: Option<usize>,
    /// Seeds trained at once, each on a device of its own on the same
    /// adapter; the results are the same as with 1 (one after another). On
    /// a 2-core CPU adapter 2 or 3 train about twice as fast.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
    /// Step the seeds of each model together: step i of every seed in one
    /// submit, their products and losses shared as single dispatches, each
    /// seed's numbers the same as alone. With --jobs J, J models (each
    /// with all its seeds) side by side, each on a device of its own.
    #[arg(long)]
    lockstep: bool,
    /// Settings from a TOML file (same names as the flags; flags given here win).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: RunSettings,
}

#[derive(Args)]
struct FinetuneArgs {
    /// The multi-task model to start from.
    #[arg(long)]
    model: PathBuf,
    /// Settings from a TOML file (same names as the flags; flags given here win).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: RunSettings,
}

#[derive(Args)]
struct TrainArgs {
    /// Settings from a TOML file (same names as the flags; flags given here win).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: RunSettings,
}

/// A closed output pipe (`taskgrad train … 2>&1 | head -2`) ends the
/// process as it ends `cat` or `grep`, by SIGPIPE, instead of a panic in the
/// next print (Rust ignores SIGPIPE, so the write fails). The run folder is
/// left as a killed run leaves it: the old files, and a lock the next run
/// takes over.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first in main, before any thread starts; restoring a
    // signal's default action has no other effect on this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    end_quietly_on_a_closed_pipe();
    taskgrad::gpu::quiet_graphics_stack();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Train(args) => train(
            matches.subcommand_matches("train").unwrap_or(&matches),
            args.config.as_deref(),
        ),
        Command::Eval {
            model,
            data,
            all_rows,
        } => eval(&model, &data, all_rows),
        Command::Predict {
            model,
            data,
            output,
            probabilities,
        } => predict(&model, &data, output.as_deref(), probabilities),
        Command::Compare(args) => compare(
            matches.subcommand_matches("compare").unwrap_or(&matches),
            &args,
        ),
        Command::Finetune(args) => finetune(
            matches.subcommand_matches("finetune").unwrap_or(&matches),
            &args,
        ),
        Command::MakeMultimnist {
            mnist,
            out,
            test_fraction,
            pairs_per_digit,
            seed,
        } => make_multimnist(&mnist, &out, test_fraction, pairs_per_digit, seed),
        Command::Info => info(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", taskgrad::cli::in_flags(&e));
            ExitCode::FAILURE
        }
    }
}

fn make_multimnist(
    mnist: &std::path::Path,
    out: &std::path::Path,
    test_fraction: f64,
    pairs_per_digit: usize,
    seed: u64,
) -> Result<()> {
    let w = taskgrad::cli::make_data::make_multimnist(
        mnist,
        out,
        test_fraction,
        pairs_per_digit,
        seed,
    )?;
    for (path, n) in [w.train, w.test] {
        println!("{}: {n} images", path.display());
    }
    Ok(())
}

fn train(matches: &ArgMatches, config: Option<&std::path::Path>) -> Result<()> {
    let settings = RunSettings::with_file(matches, config)?;
    let mut prepared = read_with_progress(&settings)?;
    for w in &prepared.warnings {
        eprintln!("warning: {w}");
    }
    let gpu = Gpu::new_with(prepared.cpu_threads()?)?;
    eprintln!("adapter: {}{}", gpu.report, gpu.threads_note());
    taskgrad::cli::tune_matmul(&gpu)?;
    if settings.profile && !gpu.can_profile() {
        eprintln!(
            "--profile: {} offers no timestamp queries; no per-kernel table",
            gpu.report
        );
        prepared.cfg.profile = false;
    }
    let names: Vec<String> = prepared.data.tasks.iter().map(|t| t.name.clone()).collect();
    let epochs = prepared.cfg.epochs;
    let bar = step_bar(&mut prepared.cfg);
    let outcome = execute_run(&gpu, prepared, &mut |log| {
        let losses: Vec<String> = log.train_loss.iter().map(|l| format!("{l:.4}")).collect();
        bar.set_message(format!(
            "epoch {}/{epochs} train loss [{}]",
            log.epoch + 1,
            losses.join(", ")
        ));
        // Not on a terminal the bar is hidden: one plain line per epoch instead.
        if bar.is_hidden() {
            eprintln!(
                "epoch {}/{} train loss [{}]",
                log.epoch + 1,
                epochs,
                losses.join(", ")
            );
        }
        if settings.grad_stats {
            let line = grad_stats_line(&names, log);
            match bar.is_hidden() {
                true => println!("{line}"),
                false => bar.println(line),
            }
        }
    });
    bar.finish_and_clear();
    print_outcome(&settings, &outcome?);
    Ok(())
}

/// A progress bar over the run's steps (rows per second and the time left,
/// moving every step, through the trainer's step hook); the caller sets the
/// epoch's losses as its message.
fn step_bar(cfg: &mut taskgrad::train::TrainConfig) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps ({prefix}, {eta} left) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (hook_bar, started) = (bar.clone(), std::time::Instant::now());
    let rows_done = std::sync::atomic::AtomicU64::new(0);
    cfg.on_step = Some(StepHook::new(move |p: StepProgress| {
        let rows = rows_done.fetch_add(p.rows as u64, std::sync::atomic::Ordering::Relaxed)
            + p.rows as u64;
        hook_bar.set_length(p.total);
        hook_bar.set_position(p.done);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        hook_bar.set_prefix(format!("{:.0} rows/s", rows as f64 / secs));
    }));
    bar
}

/// What a finished run prints: rows, epochs, the test table, and on request
/// the step listing and the profile; then the files written.
fn print_outcome(settings: &RunSettings, outcome: &taskgrad::cli::run::RunOutcome) {
    let r = &outcome.report;
    if outcome.dropped_rows > 0 {
        println!(
            "dropped {} rows with a missing input value (use --impute mean to keep them)",
            outcome.dropped_rows
        );
    }
    for t in &outcome.schema.tasks {
        let kind = t.kind_name();
        println!("task {}: {kind}, {}", t.name, t.kind.describe());
    }
    let (tr, va, te) = outcome.split;
    println!(
        "rows: train {tr}, validation {va}, test {te}; {} epochs (best {}{}), {} steps, {:.2} s",
        r.history.len(),
        r.best_epoch,
        if r.stopped_early { ", early stop" } else { "" },
        r.steps,
        r.wall.as_secs_f64()
    );
    println!("\ntest split:\n{}", results_table(outcome));
    if settings.dump_step {
        println!(
            "one training step: {} dispatches, one submit\n{}",
            r.step_listing.len(),
            r.step_listing.join("\n")
        );
    }
    if settings.profile {
        println!(
            "profile: {} dispatches per step, {:.3} ms per training step (wall clock, evaluation excluded)",
            r.dispatches_per_step,
            r.ms_per_step()
        );
        if !r.profile.is_empty() {
            print!(
                "{}",
                taskgrad::gpu::profile::format_table(&r.profile, r.profiled_steps)
            );
        }
    }
    println!("wrote:");
    for f in &outcome.files {
        println!("  {}", f.display());
    }
}

/// Read and check the run's data, with a byte progress bar while a large CSV
/// loads (a line when it is done, off a terminal).
fn read_with_progress(settings: &RunSettings) -> Result<taskgrad::cli::run::PreparedRun> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} reading {bytes}/{total_bytes} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut size = 0;
    let prepared = prepare_run_with_progress(settings, &mut |at, total| {
        size = total;
        bar.set_length(total);
        bar.set_position(at);
    });
    bar.finish_and_clear();
    let prepared = prepared?;
    if size > 8 << 20 {
        eprintln!(
            "read {} MB, {} rows, in {:.1} s",
            size >> 20,
            prepared.data.n,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(prepared)
}

fn compare(matches: &ArgMatches, args: &CompareArgs) -> Result<()> {
    let mut settings = RunSettings::with_file(matches, args.config.as_deref())?;
    if matches.value_source("out") != Some(clap::parser::ValueSource::CommandLine)
        && args.config.is_none()
    {
        settings.out = PathBuf::from("runs/compare");
    }
    let prepared = prepare_compare(&settings, &args.methods, args.seeds, args.finetune)?
        .with_jobs(args.jobs as usize)
        .with_lockstep(args.lockstep);
    for w in prepared.warnings() {
        eprintln!("warning: {w}");
    }
    let gpu = Gpu::new_with(prepared.cpu_threads()?)?;
    eprintln!("adapter: {}{}", gpu.report, gpu.threads_note());
    taskgrad::cli::tune_matmul(&gpu)?;
    let bar = ProgressBar::new(prepared.fits() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len}, {elapsed} (ETA {eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let total = prepared.fits();
    let mut started = 0usize;
    let outcome = execute_compare(&gpu, prepared, &mut |what| {
        if started > 0 {
            bar.inc(1);
        }
        started += 1;
        bar.set_message(what.to_string());
        if bar.is_hidden() {
            eprintln!("[{started}/{total}] {what}");
        }
    });
    bar.finish_and_clear();
    let outcome = outcome?;
    print!("{}", outcome.table());
    println!("wrote:");
    for f in &outcome.files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn finetune(matches: &ArgMatches, args: &FinetuneArgs) -> Result<()> {
    use taskgrad::cli::finetune;
    let mut settings = RunSettings::with_file(matches, args.config.as_deref())?;
    if matches.value_source("out") != Some(clap::parser::ValueSource::CommandLine)
        && args.config.is_none()
    {
        settings.out = PathBuf::from("runs/finetune");
    }
    // Every run read and checked before the first trains: a bad second
    // folder fails now, not after the first task's training.
    let runs = finetune::per_task_settings(&settings, &args.model)?;
    let prepared = runs
        .iter()
        .map(read_with_progress)
        .collect::<Result<Vec<_>>>()?;
    for w in prepared.iter().flat_map(|p| &p.warnings) {
        eprintln!("warning: {w}");
    }
    // Each task's fine-tuning trains the same network on the same batches.
    let threads = match prepared.first() {
        Some(p) => p.cpu_threads()?,
        None => taskgrad::gpu::CpuThreads::Driver,
    };
    let gpu = Gpu::new_with(threads)?;
    eprintln!("adapter: {}{}", gpu.report, gpu.threads_note());
    taskgrad::cli::tune_matmul(&gpu)?;
    let parent = finetune::parent_metrics(&gpu, &settings, &args.model)?;
    let mut outcomes = Vec::new();
    for mut p in prepared {
        let task = p.data.tasks[0].name.clone();
        let bar = step_bar(&mut p.cfg);
        let outcome = execute_run(&gpu, p, &mut |log| {
            bar.set_message(format!("{task}: epoch {}", log.epoch + 1));
        });
        bar.finish_and_clear();
        let outcome = outcome?;
        let r = &outcome.report;
        eprintln!(
            "{task}: {} epochs (best {}), {:.2} s",
            r.history.len(),
            r.best_epoch,
            r.wall.as_secs_f64()
        );
        outcomes.push(outcome);
    }
    let table = finetune::table(&parent, &outcomes);
    print!("\ntest split:\n{table}");
    let results = settings.out.join("results.txt");
    std::fs::write(&results, &table).map_err(|e| taskgrad::Error::Io {
        path: results.clone(),
        source: e,
    })?;
    println!("wrote:\n  {}", results.display());
    for o in &outcomes {
        for f in o.files.iter().filter(|f| f.ends_with("model.safetensors")) {
            println!("  {}", f.display());
        }
    }
    Ok(())
}

/// One epoch's per-task gradient norms, pairwise cosines and task weights.
fn grad_stats_line(names: &[String], log: &taskgrad::train::EpochLog) -> String {
    let k = names.len();
    let mut line = format!("epoch {:>3}:", log.epoch + 1);
    if log.grad_norms.is_empty() {
        line += " (no per-task gradients)";
    } else {
        let norms: Vec<String> = (0..k)
            .map(|i| format!("{} {:.4}", names[i], log.grad_norms[i]))
            .collect();
        let cos: Vec<String> = (0..k)
            .flat_map(|a| (a + 1..k).map(move |b| (a, b)))
            .map(|(a, b)| {
                format!(
                    "cos({},{}) {:+.3}",
                    names[a],
                    names[b],
                    log.cosines[a * k + b]
                )
            })
            .collect();
        line += &format!(" ‖g‖ {} | {}", norms.join(", "), cos.join(", "));
    }
    let weights: Vec<String> = (0..k)
        .map(|i| format!("{} {:.3}", names[i], log.weights[i]))
        .collect();
    line += &format!(" | weights {}", weights.join(", "));
    if !log.gates.is_empty() {
        let gates: Vec<String> = (0..k)
            .map(|i| {
                let g: Vec<String> = log.gates[i].iter().map(|v| format!("{v:.2}")).collect();
                format!("{} [{}]", names[i], g.join(" "))
            })
            .collect();
        line += &format!(" | gates {}", gates.join(", "));
    }
    line
}

fn info() -> Result<()> {
    let all = taskgrad::gpu::list_adapters();
    println!("adapters found:");
    if all.is_empty() {
        println!("  (none)");
    }
    for a in &all {
        println!("  {a}");
    }
    let gpu = Gpu::new()?;
    let l = &gpu.limits;
    println!("\nchosen: {}", gpu.report);
    println!("backend: {:?}", gpu.report.backend);
    println!("limits: max storage binding {} bytes, max buffer {} bytes, {} workgroups per dimension, {} invocations per workgroup, {} storage buffers per stage",
        l.max_storage_buffer_binding_size, l.max_buffer_size, l.max_compute_workgroups_per_dimension, l.max_compute_invocations_per_workgroup, l.max_storage_buffers_per_shader_stage);
    let f = gpu.adapter.features();
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "features: f16 {}, timestamps {}, subgroups {}",
        yes(f.contains(taskgrad::wgpu::Features::SHADER_F16)),
        yes(f.contains(taskgrad::wgpu::Features::TIMESTAMP_QUERY)),
        yes(f.contains(taskgrad::wgpu::Features::SUBGROUP))
    );
    let coop: Vec<String> = gpu
        .adapter
        .cooperative_matrix_properties()
        .iter()
        .map(|c| {
            format!(
                "{}x{}x{} {:?}->{:?}",
                c.m_size, c.n_size, c.k_size, c.ab_type, c.cr_type
            )
        })
        .collect();
    println!(
        "cooperative matrices: {}{}",
        if coop.is_empty() {
            "none".to_string()
        } else {
            coop.join(", ")
        },
        if gpu.has_coop_f16() {
            " (the f16 tensor-core matmul is in use)"
        } else {
            ""
        }
    );
    let choice = taskgrad::kernels::matmul::choice(&gpu)?;
    println!(
        "matmul (timed search, cached): register-blocked workgroup {:?}{}{}{}; products of {} \
         multiply-adds and more: {} {:?}",
        choice.register_wg,
        if choice.rows {
            " (small products of 8 rows or more: the rows kernels)"
        } else {
            ""
        },
        if choice.unrolled {
            format!(
                " (products of at most {} terms per row or column, one run at a time: \
                 the written-out kernel)",
                taskgrad::kernels::matmul_unrolled::MAX_TERMS
            )
        } else {
            String::new()
        },
        if choice.lanes {
            " (the other small products of at least 8 rows and 16 columns, one run at a time, \
             where the layout allows: the subgroup kernel)"
        } else {
            ""
        },
        taskgrad::kernels::matmul::LARGE_MACS,
        choice.large.name(),
        choice.large_wg
    );
    if gpu.report.device_type == taskgrad::wgpu::DeviceType::Cpu {
        println!(
            "threads: train, compare and finetune run a step of at most {} forward \
             multiply-adds (batch x parameters) with each dispatch on one thread \
             (LP_NUM_THREADS=0), larger ones on the driver's workers unless --jobs fills \
             the cores; an LP_NUM_THREADS you set wins",
            taskgrad::gpu::CpuThreads::INLINE_UP_TO
        );
    }
    Ok(())
}
