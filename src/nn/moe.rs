//! Gated mixtures of experts: the shared part of the network when tasks are
//! only partly related. By default each expert is one layer (in → H, the
//! hidden activation), and the experts of a group are one matmul over their
//! concatenated weights (B×in · in×(E·H)). An expert can be any layer list
//! (`NetSpec::expert_layers`, `--expert "linear:64,relu,layernorm,linear:32,relu"`):
//! then each expert of a group is a [`Stack`] of its own and the group's
//! outputs are set side by side (B×(E·H), H the list's output width); a
//! list of one linear layer and the activation is the fused form. A gate is a linear layer and a
//! row softmax over the experts it mixes (`Tape::gate`); the mixture
//! out\[b,h\] = Σ_e g\[b,e\] Z\[b,e,h\] is one kernel (`Tape::mixture`).
//!
//! - OMoE: one gate over E shared experts; every task reads the same mixture.
//! - MMoE (Ma et al., KDD 2018): a gate per task over the E shared experts.
//! - CGC (Tang et al., RecSys 2020): shared experts and each task's own; task
//!   k's gate mixes the shared ones and its own.
//! - PLE: CGC layers stacked; below the last, a shared gate over every expert
//!   feeds the next layer's shared experts, and task k's mixture its experts
//!   and gate.
//! - DSelect-k (Hazimeh et al., NeurIPS 2021): MMoE whose task gates select
//!   k of the E = 2^m experts, each of k selectors a product of smooth steps
//!   over an expert's m-bit code, the selectors mixed by a softmax
//!   (`Tape::dselect`; `--arch dselect_k:K`). As LibMTL's DSelect_k with
//!   γ = 1 (LibMTL's smooth step ignores its `kgamma`); LibMTL's entropy
//!   penalty (×1e-6, and a mass penalty for E not a power of two) is left
//!   out, and E must be a power of two.
//!
//! Shared parameters (those that reach more than one task's output: shared
//! experts and gates, and below PLE's last layer the task experts too, which
//! the shared gate mixes) are created first, so that they sit together in the
//! arena: parameter-space methods combine per-task gradients over that range.

use rand::rngs::StdRng;

use super::{Activation, Init, LayerSpec, Linear, ParamBuilder, ParamId, ParamSet, Stack};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::kernels::gate::Dselect;

/// The shared part of a multi-task network.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Arch {
    /// Hard parameter sharing: one trunk (`NetSpec::trunk`), one
    /// representation for every task.
    #[default]
    Shared,
    /// One gate over `experts` shared experts, the same mixture for every task.
    Omoe {
        experts: usize,
        expert_hidden: usize,
    },
    /// A gate per task over `experts` shared experts.
    Mmoe {
        experts: usize,
        expert_hidden: usize,
    },
    /// `shared` shared experts and `per_task` experts of each task's own; a
    /// gate per task over the shared ones and its own.
    Cgc {
        shared: usize,
        per_task: usize,
        expert_hidden: usize,
    },
    /// `levels` CGC layers; below the last, a shared gate over every expert.
    Ple {
        shared: usize,
        per_task: usize,
        expert_hidden: usize,
        levels: usize,
    },
    /// MMoE with DSelect-k gates (Hazimeh et al., NeurIPS 2021; as LibMTL's
    /// DSelect_k): each task's gate selects `selected` of the `experts`
    /// shared experts (a power of two) by k differentiable selectors over
    /// their binary codes, mixed by a softmax (`Tape::dselect`).
    #[serde(rename = "dselect_k")]
    DselectK {
        experts: usize,
        expert_hidden: usize,
        selected: usize,
    },
    /// A column per task, copies of the trunk's layers, mixed after each
    /// stage by learned cross-stitch units (Misra et al., CVPR 2016;
    /// `nn::cross_stitch`).
    #[serde(rename = "cross_stitch")]
    CrossStitch,
    /// A column per task, each stage's input one parent column picked by a
    /// learned hard Gumbel-softmax (Guo et al., ICML 2020, Learning to
    /// Branch; `nn::cross_stitch`).
    #[serde(rename = "ltb")]
    Ltb,
    /// One shared trunk and per task a soft-attention mask on each stage's
    /// output (Liu et al., CVPR 2019, MTAN; `nn::mtan`).
    #[serde(rename = "mtan")]
    Mtan,
}

