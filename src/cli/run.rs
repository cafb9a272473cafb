//! One training run from settings (command line or TOML): read the CSV, encode
//! it, train, and write the run folder: `model.safetensors`, `metrics.csv`,
//! `plots/<task>.svg|png`. Shared by the `taskgrad` binary and the examples.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::settings::RunSettings;
use super::settings::{layer_list, parse_embed};
use crate::data::encode::{usable_rows, Missing, Schema};
use crate::data::{Split, Table, TaskType};
use crate::error::{Error, Result};
use crate::gpu::{CpuThreads, Gpu};
use crate::model::checkpoint::{self, ModelMeta, SplitRecord};
use crate::train::{fit, single_task_baselines, EpochLog, FitReport, InitParams, TrainConfig};

/// Parse `COLUMN:KIND`, KIND a task kind's name (`class`, `reg`, `binary`,
/// or one registered with [`crate::task::register`]).
pub fn parse_task(spec: &str) -> Result<(String, TaskType)> {
    let kinds = || {
        let names: Vec<&str> = crate::task::kinds().iter().map(|k| k.name).collect();
        names.join(", ")
    };
    let (col, kind) = spec.rsplit_once(':').ok_or_else(|| {
        Error::InvalidConfig(format!(
            "task {spec:?} must be COLUMN:KIND, KIND one of {}",
            kinds()
        ))
    })?;
    let ty = TaskType::by_name(kind).map_err(|_| {
        Error::InvalidConfig(format!(
            "task {spec:?}: kind {:?} is not one of {}",
            kind.trim(),
            kinds()
        ))
    })?;
    Ok((col.trim().to_string(), ty))
}

/// What a run produced.
pub struct RunOutcome {
    pub report: FitReport,
    pub baselines: Vec<FitReport>,
    pub dropped_rows: usize,
    pub files: Vec<PathBuf>,
    pub schema: Schema,
    pub split: (usize, usize, usize),
}

/// Check that `dir` exists (creating it) and can be written, before any training.
pub fn prepare_out_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let probe = dir.join(".taskgrad-write-test");
    std::fs::write(&probe, b"").map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A run whose data and settings have been read and checked, before any GPU work.
pub struct PreparedRun {
    pub settings: RunSettings,
    pub out: PathBuf,
    pub data: crate::data::Dataset,
    pub split: Split,
    pub schema: Schema,
    pub cfg: TrainConfig,
    /// The method, read once.
    pub weighting: crate::mtl::Method,
    pub dropped_rows: usize,
    /// The split, as the model will record it for `eval`.
    pub split_record: SplitRecord,
    /// What looks wrong but does not stop the run (a resumed model's input
    /// column that does not look like its training data).
    pub warnings: Vec<String>,
    epochs_before: usize,
    /// The model a warm start began from.
    parent: Option<checkpoint::ParentRecord>,
    /// Held while the run writes its folder; removed when the run ends.
    _lock: OutLock,
}

impl PreparedRun {
    /// How a CPU adapter should run this run's steps, from the network and
    /// the batch ([`CpuThreads::for_step`]): known before a device is opened.
    pub fn cpu_threads(&self) -> Result<CpuThreads> {
        let work = step_work(&self.cfg, &self.data, &self.split, 1)?;
        Ok(CpuThreads::for_step(work))
    }
}

/// Forward multiply-adds of a step of `runs` runs of `cfg` over `data`
/// stepped together (lockstep seeds share each dispatch), for
/// [`CpuThreads`]: None for a network over images. Known before a device
/// is opened.
pub fn step_work(
    cfg: &TrainConfig,
    data: &crate::data::Dataset,
    split: &Split,
    runs: usize,
) -> Result<Option<u64>> {
    let spec = cfg.net_spec(data, &data.tasks);
    let batch = cfg.batch_size.min(split.train.len()).max(1);
    let work = crate::nn::MultiTaskNet::forward_multiply_adds(&spec, batch)?;
    Ok(work.map(|n| n * runs as u64))
}

/// The run folder's lock, `<out>/.taskgrad.lock`: an OS file lock on it
/// (released by the system when the process ends, however it ends) and the
/// owner's pid written inside. A lock file whose lock nobody holds is what a
/// killed run left: the next run takes it over and says so, and removes the
/// `.partial-*` files a write cut short left behind.
pub(crate) struct OutLock {
    path: PathBuf,
    /// Holds the OS lock while it is open.
    _file: std::fs::File,
    /// The folder, when this run created it: removed again if the run leaves it empty.
    created: Option<PathBuf>,
    /// What the lock found: a lock left by a run that did not end cleanly.
    pub(crate) note: Option<String>,
}

