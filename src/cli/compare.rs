//! `taskgrad compare`: several methods on one CSV over several seeds, against
//! single-task baselines trained once per seed, into one results folder:
//! the table (mean ± standard deviation over seeds, per task and Δm%, the
//! best method of each column marked), `results.csv` (every seed, then the
//! mean and standard deviation) and `compare.svg|png` (Δm% per method with
//! error bars).
//!
//! Seed s splits the rows, initialises the weights and orders the minibatches
//! of every model trained for it (the baselines and each method), so the
//! methods of one seed meet the same split and the same starting point.
//!
//! With `--finetune N`, each method's model is then specialised per task:
//! for each task a copy with its head alone, warm-started from the model,
//! trains on that task for N epochs (the best validation epoch kept;
//! `--freeze trunk` trains the head alone), and its test metrics make the
//! row `<method>+ft`, with its Δm% against the same baselines: STL, MTL and
//! MTL+FT side by side.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::run::{
    check_sizes, for_seed, load_data, prepare_out_dir, refuse_to_replace, train_config, OutLock,
    RunSettings,
};
use crate::error::{Error, Result};
use crate::gpu::{CpuThreads, Gpu};
use crate::model::checkpoint::write_atomically;
use crate::nn::Freeze;
use crate::train::metrics::{delta_m, TaskMetrics};
use crate::train::{
    finetune_per_task, fit, fit_lockstep, on_devices, single_task_baselines, LockstepRun,
    TrainConfig,
};

/// `compare --finetune`: after each method's model, each task trained
/// alone from it (its head alone kept, warm-started from the model) for
/// `epochs`, the best validation epoch kept, with `freeze` held fixed; the
/// table's row `<method>+ft`.
#[derive(Clone, Debug)]
pub struct FinetunePlan {
    pub epochs: usize,
    pub freeze: Freeze,
}

/// A comparison checked and its data read, before any GPU work.
pub struct PreparedCompare {
    finetune: Option<FinetunePlan>,
    settings: RunSettings,
    methods: Vec<String>,
    /// The methods, read once.
    parsed: Vec<crate::mtl::Method>,
    seeds: Vec<u64>,
    /// Seeds trained at once, each on a device of its own, or with
    /// `lockstep` models (each with all its seeds) (1: one after another).
    jobs: usize,
    /// All seeds of each model stepped together on one device.
    lockstep: bool,
    loaded: super::run::LoadedData,
    cfg: TrainConfig,
    _lock: OutLock,
}

impl PreparedCompare {
    /// Train `jobs` seeds at once, each on a device of its own
    /// ([`crate::train::on_devices`]); the results are the same as one
    /// after another.
    pub fn with_jobs(mut self, jobs: usize) -> PreparedCompare {
        self.jobs = jobs.max(1);
        self
    }

    /// Step the seeds of each model together ([`crate::train::fit_lockstep`]:
    /// step i of every seed in one submit), in groups of up to
    /// [`LOCKSTEP_GROUP`]; with several jobs the models (each with all its
    /// seeds) share out the devices, the methods first. The results are the
    /// same as one after another.
    pub fn with_lockstep(mut self, lockstep: bool) -> PreparedCompare {
        self.lockstep = lockstep;
        self
    }

    /// The seeds' groups stepped together, each at most
    /// [`LOCKSTEP_GROUP`] seeds (the jobs share out the groups' models, not
    /// the seeds: [`lockstep_items`]).
    fn lockstep_groups(&self) -> Vec<Vec<u64>> {
        self.seeds
            .chunks(LOCKSTEP_GROUP)
            .map(|c| c.to_vec())
            .collect()
    }

