//! The demo's work in plain Rust (no JavaScript types), so that the same
//! code is tested natively on lavapipe and runs in the page through WebGPU.
//!
//! Two data sets are bundled:
//! - **Iris** (the default). The split, network and budget are those of
//!   `examples/iris_mtl.rs`: 60% train, 20% validation (early stopping, best
//!   epoch kept), 20% test; inputs sepal length and width; species (3-class
//!   cross-entropy), petal length and petal width (MSE) learned together,
//!   then each task alone as its single-task baseline.
//! - **MultiMNIST** on a subset of the shipped MNIST digits, with the LeNet
//!   of `examples/multi_mnist.rs` (Sener & Koltun's network: two
//!   convolutions and max-poolings as the shared trunk, a tower per digit):
//!   `digits` digits drawn from `data/mnist_5k.csv.gz`, a fifth of them
//!   the sources of the test images, one two-digit image per source digit;
//!   a tenth of the training images for validation.

use serde::{Deserialize, Serialize};
use taskgrad::data::multimnist::{self, make_pairs, Digits, Encoded};
use taskgrad::data::{Dataset, Split, Table, TaskType};
use taskgrad::mtl;
use taskgrad::nn::{Arch, LayerSpec};
use taskgrad::optim::OptimizerKind;
use taskgrad::train::metrics::delta_m;
use taskgrad::train::{fit_async, EpochLog, TrainConfig};
use taskgrad::{Error, Gpu, Result};

/// `data/iris.csv`, compiled in.
pub const IRIS_CSV: &str = include_str!("../../data/iris.csv");
pub const INPUTS: [&str; 2] = ["sepal_length", "sepal_width"];
pub const TASKS: [(&str, TaskType); 3] = [
    ("species", TaskType::CLASS),
    ("petal_length", TaskType::REG),
    ("petal_width", TaskType::REG),
];

/// `data/mnist_5k.csv.gz` (5,000 digits, 1.1 MB), compiled in: the page has
/// no file system, and the MultiMNIST images are made from these digits.
pub const MNIST_GZ: &[u8] = include_bytes!("../../data/mnist_5k.csv.gz");

/// The data sets the page offers.
pub const DATASETS: [&str; 2] = ["iris", "multimnist"];

/// What the page asks for (JSON; every field optional).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// `iris` or `multimnist` ([`DATASETS`]).
    pub dataset: String,
    /// MultiMNIST: how many of the shipped digits to build images from
    /// (50 to 5000; a fifth are the test images' sources).
    pub digits: usize,
    /// A method name `taskgrad::mtl::by_name` takes (e.g. `upgrad`, `fixed:1,2,1`).
    pub method: String,
    /// `shared`, `omoe`, `mmoe`, `cgc` or `ple` (4 experts of width 32, as iris_mtl).
    pub arch: String,
    pub seed: u64,
    pub epochs: usize,
    /// Train the single-task baselines too (the MTL-versus-STL table and Δm%).
    pub baselines: bool,
    /// f16 matmuls and activations; refused where the adapter has no shader-f16.
    pub half: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dataset: "iris".into(),
            digits: 1000,
            method: "upgrad".into(),
            arch: "shared".into(),
            seed: 0,
            epochs: 100,
            baselines: true,
            half: false,
        }
    }
}

impl Options {
    pub fn from_json(text: &str) -> Result<Options> {
        let opts: Options = serde_json::from_str(text)
            .map_err(|e| Error::InvalidConfig(format!("demo options {text:?}: {e}")))?;
        if !(1..=2000).contains(&opts.epochs) {
            return Err(Error::InvalidConfig(format!(
                "epochs {}: choose 1 to 2000",
                opts.epochs
            )));
        }
        if !DATASETS.contains(&opts.dataset.as_str()) {
            return Err(Error::InvalidConfig(format!(
                "dataset {:?}: choose one of {DATASETS:?}",
                opts.dataset
            )));
        }
        if !(50..=5000).contains(&opts.digits) {
            return Err(Error::InvalidConfig(format!(
                "digits {}: choose 50 to 5000 (the shipped MNIST digits)",
                opts.digits
            )));
        }
        if opts.dataset == "multimnist" && opts.arch != "shared" {
            return Err(Error::InvalidConfig(format!(
                "arch {:?}: the MultiMNIST demo trains the LeNet, a shared trunk (\"shared\")",
                opts.arch
            )));
        }
        Ok(opts)
    }
}

