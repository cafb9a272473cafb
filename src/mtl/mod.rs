//! Multi-task loss weighting and gradient-based methods.
//!
//! Every method implements [`Weighting`]. It may add parameters of its own
//! (learned with the model by the same optimizer), and it records dispatches
//! that run inside the training step, so no method costs a host round trip:
//! - `before`: at the start of the step, e.g. each task's seed (the weight
//!   w_k = ∂L/∂L_k that the fused loss kernels multiply into their gradient);
//! - `after_forward`: once the losses are known; when present, the loss
//!   kernels run again so their gradients use the seeds written here (FAMO);
//! - `after_gram`: for methods that look at per-task gradients, the solve
//!   that turns the K×K Gram matrix into the combination weights (PCGrad,
//!   MGDA, CAGrad, IMTL-G, Nash-MTL, UPGrad) or into next step's seeds (GradNorm);
//! - `after_backward`: e.g. the gradients of the method's own parameters (UW);
//! - `after_update`: after the optimizer, once the forward pass has run again
//!   on the same batch with the updated weights, so that the method sees how
//!   its step changed each loss (FAMO, as LibMTL).
//!
//! Methods that need per-task gradients say so with [`Weighting::grad_space`]:
//! in [`GradSpace::Parameters`] task k's gradient of the shared trunk is row k
//! of a K×P buffer (K trunk backward passes); in [`GradSpace::Representation`]
//! (MGDA-UB) it is task k's gradient at the trunk's output, and one trunk
//! backward runs with the combined seed. Either way the fused reduction
//! (shaders/gram.wgsl) forms G = g gᵀ in one pass and writes Σ_k w_k g_k.
//! Task-specific (head) parameters get each task's own gradient, as in LibMTL.
//!
//! Every gradient method also runs on top of loss weights ([`Compose`],
//! `pcgrad+uncertainty` by name): the loss weighting sets the seeds, so the
//! per-task rows are gradients of w_k L_k, and the gradient method combines them.

mod aggregate;
pub mod aligned_mtl;
pub mod cagrad;
mod compose;
pub mod config;
pub mod cr_mogm;
pub mod db_mtl;
pub mod dualproj;
pub mod dwa;
mod equal;
pub mod excess_mtl;
pub mod fairgrad;
pub mod famo;
mod fixed;
pub mod gls;
pub mod graddrop;
pub mod gradnorm;
pub mod gradvac;
pub mod imtl;
pub mod imtl_g;
pub mod krum;
pub mod memory;
pub mod mgda;
pub mod moco;
pub mod modo;
pub mod nash_mtl;
pub mod pcgrad;
pub mod rlw;
pub mod sdmgrad;
pub(crate) mod solve;
pub mod stch;
pub mod trimmed_mean;
mod uncertainty;
pub mod upgrad;

pub use aggregate::{aggregate, aggregate_with, aggregate_with_async, Aggregation, Aggregator};
pub use aligned_mtl::AlignedMtl;
pub use cagrad::CaGrad;
pub use compose::Compose;
pub use config::Config;
pub use cr_mogm::CrMogm;
pub use db_mtl::DbMtl;
pub use dualproj::DualProj;
pub use dwa::Dwa;
pub use equal::Equal;
pub use excess_mtl::ExcessMtl;
pub use fairgrad::FairGrad;
pub use famo::Famo;
pub use fixed::Fixed;
pub use gls::Gls;
pub use graddrop::GradDrop;
pub use gradnorm::GradNorm;
pub use gradvac::GradVac;
pub use imtl::ImtlL;
pub use imtl_g::ImtlG;
pub use krum::Krum;
pub use mgda::Mgda;
pub use moco::MoCo;
pub use modo::MoDo;
pub use nash_mtl::NashMtl;
pub use pcgrad::PcGrad;
pub use rlw::Rlw;
pub use sdmgrad::SdmGrad;
pub use stch::Stch;
pub use trimmed_mean::TrimmedMean;
pub use uncertainty::Uncertainty;
pub use upgrad::UpGrad;

use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels;
use crate::kernels::gram::GradRows;
use crate::kernels::mtl::{SolveShader, STATE_LEN};
use crate::nn::{ParamBuilder, ParamSet};