    /// How a CPU adapter should run the comparison's steps
    /// ([`CpuThreads::for_jobs`]), from the first seed's network and batch
    /// (times the seeds stepped together with `--lockstep`) and `--jobs`.
    /// Tables of more than [`THREADS_ESTIMATE_ROWS`] rows are not sized
    /// (their data is not encoded once more before the device opens): they
    /// keep the driver's threads unless the jobs fill the cores.
    pub fn cpu_threads(&self) -> Result<CpuThreads> {
        // Devices that will have work: one per seed, or with --lockstep
        // one per model of each group of seeds.
        let items = match self.lockstep {
            true => {
                let groups = self.lockstep_groups().len();
                lockstep_items(groups, self.loaded.tasks.len(), self.methods.len(), 1).len()
            }
            false => self.seeds.len(),
        };
        let jobs = self.jobs.min(items.max(1));
        let first = match self.seeds.first() {
            Some(&s) if self.loaded.kept.len() <= THREADS_ESTIMATE_ROWS => s,
            _ => return Ok(CpuThreads::for_jobs(None, jobs)),
        };
        let seeded = for_seed(&self.loaded, &self.settings, first, None)?;
        let runs = match self.lockstep {
            true => self
                .lockstep_groups()
                .iter()
                .map(Vec::len)
                .max()
                .unwrap_or(1),
            false => 1,
        };
        let work = super::run::step_work(&self.cfg, &seeded.data, &seeded.split, runs)?;
        Ok(CpuThreads::for_jobs(work, jobs))
    }

    /// What looks wrong but does not stop the comparison (a lock taken over
    /// from a run that did not end cleanly).
    pub fn warnings(&self) -> Vec<String> {
        self._lock.note.iter().cloned().collect()
    }

    /// Progress steps: per seed, one per task (the baselines), one per
    /// method, and with `--finetune` one per method's fine-tuning (all its
    /// tasks); with `--lockstep` the seeds of a baseline or method are one step.
    pub fn fits(&self) -> usize {
        let k = self.loaded.tasks.len();
        let ft = self.finetune.as_ref().map_or(0, |_| self.methods.len());
        match self.lockstep {
            true => {
                let groups = self.lockstep_groups().len();
                groups * (k + self.methods.len()) + self.seeds.len() * ft
            }
            false => self.seeds.len() * (k + self.methods.len() + ft),
        }
    }
}

/// The most rows whose data [`PreparedCompare::cpu_threads`] encodes to size
/// the network before the device opens.
pub const THREADS_ESTIMATE_ROWS: usize = 200_000;

/// The most seeds a comparison takes.
pub const MAX_SEEDS: usize = 1000;

