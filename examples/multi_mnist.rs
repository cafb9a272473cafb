//! multi_mnist: the MultiMNIST experiment of Sener & Koltun, "Multi-Task
//! Learning as Multi-Objective Optimization" (NeurIPS 2018, §5.1), and of
//! Lin et al.'s Pareto MTL (NeurIPS 2019), on the 5,000 MNIST digits the
//! project ships.
//!
//!     cargo run --release --example multi_mnist                  # every method, 3 seeds
//!     cargo run --release --example multi_mnist -- --methods equal,mgda --seeds 5 --epochs 30
//!     cargo run --release --example multi_mnist -- --methods equal,mgda --finetune 2 --freeze trunk
//!     cargo run --release --example multi_mnist -- --methods equal --net resnet --augment shift:2
//!
//! Data: two digits overlapping on one 28×28 image (`data::multimnist`:
//! the left one at the top left of a 36×36 canvas, the right one 6 pixels
//! down and right, resized to 28×28), tasks `left` and `right` (10 classes
//! each). The test images are made from 1,000 source digits that no
//! training image uses; 10% of the training images are the validation rows
//! that pick each run's best epoch. The papers use all of MNIST (60,000
//! training and 10,000 test digits): their accuracies are higher than what
//! 4,000 training digits allow, and are not what this reproduces.
//!
//! Network (the papers' LeNet): the shared trunk conv 1→10 k5, max-pool 2,
//! ReLU, conv 10→20 k5, max-pool 2, ReLU, flatten, linear 320→50, ReLU;
//! each task's tower linear 50→50, ReLU, then its output linear 50→10.
//! Sener & Koltun's code also drops channels after conv 2 and units in the
//! towers (p = 0.5); the network, and this one, has no dropout.
//! Adam, learning rate 5e-3, batches of 64. `--net resnet` swaps the trunk
//! for a small residual network ([`RESNET_TRUNK`]); `--augment shift:2`
//! moves each training image by up to 2 pixels each step.
//!
//! It trains, for each seed, each task alone (the single-task baselines,
//! same network with one head) and every method, and prints each task's
//! test accuracy and Δm% (the mean relative gain over the baselines) as
//! mean ± std over the seeds; results.txt and results.csv go to --out.
//! With `--finetune N`, each method's model is then fine-tuned per task for
//! N epochs (`train::finetune_per_task`), in the rows `<method>+ft`.
//! Seed s orders the minibatches, draws the weights and the validation rows
//! of every model trained for it; the images are the same for every seed.

use std::path::PathBuf;

use clap::Parser;
use taskgrad::cli::compare::{with_finetuned, write_results_csv, CompareOutcome};
use taskgrad::data::multimnist::{make_pairs, Digits, Encoded, TASKS};
use taskgrad::nn::{Freeze, LayerSpec};
use taskgrad::optim::OptimizerKind;
use taskgrad::train::{finetune_per_task, fit, single_task_baselines, TrainConfig};
use taskgrad::{mtl, Gpu};

#[derive(Parser)]
#[command(about = "MultiMNIST with the papers' LeNet: single-task baselines and every method")]
struct Args {
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Methods, comma-separated (default: every registered one).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// Training images per training digit (each with a random right digit).
    #[arg(long, default_value_t = 1)]
    pairs_per_digit: usize,
    #[arg(long, default_value_t = 5e-3)]
    lr: f32,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value = "runs/multi_mnist")]
    out: PathBuf,
    /// Also fine-tune each method's model per task for this many epochs
    /// (the rows <method>+ft).
    #[arg(long, value_name = "EPOCHS")]
    finetune: Option<usize>,
    /// What the fine-tuning holds fixed: none, trunk, or parameter names.
    #[arg(long, default_value = "none")]
    freeze: String,
    /// The shared trunk: lenet (the papers') or resnet (a small residual
    /// network of about the LeNet's arithmetic).
    #[arg(long, default_value = "lenet")]
    net: String,
    /// Augment the training images each step: e.g. "shift:2" (see `taskgrad
    /// train --help`, --augment).
    #[arg(long, value_delimiter = ',')]
    augment: Vec<String>,
}

/// The papers' LeNet trunk, as a layer list.
pub const LENET_TRUNK: &str =
    "conv:10x5,maxpool:2,relu,conv:20x5,maxpool:2,relu,flatten,linear:50,relu";
/// A small ResNet-style trunk (He et al., 2016) for 28×28 digits: a
/// 5×5 convolution and pooling to 12×12×8, a residual block of two 3×3
/// convolutions, a 3×3 convolution to 16 channels and pooling to 5×5, a
/// second residual block, then linear 400→50. About 0.5 M multiply-adds per
/// image, the LeNet's 0.46 M.
pub const RESNET_TRUNK: &str = "conv:8x5,maxpool:2,relu,res(conv:8x3p1,relu,conv:8x3p1),relu,\
conv:16x3,maxpool:2,relu,res(conv:16x3p1,relu,conv:16x3p1),relu,flatten,linear:50,relu";
/// Each task's tower before its output layer.
pub const LENET_TOWER: &str = "linear:50,relu";