/// One epoch of one run, as the page draws it.
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    /// `"mtl"`, or the task a single-task baseline is learning.
    pub run: String,
    /// The data set's tasks, in the order of every per-task list below.
    pub tasks: Vec<String>,
    pub epoch: usize,
    pub epochs: usize,
    /// Mean training loss per task over the epoch.
    pub train_loss: Vec<f64>,
    /// Validation loss per task.
    pub val_loss: Vec<f64>,
    /// Each task's weight in the epoch's last update (seed × combination weight).
    pub weights: Vec<f64>,
    /// Every step of the epoch (multi-task run): its number, each task's
    /// weight in its update, and the K×K cosines of the per-task gradients.
    pub steps: Vec<StepWeights>,
    /// ‖g_k‖ and the K×K cosines of the per-task gradients at the epoch's last step.
    pub grad_norms: Vec<f64>,
    pub cosines: Vec<f64>,
    /// Each task's gate over the experts (mixtures only).
    pub gates: Vec<Vec<f64>>,
}

/// One training step's task weights and gradient cosines.
#[derive(Clone, Debug, Serialize)]
pub struct StepWeights {
    pub step: u64,
    pub weights: Vec<f64>,
    pub cosines: Vec<f64>,
}

impl Progress {
    fn of(run: &str, tasks: &[String], log: &EpochLog, epochs: usize) -> Progress {
        Progress {
            run: run.into(),
            tasks: tasks.to_vec(),
            epoch: log.epoch,
            epochs,
            train_loss: log.train_loss.clone(),
            val_loss: log.val.iter().map(|m| m.loss()).collect(),
            weights: log.weights.clone(),
            steps: log
                .steps
                .iter()
                .map(|s| StepWeights {
                    step: s.step,
                    weights: s.weights.clone(),
                    cosines: s.cosines.clone(),
                })
                .collect(),
            grad_norms: log.grad_norms.clone(),
            cosines: log.cosines.clone(),
            gates: log.gates.clone(),
        }
    }
}

/// One task's line of the final table: its test metric, multi-task and alone.
#[derive(Clone, Debug, Serialize)]
pub struct TaskRow {
    pub task: String,
    /// `accuracy` or `RMSE`.
    pub metric: String,
    pub higher_is_better: bool,
    pub mtl: f64,
    pub stl: Option<f64>,
}

/// The result of [`train`].
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub adapter: String,
    pub dataset: String,
    pub method: String,
    pub arch: String,
    pub seed: u64,
    pub rows: Vec<TaskRow>,
    /// Δm% of the multi-task model over the baselines (positive: better).
    pub delta_m: Option<f64>,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub steps: u64,
    pub dispatches_per_step: usize,
    /// Wall time of the multi-task run's training steps, per step.
    pub ms_per_step: f64,
    pub train_rows: usize,
    pub test_rows: usize,
}

/// A data set ready to train: its rows, split, tasks and the settings of
/// its runs (the multi-task run adds the architecture and the watch).
struct Problem {
    data: Dataset,
    split: Split,
    tasks: Vec<String>,
    cfg: TrainConfig,
}

fn iris(opts: &Options) -> Result<Problem> {
    let table = Table::from_csv_text("data/iris.csv", IRIS_CSV)?;
    let split = Split::new(table.n_rows(), 0.2, 0.2, opts.seed)?;
    Ok(Problem {
        data: Dataset::from_table(&table, &INPUTS, &TASKS, &split.train)?,
        split,
        tasks: TASKS.iter().map(|t| t.0.to_string()).collect(),
        cfg: TrainConfig {
            epochs: opts.epochs,
            seed: opts.seed,
            ..Default::default()
        },
    })
}

fn multi_mnist(opts: &Options) -> Result<Problem> {
    let digits = Digits::from_gz_bytes(MNIST_GZ)?.sample(opts.digits, 0);
    let (train, test) = make_pairs(&digits, 0.2, 1, 0)?;
    let set = Encoded::new(&digits, &train, &test)?;
    Ok(Problem {
        split: set.split(0.1, opts.seed)?,
        data: set.data,
        tasks: multimnist::TASKS.iter().map(|t| t.0.to_string()).collect(),
        cfg: TrainConfig {
            epochs: opts.epochs,
            seed: opts.seed,
            batch_size: 64,
            optimizer: OptimizerKind::Adam,
            lr: 5e-3,
            trunk: Vec::new(),
            trunk_layers: LayerSpec::parse_list(crate::workloads::LENET_TRUNK)?,
            tower_layers: LayerSpec::parse_list(crate::workloads::LENET_TOWER)?,
            ..Default::default()
        },
    })
}