/// Where per-task gradients are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradSpace {
    /// Of the shared parameters (exact; K trunk backward passes).
    Parameters,
    /// At the shared representation, the trunk's output (MGDA-UB; one trunk backward).
    Representation,
}

impl GradSpace {
    pub fn parse(s: &str) -> Result<GradSpace> {
        match s.trim().to_ascii_lowercase().as_str() {
            "params" | "parameters" => Ok(GradSpace::Parameters),
            "rep" | "representation" => Ok(GradSpace::Representation),
            _ => Err(Error::InvalidConfig(format!(
                "unknown gradient space {s:?}: use params or rep"
            ))),
        }
    }
}

/// Buffers a weighting method works on.
pub struct WeightingContext<'a> {
    pub params: &'a ParamSet,
    /// K seeds: the weight of each task's loss in the total.
    pub seeds: &'a Tensor,
    /// K losses of the current step (written by the loss kernels).
    pub losses: &'a Tensor,
    /// K×K Gram matrix of the per-task gradients (computed when the method has a `grad_space`).
    pub gram: &'a Tensor,
    /// K combination weights of the per-task gradients (ones unless the method writes them).
    pub combine: &'a Tensor,
}

/// The dispatches a method adds to each training step.
#[derive(Default)]
pub struct WeightingPlan {
    pub before: Vec<Dispatch>,
    pub after_forward: Vec<Dispatch>,
    pub after_gram: Vec<Dispatch>,
    pub after_backward: Vec<Dispatch>,
    /// After the optimizer and a second forward pass over the same batch
    /// (the losses buffer then holds the losses at the updated weights).
    pub after_update: Vec<Dispatch>,
}

/// What a method needs from the training step and what it writes, declared
/// by each method (never inferred from its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Where the method needs per-task gradients by default (None: it needs none).
    pub grad_space: Option<GradSpace>,
    /// It combines per-task gradient rows (writes the combination weights).
    pub combines: bool,
    /// It writes the task seeds (the loss weights).
    pub seeds: bool,
}

/// A method's entry in the [`REGISTRY`].
pub struct MethodInfo {
    /// The name [`by_name`] takes.
    pub name: &'static str,
    /// Other names it takes.
    pub aliases: &'static [&'static str],
    /// The method and its paper, in one line.
    pub summary: &'static str,
    /// Its default hyper-parameters, in words (empty: none).
    pub defaults: &'static str,
    /// The fewest tasks it is defined for with its defaults (Krum: 3).
    pub min_tasks: usize,
    pub caps: Capabilities,
    /// Its GPU solve, if it has one (the naga test validates every one).
    pub shader: Option<&'static SolveShader>,
    /// A new instance with default settings; the argument seeds random methods.
    pub build: fn(u32) -> Box<dyn Weighting>,
}

/// Every method, in the order the tools list them. `fixed:w1,w2,...` and
/// `GRAD+LOSS` compositions are parsed by [`by_name`] on top of these.
pub const REGISTRY: &[MethodInfo] = &[
    equal::INFO,
    uncertainty::INFO,
    dwa::INFO,
    rlw::INFO,
    famo::INFO,
    gls::INFO,
    stch::INFO,
    gradnorm::INFO,
    pcgrad::INFO,
    gradvac::INFO,
    mgda::INFO,
    cagrad::INFO,
    imtl_g::INFO,
    imtl::INFO_L,
    imtl::INFO,
    nash_mtl::INFO,
    upgrad::INFO,
    dualproj::INFO,
    config::INFO,
    aligned_mtl::INFO,
    krum::INFO,
    fairgrad::INFO,
    graddrop::INFO,
    trimmed_mean::INFO,
    db_mtl::INFO,
    moco::INFO,
    modo::INFO,
    sdmgrad::INFO,
    cr_mogm::INFO,
    excess_mtl::INFO,
];

/// The kernels that work on the K gradient rows themselves, the files of
/// `shaders/combine/`: the coordinate-wise combinations
/// ([`Weighting::record_combine`]) and the memory of past rows
/// ([`Weighting::record_memory`]); for the naga validation test.
pub const COMBINE_SHADERS: &[&crate::kernels::Shader] = &[
    &graddrop::SHADER,
    &trimmed_mean::SHADER,
    &memory::SHADER,
    &excess_mtl::ROWS_SHADER,
];

/// The registered method names.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|m| m.name).collect()
}

