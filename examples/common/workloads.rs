//! The reference workloads of WORKLOADS.md, shared by the `workloads` example
//! and the criterion benches, so both run exactly the same work.
//!
//! - W-iris: Iris, inputs sepal_length and sepal_width (standardised), train
//!   split of 120 rows as one full batch; species (3-class CE), petal_length and
//!   petal_width (MSE, standardised); trunk 2→64→64 ReLU; heads 64→3, 64→1,
//!   64→1; equal weights; Adam lr 1e-2.
//! - W-synth: N = 16384 synthetic rows, d_in = 128 (seeded); two regression
//!   tasks (MSE) and two 10-class tasks (CE); trunk 128→512→512 ReLU; heads
//!   512→1|10; batch 1024; Adam lr 1e-3; equal weights.
//! - W-lenet: MultiMNIST from the shipped digits (4,000 training images,
//!   `data::multimnist`, seed 0), 28×28 pixels standardised; tasks left and
//!   right (10-class CE); the LeNet trunk of Sener & Koltun (conv 1→10 k5,
//!   max-pool 2, ReLU, conv 10→20 k5, max-pool 2, ReLU, flatten, linear
//!   320→50, ReLU), each task's tower linear 50→50 ReLU and its output
//!   50→10; batch 256; Adam lr 1e-3; equal weights.

// Each user (the example, the benches) uses part of this module.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use taskgrad::data::{Dataset, Split, Table, TaskType};
use taskgrad::error::Result;
use taskgrad::gpu::{CpuThreads, Gpu};
use taskgrad::mtl::{self, GradSpace};
use taskgrad::nn::{Arch, LayerSpec, MultiTaskNet, NetSpec, ParamBuilder, ParamSet};
use taskgrad::optim::OptimizerConfig;
use taskgrad::train::step::{Program, StepOptions};

/// A workload ready to step: data, model and the traced step.
pub struct Workload {
    pub data: Dataset,
    /// Row indices of each batch, cycled through.
    pub batches: Vec<Vec<usize>>,
    pub net: MultiTaskNet,
    pub params: ParamSet,
    pub program: Program,
    next: usize,
}

impl Workload {
    /// Write the next batch (skipped when there is only one batch, already
    /// written) and advance the optimizer: everything a step does before its submit.
    fn prepare(&mut self, gpu: &Gpu) -> Result<()> {
        if self.batches.len() > 1 || self.next == 0 {
            let subset: Vec<usize> = (0..self.data.tasks.len()).collect();
            let batch = &self.batches[self.next % self.batches.len()];
            self.program.write_batch(gpu, &self.data, batch, &subset)?;
        }
        self.next += 1;
        self.program.optimizer.prepare_step(gpu);
        Ok(())
    }

    /// One training step: prepare, then submit the step once.
    pub fn step(&mut self, gpu: &Gpu) -> Result<()> {
        self.prepare(gpu)?;
        gpu.run(&self.program.train_dispatches())
    }

    /// One training step with every kernel timed (see `profile`), added to `table`.
    pub fn step_profiled(
        &mut self,
        gpu: &Gpu,
        table: &mut std::collections::BTreeMap<String, (usize, f64)>,
    ) -> Result<()> {
        self.prepare(gpu)?;
        let ds = self.program.train_dispatches();
        let ms = gpu.run_profiled(&ds)?;
        taskgrad::gpu::profile::accumulate(table, &ds, &ms);
        Ok(())
    }

    /// Read the per-task losses of the last step (one readback).
    pub fn losses(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        gpu.read_one(&self.program.tasks.losses)
    }

    pub fn dispatches_per_step(&self) -> usize {
        self.program.train_dispatches().len()
    }
}