/// Train the multi-task model (then, if asked, each task alone), telling
/// `on_progress` each epoch of each run.
pub async fn train(
    gpu: &Gpu,
    opts: &Options,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Outcome> {
    let Problem {
        data,
        split,
        tasks,
        cfg,
    } = match opts.dataset.as_str() {
        "multimnist" => multi_mnist(opts)?,
        _ => iris(opts)?,
    };
    let arch = Arch::parse(&opts.arch, 4, 1, 32, 2)?;
    // A method defined for more tasks than the data set has (Krum on
    // MultiMNIST's two) is refused with the reason.
    let parsed = mtl::Method::parse(&opts.method)?;
    parsed.check_for_tasks(tasks.len())?;
    let method = parsed.build(opts.seed)?;
    // Per-task gradients for every method, and every step watched, so the
    // page can show each step's weights and cosines (copied aside on the GPU,
    // read back once per epoch).
    let mtl_cfg = TrainConfig {
        grad_stats: true,
        watch_every: 1,
        half: opts.half,
        arch,
        ..cfg.clone()
    };
    let all: Vec<usize> = (0..tasks.len()).collect();
    let mut tell = |log: &EpochLog| on_progress(&Progress::of("mtl", &tasks, log, opts.epochs));
    let run = fit_async(gpu, &data, &split, &all, method, &mtl_cfg, &mut tell).await?;
    let mut stl = Vec::new();
    if opts.baselines {
        for &k in &all {
            let mut tell =
                |log: &EpochLog| on_progress(&Progress::of(&tasks[k], &tasks, log, opts.epochs));
            let equal = Box::new(mtl::Equal);
            let r = fit_async(gpu, &data, &split, &[k], equal, &cfg, &mut tell).await?;
            stl.push(r.test[0].primary());
        }
    }
    let mtl: Vec<(f64, bool)> = run.test.iter().map(|t| t.primary()).collect();
    let rows = tasks
        .iter()
        .enumerate()
        .map(|(k, name)| TaskRow {
            task: name.clone(),
            metric: run.test[k].primary_metric().name.into(),
            higher_is_better: mtl[k].1,
            mtl: mtl[k].0,
            stl: stl.get(k).map(|s| s.0),
        })
        .collect();
    Ok(Outcome {
        adapter: gpu.report.to_string(),
        dataset: opts.dataset.clone(),
        method: opts.method.clone(),
        arch: opts.arch.clone(),
        seed: opts.seed,
        rows,
        delta_m: (!stl.is_empty()).then(|| delta_m(&mtl, &stl)),
        best_epoch: run.best_epoch,
        epochs_run: run.history.len(),
        steps: run.steps,
        dispatches_per_step: run.dispatches_per_step,
        ms_per_step: run.ms_per_step(),
        train_rows: split.train.len(),
        test_rows: split.test.len(),
    })
}

/// W-iris of WORKLOADS.md (the same code as the `workloads` example):
/// steps per second over `measured` steps after 50 warm-up steps, the
/// losses read back (awaited) every 100 steps and at the end.
pub async fn w_iris_steps_per_s(gpu: &Gpu, measured: usize) -> Result<f64> {
    let mut w = crate::workloads::w_iris(gpu, "equal", Default::default())?;
    for _ in 0..50 {
        w.step(gpu)?;
    }
    gpu.read_async(&[&w.program.tasks.losses]).await?;
    let clock = web_time::Instant::now();
    for i in 1..=measured {
        w.step(gpu)?;
        if i % 100 == 0 || i == measured {
            let l = gpu.read_async(&[&w.program.tasks.losses]).await?;
            if l[0].iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    step: i as u64,
                    task: format!("{:?}", l[0]),
                });
            }
        }
    }
    Ok(measured as f64 / clock.elapsed().as_secs_f64())
}

/// The methods the page offers: (name, one-line summary).
pub fn methods() -> Vec<(&'static str, &'static str)> {
    mtl::REGISTRY.iter().map(|m| (m.name, m.summary)).collect()
}
