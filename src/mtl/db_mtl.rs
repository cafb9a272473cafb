//! DB-MTL: Lin, Ye, Xu, Shi & Zhang, "Dual-Balancing for Multi-Task
//! Learning", 2023; as LibMTL's `DB_MTL`.
//!
//! Two balances. The losses: each task's loss is taken as log(L_k + ε), so
//! its seed is s_k = 1/(L_k + ε), ε = 1e-8 (every task's gradient, heads
//! included, is ∇ log L_k, so tasks on larger scales do not dominate). The
//! gradients: a moving average of the task gradients of the shared
//! parameters, m_k ← η_t m_k + (1 − η_t) g_k with η_t = β / t^σ, and each
//! task scaled to the largest norm,
//!
//!   α_k = max_j ‖m_j‖ / (‖m_k‖ + ε),   d = Σ_k α_k m_k.
//!
//! Defaults LibMTL's: β 0.9, σ 0. Like LibMTL it needs the gradients of the
//! parameters (`--space rep` is refused: an average of representation
//! gradients over different batches means nothing). The memory starts at 0,
//! so the first step's direction is (1 − η_1) times the balanced gradient,
//! as LibMTL's. Kernels: `shaders/mtl/db_mtl.wgsl` (the seeds and the α
//! solve) and `shaders/combine/memory.wgsl` (the average).

use super::memory::{self, Update};
use super::{
    Capabilities, GradSpace, KParams, MethodInfo, Weighting, WeightingContext, WeightingPlan,
};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::gram::GradRows;
use crate::kernels::mtl::{SolveShader, STATE_LEN};
use crate::{kernels, solve_shader};

/// DB-MTL's settings.
#[derive(Clone, Debug)]
pub struct DbMtl {
    /// β: the average's weight on the past (LibMTL: 0.9).
    pub beta: f32,
    /// σ: η_t = β / t^σ (LibMTL: 0, a constant rate).
    pub beta_sigma: f32,
    /// The solve's state (the step), the Gram matrix and the losses, from `build`.
    bound: Option<(Tensor, Tensor, Tensor)>,
}

impl Default for DbMtl {
    fn default() -> Self {
        DbMtl::new(0.9, 0.0)
    }
}

impl DbMtl {
    pub fn new(beta: f32, beta_sigma: f32) -> DbMtl {
        DbMtl {
            beta,
            beta_sigma,
            bound: None,
        }
    }
}

/// The α solve: the shared prelude, then shaders/mtl/db_mtl.wgsl.
pub const SHADER: SolveShader = solve_shader!("db_mtl");
/// Its seeds entry, after the forward pass.
const SEEDS: SolveShader = SolveShader {
    entry: "db_mtl_seeds",
    ..SHADER
};

/// The registry's entry.
pub(crate) const INFO: MethodInfo = MethodInfo {
    name: "db_mtl",
    aliases: &["dbmtl"],
    summary: "DB-MTL (Lin et al. 2023): log losses, and an average of each task's gradient scaled to the largest",
    defaults: "beta 0.9, beta_sigma 0",
    min_tasks: 1,
    caps: Capabilities {
        grad_space: Some(GradSpace::Parameters),
        combines: true,
        seeds: true,
    },
    shader: Some(&SHADER),
    build: |_seed| Box::new(DbMtl::default()),
};

impl Weighting for DbMtl {
    fn name(&self) -> &'static str {
        INFO.name
    }
    fn capabilities(&self) -> Capabilities {
        INFO.caps
    }
    fn build(&mut self, gpu: &Gpu, ctx: &WeightingContext) -> Result<WeightingPlan> {
        ctx.seeds.write(gpu, &vec![1.0; ctx.seeds.numel()])?;
        let k = ctx.combine.numel() as u32;
        let state = Tensor::zeros(gpu, &[STATE_LEN], "db_mtl state")?;
        let solve = |shader: &SolveShader, out: &Tensor| {
            kernels::mtl::solve(
                gpu,
                shader,
                KParams::new(k),
                ctx.gram,
                ctx.losses,
                &state,
                out,
            )
        };
        let plan = WeightingPlan {
            after_forward: vec![solve(&SEEDS, ctx.seeds)?],
            after_gram: vec![solve(&SHADER, ctx.combine)?],
            ..WeightingPlan::default()
        };
        self.bound = Some((state, ctx.gram.clone(), ctx.losses.clone()));
        Ok(plan)
    }
    fn record_memory(
        &mut self,
        gpu: &Gpu,
        rows: &GradRows,
        space: GradSpace,
    ) -> Result<Option<(Vec<Dispatch>, GradRows)>> {
        memory::parameters_only("db_mtl", space)?;
        let (state, gram, losses) = (self.bound.as_ref())
            .ok_or_else(|| Error::internal("db_mtl memory", "recorded before build"))?;
        let m = Tensor::zeros(gpu, &[rows.k * rows.n], "db_mtl gradient average")?;
        let update = memory::record(
            gpu,
            Update::Keep,
            self.beta,
            self.beta_sigma,
            rows,
            &m,
            state,
            gram,
            losses,
        )?;
        Ok(Some((
            vec![update],
            GradRows::new(m, rows.k, rows.n, rows.n)?,
        )))
    }
}

/// The seeds s_k = 1/(L_k + 1e-8).
pub fn seeds(losses: &[f64]) -> Vec<f64> {
    losses.iter().map(|l| 1.0 / (l + 1e-8)).collect()
}

/// The directions of a run over `steps` (each K×N, row-major: the gradients
/// of the log losses), in f64: the average, then α, then Σ_k α_k m_k.
pub fn reference(steps: &[Vec<f64>], k: usize, beta: f64, sigma: f64) -> Vec<Vec<f64>> {
    let n = steps.first().map_or(0, |s| s.len() / k);
    let mut m = vec![0.0; k * n];
    let mut out = Vec::new();
    for (t, rows) in steps.iter().enumerate() {
        memory::reference(
            Update::Keep,
            beta,
            sigma,
            t as u32 + 1,
            &mut m,
            rows,
            &vec![1.0; k],
        );
        let norms: Vec<f64> = (0..k)
            .map(|j| {
                m[j * n..(j + 1) * n]
                    .iter()
                    .map(|v| v * v)
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        let largest = norms.iter().cloned().fold(0.0, f64::max);
        let alpha: Vec<f64> = norms.iter().map(|v| largest / (v + 1e-8)).collect();
        out.push(
            (0..n)
                .map(|c| (0..k).map(|j| alpha[j] * m[j * n + c]).sum())
                .collect(),
        );
    }
    out
}