/// The methods and their defaults, one per line, for `--help`.
pub fn weighting_help() -> String {
    let mut out = String::from(
        "The multi-task method: one of the names below, fixed:w1,w2,... (one weight per task), \
         or GRAD+LOSS, a gradient method over loss weights (e.g. pcgrad+uncertainty).\n",
    );
    for m in REGISTRY {
        let defaults = if m.defaults.is_empty() {
            String::new()
        } else {
            format!(" [{}]", m.defaults)
        };
        out.push_str(&format!("\n  {:<12} {}{defaults}", m.name, m.summary));
    }
    out
}

/// A multi-task weighting method.
pub trait Weighting {
    /// Short name, as accepted by [`by_name`].
    fn name(&self) -> &'static str;
    /// What the method needs and writes.
    fn capabilities(&self) -> Capabilities;
    /// Per-task gradients the method needs, if any (the trainer may be told another space).
    fn grad_space(&self) -> Option<GradSpace> {
        self.capabilities().grad_space
    }
    /// Add the method's own learned parameters (default: none).
    fn add_params(&mut self, _params: &mut ParamBuilder, _tasks: usize) -> Result<()> {
        Ok(())
    }
    /// Record the method's per-step dispatches (and write any constant seeds).
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan>;
    /// Called after each epoch with its mean training loss per task (DWA).
    fn on_epoch_end(&mut self, _gpu: &Gpu, _seeds: &Tensor, _train_losses: &[f64]) -> Result<()> {
        Ok(())
    }
    /// A memory of the per-task gradients (DB-MTL's and MoCo's moving
    /// averages), or the rows of several minibatches ([`Weighting::samples`]):
    /// the dispatches that update the memory or solve from this step's `rows`,
    /// and the K rows the Gram matrix and the combination then use.
    /// Recorded after [`Weighting::build`]; `space` says what the rows are.
    /// None (the default): the rows themselves.
    fn record_memory(
        &mut self,
        _gpu: &Gpu,
        _rows: &GradRows,
        _space: GradSpace,
    ) -> Result<Option<(Vec<Dispatch>, GradRows)>> {
        Ok(None)
    }
    /// Minibatches each step draws (default 1). A method that draws S > 1
    /// (MoDo, SDMGrad: 3, as LibMTL's trainer gives them) gets the S·K rows
    /// of all of them in [`Weighting::record_memory`], sample s's K rows
    /// from row sK, and returns the K it combines; the heads get the mean of
    /// the S minibatches' gradients.
    fn samples(&self) -> usize {
        1
    }
    /// It combines the per-task gradient rows coordinate by coordinate
    /// (GradDrop, TrimmedMean), not as a weighted sum Σ_k w_k g_k: the step
    /// records [`Weighting::record_combine`] in place of the weighted sum.
    fn coordinate_wise(&self) -> bool {
        false
    }
    /// The dispatch that writes `out` (N values) from the K rows, when
    /// [`Weighting::coordinate_wise`]; recorded after [`Weighting::build`].
    fn record_combine(&self, _gpu: &Gpu, _rows: &GradRows, _out: &Tensor) -> Result<Dispatch> {
        Err(Error::internal(
            "record_combine",
            format!(
                "{} combines by weights, not coordinate by coordinate",
                self.name()
            ),
        ))
    }
}

/// A method as written — one of the [`REGISTRY`], `fixed:w1,w2,...`, or
/// `GRAD+LOSS` (a gradient method over loss weights, e.g.
/// `pcgrad+uncertainty`) — read and checked once ([`Method::parse`]); each
/// run makes its instance with [`Method::build`].
#[derive(Clone)]
pub enum Method {
    Registered(&'static MethodInfo),
    Fixed(Vec<f32>),
    Compose(Box<Method>, Box<Method>),
    /// `cr_mogm:METHOD[:α]`: the method's weights smoothed across steps.
    CrMogm(Box<Method>, f32),
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Method({self})")
    }
}

