//! Every setting of a training run, in one struct that is at once the
//! command line's flags (clap, with each default shown in `--help`), the
//! config file's keys (serde, TOML; unknown keys refused), and the record
//! saved in the model's metadata (the effective values, defaults included).
//!
//! Defaults are written once: the training run's in `TrainConfig::default`,
//! read by the clap attributes (the tool's own, such as `--out`, on the
//! attributes); [`RunSettings::default`]
//! reads them back by parsing an empty command line, and serde fills keys a
//! file leaves out from that. A flag given on the command line wins over the
//! file ([`RunSettings::with_file`]).

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, Parser};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::Activation;
use crate::optim::OptimizerKind;
use crate::train::TrainConfig;

/// Everything `taskgrad train` takes, from flags or a TOML file.
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// The CSV file.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Input columns, comma-separated; non-numeric columns are one-hot
    /// encoded. Left out: every column that is not a task.
    #[arg(long, value_delimiter = ',')]
    pub inputs: Vec<String>,
    /// The input columns, in order, are one image's pixels, HxW (one
    /// channel) or HxWxC: row by row, left to right, a pixel's C channels
    /// together (NHWC, as a flattened MNIST row). Each channel is
    /// standardised with the mean and spread of all its pixels in the
    /// training rows. Makes conv, maxpool, avgpool and flatten usable in
    /// --trunk and --tower.
    #[arg(long, value_name = "HxW[xC]")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A task, COLUMN:KIND (class, reg, binary, or a registered kind); repeat for several.
    #[arg(long = "task")]
    pub tasks: Vec<String>,
    /// An input column with many levels looked up in a learned embedding of
    /// DIM values instead of one-hot encoded, COLUMN:DIM; repeat for several.
    /// A level unseen in training reads a row of zeros.
    #[arg(long = "embed")]
    pub embed: Vec<String>,
    /// The multi-task method.
    #[arg(long, default_value = "equal", long_help = crate::mtl::weighting_help())]
    pub weighting: String,
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Rows per minibatch.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub batch: usize,
    /// Hidden widths of the shared trunk, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = default_hidden())]
    pub hidden: Vec<usize>,
    /// The shared trunk as a list of layers, e.g.
    /// "linear:64,relu,layernorm,dropout:0.1,linear:64,gelu" (instead of
    /// --hidden and --activation). Layers: linear:N, relu, gelu, tanh,
    /// layernorm, dropout:P, and over an --image conv:OUTxK (stride and
    /// padding optional: conv:16x3s1p1), maxpool:K, avgpool:K and flatten
    /// (e.g. LeNet's
    /// "conv:10x5,maxpool:2,relu,conv:20x5,maxpool:2,relu,flatten,linear:50,relu"),
    /// and any registered.
    #[arg(long, value_delimiter = ',', conflicts_with = "hidden")]
    #[serde(deserialize_with = "items", default)]
    pub trunk: Vec<String>,
    /// Augment the training images, drawn anew each step on the GPU
    /// (--image): shift:S (each image moved by up to S pixels each way, zero
    /// padding) and flip (mirrored left-right with probability ½),
    /// comma-separated; layers put first in the --trunk, the identity at
    /// evaluation. E.g. "shift:2".
    #[arg(long, value_delimiter = ',')]
    #[serde(deserialize_with = "items", default)]
    pub augment: Vec<String>,
    /// Each task's own tower: widths ("32,16": each a linear layer and the
    /// --activation) or a list of layers ("linear:32,relu,dropout:0.1");
    /// none by default.
    #[arg(long, value_delimiter = ',')]
    #[serde(deserialize_with = "items", default)]
    pub tower: Vec<String>,
    /// The hidden layers' activation.
    #[arg(long, value_enum, default_value_t = TrainConfig::default().activation)]
    pub activation: Activation,
    /// The shared part: shared (a trunk of --hidden widths), cross_stitch (a
    /// column of those layers per task, mixed by learned units), ltb (such
    /// columns, each stage reading one parent column it learns to pick), mtan
    /// (the trunk with a per-task attention mask on each stage), or a mixture of
    /// experts: omoe (one gate), mmoe (a gate per task), cgc (shared and
    /// per-task experts), ple (--levels stacked cgc layers), dselect_k:K
    /// (mmoe whose gates select K of the --experts, a power of two).
    #[arg(long, default_value = "shared")]
    pub arch: String,
    /// Experts of a mixture (the shared ones for cgc and ple).
    #[arg(long, default_value_t = 4)]
    pub experts: usize,
    /// Each task's own experts (cgc, ple).
    #[arg(long, default_value_t = 1)]
    pub task_experts: usize,
    /// Width of each expert's output (a mixture's representation): each
    /// expert is one linear layer and the --activation.
    #[arg(long, default_value_t = 32)]
    pub expert_hidden: usize,
    /// Each expert of a mixture as widths ("64,32": each a linear layer and
    /// the --activation) or a list of layers
    /// ("linear:64,relu,layernorm,linear:32,relu"), instead of
    /// --expert-hidden; its output width is the mixture's representation.
    #[arg(long, value_delimiter = ',', conflicts_with = "expert_hidden")]
    #[serde(deserialize_with = "items", default)]
    pub expert: Vec<String>,
    /// Stacked extraction layers (ple).
    #[arg(long, default_value_t = 2)]
    pub levels: usize,
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = TrainConfig::default().optimizer)]
    pub optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    pub lr: f32,
    /// SGD's momentum.
    #[arg(long, default_value_t = TrainConfig::default().momentum)]
    pub momentum: f32,
    /// Weight decay: an L2 penalty for sgd and adam, decoupled for adamw.
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f32,
    /// Seed of the split, the initial weights, the minibatch order and random methods.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Run folder.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Rows with a missing input: drop them, or mean (fill with the training mean).
    #[arg(long, default_value = "drop")]
    pub impute: String,
    /// Also train single-task baselines and report Δm%.
    #[arg(long)]
    pub baselines: bool,
    /// Fraction of rows held out for validation (early stopping).
    #[arg(long, default_value_t = 0.15)]
    pub val_fraction: f64,
    /// Fraction of rows held out for the test metrics.
    #[arg(long, default_value_t = 0.15)]
    pub test_fraction: f64,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long, default_value_t = TrainConfig::default().patience.unwrap_or(0))]
    pub patience: usize,
    /// Continue training from a saved model (its inputs, tasks and architecture).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start from a saved model's weights, on this --data or another CSV
    /// with the model's input columns (a warm start, a fine-tuning): the
    /// model's inputs, their encodings and its architecture. Each --task the
    /// model has (NAME, or NAME:KIND) keeps its head and encoding, a new one
    /// (NAME:KIND) gets a fresh head, and the model's other tasks are left
    /// out; no --task: the model's tasks. --seed, --val-fraction and
    /// --test-fraction default to the model's split.
    #[arg(long, conflicts_with = "resume", value_name = "MODEL")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Parameters held fixed: none; trunk (the shared part: embeddings and
    /// the trunk, or a mixture's experts and its gate if one serves every
    /// task; each task's own gate trains); or parameter names and
    /// prefixes, comma-separated (trunk.0, embed, head.species.tower). A
    /// frozen parameter gets no gradient and no update: its values stay
    /// the same to the bit.
    #[arg(long, default_value = "none")]
    pub freeze: String,
    /// f16 matmuls and activations with f32 master weights (adapters with SHADER_F16).
    #[arg(long)]
    pub half: bool,
    /// Where gradient methods take per-task gradients: params (of the shared
    /// parameters) or rep (at the shared representation); default: the method's own.
    #[arg(long)]
    pub space: Option<String>,
    /// Print each task's gradient norm and the pairwise cosines every epoch
    /// (they go to metrics.csv too); takes per-task gradients for any method.
    #[arg(long)]
    pub grad_stats: bool,
    /// Time each kernel over the first epoch's steps and print the table
    /// (adapters with timestamp queries).
    #[arg(long)]
    pub profile: bool,
    /// Print the training step's dispatches, in order: each kernel, its grid
    /// and the shapes of the tensors it binds.
    #[arg(long)]
    pub dump_step: bool,
    /// Write graph.dot: the training step's graph, each node with the last
    /// step's value and gradient (render with `dot -Tsvg graph.dot`).
    #[arg(long)]
    pub dump_graph: bool,
    /// Every N steps, record each task's weight and the per-task gradients'
    /// norms and cosines, to steps.csv (0: never); takes per-task gradients.
    #[arg(long, default_value_t = 0)]
    pub grad_stats_every: usize,
    /// Replace the model of an --out folder that already holds one.
    #[arg(long)]
    pub force: bool,
    /// Keep a 64-bit fingerprint of the training rows in the model, so that
    /// `eval` recognises the training file by its contents (not only by its
    /// name and row count). Off by default: with the model, anyone holding a
    /// candidate data set could confirm it was the training set.
    #[arg(long)]
    pub record_data_fingerprint: bool,
    /// The settings given on the command line or in the config file, by
    /// name (None: settings made in code, where a value other than the
    /// default counts as given). Not a flag, not saved.
    #[arg(skip)]
    #[serde(skip)]
    pub given: Option<Vec<String>>,
}