impl OutLock {
    /// `created`: the folder did not exist before this run.
    pub(crate) fn take(out: &Path, created: bool) -> Result<OutLock> {
        use std::io::{Read, Seek, Write};
        let path = out.join(".taskgrad.lock");
        let io = |e| Error::Io {
            path: path.clone(),
            source: e,
        };
        loop {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            let mut owner = String::new();
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let _ = file.read_to_string(&mut owner);
                    let pid = match owner.trim() {
                        "" => String::new(),
                        pid => format!(" (pid {pid})"),
                    };
                    return Err(Error::InvalidConfig(format!(
                        "another taskgrad run{pid} is writing to {}: wait for it to end",
                        out.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
            // The run that held it may have removed the file meanwhile: lock
            // the file the path names now, not one no longer in the folder.
            if !names_same_file(&file, &path) {
                continue;
            }
            file.read_to_string(&mut owner).map_err(io)?;
            let note = (!owner.trim().is_empty()).then(|| {
                format!(
                    "{}: took over the lock of an earlier run (pid {}) that ended without releasing it",
                    out.display(),
                    owner.trim()
                )
            });
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            write!(file, "{}", std::process::id()).map_err(io)?;
            remove_partial_files(out);
            return Ok(OutLock {
                path,
                _file: file,
                created: created.then(|| out.to_path_buf()),
                note,
            });
        }
    }
}

/// Whether the open `file` is the one `path` names (always true where this
/// cannot be told).
fn names_same_file(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// Remove the `.partial-*` files (writes cut short) of a run folder and its plots.
fn remove_partial_files(out: &Path) {
    for dir in [out.to_path_buf(), out.join("plots")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".partial-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for OutLock {
    fn drop(&mut self) {
        // Removed while still locked; a run waiting on the old file sees
        // that the path names another file, and locks that one.
        let _ = std::fs::remove_file(&self.path);
        // A run that failed before writing anything leaves no empty folder
        // (remove_dir refuses a folder that holds anything).
        if let Some(dir) = &self.created {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Column names as given, without the spaces around them (`--inputs "a, b"`).
fn trimmed(names: &[String]) -> Vec<String> {
    names.iter().map(|n| n.trim().to_string()).collect()
}

/// Task columns and their kinds, in the order given.
type Tasks = Vec<(String, TaskType)>;

/// A model being resumed: where it came from and what it holds.
pub(crate) type Resumed = (PathBuf, checkpoint::Checkpoint);

/// Read and check everything `s` names (data, columns, output folder, resumed
/// model) without touching the GPU, so bad input fails fast and clearly.
pub fn prepare_run(s: &RunSettings) -> Result<PreparedRun> {
    prepare_run_with_progress(s, &mut |_, _| {})
}

/// [`prepare_run`], telling `reading(bytes read, file size)` while the CSV loads.
pub fn prepare_run_with_progress(
    s: &RunSettings,
    reading: &mut dyn FnMut(u64, u64),
) -> Result<PreparedRun> {
    check_sizes(s)?;
    let resume: Option<Resumed> = match s.resume.as_ref().or(s.init.as_ref()) {
        Some(p) => {
            let ck = checkpoint::load(p)?;
            ck.meta.check_consistent(p)?;
            check_resumed_architecture(s, p, &ck)?;
            Some((p.clone(), ck))
        }
        None => None,
    };
    let s = &with_parent_split(s, resume.as_ref());
    let loaded = load_data(s, resume.as_ref(), reading)?;
    if let Some((p, ck)) = &resume {
        check_warm_tasks(s, p, ck, &loaded.tasks)?;
    }
    let seeded = for_seed(&loaded, s, s.seed, resume.as_ref())?;
    let warnings = match &resume {
        Some((p, _)) => seeded
            .schema
            .drift(&loaded.table, &loaded.kept)
            .into_iter()
            .map(|w| format!("{} {}: {w}", parent_flag(s), p.display()))
            .collect(),
        None => Vec::new(),
    };
    let cfg = train_config(s, resume.as_ref(), space_of(s)?, arch_of(s)?);
    cfg.optimizer_config().validate()?;
    // An unknown name or a wrong count of fixed weights fails here, before any work.
    let weighting = crate::mtl::Method::parse(&s.weighting)
        .and_then(|m| m.check_for_tasks(loaded.tasks.len()).map(|_| m))
        .map_err(|e| e.context(format!("--weighting {}", s.weighting)))?;
    check_output_paths(&s.out, &["model.safetensors", "metrics.csv"], &["plots"])?;
    if let Some(data) = &s.data {
        refuse_outputs_over_inputs(
            &s.out,
            RUN_FILES,
            &["plots", ".staging"],
            &[("--data", data)],
        )?;
    }
    refuse_to_replace(&s.out, "model.safetensors", s.force)?;
    let created = !s.out.exists();
    prepare_out_dir(&s.out)?;
    let lock = OutLock::take(&s.out, created)?;
    let mut warnings = warnings;
    warnings.extend(lock.note.clone());
    Ok(PreparedRun {
        settings: s.clone(),
        out: s.out.clone(),
        data: seeded.data,
        split: seeded.split,
        schema: seeded.schema,
        cfg,
        weighting,
        dropped_rows: loaded.dropped_rows,
        split_record: seeded.split_record,
        warnings,
        // A warm start counts its own epochs; its parent's are in its record.
        epochs_before: match s.init {
            Some(_) => 0,
            None => resume.as_ref().map_or(0, |(_, ck)| ck.meta.epochs_trained),
        },
        parent: match (&s.init, &resume) {
            (Some(_), Some((p, ck))) => Some(checkpoint::ParentRecord::of(p, ck)?),
            _ => None,
        },
        _lock: lock,
    })
}

/// What the run will write must be writable as what it is: a file where a
/// directory stands (or the other way round) would only fail after training.
pub(crate) fn check_output_paths(out: &Path, files: &[&str], dirs: &[&str]) -> Result<()> {
    let clash = |p: PathBuf, what: &str| {
        Err(Error::InvalidConfig(format!(
            "{} is {what}, where this run writes its {}; move it away or choose another --out",
            p.display(),
            if what == "a directory" {
                "file"
            } else {
                "plots folder"
            }
        )))
    };
    for f in files {
        let p = out.join(f);
        if p.is_dir() {
            return clash(p, "a directory");
        }
    }
    for d in dirs {
        let p = out.join(d);
        if p.exists() && !p.is_dir() {
            return clash(p, "a file");
        }
    }
    Ok(())
}

/// An input of the run (the data file) that lies where the run writes —
/// one of its `files` in `out`, or inside one of its `dirs` (replaced whole)
/// — is refused: the run would destroy what it reads.
pub(crate) fn refuse_outputs_over_inputs(
    out: &Path,
    files: &[&str],
    dirs: &[&str],
    inputs: &[(&str, &Path)],
) -> Result<()> {
    let Ok(out) = out.canonicalize() else {
        return Ok(()); // a folder not made yet holds nothing
    };
    for (flag, input) in inputs {
        let Ok(input) = input.canonicalize() else {
            continue;
        };
        let hit = files.iter().any(|f| input == out.join(f))
            || dirs.iter().any(|d| input.starts_with(out.join(d)));
        if hit {
            return Err(Error::InvalidConfig(format!(
                "{flag} {} lies where this run writes its outputs in {}: \
                 move the file, or choose another --out",
                input.display(),
                out.display()
            )));
        }
    }
    Ok(())
}

/// `--out` already holding `file` is refused unless `force`.
pub(crate) fn refuse_to_replace(out: &Path, file: &str, force: bool) -> Result<()> {
    let existing = out.join(file);
    if existing.exists() && !force {
        return Err(Error::InvalidConfig(format!(
            "--out {} already holds {} ({}); choose another folder, or --force to replace it",
            out.display(),
            if file == "model.safetensors" {
                "a model"
            } else {
                "results"
            },
            existing.display()
        )));
    }
    Ok(())
}

/// The CSV read and its columns checked: what every seed of a run shares.
pub(crate) struct LoadedData {
    pub table: Table,
    pub inputs: Vec<String>,
    pub tasks: Vec<(String, TaskType)>,
    /// The usable rows (after the missing-input rule) and how many were dropped.
    pub kept: Vec<usize>,
    pub dropped_rows: usize,
    pub missing: Missing,
}

pub(crate) fn load_data(
    s: &RunSettings,
    resume: Option<&Resumed>,
    reading: &mut dyn FnMut(u64, u64),
) -> Result<LoadedData> {
    let data_path = s.data.clone().ok_or_else(|| need("--data"))?;
    let missing = match s.impute.as_str() {
        "drop" => Missing::Drop,
        "mean" => Missing::Mean,
        other => {
            return Err(Error::InvalidConfig(format!(
                "--impute {other:?}: use drop or mean"
            )))
        }
    };
    let (mut inputs, tasks) = columns(s, resume)?;
    let table = Table::from_csv_with_progress(&data_path, reading)?;
    if let Some((p, ck)) = resume {
        ck.meta.check_inputs(&table, p)?;
    }
    for (c, _) in &tasks {
        table.column(c)?;
    }
    if inputs.is_empty() {
        // No --inputs: every column that is not a task, in the file's order.
        inputs = (table.headers.iter())
            .filter(|h| !tasks.iter().any(|(t, _)| t == *h))
            .cloned()
            .collect();
        if inputs.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "{}: every column is a task, so there is no input column",
                data_path.display()
            )));
        }
    }
    let input_refs: Vec<&str> = inputs.iter().map(|s| s.as_str()).collect();
    let (kept, dropped_rows) = usable_rows(&table, &input_refs, missing)?;
    Ok(LoadedData {
        table,
        inputs,
        tasks,
        kept,
        dropped_rows,
        missing,
    })
}

/// One seed's split of the usable rows, the schema (a resumed model's, or
/// fitted on this split's training rows), the encoded rows and the record
/// of the split the model keeps.
pub(crate) struct Seeded {
    pub data: crate::data::Dataset,
    pub split: Split,
    pub schema: Schema,
    pub split_record: SplitRecord,
}

pub(crate) fn for_seed(
    l: &LoadedData,
    s: &RunSettings,
    seed: u64,
    resume: Option<&Resumed>,
) -> Result<Seeded> {
    let input_refs: Vec<&str> = l.inputs.iter().map(|s| s.as_str()).collect();
    let task_refs: Vec<(&str, TaskType)> = l.tasks.iter().map(|(c, t)| (c.as_str(), *t)).collect();
    let split = Split::new(l.kept.len(), s.val_fraction, s.test_fraction, seed)?;
    let schema = match resume {
        Some((_, ck)) if s.init.is_some() => {
            let train_rows: Vec<usize> = split.train.iter().map(|&i| l.kept[i]).collect();
            Schema {
                missing: l.missing,
                ..ck.meta
                    .schema
                    .with_tasks(&l.table, &task_refs, &train_rows)?
            }
        }
        Some((_, ck)) => Schema {
            missing: l.missing,
            ..ck.meta.schema.clone()
        },
        None => {
            let train_rows: Vec<usize> = split.train.iter().map(|&i| l.kept[i]).collect();
            let embed = s
                .embed
                .iter()
                .map(|e| parse_embed(e))
                .collect::<Result<Vec<_>>>()?;
            let embed: Vec<(&str, usize)> = embed.iter().map(|(c, d)| (c.as_str(), *d)).collect();
            let (table, train) = (&l.table, &train_rows);
            let schema =
                Schema::fit_embedding(table, &input_refs, &task_refs, train, l.missing, &embed)?;
            match image_of(s)? {
                Some(image) => schema.as_image(image, table, train)?,
                None => schema,
            }
        }
    };
    let fingerprint = match s.record_data_fingerprint {
        true => Some(
            SplitRecord::fingerprint_of(&l.table, &l.kept, &schema).ok_or_else(|| {
                Error::internal("fingerprinting the split", "a model column is missing")
            })?,
        ),
        false => None,
    };
    let split_record = SplitRecord {
        seed,
        val_fraction: s.val_fraction,
        test_fraction: s.test_fraction,
        rows: l.kept.len(),
        fingerprint,
        file: file_name(s.data.as_deref()),
    };
    let data = schema.encode(&l.table, &l.kept)?;
    Ok(Seeded {
        data,
        split,
        schema,
        split_record,
    })
}

/// `--augment` names augmentation layers, over an image, before a
/// `--trunk` list, in a new model (a model's own are in its trunk already).
fn check_augment(s: &RunSettings, no_trunk_list: bool) -> Result<()> {
    if s.augment.is_empty() {
        return Ok(());
    }
    let bad = |why: String| {
        Err(Error::InvalidConfig(format!(
            "--augment {}: {why}",
            s.augment.join(",")
        )))
    };
    let specs = crate::nn::LayerSpec::parse_list(&s.augment.join(","))?;
    if let Some(other) = specs
        .iter()
        .find(|l| !["shift", "flip"].contains(&l.name.as_str()))
    {
        return bad(format!(
            "{other} is not an augmentation; use shift:S and flip"
        ));
    }
    if s.image.is_none() {
        return bad("augmentation moves an image's pixels: give --image".into());
    }
    if no_trunk_list {
        return bad("it goes first in a --trunk list of layers: give --trunk".into());
    }
    if s.resume.is_some() || s.init.is_some() {
        return bad("the model's trunk already has its layers (and any augmentation)".into());
    }
    Ok(())
}

/// Sizes no run can use, refused before anything is read or created.
pub(crate) fn check_sizes(s: &RunSettings) -> Result<()> {
    let bad = |what: String| Err(Error::InvalidConfig(what));
    if s.epochs == 0 {
        return bad("--epochs must be at least 1".into());
    }
    if s.batch == 0 {
        return bad("--batch must be at least 1".into());
    }
    let (tower, _) = layer_list("--tower", &s.tower)?;
    let (_, trunk_layers) = layer_list("--trunk", &s.trunk)?;
    check_augment(s, trunk_layers.is_empty())?;
    let (expert, _) = layer_list("--expert", &s.expert)?;
    if !s.expert.is_empty() {
        // (A resumed model's own architecture is checked against it later.)
        let shared = ["shared", "hard"].contains(&s.arch.trim().to_ascii_lowercase().as_str());
        if shared && s.resume.is_none() && s.init.is_none() {
            return bad(
                "--expert sets a mixture's experts: give --arch omoe, mmoe, cgc, ple or dselect_k"
                    .into(),
            );
        }
        if s.was_given("expert_hidden") {
            return bad("--expert and --expert-hidden both set the experts: give one".into());
        }
    }
    if image_of(s)?.is_some() && !s.embed.is_empty() {
        return bad("--embed looks a column up in a table, and with --image every input is a pixel: give one".into());
    }
    for e in &s.embed {
        let (col, _) = parse_embed(e)?;
        if !s.inputs.is_empty() && !trimmed(&s.inputs).contains(&col) {
            return bad(format!("--embed {e}: {col:?} is not among the --inputs"));
        }
    }
    if let Some(w) = s
        .hidden
        .iter()
        .chain(&tower)
        .chain(&expert)
        .find(|&&w| w == 0)
    {
        return bad(format!(
            "layer widths must be at least 1 (--hidden {:?}, --tower {:?}, --expert {:?}; got {w})",
            s.hidden, tower, expert
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for t in &s.tasks {
        // A warm start names the model's tasks without their kinds.
        let name = match s.init.is_some() && !t.contains(':') {
            true => t.trim().to_string(),
            false => parse_task(t)?.0,
        };
        if !seen.insert(name.clone()) {
            return bad(format!("--task {name:?} is given twice"));
        }
    }
    let mut inputs = std::collections::HashSet::new();
    if let Some(again) = trimmed(&s.inputs)
        .into_iter()
        .find(|c| !inputs.insert(c.clone()))
    {
        return bad(format!("--inputs names {again:?} twice"));
    }
    Ok(())
}

/// `--resume` continues the model's own architecture: a `--hidden`, `--tower`,
/// `--trunk`, `--embed`, `--arch` or `--activation` that asks for another is
/// refused (they used to be ignored, and recorded as if used). A flag counts
/// as given when it was on the command line or in the config file, even at
/// its default value ([`RunSettings::was_given`]).
fn check_resumed_architecture(
    s: &RunSettings,
    path: &Path,
    ck: &checkpoint::Checkpoint,
) -> Result<()> {
    let net = &ck.meta.net;
    let mut clash = Vec::new();
    if s.was_given("hidden") && s.hidden != net.trunk {
        clash.push(format!(
            "--hidden {} (the model's: {})",
            widths_text(&s.hidden),
            widths_text(&net.trunk)
        ));
    }
    clash.extend(layer_clashes(s, net));
    let image = image_of(s).ok().flatten();
    if s.was_given("image") && image != net.image {
        let theirs = net.image.map_or("none".to_string(), |i| i.to_string());
        clash.push(format!(
            "--image {} (the model's: {theirs})",
            s.image.as_deref().unwrap_or("")
        ));
    }
    if s.was_given("arch") && s.arch.trim().to_ascii_lowercase() != net.arch.name() {
        clash.push(format!(
            "--arch {} (the model's: {})",
            s.arch,
            net.arch.name()
        ));
    }
    if s.was_given("activation") && s.activation != net.activation {
        clash.push(format!(
            "--activation {} (the model's: {})",
            s.activation.name(),
            net.activation.name()
        ));
    }
    if clash.is_empty() {
        return Ok(());
    }
    Err(Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!(
            "{flag} continues the model's architecture, so {} cannot apply; \
             drop the flag, or train a new model without {flag}",
            clash.join(", "),
            flag = parent_flag(s)
        ),
    })
}

/// Widths as a flag writes them, or "none".
fn widths_text(v: &[usize]) -> String {
    if v.is_empty() {
        return "none".to_string();
    }
    let w: Vec<String> = v.iter().map(|w| w.to_string()).collect();
    w.join(",")
}

/// A layer list as a flag writes it.
fn layers_text(l: &[crate::nn::LayerSpec]) -> String {
    let l: Vec<String> = l.iter().map(|x| x.to_string()).collect();
    l.join(",")
}

/// `--tower`, `--embed` and `--trunk` given on a resume that ask for other
/// layers or embeddings than the model's.
fn layer_clashes(s: &RunSettings, net: &crate::nn::NetSpec) -> Vec<String> {
    let mut clash = Vec::new();
    let (tower, tower_layers) = layer_list("--tower", &s.tower).unwrap_or_default();
    if s.was_given("tower") && (tower != net.tower || tower_layers != net.tower_layers) {
        let text = |widths: &[usize], layers: &[crate::nn::LayerSpec]| match layers.is_empty() {
            true => widths_text(widths),
            false => layers_text(layers),
        };
        let (given, theirs) = (
            text(&tower, &tower_layers),
            text(&net.tower, &net.tower_layers),
        );
        clash.push(format!("--tower {given} (the model's: {theirs})"));
    }
    let embedded: Vec<String> = net
        .embeddings
        .iter()
        .map(|e| format!("{}:{}", e.column, e.dim))
        .collect();
    let given: Vec<String> = s.embed.iter().map(|e| e.replace(' ', "")).collect();
    if s.was_given("embed") && given != embedded {
        let theirs = match embedded.is_empty() {
            true => "none".into(),
            false => embedded.join(" --embed "),
        };
        let given = given.join(" --embed ");
        clash.push(format!("--embed {given} (the model's: {theirs})"));
    }
    let (_, trunk_layers) = layer_list("--trunk", &s.trunk).unwrap_or_default();
    if s.was_given("trunk") && trunk_layers != net.trunk_specs() {
        clash.push(format!(
            "--trunk {} (the model's: {})",
            layers_text(&trunk_layers),
            layers_text(&net.trunk_specs())
        ));
    }
    let expert = expert_layers(s);
    if s.was_given("expert") && expert != net.expert_layers {
        let theirs = match net.expert_layers.is_empty() {
            true => "one linear layer each".to_string(),
            false => layers_text(&net.expert_layers),
        };
        clash.push(format!(
            "--expert {} (the model's: {theirs})",
            layers_text(&expert)
        ));
    }
    clash
}

/// `--expert` as a layer list (widths: each a linear layer and the activation).
fn expert_layers(s: &RunSettings) -> Vec<crate::nn::LayerSpec> {
    match layer_list("--expert", &s.expert).unwrap_or_default() {
        (widths, layers) if layers.is_empty() => {
            crate::nn::LayerSpec::from_widths(&widths, s.activation)
        }
        (_, layers) => layers,
    }
}

/// `--image` read, if given.
pub(crate) fn image_of(s: &RunSettings) -> Result<Option<crate::nn::layer::Image>> {
    s.image
        .as_deref()
        .map(|t| {
            crate::nn::layer::Image::parse(t).map_err(|e| match e {
                Error::InvalidConfig(m) => Error::InvalidConfig(format!("--image: {m}")),
                other => other,
            })
        })
        .transpose()
}

fn need(what: &str) -> Error {
    Error::InvalidConfig(format!("missing setting: {what}"))
}

/// The input columns and tasks: as given, or the resumed model's (which the
/// given ones, if any, must then match).
fn columns(s: &RunSettings, resume: Option<&Resumed>) -> Result<(Vec<String>, Tasks)> {
    let given_tasks =
        || -> Result<Vec<(String, TaskType)>> { s.tasks.iter().map(|t| parse_task(t)).collect() };
    let Some((path, ck)) = resume else {
        if s.tasks.is_empty() {
            return Err(need("--task"));
        }
        return Ok((trimmed(&s.inputs), given_tasks()?));
    };
    let mismatch = |reason: String| Error::Checkpoint {
        path: path.clone(),
        reason,
    };
    let inputs = ck.meta.schema.input_names();
    let tasks: Vec<(String, TaskType)> = ck
        .meta
        .schema
        .tasks
        .iter()
        .map(|t| (t.name().to_string(), TaskType(t.kind.info())))
        .collect();
    if !s.inputs.is_empty() && trimmed(&s.inputs) != inputs {
        let reason = format!("the model's inputs are {inputs:?}, not {:?}", s.inputs);
        return Err(mismatch(reason));
    }
    if s.init.is_some() {
        return Ok((inputs, warm_tasks(s, &tasks)?));
    }
    if !s.tasks.is_empty() {
        let given = given_tasks()?;
        if given != tasks {
            let reason = format!("the model's tasks are {tasks:?}, not {given:?}");
            return Err(mismatch(reason));
        }
    }
    Ok((inputs, tasks))
}

/// A warm start's tasks: each `--task` given, as NAME (one of the model's,
/// with its kind) or NAME:KIND (the model's, of the same kind, or a new
/// one); none given: the model's.
fn warm_tasks(s: &RunSettings, model: &[(String, TaskType)]) -> Result<Tasks> {
    if s.tasks.is_empty() {
        return Ok(model.to_vec());
    }
    let names: Vec<&str> = model.iter().map(|(n, _)| n.as_str()).collect();
    let mut out = Vec::new();
    for spec in &s.tasks {
        let known = model.iter().find(|(n, _)| n == spec.trim());
        let (name, ty) = match known {
            Some(t) => t.clone(),
            None if !spec.contains(':') => {
                return Err(Error::InvalidConfig(format!(
                    "--task {spec}: the model has no task of that name (it has {}); \
                     a new task needs its kind, {spec}:KIND",
                    names.join(", ")
                )))
            }
            None => parse_task(spec)?,
        };
        if let Some((_, theirs)) = model.iter().find(|(n, _)| *n == name) {
            if *theirs != ty {
                return Err(Error::InvalidConfig(format!(
                    "--task {spec}: the model's {name:?} is a {} task",
                    theirs.0.name
                )));
            }
        }
        out.push((name, ty));
    }
    Ok(out)
}

/// The flag a run names its starting model by.
fn parent_flag(s: &RunSettings) -> &'static str {
    match s.init {
        Some(_) => "--init",
        None => "--resume",
    }
}

/// A warm start splits its rows as the model's run did, unless told
/// otherwise: fine-tuned on the same file, its test rows stay unseen.
fn with_parent_split(s: &RunSettings, parent: Option<&Resumed>) -> RunSettings {
    let mut s = s.clone();
    let record = parent.and_then(|(_, ck)| ck.meta.split.as_ref());
    if let (Some(_), Some(r)) = (&s.init, record) {
        if !s.was_given("seed") {
            s.seed = r.seed;
        }
        if !s.was_given("val_fraction") {
            s.val_fraction = r.val_fraction;
        }
        if !s.was_given("test_fraction") {
            s.test_fraction = r.test_fraction;
        }
    }
    s
}

/// A mixture with a gate (and experts) per task names them by the task's
/// place, not its name: a warm start of one keeps the model's tasks, in
/// order, or its gates would go to the wrong tasks.
fn check_warm_tasks(
    s: &RunSettings,
    path: &Path,
    ck: &checkpoint::Checkpoint,
    tasks: &Tasks,
) -> Result<()> {
    let arch = ck.meta.net.arch.name();
    let theirs: Vec<&str> = ck.meta.schema.tasks.iter().map(|t| t.name()).collect();
    let ours: Vec<&str> = tasks.iter().map(|(n, _)| n.as_str()).collect();
    if s.init.is_none() || ["shared", "omoe"].contains(&arch) || theirs == ours {
        return Ok(());
    }
    Err(Error::Checkpoint {
        path: path.to_path_buf(),
        reason: format!(
            "an {arch} model has a gate per task, by place: --init keeps its tasks \
             ({}) in order; with a shared trunk or omoe any tasks can be chosen",
            theirs.join(", ")
        ),
    })
}

/// The trainer's settings; a resumed model keeps its architecture and starts
/// from its weights.
/// The gradient space `--space` asks for, if any (checked before any work).
pub(crate) fn space_of(s: &RunSettings) -> Result<Option<crate::mtl::GradSpace>> {
    s.space
        .as_deref()
        .map(crate::mtl::GradSpace::parse)
        .transpose()
        .map_err(|e| e.context("--space"))
}

/// The architecture the settings ask for (checked before any work).
pub(crate) fn arch_of(s: &RunSettings) -> Result<crate::nn::Arch> {
    crate::nn::Arch::parse(
        &s.arch,
        s.experts,
        s.task_experts,
        s.expert_hidden,
        s.levels,
    )
    .map_err(|e| {
        e.context(format!(
            "--arch {} (--experts {}, --task-experts {}, --expert-hidden {}, --levels {})",
            s.arch, s.experts, s.task_experts, s.expert_hidden, s.levels
        ))
    })
}

pub(crate) fn train_config(
    s: &RunSettings,
    resume: Option<&Resumed>,
    grad_space: Option<crate::mtl::GradSpace>,
    arch: crate::nn::Arch,
) -> TrainConfig {
    let expert_layers = match resume {
        Some((_, ck)) => ck.meta.net.expert_layers.clone(),
        None => expert_layers(s),
    };
    let (trunk, tower, activation, arch, trunk_layers, tower_layers) = match resume {
        Some((_, ck)) => {
            let net = &ck.meta.net;
            let layers = (net.trunk_layers.clone(), net.tower_layers.clone());
            let widths = (net.trunk.clone(), net.tower.clone());
            (
                widths.0,
                widths.1,
                net.activation,
                net.arch.clone(),
                layers.0,
                layers.1,
            )
        }
        None => {
            // Checked by check_sizes before this.
            let (tower, tower_layers) = layer_list("--tower", &s.tower).unwrap_or_default();
            let (_, mut trunk_layers) = layer_list("--trunk", &s.trunk).unwrap_or_default();
            // Augmentation first: it moves the input images (checked by check_sizes).
            let augment =
                crate::nn::LayerSpec::parse_list(&s.augment.join(",")).unwrap_or_default();
            trunk_layers.splice(0..0, augment);
            let trunk = if trunk_layers.is_empty() {
                s.hidden.clone()
            } else {
                Vec::new()
            };
            (trunk, tower, s.activation, arch, trunk_layers, tower_layers)
        }
    };
    TrainConfig {
        epochs: s.epochs,
        batch_size: s.batch,
        optimizer: s.optimizer,
        lr: s.lr,
        momentum: s.momentum,
        weight_decay: s.weight_decay,
        seed: s.seed,
        trunk,
        tower,
        trunk_layers,
        tower_layers,
        expert_layers,
        activation,
        arch,
        patience: Some(s.patience),
        init: resume.map(|(p, ck)| {
            Arc::new(InitParams {
                source: p.clone(),
                values: ck.tensors.clone(),
                warm: s.init.is_some(),
            })
        }),
        // Checked by check_sizes before this.
        freeze: crate::nn::Freeze::parse(&s.freeze).unwrap_or_default(),
        half: s.half,
        grad_space,
        grad_stats: s.grad_stats,
        profile: s.profile,
        dump_step: s.dump_step,
        dump_graph: s.dump_graph,
        watch_every: s.grad_stats_every,
        ..Default::default()
    }
}

/// Train a prepared run and write its folder; `on_epoch` sees every epoch (a progress bar, say).
pub fn execute_run(
    gpu: &Gpu,
    p: PreparedRun,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<RunOutcome> {
    let PreparedRun {
        settings,
        out,
        data,
        split,
        schema,
        cfg,
        weighting,
        dropped_rows,
        split_record,
        epochs_before,
        parent,
        _lock,
        ..
    } = p;
    let all: Vec<usize> = (0..data.tasks.len()).collect();
    check_fits(gpu, &cfg, &data)?;
    let report = fit(
        gpu,
        &data,
        &split,
        &all,
        weighting.build(cfg.seed)?,
        &cfg,
        on_epoch,
    )
    .map_err(|e| explain_size(e, &cfg))?;
    let baselines = if settings.baselines {
        let fresh = TrainConfig {
            init: None,
            freeze: crate::nn::Freeze::None,
            ..cfg.clone()
        };
        single_task_baselines(gpu, &data, &split, &all, &fresh)?
    } else {
        Vec::new()
    };
    // The effective settings: a resumed model's architecture, not the flags'.
    // Paths as file names only: a shared model names no folder of its maker's.
    let mut recorded = settings.clone();
    recorded.out = file_name(Some(&out)).unwrap_or_default().into();
    recorded.data = file_name(recorded.data.as_deref()).map(Into::into);
    recorded.resume = recorded
        .resume
        .as_deref()
        .and_then(|p| file_name(Some(p)))
        .map(Into::into);
    recorded.init = (recorded.init.as_deref())
        .and_then(|p| file_name(Some(p)))
        .map(Into::into);
    recorded.record_net(&report.net.spec);
    let meta = ModelMeta {
        schema: schema.clone(),
        net: report.net.spec.clone(),
        config: serde_json::to_value(&recorded)
            .map_err(|e| Error::internal("recording the run's settings", e))?,
        epochs_trained: epochs_before + report.history.len(),
        split: Some(split_record),
        parent,
    };
    let files = write_run_outputs(gpu, &out, &settings, &report, &baselines, &meta)?;
    let split_sizes = (split.train.len(), split.val.len(), split.test.len());
    Ok(RunOutcome {
        report,
        baselines,
        dropped_rows,
        files,
        schema,
        split: split_sizes,
    })
}

/// The run folder's outputs (model, metrics, optional steps and graph,
/// plots), written aside and then replacing the folder's as a whole
/// ([`super::staging`]); returns the files as they are named in the end.
fn write_run_outputs(
    gpu: &Gpu,
    out: &Path,
    settings: &RunSettings,
    report: &FitReport,
    baselines: &[FitReport],
    meta: &ModelMeta,
) -> Result<Vec<PathBuf>> {
    let stage = super::staging::Staging::new(out, RUN_FILES, &["plots"])?;
    let model_path = stage.path("model.safetensors");
    checkpoint::save(&model_path, &report.params.read_all(gpu)?, meta)?;
    let metrics_path = stage.path("metrics.csv");
    crate::cli::report::write_metrics_csv(&metrics_path, &report.tasks, &report.history)?;
    let mut files = vec![model_path, metrics_path];
    if settings.grad_stats_every > 0 {
        let steps_path = stage.path("steps.csv");
        crate::cli::report::write_steps_csv(&steps_path, &report.tasks, &report.history)?;
        files.push(steps_path);
    }
    if settings.dump_graph {
        let graph_path = stage.path("graph.dot");
        crate::cli::report::write_text(&graph_path, &report.graph)?;
        files.push(graph_path);
    }
    let stl: Vec<&[EpochLog]> = baselines.iter().map(|b| b.history.as_slice()).collect();
    let plots = stage.path("plots");
    files.extend(crate::cli::report::write_plots(
        &plots,
        &report.tasks,
        &report.history,
        Some(report.best_epoch),
        &stl,
    )?);
    files.extend(crate::cli::report::write_gate_plot(
        &plots,
        &report.tasks,
        &report.history,
    )?);
    stage.commit(files)
}

/// A path's last component, as text.
fn file_name(path: Option<&Path>) -> Option<String> {
    Some(path?.file_name()?.to_string_lossy().into_owned())
}

/// The files a training run writes in its folder (beside `plots/`).
const RUN_FILES: &[&str] = &["model.safetensors", "metrics.csv", "steps.csv", "graph.dot"];

/// Refuse, before the weights are drawn, a network whose parameters or
/// widest activation cannot be bound on this adapter: drawing billions of
/// initial weights on the CPU took minutes before the GPU said no. The sizes
/// are the built layout's (`MultiTaskNet::size`), right for every
/// architecture and layer list.
pub(crate) fn check_fits(gpu: &Gpu, cfg: &TrainConfig, data: &crate::data::Dataset) -> Result<()> {
    let size = crate::nn::MultiTaskNet::size(gpu, cfg.net_spec(data, &data.tasks))?;
    let widest = (size.widest * cfg.batch_size) as u64;
    let bytes = 4 * (size.params as u64).max(widest);
    gpu.check_binding_size(bytes).map_err(|e| match e {
        Error::BufferTooLarge { bytes, limit } => Error::InvalidConfig(format!(
            "the network ({}; {} parameters, activations up to {} wide) with --batch {} \
             needs a buffer of {bytes} bytes, and this adapter binds at most {limit}: \
             use fewer or narrower layers{} or a smaller batch",
            describe_net(cfg),
            size.params,
            size.widest,
            cfg.batch_size,
            if cfg.arch.sizes().is_some() {
                ", fewer or narrower experts"
            } else {
                ""
            },
        )),
        other => other,
    })
}

/// The network's shape as the flags that set it.
fn describe_net(cfg: &TrainConfig) -> String {
    let list = |v: &[crate::nn::LayerSpec]| {
        v.iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let widths = |v: &[usize]| {
        v.iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut parts = Vec::new();
    match cfg.arch.sizes() {
        Some(z) if !cfg.expert_layers.is_empty() => parts.push(format!(
            "--arch {} with {} shared and {} per-task experts --expert {}",
            cfg.arch.name(),
            z.shared,
            z.per_task,
            list(&cfg.expert_layers)
        )),
        Some(z) if z.per_task == 0 => parts.push(format!(
            "--arch {} with {} experts of width {}",
            cfg.arch.name(),
            z.shared,
            z.hidden
        )),
        Some(z) => parts.push(format!(
            "--arch {} with {} shared and {} per-task experts of width {}",
            cfg.arch.name(),
            z.shared,
            z.per_task,
            z.hidden
        )),
        None if !cfg.trunk_layers.is_empty() => {
            parts.push(format!("--trunk {}", list(&cfg.trunk_layers)))
        }
        None => parts.push(format!("--hidden {}", widths(&cfg.trunk))),
    }
    if !cfg.tower_layers.is_empty() {
        parts.push(format!("--tower {}", list(&cfg.tower_layers)));
    } else if !cfg.tower.is_empty() {
        parts.push(format!("--tower {}", widths(&cfg.tower)));
    }
    parts.join(", ")
}

/// A buffer beyond the adapter's limit met while training, said in the
/// settings that made it.
pub(crate) fn explain_size(e: Error, cfg: &TrainConfig) -> Error {
    match e {
        Error::BufferTooLarge { bytes, limit } => Error::InvalidConfig(format!(
            "the network ({}) with --batch {} needs a buffer of {bytes} bytes, \
             and this adapter binds at most {limit}: use narrower layers or a smaller batch",
            describe_net(cfg),
            cfg.batch_size
        )),
        other => other,
    }
}

/// [`prepare_run`] then [`execute_run`].
pub fn train_run(
    gpu: &Gpu,
    s: &RunSettings,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<RunOutcome> {
    execute_run(gpu, prepare_run(s)?, on_epoch)
}

/// The MTL-versus-STL table (STL columns only when baselines ran), as printed by iris_mtl.
pub fn results_table(outcome: &RunOutcome) -> String {
    let mut t = String::new();
    if outcome.report.test.is_empty() || outcome.baselines.iter().any(|b| b.test.is_empty()) {
        return "no test rows (raise --test-fraction or add data): nothing to report\n".into();
    }
    let with_stl = !outcome.baselines.is_empty();
    t += &format!(
        "{:<18} {:<10} {:>9}{}\n",
        "task",
        "metric",
        "MTL",
        if with_stl {
            format!(" {:>9}", "STL")
        } else {
            String::new()
        }
    );
    for (k, task) in outcome.report.tasks.iter().enumerate() {
        let stl = outcome.baselines.get(k).map(|r| &r.test[0]);
        let rows: Vec<(&str, f64, Option<f64>)> = outcome.report.test[k]
            .metrics
            .iter()
            .map(|m| (m.name, m.value, stl.and_then(|s| s.get(m.name))))
            .collect();
        for (i, (name, m, s)) in rows.into_iter().enumerate() {
            let label = if i == 0 { task.name.as_str() } else { "" };
            let stl_col = s.map(|v| format!(" {v:>9.4}")).unwrap_or_default();
            t += &format!("{label:<18} {name:<10} {m:>9.4}{stl_col}\n");
        }
    }
    if with_stl {
        let m: Vec<_> = outcome.report.test.iter().map(|x| x.primary()).collect();
        let s: Vec<_> = outcome
            .baselines
            .iter()
            .map(|r| r.test[0].primary())
            .collect();
        t += &format!(
            "\nΔm% (each task's primary metric, the first above, against the single-task baselines): {:+.2}\n",
            crate::train::metrics::delta_m(&m, &s)
        );
    }
    t
}