impl std::fmt::Display for Method {
    /// The name in its canonical spelling (`nash_mtl`, `fixed:1,0.5`, `pcgrad+uncertainty`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::Registered(info) => f.write_str(info.name),
            Method::Fixed(w) => {
                let w: Vec<String> = w.iter().map(|x| x.to_string()).collect();
                write!(f, "fixed:{}", w.join(","))
            }
            Method::Compose(g, l) => write!(f, "{g}+{l}"),
            Method::CrMogm(m, a) if *a == cr_mogm::DEFAULT_ALPHA => write!(f, "cr_mogm:{m}"),
            Method::CrMogm(m, a) => write!(f, "cr_mogm:{m}:{a}"),
        }
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(name: &str) -> Result<Method> {
        Method::parse(name)
    }
}

impl Method {
    /// Read a method's name; an unknown name, a bad fixed weight or a
    /// composition that cannot work (`upgrad+pcgrad`) is an error here.
    pub fn parse(name: &str) -> Result<Method> {
        // Names may say `-` for `_` (nash-mtl); the numbers of fixed:… keep theirs (1e-3).
        let method = Method::parse_part(&name.trim().to_ascii_lowercase())?;
        method.build(0)?; // a composition is checked by making it (no GPU work)
        Ok(method)
    }

    fn parse_part(lower: &str) -> Result<Method> {
        if let Some((grad, loss)) = lower.split_once('+') {
            let (g, l) = (Method::parse_part(grad)?, Method::parse_part(loss)?);
            return Ok(Method::Compose(Box::new(g), Box::new(l)));
        }
        if let Some(rest) = (lower.strip_prefix("cr_mogm:"))
            .or_else(|| lower.strip_prefix("cr-mogm:"))
            .or_else(|| lower.strip_prefix("crmogm:"))
        {
            // cr_mogm:METHOD or cr_mogm:METHOD:α (METHOD may be fixed:…, whose own colon comes first).
            let (inner, alpha) = match rest.rsplit_once(':') {
                Some((m, a)) if a.trim().parse::<f32>().is_ok() && !m.ends_with("fixed") => {
                    (m, a.trim().parse::<f32>().unwrap_or(cr_mogm::DEFAULT_ALPHA))
                }
                _ => (rest, cr_mogm::DEFAULT_ALPHA),
            };
            return Ok(Method::CrMogm(Box::new(Method::parse_part(inner)?), alpha));
        }
        if let Some(list) = lower.strip_prefix("fixed:") {
            let weights = list
                .split(',')
                .map(|w| {
                    w.trim().parse::<f32>().map_err(|_| {
                        Error::InvalidConfig(format!("fixed weight {w:?} is not a number"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Method::Fixed(weights));
        }
        let want = lower.trim().replace('-', "_");
        REGISTRY
            .iter()
            .find(|m| m.name == want || m.aliases.contains(&want.as_str()))
            .map(Method::Registered)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "unknown weighting {lower:?}; choose one of {}, or fixed:w1,w2,...",
                    names().join(", ")
                ))
            })
    }

    /// A new instance with default settings; `seed` feeds the random ones
    /// (RLW, PCGrad's task order).
    pub fn build(&self, seed: u64) -> Result<Box<dyn Weighting>> {
        Ok(match self {
            Method::Registered(info) => (info.build)((seed ^ (seed >> 32)) as u32),
            Method::Fixed(w) => Box::new(Fixed::new(w.clone())?),
            Method::Compose(g, l) => Box::new(Compose::new(g.build(seed)?, l.build(seed)?)?),
            Method::CrMogm(m, alpha) => Box::new(CrMogm::new(m.build(seed)?, *alpha)?),
        })
    }

    /// Check the method against the number of tasks it will weight, before
    /// any work: as many `fixed:` weights as tasks, and at least the tasks a
    /// method is defined for ([`MethodInfo::min_tasks`]).
    pub fn check_for_tasks(&self, k: usize) -> Result<()> {
        match self {
            Method::Registered(info) if k < info.min_tasks => Err(Error::InvalidConfig(format!(
                "method {} needs at least {} tasks, and there are {k}",
                info.name, info.min_tasks
            ))),
            Method::Fixed(w) if w.len() != k => Err(Error::InvalidConfig(format!(
                "method {self} gives {} fixed weights for {k} tasks",
                w.len()
            ))),
            Method::Compose(g, l) => {
                g.check_for_tasks(k)?;
                l.check_for_tasks(k)
            }
            Method::CrMogm(m, _) => m.check_for_tasks(k),
            _ => Ok(()),
        }
    }
}

/// A method by name ([`Method::parse`] then [`Method::build`]).
pub fn by_name_seeded(name: &str, seed: u64) -> Result<Box<dyn Weighting>> {
    Method::parse(name)?.build(seed)
}

/// [`by_name_seeded`] with seed 0.
pub fn by_name(name: &str) -> Result<Box<dyn Weighting>> {
    by_name_seeded(name, 0)
}

/// A method whose per-step work is one K×K solve on the GPU
/// (`shaders/mtl/<method>.wgsl` after the shared prelude); it is a
/// [`Weighting`] by that alone.
pub trait GpuSolve {
    /// Its registry entry (name, capabilities).
    const INFO: &'static MethodInfo;
    /// Where the solve runs in the step and what it writes.
    const PHASE: SolvePhase;
    /// Its WGSL: the prelude, then `shaders/mtl/<method>.wgsl`.
    const SHADER: &'static SolveShader;
    /// The `#[repr(C)]` twin of the file's WGSL `Params` (first field K).
    type Params: bytemuck::Pod;
    /// The parameters of a solve over `k` tasks, from the method's settings.
    fn params(&self, k: u32) -> Self::Params;