impl Arch {
    /// The name `--arch` takes.
    pub fn name(&self) -> &'static str {
        match self {
            Arch::Shared => "shared",
            Arch::Omoe { .. } => "omoe",
            Arch::Mmoe { .. } => "mmoe",
            Arch::Cgc { .. } => "cgc",
            Arch::Ple { .. } => "ple",
            Arch::DselectK { .. } => "dselect_k",
            Arch::CrossStitch => "cross_stitch",
            Arch::Ltb => "ltb",
            Arch::Mtan => "mtan",
        }
    }

    /// The architecture `name` with these sizes (`per_task` and `levels` only
    /// where they apply); `dselect_k:K` names DSelect-k with K selectors (2
    /// when `:K` is left out).
    pub fn parse(
        name: &str,
        experts: usize,
        per_task: usize,
        expert_hidden: usize,
        levels: usize,
    ) -> Result<Arch> {
        let lower = name.trim().to_ascii_lowercase().replace('-', "_");
        let (base, arg) = match lower.split_once(':') {
            Some((b, a)) => (b, Some(a)),
            None => (lower.as_str(), None),
        };
        if base == "dselect_k" || base == "dselect" {
            let selected = match arg {
                None => 2,
                Some(a) => a.trim().parse().map_err(|_| {
                    Error::InvalidConfig(format!(
                        "dselect_k:{a}: the number of selected experts must be a whole number"
                    ))
                })?,
            };
            let arch = Arch::DselectK {
                experts,
                expert_hidden,
                selected,
            };
            arch.check()?;
            return Ok(arch);
        }
        if let Some(a) = arg {
            return Err(Error::InvalidConfig(format!(
                "architecture {base:?} takes no argument (:{a})"
            )));
        }
        let arch = match base {
            "shared" | "hard" => Arch::Shared,
            "cross_stitch" | "crossstitch" => Arch::CrossStitch,
            "ltb" | "learning_to_branch" => Arch::Ltb,
            "mtan" => Arch::Mtan,
            "omoe" => Arch::Omoe {
                experts,
                expert_hidden,
            },
            "mmoe" => Arch::Mmoe {
                experts,
                expert_hidden,
            },
            "cgc" => Arch::Cgc {
                shared: experts,
                per_task,
                expert_hidden,
            },
            "ple" => Arch::Ple {
                shared: experts,
                per_task,
                expert_hidden,
                levels,
            },
            other => {
                return Err(Error::InvalidConfig(format!(
                "unknown architecture {other:?}: use shared, cross_stitch, ltb, mtan, omoe, mmoe, cgc, ple or dselect_k[:K]"
            )))
            }
        };
        arch.check()?;
        Ok(arch)
    }

    /// The sizes of a mixture (None for a trunk): every other method reads them here.
    pub fn sizes(&self) -> Option<Sizes> {
        let mut select = None;
        let (shared, per_task, hidden, levels, one_gate) = match *self {
            Arch::Shared | Arch::CrossStitch | Arch::Ltb | Arch::Mtan => return None,
            Arch::DselectK {
                experts,
                expert_hidden,
                selected,
            } => {
                select = Some(selected);
                (experts, 0, expert_hidden, 1, false)
            }
            Arch::Omoe {
                experts,
                expert_hidden,
            } => (experts, 0, expert_hidden, 1, true),
            Arch::Mmoe {
                experts,
                expert_hidden,
            } => (experts, 0, expert_hidden, 1, false),
            Arch::Cgc {
                shared,
                per_task,
                expert_hidden,
            } => (shared, per_task, expert_hidden, 1, false),
            Arch::Ple {
                shared,
                per_task,
                expert_hidden,
                levels,
            } => (shared, per_task, expert_hidden, levels, false),
        };
        Some(Sizes {
            shared,
            per_task,
            hidden,
            levels,
            one_gate,
            select,
        })
    }

    /// Sizes no network can have.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidConfig(what));
        let Some(z) = self.sizes() else {
            return Ok(());
        };
        if z.hidden == 0 {
            return bad(format!(
                "the {} architecture: expert_hidden (each expert's width) must be at least 1",
                self.name()
            ));
        }
        if z.levels == 0 {
            return bad("the ple architecture: levels must be at least 1".into());
        }
        if let Some(k) = z.select {
            crate::kernels::gate::Dselect::new(z.shared, k)
                .map_err(|e| Error::InvalidConfig(format!("the dselect_k architecture: {e}")))?;
        }
        if matches!(self, Arch::Omoe { .. } | Arch::Mmoe { .. }) && z.shared == 0 {
            return bad(format!(
                "the {} architecture: experts must be at least 1",
                self.name()
            ));
        }
        if z.shared + z.per_task == 0 {
            return bad(format!(
                "the {} architecture: a gate needs at least one expert (shared or per task)",
                self.name()
            ));
        }
        Ok(())
    }

    /// The width of each task's representation (None: the trunk's).
    pub fn width(&self) -> Option<usize> {
        self.sizes().map(|z| z.hidden)
    }
}

