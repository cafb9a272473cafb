//! penguins_mtl: Palmer penguins, three tasks of different kinds at once.
//!
//! Inputs: bill length, bill depth, flipper length (numeric, standardised) and
//! island (categorical, one-hot). Tasks: species (3 classes), sex (2 classes;
//! 11 rows have no sex recorded, and those rows are masked for that task only)
//! and body mass in grams (regression). Two rows without measurements are
//! dropped. The run folder gets model.safetensors, metrics.csv and plots, as
//! with `taskgrad train`.
//!
//!     cargo run --release --example penguins_mtl -- [--weighting M] [--seed S] [--out DIR]

use clap::Parser;
use taskgrad::cli::run::{execute_run, prepare_run, results_table, RunSettings};
use taskgrad::Gpu;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "equal")]
    weighting: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "runs/penguins")]
    out: std::path::PathBuf,
}

fn main() {
    taskgrad::gpu::quiet_graphics_stack();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> taskgrad::Result<()> {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let settings = RunSettings {
        data: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/data/penguins.csv").into()),
        inputs: strings(&[
            "bill_length_mm",
            "bill_depth_mm",
            "flipper_length_mm",
            "island",
        ]),
        tasks: strings(&["species:class", "sex:class", "body_mass_g:reg"]),
        weighting: args.weighting.clone(),
        seed: args.seed,
        epochs: 150,
        out: args.out,
        baselines: true,
        // The example rewrites its own folder on every run.
        force: true,
        ..Default::default()
    };
    let prepared = prepare_run(&settings)?;
    // A step this small runs on one thread of a CPU adapter (`CpuThreads`).
    let gpu = Gpu::new_with(prepared.cpu_threads()?)?;
    let outcome = execute_run(&gpu, prepared, &mut |_| {})?;
    let (tr, va, te) = outcome.split;
    println!(
        "taskgrad penguins_mtl | adapter: {}{} | weighting: {} | seed {}",
        gpu.report,
        gpu.threads_note(),
        args.weighting,
        args.seed
    );
    println!(
        "rows: train {tr}, validation {va}, test {te} ({} dropped: missing measurements)",
        outcome.dropped_rows
    );
    println!(
        "encoded inputs: {} features (island one-hot)\n",
        outcome.schema.width()
    );
    print!("{}", results_table(&outcome));
    println!("\nrun folder:");
    for f in &outcome.files {
        println!("  {}", f.display());
    }
    Ok(())
}