    /// A second entry point of the same WGSL file (same bindings and state),
    /// run after the optimizer and a forward pass over the same batch.
    fn after_update_entry(&self) -> Option<&'static str> {
        None
    }

    /// Record the solve writing `out` (K weights or seeds) from `gram` (K×K)
    /// and `losses` (K), with its memory in `state` (see `kernels::mtl::STATE_LEN`).
    fn record_solve(
        &self,
        gpu: &Gpu,
        gram: &Tensor,
        losses: &Tensor,
        state: &Tensor,
        out: &Tensor,
    ) -> Result<Dispatch> {
        let params = self.params(out.numel() as u32);
        kernels::mtl::solve(gpu, Self::SHADER, params, gram, losses, state, out)
    }
}

impl<M: GpuSolve> Weighting for M {
    fn name(&self) -> &'static str {
        M::INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        M::INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        solve_plan(gpu, ctx, self, M::PHASE)
    }
}

/// The WGSL `Params` of a solve whose only parameter is K (MGDA, IMTL-G,
/// ConFIG, Aligned-MTL, GLS): `struct Params { k: u32, _pad0: u32, _pad1: u32, _pad2: u32 }`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct KParams {
    k: u32,
    _pad: [u32; 3],
}

impl KParams {
    pub fn new(k: u32) -> KParams {
        KParams { k, _pad: [0; 3] }
    }
}

/// Where a solve runs in the step and what it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolvePhase {
    /// After the Gram matrix: the combination weights of the per-task gradients.
    Weights,
    /// After the Gram matrix: next step's seeds (GradNorm).
    SeedsAfterGram,
    /// Before the forward pass: this step's seeds (RLW).
    SeedsBeforeForward,
    /// After the forward pass, from this step's losses: its seeds; the loss
    /// kernels run again with them (FAMO).
    SeedsAfterForward,
}

/// The plan of a method that is one GPU solve: seeds start at 1, the solve
/// runs where `phase` says, with its memory in a state buffer of its own.
fn solve_plan<M: GpuSolve>(
    gpu: &Gpu,
    ctx: &WeightingContext,
    method: &M,
    phase: SolvePhase,
) -> Result<WeightingPlan> {
    ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
    let state = Tensor::zeros(gpu, &[STATE_LEN], "solve state")?;
    let out = match phase {
        SolvePhase::Weights => ctx.combine,
        _ => ctx.seeds,
    };
    let d = method.record_solve(gpu, ctx.gram, ctx.losses, &state, out)?;
    let mut plan = WeightingPlan::default();
    if let Some(entry) = method.after_update_entry() {
        let shader = SolveShader {
            entry,
            ..*M::SHADER
        };
        let params = method.params(out.numel() as u32);
        plan.after_update.push(kernels::mtl::solve(
            gpu, &shader, params, ctx.gram, ctx.losses, &state, out,
        )?);
    }
    match phase {
        SolvePhase::Weights | SolvePhase::SeedsAfterGram => plan.after_gram.push(d),
        SolvePhase::SeedsBeforeForward => plan.before.push(d),
        SolvePhase::SeedsAfterForward => plan.after_forward.push(d),
    }
    Ok(plan)
}