/// A mixture's sizes, whatever its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Shared experts per layer.
    pub shared: usize,
    /// Each task's own experts per layer.
    pub per_task: usize,
    /// Each expert's output width.
    pub hidden: usize,
    /// Extraction layers.
    pub levels: usize,
    /// One gate for every task (OMoE).
    pub one_gate: bool,
    /// DSelect-k's gates, selecting this many experts (None: softmax gates).
    pub select: Option<usize>,
}

/// A group of experts over one input (in → E·H).
enum Experts {
    /// One linear layer and the activation each: one matmul for the group.
    Fused(Linear),
    /// A layer list each, side by side.
    Each(Vec<Stack>),
}

impl Experts {
    fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var, act: Activation) -> Result<Var> {
        match self {
            Experts::Fused(linear) => linear.forward(tape, params, x, act),
            Experts::Each(stacks) => {
                let outs = stacks
                    .iter()
                    .map(|s| s.forward(tape, params, x))
                    .collect::<Result<Vec<_>>>()?;
                concat(tape, &outs)
            }
        }
    }

    fn params(&self) -> Vec<ParamId> {
        match self {
            Experts::Fused(linear) => vec![linear.w, linear.b],
            Experts::Each(stacks) => stacks.iter().flat_map(|s| s.params()).collect(),
        }
    }
}

/// How each expert is built: the one-layer default (fused per group), or a
/// layer list.
struct ExpertMaker<'a> {
    layers: &'a [LayerSpec],
    hidden: usize,
}

impl<'a> ExpertMaker<'a> {
    /// Experts of the list `expert` over `inputs`, or of one linear layer of
    /// `hidden` and `activation` when it is empty or just that.
    fn new(
        expert: &'a [LayerSpec],
        hidden: usize,
        activation: Activation,
        inputs: usize,
        rng: &StdRng,
    ) -> Result<Self> {
        if expert.is_empty() || expert == LayerSpec::from_widths(&[hidden], activation) {
            return Ok(ExpertMaker {
                layers: &[],
                hidden,
            });
        }
        // A list's width is what it outputs: one expert built aside says.
        let mut scratch = ParamBuilder::scratch();
        let probe = Stack::build(&mut scratch, "expert", expert, inputs, &mut rng.clone())?;
        Ok(ExpertMaker {
            layers: expert,
            hidden: probe.output(),
        })
    }