/// `TrainConfig`'s default trunk widths as the flag writes them ("64,64").
fn default_hidden() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let widths: Vec<String> = TrainConfig::default()
            .trunk
            .iter()
            .map(|w| w.to_string())
            .collect();
        widths.join(",")
    })
}

/// A list setting from a config file: an array of strings or numbers
/// (`tower = [32, 16]`, `trunk = ["linear:64", "relu"]`) or one
/// comma-separated string (`trunk = "linear:64,relu"`).
fn items<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Number(u64),
        Text(String),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Items {
        One(String),
        Many(Vec<Item>),
    }
    Ok(match Items::deserialize(d)? {
        Items::One(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
        Items::Many(v) => v
            .into_iter()
            .map(|i| match i {
                Item::Number(n) => n.to_string(),
                Item::Text(s) => s.trim().to_string(),
            })
            .collect(),
    })
}

/// A layer list as given (`--trunk`, `--tower`): plain widths (`32,16`, each
/// a linear layer and `activation`: returned as widths) or layers
/// (`linear:32,relu`).
pub fn layer_list(flag: &str, items: &[String]) -> Result<(Vec<usize>, Vec<crate::nn::LayerSpec>)> {
    // The flag's items were split at every comma: joined again and split
    // outside parentheses, `res(linear:8,relu,linear:8)` is one item.
    let items = crate::nn::LayerSpec::split_list(&items.join(","))?;
    let items: Vec<&str> = items.iter().map(|s| s.as_str()).collect();
    let widths: Vec<Option<usize>> = items.iter().map(|s| s.parse().ok()).collect();
    if widths.iter().all(Option::is_some) {
        return Ok((widths.into_iter().flatten().collect(), Vec::new()));
    }
    if let Some(n) = items.iter().find(|s| s.parse::<usize>().is_ok()) {
        return Err(Error::InvalidConfig(format!(
            "{flag} {}: {n:?} is a width among layers; write linear:{n}",
            items.join(",")
        )));
    }
    let specs = items
        .iter()
        .map(|s| crate::nn::LayerSpec::parse(s))
        .collect::<Result<Vec<_>>>()?;
    Ok((Vec::new(), specs))
}

