//! workloads: run one reference workload of WORKLOADS.md exactly as defined
//! and print one line, so the same work can be compared with other systems.
//!
//!     cargo run --release --example workloads -- W-iris  [--weighting M] [--unfused | --half] [--hidden 64,64]
//!     cargo run --release --example workloads -- W-synth [--weighting M] [--unfused | --half]
//!     cargo run --release --example workloads -- W-lenet [--weighting M]
//!     cargo run --release --example workloads -- W-matmul [--sizes 256,512,1024] [--kernel naive|register|rows|tiled|tiled32] [--half] [--per-submit N]
//!
//! `--profile` adds a per-kernel table (timestamp queries) for W-iris and W-synth.
//!
//! W-iris: 500 steps after 50 warm-up steps, the losses read back every 100
//! steps. W-synth: 50 steps after 5 warm-up steps. W-lenet: 20 steps after
//! 3 warm-up steps, with the conv layers' GFLOP/s (multiply-adds of their
//! forward and backward products, counted from the shapes). W-matmul: square f32
//! products at n = 256, 512, 1024, median time per product after warm-up,
//! the result read back once at the end. Times are wall clock around
//! submit-and-wait, so they include every fixed cost a user pays.

use std::time::Instant;

use clap::Parser;
use taskgrad::gpu::CpuThreads;
use taskgrad::kernels::matmul::{self, MatmulKernel, MatmulOptions};
use taskgrad::kernels::{matmul_coop, matmul_f16};
use taskgrad::train::step::StepOptions;
#[path = "common/workloads.rs"]
mod workloads;
use taskgrad::{Error, Gpu, Tensor};
use workloads::{w_iris, w_lenet, w_synth_arch, Workload};

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
    /// W-matmul: the square sizes n.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
    sizes: Vec<usize>,
    /// W-matmul: naive, register, rows, tiled or tiled32 (default: the kernel chosen for this
    /// adapter and size); with --half, coop, coop-staged or mixed (default: coop where the
    /// adapter has it).
    #[arg(long)]
    kernel: Option<String>,
    /// W-matmul: products per submit (1: each product is submitted and waited for alone).
    #[arg(long, default_value_t = 1)]
    per_submit: usize,
    /// W-synth: the shared part, shared (the 512-512 trunk) or a mixture of
    /// experts (mmoe, omoe, cgc, ple) of --experts × --expert-hidden.
    #[arg(long, default_value = "shared")]
    arch: String,
    #[arg(long, default_value_t = 8)]
    experts: usize,
    #[arg(long, default_value_t = 64)]
    expert_hidden: usize,
    /// W-iris: the trunk's hidden widths (WORKLOADS.md's is 64,64; others
    /// measure how the step scales with the network).
    #[arg(long, value_delimiter = ',', default_value = "64,64")]
    hidden: Vec<usize>,
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
    taskgrad::gpu::quiet_graphics_stack();
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
    // A CPU adapter runs a small step on this thread alone (`CpuThreads`);
    // W-synth's and W-lenet's steps are hundreds of times larger.
    let threads = match args.workload.to_ascii_lowercase().as_str() {
        "w-iris" => workloads::iris_threads(&args.hidden)?,
        _ => CpuThreads::Driver,
    };
    let gpu = Gpu::new_with(threads)?;
    let fused = !args.unfused;
    let opts = StepOptions {
        fused,
        half: args.half,
        mlp_step: taskgrad::train::mlp_step::requested(),
    };
    let half = args.half;
    match args.workload.to_ascii_lowercase().as_str() {
        "w-iris" => {
            let mut w = if args.hidden == [64, 64] {
                w_iris(&gpu, &args.weighting, opts)?
            } else {
                let lr = workloads::adam(1e-2);
                workloads::iris_variant(&gpu, &args.weighting, None, args.hidden.clone(), lr, opts)?
            };
            let (sps, bytes) = steps(&gpu, &mut w, 50, 500, 100)?;
            if args.profile {
                print_profile(&gpu, &mut w, 50)?;
            }
            println!(
                "workload=W-iris weighting={} fused={fused} half={half} steps_per_s={sps:.1} dispatches_per_step={} readback_bytes_per_step={bytes:.2} matmul_wg={:?} cpu_threads={:?} adapter=\"{}\"",
                args.weighting,
                w.dispatches_per_step(),
                taskgrad::kernels::matmul::workgroup(&gpu)?,
                gpu.cpu_threads,
                gpu.report
            );
        }
        "w-synth" => {
            let arch =
                taskgrad::nn::Arch::parse(&args.arch, args.experts, 1, args.expert_hidden, 2)?;
            let mut w = w_synth_arch(&gpu, &args.weighting, opts, arch)?;
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
        "w-lenet" => {
            let mut w = w_lenet(&gpu, &args.weighting, opts)?;
            let (sps, bytes) = steps(&gpu, &mut w, 3, 20, 10)?;
            if args.profile {
                print_profile(&gpu, &mut w, 3)?;
            }
            println!(
                "workload=W-lenet weighting={} steps_per_s={sps:.3} images_per_s={:.0} step_gflop={:.3} gflop_per_s={:.2} dispatches_per_step={} readback_bytes_per_step={bytes:.2} adapter=\"{}\"",
                args.weighting,
                sps * 256.0,
                LENET_STEP_FLOP / 1e9,
                sps * LENET_STEP_FLOP / 1e9,
                w.dispatches_per_step(),
                gpu.report
            );
        }
        "w-matmul" => {
            let line = w_matmul(&gpu, &args)?;
            println!("{line} adapter=\"{}\"", gpu.report);
        }
        other => {
            return Err(Error::InvalidConfig(format!(
                "unknown workload {other:?}: use W-iris, W-synth, W-lenet or W-matmul"
            )))
        }
    }
    Ok(())
}