    /// `n` experts over `fan_in` inputs, named `<name>` (fused) or `<name>.e<i>`.
    fn group(
        &self,
        p: &mut ParamBuilder,
        name: String,
        fan_in: usize,
        n: usize,
        rng: &mut StdRng,
    ) -> Result<Option<Experts>> {
        if n == 0 {
            return Ok(None);
        }
        if self.layers.is_empty() {
            let linear = Linear::new(p, &name, fan_in, n * self.hidden, Init::He, rng)?;
            return Ok(Some(Experts::Fused(linear)));
        }
        let mut stacks = Vec::new();
        for e in 0..n {
            let stack = Stack::build(p, &format!("{name}.e{e}"), self.layers, fan_in, rng)?;
            if stack.output() != self.hidden {
                return Err(Error::InvalidConfig(format!(
                    "expert {name}.e{e} is {} wide over {fan_in} inputs; every expert must end {} wide",
                    stack.output(),
                    self.hidden
                )));
            }
            stacks.push(stack);
        }
        Ok(Some(Experts::Each(stacks)))
    }
}

/// One extraction layer: expert groups and the gates that mix them.
struct Level {
    /// The shared experts (in → E_s·H), if any.
    shared: Option<Experts>,
    /// Each task's own experts (in → E_t·H), if any.
    task: Vec<Option<Experts>>,
    /// Each task's gate (over the shared experts and its own), or none (OMoE).
    task_gates: Vec<Linear>,
    /// The shared gate: OMoE's only gate, or below PLE's last layer the gate
    /// over every expert that feeds the next layer's shared experts.
    shared_gate: Option<Linear>,
}

/// The mixture-of-experts block of a [`super::MultiTaskNet`].
pub struct Moe {
    levels: Vec<Level>,
    /// DSelect-k's task gates (None: softmax gates).
    select: Option<Dselect>,
    hidden: usize,
    activation: Activation,
    /// The parameters that reach more than one task's output.
    pub shared_params: Vec<ParamId>,
}

impl Moe {
    /// Add the block's parameters (shared ones first) for `tasks` tasks;
    /// each expert is `expert` (a layer list) or, when that is empty, one
    /// linear layer of `expert_hidden` and `activation`.
    pub fn new(
        p: &mut ParamBuilder,
        arch: &Arch,
        expert: &[LayerSpec],
        inputs: usize,
        tasks: usize,
        activation: Activation,
        rng: &mut StdRng,
    ) -> Result<Moe> {
        arch.check()?;
        let Some(Sizes {
            shared: shared_n,
            per_task: task_n,
            hidden,
            levels: n_levels,
            one_gate: omoe,
            select,
        }) = arch.sizes()
        else {
            return Err(Error::InvalidConfig("a shared trunk has no experts".into()));
        };
        let select = select.map(|k| Dselect::new(shared_n, k)).transpose()?;
        let maker = ExpertMaker::new(expert, hidden, activation, inputs, rng)?;
        let hidden = maker.hidden;
        let experts = |p: &mut ParamBuilder, name: String, fan_in, n, rng: &mut StdRng| {
            maker.group(p, name, fan_in, n, rng)
        };
        let gate =
            |p: &mut ParamBuilder, name: String, fan_in: usize, n: usize, rng: &mut StdRng| {
                Linear::new(p, &name, fan_in, n, Init::Xavier, rng)
            };
        // First every shared parameter, level by level; then the task-specific ones.
        let mut levels = Vec::new();
        let mut shared_params = Vec::new();
        for l in 0..n_levels {
            let fan_in = if l == 0 { inputs } else { hidden };
            let last = l + 1 == n_levels;
            let shared = experts(p, format!("moe.{l}.shared"), fan_in, shared_n, rng)?;
            let mut task = Vec::new();
            if !last {
                for k in 0..tasks {
                    task.push(experts(p, format!("moe.{l}.task{k}"), fan_in, task_n, rng)?);
                }
            }
            let shared_gate = if omoe {
                Some(gate(p, format!("moe.{l}.gate"), fan_in, shared_n, rng)?)
            } else if !last {
                let all = shared_n + tasks * task_n;
                Some(gate(p, format!("moe.{l}.shared_gate"), fan_in, all, rng)?)
            } else {
                None
            };
            for group in shared.iter().chain(task.iter().flatten()) {
                shared_params.extend(group.params());
            }
            if let Some(gate) = &shared_gate {
                shared_params.extend([gate.w, gate.b]);
            }
            levels.push(Level {
                shared,
                task,
                task_gates: Vec::new(),
                shared_gate,
            });
        }
        for (l, level) in levels.iter_mut().enumerate() {
            let fan_in = if l == 0 { inputs } else { hidden };
            if level.task.is_empty() {
                for k in 0..tasks {
                    level
                        .task
                        .push(experts(p, format!("moe.{l}.task{k}"), fan_in, task_n, rng)?);
                }
            }
            if !omoe {
                for k in 0..tasks {
                    let name = format!("moe.{l}.gate{k}");
                    level.task_gates.push(match select {
                        // k·m selector and k weight logits, drawn near 0 (LibMTL:
                        // ±0.01 and ±0.05, biases too; here ±0.05, biases 0).
                        Some(d) => {
                            Linear::new(p, &name, fan_in, d.logits(), Init::Uniform(0.05), rng)?
                        }
                        None => gate(p, name, fan_in, shared_n + task_n, rng)?,
                    });
                }
            }
        }
        Ok(Moe {
            levels,
            select,
            hidden,
            activation,
            shared_params,
        })
    }