/// Check everything (sizes, methods, data, output folder) before the GPU
/// starts. Seeds are `settings.seed`, `settings.seed + 1`, … (`seeds` of them).
pub fn prepare_compare(
    s: &RunSettings,
    methods: &[String],
    seeds: usize,
    finetune: Option<usize>,
) -> Result<PreparedCompare> {
    check_sizes(s)?;
    let freeze = Freeze::parse(&s.freeze)?;
    if finetune.is_none() && freeze != Freeze::None {
        return Err(Error::InvalidConfig(
            "--freeze applies to the fine-tuning of compare --finetune".into(),
        ));
    }
    if finetune == Some(0) {
        return Err(Error::InvalidConfig(
            "--finetune-epochs must be at least 1".into(),
        ));
    }
    if seeds == 0 {
        return Err(Error::InvalidConfig("--seeds must be at least 1".into()));
    }
    // Each seed trains every model again: more than this is a typo, and the
    // seed list alone once asked for 800 GB.
    if seeds > MAX_SEEDS {
        return Err(Error::InvalidConfig(format!(
            "--seeds {seeds}: at most {MAX_SEEDS} (each seed trains every model again)"
        )));
    }
    if methods.is_empty() {
        return Err(Error::InvalidConfig(
            "--methods names no method (e.g. --methods equal,uncertainty,pcgrad,mgda)".into(),
        ));
    }
    if s.resume.is_some() || s.init.is_some() {
        return Err(Error::InvalidConfig(
            "compare trains every model from scratch: --resume and --init do not apply".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for m in methods {
        if !seen.insert(m.trim().to_ascii_lowercase()) {
            return Err(Error::InvalidConfig(format!("--methods lists {m:?} twice")));
        }
    }
    let loaded = load_data(s, None, &mut |_, _| {})?;
    // `all`: every registered method defined for this many tasks.
    let methods: Vec<String> = match methods {
        [one] if one.trim().eq_ignore_ascii_case("all") => (crate::mtl::REGISTRY.iter())
            .filter(|m| m.min_tasks <= loaded.tasks.len())
            .map(|m| m.name.to_string())
            .collect(),
        _ => methods.to_vec(),
    };
    // Each name read once: unknown names and wrong counts of fixed weights fail here.
    let mut parsed = Vec::new();
    for m in &methods {
        let method = crate::mtl::Method::parse(m)
            .and_then(|method| method.check_for_tasks(loaded.tasks.len()).map(|_| method))
            .map_err(|e| e.context(format!("--methods {m}")))?;
        parsed.push(method);
    }
    let mut cfg = train_config(s, None, super::run::space_of(s)?, super::run::arch_of(s)?);
    cfg.optimizer_config().validate()?;
    // The multi-task models and the baselines train whole; --freeze is the fine-tuning's.
    cfg.freeze = Freeze::None;
    let outputs = ["results.csv", "results.txt", "compare.svg", "compare.png"];
    super::run::check_output_paths(&s.out, &outputs, &[])?;
    if let Some(data) = &s.data {
        super::run::refuse_outputs_over_inputs(&s.out, &outputs, &[], &[("--data", data)])?;
    }
    refuse_to_replace(&s.out, "results.csv", s.force)?;
    let created = !s.out.exists();
    prepare_out_dir(&s.out)?;
    let lock = OutLock::take(&s.out, created)?;
    Ok(PreparedCompare {
        finetune: finetune.map(|epochs| FinetunePlan { epochs, freeze }),
        settings: s.clone(),
        methods: methods.iter().map(|m| m.trim().to_string()).collect(),
        parsed,
        seeds: (0..seeds as u64).map(|i| s.seed + i).collect(),
        jobs: 1,
        lockstep: false,
        loaded,
        cfg,
        _lock: lock,
    })
}

/// Each model's test metrics: `[seed][task]`.
/// Per seed, each task's test metrics.
pub type PerSeed = Vec<Vec<TaskMetrics>>;

/// What a comparison measured.
pub struct CompareOutcome {
    pub tasks: Vec<String>,
    pub methods: Vec<String>,
    pub seeds: Vec<u64>,
    /// The single-task baselines' test metrics.
    pub baselines: PerSeed,
    /// Each method's test metrics, in `methods` order.
    pub results: Vec<PerSeed>,
    pub files: Vec<PathBuf>,
}

/// Train the grid and write the folder. `progress` is told before each model
/// is trained what it is ("seed 3, pcgrad").
pub fn execute_compare(
    gpu: &Gpu,
    p: PreparedCompare,
    progress: &mut dyn FnMut(&str),
) -> Result<CompareOutcome> {
    let tasks: Vec<String> = p.loaded.tasks.iter().map(|(c, _)| c.clone()).collect();
    let all: Vec<usize> = (0..tasks.len()).collect();
    // Each seed's models, on as many devices as --jobs says, or every
    // seed's at once with --lockstep (the results depend on neither): the
    // baselines, then each method (and its fine-tuned copy).
    let per_seed = match p.lockstep {
        true => lockstep_seeds(gpu, &p, progress)?,
        false => on_devices(gpu, p.jobs, p.seeds.clone(), progress, |gpu, seed, say| {
            let seeded = for_seed(&p.loaded, &p.settings, seed, None)?;
            let cfg = TrainConfig {
                seed,
                ..p.cfg.clone()
            };
            super::run::check_fits(gpu, &cfg, &seeded.data)?;
            let mut stl = Vec::new();
            for (k, task) in tasks.iter().enumerate() {
                say(&format!("seed {seed}, single-task {task}"));
                let r = single_task_baselines(gpu, &seeded.data, &seeded.split, &[k], &cfg)
                    .map_err(|e| super::run::explain_size(e, &cfg))?;
                stl.extend(r.into_iter().flat_map(|r| r.test));
            }
            let mut results = Vec::new();
            let mut finetuned = Vec::new();
            for (mi, method) in p.methods.iter().enumerate() {
                say(&format!("seed {seed}, {method}"));
                let report = fit(
                    gpu,
                    &seeded.data,
                    &seeded.split,
                    &all,
                    p.parsed[mi].build(seed)?,
                    &cfg,
                    &mut |_| {},
                )
                .map_err(|e| super::run::explain_size(e, &cfg))?;
                results.push(report.test.clone());
                if let Some(ft) =
                    finetune_one(&p, &seeded, (&report, method), &cfg, &all, gpu, &mut |m| {
                        say(m)
                    })?
                {
                    finetuned.push(ft);
                }
            }
            Ok((stl, results, finetuned))
        })?,
    };
    let mut baselines = Vec::new();
    let mut results: Vec<PerSeed> = vec![Vec::new(); p.methods.len()];
    let mut finetuned: Vec<PerSeed> = vec![Vec::new(); p.methods.len()];
    for (stl, seed_results, seed_finetuned) in per_seed {
        baselines.push(stl);
        for (mi, r) in seed_results.into_iter().enumerate() {
            results[mi].push(r);
        }
        for (mi, r) in seed_finetuned.into_iter().enumerate() {
            finetuned[mi].push(r);
        }
    }
    let (methods, results) = match p.finetune {
        None => (p.methods, results),
        Some(_) => with_finetuned(&p.methods, results, finetuned),
    };
    if baselines.iter().flatten().count() == 0 {
        return Err(Error::InvalidConfig(
            "no test rows (raise --test-fraction or add data): nothing to compare".into(),
        ));
    }
    let mut outcome = CompareOutcome {
        tasks,
        methods,
        seeds: p.seeds,
        baselines,
        results,
        files: Vec::new(),
    };
    outcome.files = write_outputs(&p.settings.out, &outcome)?;
    Ok(outcome)
}

/// The most seeds `--lockstep` trains at once (each group's runs are all
/// on the device together; more seeds train group after group).
pub const LOCKSTEP_GROUP: usize = 16;

/// One seed's models: the baselines' test metrics, each method's, and
/// each method's fine-tuned copy's.
type SeedModels = (Vec<TaskMetrics>, PerSeed, PerSeed);

/// A model `--lockstep` trains for a group of seeds together: the
/// single-task baseline of task k, or method mi (ordered as a seed's
/// results are: the baselines, then the methods).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Model {
    Baseline(usize),
    Method(usize),
}

/// The work of `--lockstep`: each model of each seed group, one item per
/// device turn. With one device the baselines come first, then the methods
/// (the order of the progress lines without `--lockstep`); with several,
/// the methods, which train every task, go first, so that the shorter
/// baselines fill in around them (longest first: a group of seeds per
/// device left one device idle while the other trained a third seed).
fn lockstep_items(groups: usize, tasks: usize, methods: usize, jobs: usize) -> Vec<(usize, Model)> {
    let baselines = (0..tasks).map(Model::Baseline);
    let methods = (0..methods).map(Model::Method);
    let models: Vec<Model> = match jobs > 1 {
        true => methods.chain(baselines).collect(),
        false => baselines.chain(methods).collect(),
    };
    (0..groups)
        .flat_map(|g| models.iter().map(move |&m| (g, m)))
        .collect()
}

/// Every seed's models, each baseline and method trained for a group of
/// seeds together ([`fit_lockstep`]), the (group, model) items on as many
/// devices as --jobs says ([`lockstep_items`]); the first error, in the
/// items' order, ends it.
fn lockstep_seeds(
    gpu: &Gpu,
    p: &PreparedCompare,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<SeedModels>> {
    let groups = p.lockstep_groups();
    let seeded = (groups.iter())
        .map(|group| {
            (group.iter())
                .map(|&seed| for_seed(&p.loaded, &p.settings, seed, None))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    for (group, seeded) in groups.iter().zip(&seeded) {
        for (&seed, s) in group.iter().zip(seeded) {
            let cfg = TrainConfig {
                seed,
                ..p.cfg.clone()
            };
            super::run::check_fits(gpu, &cfg, &s.data)?;
        }
    }
    let (tasks, methods) = (p.loaded.tasks.len(), p.methods.len());
    let items = lockstep_items(groups.len(), tasks, methods, p.jobs);
    let trained = on_devices(
        gpu,
        p.jobs,
        items.clone(),
        progress,
        |gpu, (g, model), say| {
            lockstep_model(gpu, p, (&groups[g], &seeded[g]), model, &|line| say(line))
        },
    )?;
    // Back in the order of a seed trained alone: its baselines by task,
    // then its methods (each with its fine-tuned copy) by method, which is
    // the order of `Model`; seed si of group g is seed g·LOCKSTEP_GROUP + si.
    let mut done: Vec<_> = items.into_iter().zip(trained).collect();
    done.sort_by_key(|&(item, _)| item);
    let mut per_seed: Vec<SeedModels> = p.seeds.iter().map(|_| Default::default()).collect();
    for ((g, model), runs) in done {
        for (si, (test, ft)) in runs.into_iter().enumerate() {
            let seed = &mut per_seed[g * LOCKSTEP_GROUP + si];
            match model {
                Model::Baseline(_) => seed.0.extend(test),
                Model::Method(_) => {
                    seed.1.push(test);
                    seed.2.extend(ft);
                }
            }
        }
    }
    Ok(per_seed)
}

/// One seed's run of one model: its test metrics, and with `--finetune` a
/// method's fine-tuned copy's.
type Trained = (Vec<TaskMetrics>, Option<Vec<TaskMetrics>>);

/// One item of [`lockstep_seeds`]: `model` trained for every seed of a
/// group together; each seed's [`Trained`], in seed order.
fn lockstep_model(
    gpu: &Gpu,
    p: &PreparedCompare,
    (seeds, seeded): (&[u64], &[super::run::Seeded]),
    model: Model,
    say: &dyn Fn(&str),
) -> Result<Vec<Trained>> {
    let all: Vec<usize> = (0..p.loaded.tasks.len()).collect();
    let cfgs: Vec<TrainConfig> = (seeds.iter())
        .map(|&seed| TrainConfig {
            seed,
            ..p.cfg.clone()
        })
        .collect();
    let span = match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if a != b => format!("seeds {a}–{b}"),
        (Some(a), _) => format!("seed {a}"),
        _ => String::new(),
    };
    // Every seed's run of one model, stepped together; its reports in seed order.
    let together =
        |subset: &[usize], weighting: &dyn Fn(u64) -> Result<Box<dyn crate::mtl::Weighting>>| {
            let runs = (seeded.iter().zip(&cfgs))
                .map(|(s, cfg)| LockstepRun {
                    data: &s.data,
                    split: &s.split,
                    subset,
                    weighting: Box::new(move || weighting(cfg.seed)),
                    cfg,
                })
                .collect();
            fit_lockstep(gpu, runs, &mut |_, _| {})
                .reports
                .into_iter()
                .map(|r| r.map_err(|e| super::run::explain_size(e, &p.cfg)))
                .collect::<Result<Vec<_>>>()
        };
    match model {
        Model::Baseline(k) => {
            say(&format!("{span}, single-task {}", p.loaded.tasks[k].0));
            let equal = |_| Ok(Box::new(crate::mtl::Equal) as Box<dyn crate::mtl::Weighting>);
            let reports = together(&[k], &equal)?;
            Ok(reports.into_iter().map(|r| (r.test, None)).collect())
        }
        Model::Method(mi) => {
            let method = &p.methods[mi];
            say(&format!("{span}, {method}"));
            let reports = together(&all, &|seed| p.parsed[mi].build(seed))?;
            (reports.iter().enumerate())
                .map(|(si, report)| {
                    let say = &mut |m: &str| say(m);
                    let ft =
                        finetune_one(p, &seeded[si], (report, method), &cfgs[si], &all, gpu, say)?;
                    Ok((report.test.clone(), ft))
                })
                .collect()
        }
    }
}

/// With `--finetune`, `report`'s model fine-tuned per task: each task's test metrics.
fn finetune_one(
    p: &PreparedCompare,
    seeded: &super::run::Seeded,
    (report, method): (&crate::train::FitReport, &str),
    cfg: &TrainConfig,
    all: &[usize],
    gpu: &Gpu,
    say: &mut dyn FnMut(&str),
) -> Result<Option<Vec<TaskMetrics>>> {
    let Some(plan) = &p.finetune else {
        return Ok(None);
    };
    let ft = TrainConfig {
        freeze: plan.freeze.clone(),
        epochs: plan.epochs,
        ..cfg.clone()
    };
    say(&format!("seed {}, {method} fine-tuned per task", cfg.seed));
    let runs = finetune_per_task(gpu, &seeded.data, &seeded.split, all, report, &ft)?;
    Ok(Some(runs.into_iter().flat_map(|r| r.test).collect()))
}

/// The rows of `methods`, each followed by its fine-tuned row `<method>+ft`.
pub fn with_finetuned(
    methods: &[String],
    results: Vec<PerSeed>,
    finetuned: Vec<PerSeed>,
) -> (Vec<String>, Vec<PerSeed>) {
    (methods.iter().zip(results).zip(finetuned))
        .flat_map(|((m, r), f)| [(m.clone(), r), (format!("{m}+ft"), f)])
        .unzip()
}

/// results.csv, results.txt and the plot, each written whole or not at all.
fn write_outputs(out: &Path, outcome: &CompareOutcome) -> Result<Vec<PathBuf>> {
    let csv_path = out.join("results.csv");
    write_atomically(&csv_path, |tmp| write_results_csv(tmp, outcome))?;
    let table_path = out.join("results.txt");
    let table = outcome.table();
    write_atomically(&table_path, |tmp| {
        std::fs::write(tmp, &table).map_err(|e| Error::Io {
            path: tmp.to_path_buf(),
            source: e,
        })
    })?;
    let mut files = vec![csv_path, table_path];
    files.extend(write_plot(out, outcome)?);
    Ok(files)
}

/// Mean and sample standard deviation (0 for one value).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

impl CompareOutcome {
    /// The primary metric (accuracy, RMSE, AUC, …) of task `k` over the seeds.
    fn column(per_seed: &PerSeed, k: usize) -> Vec<f64> {
        per_seed.iter().map(|m| m[k].primary().0).collect()
    }

    /// Δm% of method `mi` against the same seed's baselines, per seed.
    pub fn delta_m(&self, mi: usize) -> Vec<f64> {
        self.results[mi]
            .iter()
            .zip(&self.baselines)
            .map(|(m, b)| {
                let m: Vec<_> = m.iter().map(|x| x.primary()).collect();
                let b: Vec<_> = b.iter().map(|x| x.primary()).collect();
                delta_m(&m, &b)
            })
            .collect()
    }

    /// The table: a row per method (and the baselines), a column per task's
    /// primary metric and Δm%, each cell mean ± std over the seeds; `*`
    /// marks the best method of each column.
    pub fn table(&self) -> String {
        let k = self.tasks.len();
        let higher: Vec<bool> = self.baselines[0].iter().map(|m| m.primary().1).collect();
        let cell = |(m, s): (f64, f64)| format!("{m:.4} ± {s:.4}");
        let mut head = vec![format!("{:<16}", "method")];
        for (t, m) in self.tasks.iter().zip(&self.baselines[0]) {
            let name = format!("{t} {}", m.primary_metric().name);
            head.push(format!("{name:>22}"));
        }
        head.push(format!("{:>22}", "Δm% vs STL"));
        let mut out = format!(
            "{} seeds ({}); mean ± standard deviation; * best of the column\n{}\n",
            self.seeds.len(),
            self.seeds
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            head.join(" ")
        );
        // The best method per column: by its mean.
        let stats: Vec<Vec<(f64, f64)>> = (0..self.methods.len())
            .map(|mi| {
                let mut row: Vec<(f64, f64)> = (0..k)
                    .map(|t| mean_std(&Self::column(&self.results[mi], t)))
                    .collect();
                row.push(mean_std(&self.delta_m(mi)));
                row
            })
            .collect();
        // The best mean per column (ties all marked).
        let best: Vec<f64> = (0..=k)
            .map(|c| {
                let up = c == k || higher[c];
                let means = stats.iter().map(|row| row[c].0);
                if up {
                    means.fold(f64::MIN, f64::max)
                } else {
                    means.fold(f64::MAX, f64::min)
                }
            })
            .collect();
        for (mi, m) in self.methods.iter().enumerate() {
            let mut row = vec![format!("{m:<16}")];
            for (c, &st) in stats[mi].iter().enumerate() {
                let mark = if st.0 == best[c] { "*" } else { " " };
                row.push(format!("{:>21}{mark}", cell(st)));
            }
            out += &(row.join(" ") + "\n");
        }
        let mut row = vec![format!("{:<16}", "single-task")];
        for t in 0..k {
            row.push(format!(
                "{:>21} ",
                cell(mean_std(&Self::column(&self.baselines, t)))
            ));
        }
        row.push(format!("{:>21} ", "0 (reference)"));
        out += &(row.join(" ") + "\n");
        out
    }
}

/// results.csv: a row per (model, seed) with each task's primary metric and
/// Δm%, then per model a `mean` and a `std` row.
/// Every seed's primary metric per task and Δm%, then each method's mean
/// and standard deviation, as CSV at `path`.
pub fn write_results_csv(path: &Path, o: &CompareOutcome) -> Result<()> {
    let csv_err = |e: csv::Error| Error::Io {
        path: path.to_path_buf(),
        source: e.into(),
    };
    let mut w = csv::Writer::from_path(path).map_err(csv_err)?;
    let mut header = vec!["method".to_string(), "seed".to_string()];
    for (t, m) in o.tasks.iter().zip(&o.baselines[0]) {
        header.push(format!("{t}_{}", m.primary_metric().name));
    }
    header.push("delta_m".into());
    w.write_record(&header).map_err(csv_err)?;
    let k = o.tasks.len();
    let mut rows = |name: &str, per_seed: &PerSeed, dm: Vec<f64>| -> Result<()> {
        for (si, seed) in o.seeds.iter().enumerate() {
            let mut r = vec![name.to_string(), seed.to_string()];
            r.extend(per_seed[si].iter().map(|m| m.primary().0.to_string()));
            r.push(dm[si].to_string());
            w.write_record(&r).map_err(csv_err)?;
        }
        for (label, pick) in [("mean", 0), ("std", 1)] {
            let mut r = vec![name.to_string(), label.to_string()];
            for t in 0..k {
                let (m, s) = mean_std(&CompareOutcome::column(per_seed, t));
                r.push([m, s][pick].to_string());
            }
            let (m, s) = mean_std(&dm);
            r.push([m, s][pick].to_string());
            w.write_record(&r).map_err(csv_err)?;
        }
        Ok(())
    };
    for (mi, m) in o.methods.iter().enumerate() {
        rows(m, &o.results[mi], o.delta_m(mi))?;
    }
    rows("single-task", &o.baselines, vec![0.0; o.seeds.len()])?;
    w.flush().map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// compare.svg and compare.png: Δm% per method, mean with ± std error bars.
fn write_plot(out: &Path, o: &CompareOutcome) -> Result<Vec<PathBuf>> {
    super::report::register_font();
    let stats: Vec<(f64, f64)> = (0..o.methods.len())
        .map(|mi| mean_std(&o.delta_m(mi)))
        .collect();
    let mut files = Vec::new();
    for ext in ["svg", "png"] {
        let path = out.join(format!("compare.{ext}"));
        let fail = |m: String| Error::Io {
            path: path.clone(),
            source: std::io::Error::other(m),
        };
        write_atomically(&path, |tmp| {
            let size = (120 + 110 * o.methods.len() as u32, 420);
            match ext {
                "svg" => draw_compare(SVGBackend::new(tmp, size).into_drawing_area(), o, &stats),
                _ => draw_compare(BitMapBackend::new(tmp, size).into_drawing_area(), o, &stats),
            }
            .map_err(fail)
        })?;
        files.push(path);
    }
    Ok(files)
}

fn draw_compare<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    o: &CompareOutcome,
    stats: &[(f64, f64)],
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let lo = stats.iter().map(|(m, s)| m - s).fold(0.0, f64::min);
    let hi = stats.iter().map(|(m, s)| m + s).fold(0.0, f64::max);
    let pad = 0.1 * (hi - lo).max(1e-3);
    let n = o.methods.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Δm% against single-task baselines ({} seeds; higher is better)",
                o.seeds.len()
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                o.methods[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc("Δm% (mean ± std over seeds)")
        .draw()
        .map_err(err)?;
    // The Okabe-Ito blue: colour-blind safe.
    let blue = RGBColor(0, 114, 178);
    chart
        .draw_series(stats.iter().enumerate().map(|(i, &(m, _))| {
            let x = i as f64;
            Rectangle::new([(x - 0.3, 0.0), (x + 0.3, m)], blue.mix(0.8).filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(stats.iter().enumerate().map(|(i, &(m, s))| {
            ErrorBar::new_vertical(i as f64, m - s, m, m + s, BLACK.stroke_width(2), 12)
        }))
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::{lockstep_items, Model};

    #[test]
    fn lockstep_items_put_the_methods_first_on_several_devices() {
        use Model::*;
        // One device: baselines by task, then methods, group after group.
        assert_eq!(
            lockstep_items(2, 2, 1, 1),
            [
                (0, Baseline(0)),
                (0, Baseline(1)),
                (0, Method(0)),
                (1, Baseline(0)),
                (1, Baseline(1)),
                (1, Method(0)),
            ]
        );
        // Several: each group's methods (every task) before its baselines.
        assert_eq!(
            lockstep_items(1, 3, 2, 2),
            [
                (0, Method(0)),
                (0, Method(1)),
                (0, Baseline(0)),
                (0, Baseline(1)),
                (0, Baseline(2)),
            ]
        );
    }
}