/// FLOPs (2 per multiply-add) of one W-lenet step's products at batch 256:
/// conv 1 forward and weight gradient (147456×25 by 25×10; its input needs
/// no gradient), conv 2 forward, weight and input gradients (16384×250 by
/// 250×20), and the dense layers' three products each (256×320·320×50,
/// and per task 256×50·50×50 and 256×50·50×10).
const LENET_STEP_FLOP: f64 = 2.0
    * (2.0 * 147456.0 * 25.0 * 10.0
        + 3.0 * 16384.0 * 250.0 * 20.0
        + 3.0 * 256.0 * 320.0 * 50.0
        + 2.0 * 3.0 * 256.0 * 50.0 * (50.0 + 10.0));

/// W-matmul: C = A·B for square n, median time per product after a warm-up,
/// the result checked once at the end. With `--half`, A and B are f16 (f32
/// accumulation and output, `matmul_mixed`).
fn w_matmul(gpu: &Gpu, args: &Args) -> taskgrad::Result<String> {
    let half_kernel = args.kernel.clone().unwrap_or_else(|| "coop".into());
    let forced = match &args.kernel {
        Some(k) if !args.half => Some(MatmulKernel::parse(k)?),
        _ => matmul::forced_kernel(gpu)?,
    };
    let choice = matmul::choice(gpu)?;
    let mut line = format!(
        "workload=W-matmul half={} per_submit={} choice={:?}",
        args.half, args.per_submit, choice
    );
    for &n in &args.sizes {
        let (av, bv) = (vec![0.5; n * n], vec![0.25; n * n]);
        let (a, b) = if args.half {
            (
                Tensor::from_f16(gpu, &[n, n], &av, "A")?,
                Tensor::from_f16(gpu, &[n, n], &bv, "B")?,
            )
        } else {
            (
                Tensor::from_slice(gpu, &[n, n], &av, "A")?,
                Tensor::from_slice(gpu, &[n, n], &bv, "B")?,
            )
        };
        let c = Tensor::zeros(gpu, &[n, n], "C")?;
        let opts = MatmulOptions::default();
        let (kernel, wg) = choice.for_product((n, n, n), forced);
        let coop = args.half
            && half_kernel.starts_with("coop")
            && matmul_coop::supports(gpu, &a, &b, &c, &opts);
        let staged = coop && half_kernel == "coop-staged" && matmul_coop::staged_fits(gpu, n, n, n);
        let d = if coop {
            let variant = if staged {
                matmul_coop::CoopVariant::Staged
            } else {
                matmul_coop::CoopVariant::Direct
            };
            matmul_coop::matmul_coop_variant(gpu, &a, &b, &c, opts, variant)?
        } else if args.half {
            matmul_f16::matmul_mixed(gpu, &a, &b, &c, opts, matmul::workgroup(gpu)?)?
        } else {
            matmul::matmul_kernel(gpu, &a, &b, &c, opts, kernel, wg)?
        };
        let per = args.per_submit.max(1);
        let ds: Vec<_> = std::iter::repeat_n(&d, per).collect();
        gpu.run(&ds)?;
        gpu.wait()?;
        let reps = (2e10 / (2.0 * (n as f64).powi(3) * per as f64)).clamp(3.0, 20.0) as usize;
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            gpu.run(&ds)?;
            gpu.wait()?;
            times.push(t.elapsed().as_secs_f64() / per as f64);
        }
        times.sort_by(f64::total_cmp);
        let got = gpu.read_one(&c)?;
        let want = 0.5 * 0.25 * n as f32;
        if (got[0] - want).abs() > 1e-3 * want || (got[n * n - 1] - want).abs() > 1e-3 * want {
            return Err(Error::InvalidConfig(format!(
                "W-matmul n={n}: wrong product {} vs {want}",
                got[0]
            )));
        }
        let name = match (coop, args.half) {
            (true, _) if staged => "coop-staged",
            (true, _) => "coop",
            (false, true) => "mixed",
            (false, false) => kernel.name(),
        };
        line += &format!(
            " gflops_{n}={:.2} kernel_{n}={name}",
            2.0 * (n as f64).powi(3) / times[reps / 2] / 1e9
        );
    }
    Ok(line)
}
