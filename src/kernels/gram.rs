//! The fused per-task gradient reduction: Gram matrix and weighted combination
//! of K gradient rows. See shaders/gram.wgsl.

use crate::error::{Error, Result};
use crate::gpu::dispatch::{record_replicable, ReplicaAxis, StrideOf};
use crate::gpu::Dispatch;
use crate::gpu::Tensor;
use crate::gpu::{Binding, Gpu};
use crate::kernels::{grid, on_replicas, replica_stride, Shader};

/// Most tasks the reduction handles (136 pairs in private memory).
pub const MAX_TASKS: usize = 16;
/// Invocations per workgroup (WGSL `override WG`).
const WG: u64 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    n: u32,
    stride: u32,
    threads: u32,
    /// Replica strides (elements) of out, g and aux.
    rep: [u32; 3],
    _pad: u32,
}

impl Params {
    fn new(g: &GradRows, threads: usize) -> Params {
        Params {
            k: g.k as u32,
            n: g.n as u32,
            stride: g.stride as u32,
            threads: threads as u32,
            rep: [0; 3],
            _pad: 0,
        }
    }
}

/// Record `entry` of gram.wgsl over `count` replicas: `tensors` are its
/// out, g and (where it binds one) aux, replica r's lying r·`stride(t)`
/// elements past those given.
fn record_over(
    gpu: &Gpu,
    entry: &'static str,
    mut params: Params,
    tensors: &[&Tensor],
    (count, stride): (usize, StrideOf<'_>),
    workgroups: [u32; 3],
) -> Result<Dispatch> {
    let strides: Vec<usize> = tensors.iter().map(|t| stride(t)).collect();
    for (p, &s) in params.rep.iter_mut().zip(&strides) {
        *p = replica_stride("gram", s)?;
    }
    use Binding::*;
    Shader::builtin("gram.wgsl").record_replicated(
        gpu,
        entry,
        &[Uniform, ReadWrite, ReadOnly, ReadOnly][..tensors.len() + 1],
        &[],
        &params,
        tensors,
        &ReplicaAxis {
            count: count.max(1),
            strides,
        },
        on_replicas(gpu, workgroups, count)?,
    )
}

/// [`record_over`] one replica, recordable again over a replica axis.
fn record_one(
    gpu: &Gpu,
    entry: &'static str,
    params: Params,
    tensors: &[&Tensor],
    workgroups: [u32; 3],
) -> Result<Dispatch> {
    let tensors: Vec<Tensor> = tensors.iter().map(|&t| t.clone()).collect();
    record_replicable(gpu, move |gpu, count, stride| {
        let ts: Vec<&Tensor> = tensors.iter().collect();
        record_over(gpu, entry, params, &ts, (count, stride), workgroups)
    })
}

/// K gradient rows of length N, `stride` elements apart, in one buffer.
#[derive(Clone, Debug)]
pub struct GradRows {
    pub rows: Tensor,
    pub k: usize,
    pub n: usize,
    pub stride: usize,
}

/// Most rows a [`GradRows`] holds: the rows of several minibatches (MoDo,
/// SDMGrad: three), of which the Gram kernel takes at most [`MAX_TASKS`].
pub const MAX_ROWS: usize = 3 * MAX_TASKS;

impl GradRows {
    pub fn new(rows: Tensor, k: usize, n: usize, stride: usize) -> Result<Self> {
        if k == 0 || k > MAX_ROWS {
            return Err(Error::InvalidConfig(format!(
                "per-task gradients need 1 to {MAX_TASKS} tasks, got {k} rows"
            )));
        }
        if stride < n || rows.numel() < (k - 1) * stride + n {
            return Err(Error::shape(
                "gradient rows",
                format!("{k} rows of {n} with stride {stride}"),
                format!("{} elements", rows.numel()),
            ));
        }
        Ok(GradRows { rows, k, n, stride })
    }

    /// Rows `from..from + k` of these.
    pub fn range(&self, from: usize, k: usize) -> Result<GradRows> {
        if from + k > self.k {
            return Err(Error::shape(
                "gradient rows",
                format!("at most {} rows", self.k),
                format!("rows {from}..{}", from + k),
            ));
        }
        let len = (k - 1) * self.stride + self.n;
        GradRows::new(
            self.rows.slice(from * self.stride, &[len])?,
            k,
            self.n,
            self.stride,
        )
    }
}

/// The two dispatches that write G = g gᵀ (K×K) into `gram`, and the scratch they use.
pub struct GramDispatches {
    pub partial: Dispatch,
    pub finish: Dispatch,
    pub scratch: Tensor,
}

/// Workgroups for the Gram kernels on an adapter that cuts an invocation's
/// loops short after `budget` iterations (llvmpipe, [`Gpu::loop_budget`]),
/// with half the budget to spare: each invocation of `gram_partial` loops
/// about 2K + 1 + K(K+1)/2 times per column it takes, so there must be
/// enough of them; `gram_finish` loops once per invocation for each pair it
/// adds, so not too many. Too many columns for both: an error, never a
/// shortened sum.
fn workgroups_within(budget: u64, n: u64, k: u64) -> Result<u64> {
    let safe = budget / 2;
    let pairs = k * (k + 1) / 2;
    let per_column = 2 * k + 1 + pairs;
    let usual = n.div_ceil(WG * 64).clamp(1, 64);
    let fewest = (n * per_column).div_ceil(safe).div_ceil(WG).max(usual);
    // gram_finish: ⌈pairs / WG⌉ pairs per invocation, each a loop over the
    // threads and one over at most K rows to find the pair's (i, j).
    let most = (safe / pairs.div_ceil(WG)).saturating_sub(k + 1) / WG;
    if fewest > most {
        return Err(Error::InvalidConfig(format!(
            "a Gram matrix of {k} rows of {n} values is too long for this adapter's \
             shaders (its driver ends an invocation's loops after {budget} iterations)"
        )));
    }
    Ok(fewest)
}

/// Record the Gram matrix of `g` into `gram` (K×K).
pub fn gram(gpu: &Gpu, g: &GradRows, gram: &Tensor) -> Result<GramDispatches> {
    if g.k > MAX_TASKS {
        return Err(Error::InvalidConfig(format!(
            "the Gram matrix takes at most {MAX_TASKS} gradient rows, got {}",
            g.k
        )));
    }
    gram.expect_numel("gram output", g.k * g.k)?;
    let pairs = g.k * (g.k + 1) / 2;
    // Enough invocations to spread the columns, few enough that finishing is cheap.
    let workgroups = match gpu.loop_budget() {
        None => (g.n as u64).div_ceil(WG * 64).clamp(1, 64),
        Some(budget) => workgroups_within(budget, g.n as u64, g.k as u64)?,
    };
    let threads = (workgroups * WG) as usize;
    let scratch = Tensor::zeros(gpu, &[threads * pairs], "gram partial sums")?;
    let params = Params::new(g, threads);
    let partial = record_one(
        gpu,
        "gram_partial",
        params,
        &[&scratch, &g.rows],
        [workgroups as u32, 1, 1],
    )?;
    let finish = record_one(
        gpu,
        "gram_finish",
        params,
        &[gram, &g.rows, &scratch],
        [1, 1, 1],
    )?;
    Ok(GramDispatches {
        partial,
        finish,
        scratch,
    })
}

/// Record out\[c\] = Σ_k w\[k\] g[k, c] for c < N; `w` has K elements, `out` N.
pub fn combine(gpu: &Gpu, g: &GradRows, w: &Tensor, out: &Tensor) -> Result<Dispatch> {
    w.expect_numel("combine weights", g.k)?;
    out.expect_numel("combine output", g.n)?;
    record_one(
        gpu,
        "combine",
        Params::new(g, 0),
        &[out, &g.rows, w],
        grid(gpu, (g.n as u64).div_ceil(WG))?,
    )
}

/// out row k = w\[k\] · g row k (K rows of g's stride): each task's gradient
/// weighted on its own.
pub fn scale_rows(gpu: &Gpu, g: &GradRows, w: &Tensor, out: &Tensor) -> Result<Dispatch> {
    w.expect_numel("scale_rows weights", g.k)?;
    out.expect_numel("scale_rows output", g.rows.numel())?;
    record_one(
        gpu,
        "scale_rows",
        Params::new(g, 0),
        &[out, &g.rows, w],
        grid(gpu, ((g.k * g.n) as u64).div_ceil(WG))?,
    )
}