/// `--embed COLUMN:DIM` as (column, width).
pub fn parse_embed(spec: &str) -> Result<(String, usize)> {
    let bad = || {
        Error::InvalidConfig(format!(
            "--embed {spec:?} must be COLUMN:DIM, DIM a width of at least 1"
        ))
    };
    let (col, dim) = spec.rsplit_once(':').ok_or_else(bad)?;
    let dim: usize = dim.trim().parse().map_err(|_| bad())?;
    if dim == 0 || col.trim().is_empty() {
        return Err(bad());
    }
    Ok((col.trim().to_string(), dim))
}

/// [`RunSettings`] alone on a command line, to read the defaults back from clap.
#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    settings: RunSettings,
}

impl Default for RunSettings {
    fn default() -> Self {
        Defaults::parse_from(["taskgrad"]).settings
    }
}

impl RunSettings {
    /// Set the network's flags to what `spec` is: trunk and tower (widths or
    /// layer lists), activation and architecture (the effective settings of a
    /// run, recorded with its model; a resumed model's, not the flags').
    pub fn record_net(&mut self, spec: &crate::nn::NetSpec) {
        let strings = |l: &[crate::nn::LayerSpec]| l.iter().map(|x| x.to_string()).collect();
        self.hidden = spec.trunk.clone();
        self.trunk = strings(&spec.trunk_layers);
        self.tower = match spec.tower_layers.is_empty() {
            true => spec.tower.iter().map(|w| w.to_string()).collect(),
            false => strings(&spec.tower_layers),
        };
        self.expert = strings(&spec.expert_layers);
        self.activation = spec.activation;
        self.record_arch(&spec.arch);
    }