    /// Record the block on input x (B×D): each task's representation (B×H),
    /// and the gate (B×E) that mixed it in the last layer (which experts each
    /// task uses).
    pub fn forward(
        &self,
        tape: &mut Tape,
        params: &ParamSet,
        x: Var,
        tasks: usize,
    ) -> Result<(Vec<Var>, Vec<Var>)> {
        let act = self.activation;
        let mut shared_in = x;
        let mut task_in = vec![x; tasks];
        let mut gates = Vec::new();
        for (l, level) in self.levels.iter().enumerate() {
            let last = l + 1 == self.levels.len();
            let zs = match &level.shared {
                Some(e) => Some(e.forward(tape, params, shared_in, act)?),
                None => None,
            };
            let mut zt = Vec::new();
            for (k, e) in level.task.iter().enumerate() {
                zt.push(match e {
                    Some(e) => Some(e.forward(tape, params, task_in[k], act)?),
                    None => None,
                });
            }
            // OMoE: one gate, one mixture for every task.
            if level.task_gates.is_empty() {
                let (Some(gate), Some(z)) = (&level.shared_gate, zs) else {
                    return Err(Error::InvalidConfig(
                        "OMoE needs its gate and experts".into(),
                    ));
                };
                let logits = gate.forward(tape, params, shared_in, Activation::Identity)?;
                let g = tape.gate(logits)?;
                let m = tape.mixture(g, z)?;
                return Ok((vec![m; tasks], vec![g; tasks]));
            }
            let mut next_task = Vec::new();
            gates.clear();
            for k in 0..tasks {
                let pool: Vec<Var> = zs.iter().chain(zt[k].iter()).copied().collect();
                let z = concat(tape, &pool)?;
                let logits =
                    level.task_gates[k].forward(tape, params, task_in[k], Activation::Identity)?;
                let g = match self.select {
                    Some(d) => tape.dselect(logits, d)?,
                    None => tape.gate(logits)?,
                };
                gates.push(g);
                next_task.push(tape.mixture(g, z)?);
            }
            if !last {
                if let Some(gate) = &level.shared_gate {
                    let pool: Vec<Var> = zs.iter().chain(zt.iter().flatten()).copied().collect();
                    let z = concat(tape, &pool)?;
                    let logits = gate.forward(tape, params, shared_in, Activation::Identity)?;
                    let g = tape.gate(logits)?;
                    shared_in = tape.mixture(g, z)?;
                }
            }
            task_in = next_task;
        }
        Ok((task_in, gates))
    }

    /// Each task's representation width.
    pub fn width(&self) -> usize {
        self.hidden
    }
}

/// The expert groups side by side (one group: itself, no copy).
fn concat(tape: &mut Tape, groups: &[Var]) -> Result<Var> {
    match groups {
        [one] => Ok(*one),
        _ => tape.concat_columns(groups),
    }
}