/// The network for `data` with the trunk widths (or a mixture of experts).
fn spec_for(data: &Dataset, trunk: Vec<usize>, arch: Arch) -> NetSpec {
    // A mixture of experts replaces the trunk.
    let trunk = match arch {
        Arch::Shared => trunk,
        _ => Vec::new(),
    };
    NetSpec {
        inputs: data.d,
        image: data.image,
        trunk,
        tower: vec![],
        trunk_layers: vec![],
        embeddings: vec![],
        tower_layers: vec![],
        expert_layers: vec![],
        outputs: data.tasks.iter().map(|t| t.outputs()).collect(),
        head_names: data.tasks.iter().map(|t| t.name.clone()).collect(),
        activation: Default::default(),
        arch,
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    gpu: &Gpu,
    data: Dataset,
    batches: Vec<Vec<usize>>,
    trunk: Vec<usize>,
    optimizer: OptimizerConfig,
    weighting: &str,
    space: Option<GradSpace>,
    opts: StepOptions,
    arch: Arch,
) -> Result<Workload> {
    let spec = spec_for(&data, trunk, arch);
    assemble(gpu, data, batches, spec, optimizer, weighting, space, opts)
}

/// The workload of a network `spec` over `data`.
#[allow(clippy::too_many_arguments)]
fn assemble(
    gpu: &Gpu,
    data: Dataset,
    batches: Vec<Vec<usize>>,
    spec: NetSpec,
    optimizer: OptimizerConfig,
    weighting: &str,
    space: Option<GradSpace>,
    opts: StepOptions,
) -> Result<Workload> {
    let mut builder = if opts.half {
        ParamBuilder::new_half(gpu)
    } else {
        ParamBuilder::new(gpu)
    };
    let net = MultiTaskNet::new(&mut builder, spec, 0)?;
    let mut method = mtl::by_name(weighting)?;
    method.add_params(&mut builder, data.tasks.len())?;
    let params = builder.build(gpu)?;
    let space = space.or(method.grad_space());
    let b = batches[0].len();
    let program = Program::build_with(
        gpu,
        &net,
        &params,
        &data.tasks,
        data.d,
        b,
        method.as_mut(),
        space,
        optimizer,
        opts,
    )?;
    Ok(Workload {
        data,
        batches,
        net,
        params,
        program,
        next: 0,
    })
}

/// W-iris with `weighting`; `StepOptions` selects the unfused step (separate
/// ReLU-backward and bias-gradient dispatches) or half precision, for comparison.
pub fn w_iris(gpu: &Gpu, weighting: &str, opts: StepOptions) -> Result<Workload> {
    iris_variant(gpu, weighting, None, vec![64, 64], adam(1e-2), opts)
}

/// Adam at learning rate `lr`, the reference workloads' optimizer.
pub fn adam(lr: f32) -> OptimizerConfig {
    OptimizerConfig {
        lr,
        ..Default::default()
    }
}

/// W-iris's training data and its one batch (the 120 training rows).
fn iris_data() -> Result<(Dataset, Vec<usize>)> {
    // Bundled, not read from disk: the browser demo runs this workload too.
    let table = Table::from_csv_text("data/iris.csv", include_str!("../../data/iris.csv"))?;
    let split = Split::new(table.n_rows(), 0.0, 0.2, 0)?;
    let tasks = [
        ("species", TaskType::CLASS),
        ("petal_length", TaskType::REG),
        ("petal_width", TaskType::REG),
    ];
    let data = Dataset::from_table(
        &table,
        &["sepal_length", "sepal_width"],
        &tasks,
        &split.train,
    )?;
    Ok((data, split.train))
}

/// How a CPU adapter should run W-iris's step through a trunk of these
/// widths, from its size (known before a device is opened).
pub fn iris_threads(trunk: &[usize]) -> Result<CpuThreads> {
    let (data, rows) = iris_data()?;
    let spec = spec_for(&data, trunk.to_vec(), Arch::Shared);
    let work = MultiTaskNet::forward_multiply_adds(&spec, rows.len())?;
    Ok(CpuThreads::for_step(work))
}

/// W-iris's data and full batch with another trunk, gradient space and
/// optimizer (the book's cost comparisons and descent experiment).
pub fn iris_variant(
    gpu: &Gpu,
    weighting: &str,
    space: Option<GradSpace>,
    trunk: Vec<usize>,
    optimizer: OptimizerConfig,
    opts: StepOptions,
) -> Result<Workload> {
    let (data, rows) = iris_data()?;
    build(
        gpu,
        data,
        vec![rows],
        trunk,
        optimizer,
        weighting,
        space,
        opts,
        Arch::Shared,
    )
}

/// The W-synth table: 16384 rows of 128 standard-normal inputs, targets from
/// fixed random projections (regressions: a linear map plus a sine; classes:
/// the argmax of 10 random projections).
pub fn synth_table(rows: usize) -> Table {
    let d = 128;
    let mut rng = StdRng::seed_from_u64(128);
    let mut proj = |n: usize| -> Vec<f64> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (r1, r2, c1, c2) = (proj(d), proj(d), proj(10 * d), proj(10 * d));
    let mut rng = StdRng::seed_from_u64(16384);
    let mut headers: Vec<String> = (0..d).map(|j| format!("x{j}")).collect();
    headers.extend(["r1", "r2", "c1", "c2"].map(String::from));
    let dot = |w: &[f64], x: &[f64]| w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
    let argmax = |w: &[f64], x: &[f64]| {
        (0..10)
            .max_by(|&i, &j| {
                dot(&w[i * d..(i + 1) * d], x).total_cmp(&dot(&w[j * d..(j + 1) * d], x))
            })
            .unwrap_or(0)
    };
    let table_rows = (0..rows)
        .map(|_| {
            let x: Vec<f64> = (0..d)
                .map(|_| rng.random_range(-1.0f64..1.0) * 1.7)
                .collect();
            let mut row: Vec<String> = x.iter().map(|v| format!("{v:.5}")).collect();
            row.push(format!("{:.5}", dot(&r1, &x)));
            row.push(format!("{:.5}", dot(&r2, &x).sin() + 0.5 * dot(&r1, &x)));
            row.push(format!("k{}", argmax(&c1, &x)));
            row.push(format!("k{}", argmax(&c2, &x)));
            row
        })
        .collect();
    Table::from_rows(
        "W-synth",
        headers,
        table_rows,
        (2..rows as u64 + 2).collect(),
    )
}

/// W-synth with `weighting` (batches of 1024 rows, cycled).
pub fn w_synth(gpu: &Gpu, weighting: &str, opts: StepOptions) -> Result<Workload> {
    w_synth_arch(gpu, weighting, opts, Arch::Shared)
}

/// W-synth with another shared part (a mixture of experts for issue 13's
/// comparison: 8 experts of 64 units, as wide as the trunk's first layer).
pub fn w_synth_arch(gpu: &Gpu, weighting: &str, opts: StepOptions, arch: Arch) -> Result<Workload> {
    let table = synth_table(16384);
    let names: Vec<String> = (0..128).map(|j| format!("x{j}")).collect();
    let inputs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let tasks = [
        ("r1", TaskType::REG),
        ("r2", TaskType::REG),
        ("c1", TaskType::CLASS),
        ("c2", TaskType::CLASS),
    ];
    let all: Vec<usize> = (0..table.n_rows()).collect();
    let data = Dataset::from_table(&table, &inputs, &tasks, &all)?;
    let batches: Vec<Vec<usize>> = all.chunks(1024).map(|c| c.to_vec()).collect();
    build(
        gpu,
        data,
        batches,
        vec![512, 512],
        adam(1e-3),
        weighting,
        None,
        opts,
        arch,
    )
}

/// The LeNet trunk of Sener & Koltun's MultiMNIST experiment, as a layer list.
pub const LENET_TRUNK: &str =
    "conv:10x5,maxpool:2,relu,conv:20x5,maxpool:2,relu,flatten,linear:50,relu";
/// Each task's tower before its output layer.
pub const LENET_TOWER: &str = "linear:50,relu";

/// W-lenet with `weighting`: batches of 256 of the 4,000 training images, cycled.
pub fn w_lenet(gpu: &Gpu, weighting: &str, opts: StepOptions) -> Result<Workload> {
    use taskgrad::data::multimnist::{make_pairs, Digits, Encoded};
    let mnist = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist_5k.csv.gz");
    let digits = Digits::read(std::path::Path::new(mnist))?;
    let (train, _) = make_pairs(&digits, 0.2, 1, 0)?;
    let data = Encoded::new(&digits, &train, &[])?.data;
    let all: Vec<usize> = (0..train.len()).collect();
    let batches: Vec<Vec<usize>> = all.chunks_exact(256).map(|c| c.to_vec()).collect();
    let spec = NetSpec {
        trunk_layers: LayerSpec::parse_list(LENET_TRUNK)?,
        tower_layers: LayerSpec::parse_list(LENET_TOWER)?,
        ..spec_for(&data, Vec::new(), Arch::Shared)
    };
    assemble(gpu, data, batches, spec, adam(1e-3), weighting, None, opts)
}