    /// Set the architecture flags to what `arch` is (the effective settings
    /// of a run, recorded with its model).
    pub fn record_arch(&mut self, arch: &crate::nn::Arch) {
        use crate::nn::Arch;
        self.arch = match arch {
            Arch::DselectK { selected, .. } => format!("dselect_k:{selected}"),
            _ => arch.name().to_string(),
        };
        if let Some(z) = arch.sizes() {
            self.experts = z.shared;
            self.expert_hidden = z.hidden;
            if matches!(arch, Arch::Cgc { .. } | Arch::Ple { .. }) {
                self.task_experts = z.per_task;
            }
            if matches!(arch, Arch::Ple { .. }) {
                self.levels = z.levels;
            }
        }
    }

    /// Read a TOML file; unknown keys are an error, missing keys take the defaults.
    pub fn from_toml(path: &Path) -> Result<RunSettings> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let bad = |what: String| Error::InvalidConfig(format!("{}: {what}", path.display()));
        // A number no setting can hold is named with its key (it would reach
        // the settings as an infinity or NaN, and fail later without either).
        if let Ok(table) = text.parse::<toml::Table>() {
            for (key, value) in &table {
                if let toml::Value::Float(f) = value {
                    if !f.is_finite() {
                        return Err(bad(format!("{key} = {f} is not a finite number")));
                    }
                    if (*f as f32).is_infinite() {
                        return Err(bad(format!(
                            "{key} = {f:e} is too large: taskgrad computes in f32"
                        )));
                    }
                }
            }
        }
        toml::from_str(&text).map_err(|e| bad(e.message().to_string()))
    }

    /// The settings parsed from `matches` (a command whose arguments flatten
    /// [`RunSettings`]) over those of the TOML file `file`, if any: each flag
    /// given on the command line replaces the file's value.
    pub fn with_file(matches: &ArgMatches, file: Option<&Path>) -> Result<RunSettings> {
        let mut flags = RunSettings::from_arg_matches(matches)
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let on_command_line: Vec<String> = matches
            .ids()
            .map(|id| id.as_str())
            .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
            .map(String::from)
            .collect();
        let Some(file) = file else {
            flags.given = Some(on_command_line);
            return Ok(flags);
        };
        let base = RunSettings::from_toml(file)?;
        let in_file: Vec<String> = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        let json = |s: &RunSettings| {
            serde_json::to_value(s)
                .map_err(|e| Error::internal("merging the config file and the flags", e))
        };
        let (mut merged, given) = (json(&base)?, json(&flags)?);
        for id in matches.ids() {
            let id = id.as_str();
            if matches.value_source(id) == Some(ValueSource::CommandLine) {
                if let Some(v) = given.get(id) {
                    merged[id] = v.clone();
                }
            }
        }
        let mut merged: RunSettings = serde_json::from_value(merged)
            .map_err(|e| Error::internal("merging the config file and the flags", e))?;
        merged.given = Some(on_command_line.into_iter().chain(in_file).collect());
        Ok(merged)
    }

    /// Whether the setting `name` (a field's name) was given: on the command
    /// line or in the config file, even with its default value; for settings
    /// made in code, whether it differs from the default.
    pub fn was_given(&self, name: &str) -> bool {
        match &self.given {
            Some(names) => names.iter().any(|n| n == name),
            None => {
                let json = |s: &RunSettings| serde_json::to_value(s).ok();
                let (this, default) = (json(self), json(&RunSettings::default()));
                this.as_ref().and_then(|v| v.get(name))
                    != default.as_ref().and_then(|v| v.get(name))
            }
        }
    }
}