fn main() {
    taskgrad::gpu::quiet_graphics_stack();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> taskgrad::Result<()> {
    let mnist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist_5k.csv.gz");
    let digits = Digits::read(&mnist)?;
    let (train_pairs, test_pairs) = make_pairs(&digits, 0.2, args.pairs_per_digit, 0)?;
    let set = Encoded::new(&digits, &train_pairs, &test_pairs)?;
    let (n_train, data) = (set.n_train, &set.data);

    // Every method defined for two tasks (Krum needs three), or those named.
    let methods: Vec<String> = match args.methods.is_empty() {
        true => (mtl::REGISTRY.iter())
            .filter(|m| m.min_tasks <= TASKS.len())
            .map(|m| m.name.to_string())
            .collect(),
        false => args.methods.clone(),
    };
    for m in &methods {
        mtl::Method::parse(m)?.check_for_tasks(TASKS.len())?;
    }
    let gpu = Gpu::new()?;
    eprintln!("adapter: {}", gpu.report);
    taskgrad::cli::tune_matmul(&gpu)?;
    eprintln!(
        "MultiMNIST: {n_train} training images (10% for validation), {} test images from other digits; {} methods, {} seeds, {} epochs",
        test_pairs.len(),
        methods.len(),
        args.seeds,
        args.epochs
    );
    let clock = std::time::Instant::now();
    let seeds: Vec<u64> = (0..args.seeds as u64).collect();
    let mut baselines = Vec::new();
    let mut results = vec![Vec::new(); methods.len()];
    let mut finetuned = vec![Vec::new(); methods.len()];
    for &seed in &seeds {
        let split = set.split(0.1, seed)?;
        let cfg = config(&args, seed)?;
        let mut stl = Vec::new();
        for (k, (task, _)) in TASKS.iter().enumerate() {
            let at = clock.elapsed().as_secs_f64();
            eprintln!("[{at:>5.0} s] seed {seed}, {task} alone");
            let r = single_task_baselines(&gpu, data, &split, &[k], &cfg)?;
            stl.extend(r.into_iter().flat_map(|r| r.test));
        }
        baselines.push(stl);
        for (mi, method) in methods.iter().enumerate() {
            eprintln!(
                "[{:>5.0} s] seed {seed}, {method}",
                clock.elapsed().as_secs_f64()
            );
            let weighting = mtl::Method::parse(method)?.build(seed)?;
            let report = fit(&gpu, data, &split, &[0, 1], weighting, &cfg, &mut |_| {})?;
            results[mi].push(report.test.clone());
            if let Some(epochs) = args.finetune {
                let ft = TrainConfig {
                    epochs,
                    freeze: Freeze::parse(&args.freeze)?,
                    ..cfg.clone()
                };
                let runs = finetune_per_task(&gpu, data, &split, &[0, 1], &report, &ft)?;
                finetuned[mi].push(runs.into_iter().flat_map(|r| r.test).collect());
            }
        }
    }
    // Each method's fine-tuned row after its own.
    let (methods, results) = match args.finetune {
        None => (methods, results),
        Some(_) => with_finetuned(&methods, results, finetuned),
    };
    let outcome = CompareOutcome {
        tasks: TASKS.iter().map(|t| t.0.to_string()).collect(),
        methods,
        seeds,
        baselines,
        results,
        files: Vec::new(),
    };
    let table = outcome.table();
    println!("\n{table}");
    println!(
        "test accuracy, mean ± std over {} seeds; --net {}{}; {:.0} s on {}",
        args.seeds,
        args.net,
        match args.augment.is_empty() {
            true => String::new(),
            false => format!(", --augment {}", args.augment.join(",")),
        },
        clock.elapsed().as_secs_f64(),
        gpu.report.name
    );
    std::fs::create_dir_all(&args.out).map_err(|e| taskgrad::Error::Io {
        path: args.out.clone(),
        source: e,
    })?;
    let path = args.out.join("results.txt");
    std::fs::write(&path, table).map_err(|e| taskgrad::Error::Io { path, source: e })?;
    write_results_csv(&args.out.join("results.csv"), &outcome)
}

fn config(args: &Args, seed: u64) -> taskgrad::Result<TrainConfig> {
    let trunk = match args.net.as_str() {
        "lenet" => LENET_TRUNK,
        "resnet" => RESNET_TRUNK,
        other => {
            return Err(taskgrad::Error::InvalidConfig(format!(
                "--net {other}: lenet or resnet"
            )))
        }
    };
    let mut trunk_layers = LayerSpec::parse_list(&args.augment.join(","))?;
    if let Some(l) = (trunk_layers.iter()).find(|l| !["shift", "flip"].contains(&l.name.as_str())) {
        return Err(taskgrad::Error::InvalidConfig(format!(
            "--augment {l}: use shift:S or flip"
        )));
    }
    trunk_layers.extend(LayerSpec::parse_list(trunk)?);
    Ok(TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        optimizer: OptimizerKind::Adam,
        lr: args.lr,
        seed,
        trunk: Vec::new(),
        trunk_layers,
        tower_layers: LayerSpec::parse_list(LENET_TOWER)?,
        ..TrainConfig::default()
    })
}
