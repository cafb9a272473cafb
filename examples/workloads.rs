//! workloads: run one reference workload of WORKLOADS.md exactly as defined
//! and print one line, so the same work can be compared with other systems.
//!
//!     cargo run --release --example workloads -- W-iris  [--weighting M] [--unfused | --half]
//!     cargo run --release --example workloads -- W-synth [--weighting M] [--unfused | --half]
//!     cargo run --release --example workloads -- W-matmul
//!
//! `--profile` adds a per-kernel table (timestamp queries) for W-iris and W-synth.
//!
//! W-iris: 500 steps after 50 warm-up steps, the losses read back every 100
//! steps. W-synth: 50 steps after 5 warm-up steps. W-matmul: square f32
//! products at n = 256, 512, 1024, median time per product after warm-up,
//! the result read back once at the end. Times are wall clock around
//! submit-and-wait, so they include every fixed cost a user pays.

use std::time::Instant;

use clap::Parser;
use taskgrad::kernels::matmul::{matmul, MatmulOptions};
use taskgrad::train::step::StepOptions;
#[path = "common/workloads.rs"]
mod workloads;
use taskgrad::{Error, Gpu, Tensor};
use workloads::{w_iris, w_synth, Workload};

#[derive(Parser)]
struct Args {
    /// W-iris, W-synth or W-matmul.
    workload: String,
    /// Multi-task method for W-iris and W-synth.
    #[arg(long, default_value = "equal")]
    weighting: String,
    /// Build the unfused step (separate ReLU-backward and bias-gradient dispatches).
    #[arg(long)]
    unfused: bool,
    /// Matmuls and hidden activations in f16 (f32 accumulation, f32 master weights).
    #[arg(long)]
    half: bool,
    /// Also print per-kernel GPU times over a few profiled steps (timestamp queries).
    #[arg(long)]
    profile: bool,
}

fn print_profile(gpu: &Gpu, w: &mut Workload, steps: usize) -> taskgrad::Result<()> {
    let mut table = std::collections::BTreeMap::new();
    for _ in 0..steps {
        w.step_profiled(gpu, &mut table)?;
    }
    print!(
        "{}",
        taskgrad::gpu::profile::format_table(&taskgrad::gpu::profile::summarize(&table), steps)
    );
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn steps(
    gpu: &Gpu,
    w: &mut Workload,
    warmup: usize,
    measured: usize,
    read_every: usize,
) -> taskgrad::Result<(f64, f64)> {
    for _ in 0..warmup {
        w.step(gpu)?;
    }
    gpu.wait()?;
    let bytes_before = gpu.readback_bytes();
    let t = Instant::now();
    for i in 1..=measured {
        w.step(gpu)?;
        if i % read_every == 0 {
            let l = w.losses(gpu)?;
            if l.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    step: i as u64,
                    task: format!("{l:?}"),
                });
            }
        }
    }
    gpu.wait()?;
    let per_step = (gpu.readback_bytes() - bytes_before) as f64 / measured as f64;
    Ok((measured as f64 / t.elapsed().as_secs_f64(), per_step))
}

fn run(args: Args) -> taskgrad::Result<()> {
    let gpu = Gpu::new()?;
    let fused = !args.unfused;
    let opts = StepOptions {
        fused,
        half: args.half,
    };
    let half = args.half;
    match args.workload.to_ascii_lowercase().as_str() {
        "w-iris" => {
            let mut w = w_iris(&gpu, &args.weighting, opts)?;
            let (sps, bytes) = steps(&gpu, &mut w, 50, 500, 100)?;
            if args.profile {
                print_profile(&gpu, &mut w, 50)?;
            }
            println!(
                "workload=W-iris weighting={} fused={fused} half={half} steps_per_s={sps:.1} dispatches_per_step={} readback_bytes_per_step={bytes:.2} matmul_wg={:?} adapter=\"{}\"",
                args.weighting,
                w.dispatches_per_step(),
                taskgrad::kernels::matmul::workgroup(&gpu)?,
                gpu.report
            );
        }
        "w-synth" => {
            let mut w = w_synth(&gpu, &args.weighting, opts)?;
            let (sps, bytes) = steps(&gpu, &mut w, 5, 50, 10)?;
            if args.profile {
                print_profile(&gpu, &mut w, 3)?;
            }
            println!(
                "workload=W-synth weighting={} fused={fused} half={half} steps_per_s={sps:.3} dispatches_per_step={} readback_bytes_per_step={bytes:.2} matmul_wg={:?} adapter=\"{}\"",
                args.weighting,
                w.dispatches_per_step(),
                taskgrad::kernels::matmul::workgroup(&gpu)?,
                gpu.report
            );
        }
        "w-matmul" => {
            let mut line = String::from("workload=W-matmul");
            for n in [256usize, 512, 1024] {
                let a = Tensor::from_slice(&gpu, &[n, n], &vec![0.5; n * n], "A")?;
                let b = Tensor::from_slice(&gpu, &[n, n], &vec![0.25; n * n], "B")?;
                let c = Tensor::zeros(&gpu, &[n, n], "C")?;
                let d = matmul(&gpu, &a, &b, &c, MatmulOptions::default())?;
                gpu.run(&[&d])?;
                gpu.wait()?;
                let reps = if n <= 256 {
                    20
                } else if n <= 512 {
                    8
                } else {
                    4
                };
                let mut times = Vec::new();
                for _ in 0..reps {
                    let t = Instant::now();
                    gpu.run(&[&d])?;
                    gpu.wait()?;
                    times.push(t.elapsed().as_secs_f64());
                }
                times.sort_by(f64::total_cmp);
                let got = gpu.read_one(&c)?;
                let want = 0.5 * 0.25 * n as f32;
                if (got[0] - want).abs() > 1e-3 * want
                    || (got[n * n - 1] - want).abs() > 1e-3 * want
                {
                    return Err(Error::InvalidConfig(format!(
                        "W-matmul n={n}: wrong product {} vs {want}",
                        got[0]
                    )));
                }
                line += &format!(
                    " gflops_{n}={:.2}",
                    2.0 * (n as f64).powi(3) / times[reps / 2] / 1e9
                );
            }
            println!(
                "{line} matmul_wg={:?} adapter=\"{}\"",
                taskgrad::kernels::matmul::workgroup(&gpu)?,
                gpu.report
            );
        }
        other => {
            return Err(Error::InvalidConfig(format!(
                "unknown workload {other:?}: use W-iris, W-synth or W-matmul"
            )))
        }
    }
    Ok(())
}
