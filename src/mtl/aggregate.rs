//! The methods on your own gradients: give the K×P matrix of per-task
//! gradients (row-major, task k's gradient in row k), get the direction a
//! method combines them into, computed by the same kernels training uses (the
//! fused Gram kernel, the method's solve, the weighted combination), each
//! method with its default settings.
//!
//! ```no_run
//! # fn main() -> taskgrad::Result<()> {
//! let gpu = taskgrad::Gpu::new()?;
//! // Two tasks, three parameters: the gradients conflict (g0·g1 < 0).
//! let rows = [1.0, 0.0, 1.0, -0.5, 1.0, 0.0];
//! let d = taskgrad::mtl::aggregate(&gpu, "upgrad", &rows, 2)?;
//! assert_eq!(d.len(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! This is what torchjd's aggregators do for a Jacobian; [`aggregate_with`]
//! takes a method with chosen settings and also returns its weights.

use super::{by_name, GradSpace, Weighting, WeightingContext};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels::gram::{self, GradRows};
use crate::nn::{ParamBuilder, ParamSet};

/// A combined direction and the weights that make it: d = Σ_k w_k g_k.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregation {
    /// P values.
    pub direction: Vec<f32>,
    /// K weights; empty for a method that combines coordinate by coordinate
    /// (GradDrop, TrimmedMean), which no weights describe.
    pub weights: Vec<f32>,
}

/// The direction `method` (a name [`by_name`] takes, e.g. `"pcgrad"`,
/// `"mgda"`, `"upgrad"`) combines the K rows of `rows` (K×P, row-major) into,
/// with the method's default settings. A method that draws several
/// minibatches a step ([`Weighting::samples`]: MoDo and SDMGrad, 3) takes
/// them stacked, S·K×P: minibatch s's K rows from row sK.
pub fn aggregate(gpu: &Gpu, method: &str, rows: &[f32], k: usize) -> Result<Vec<f32>> {
    Ok(aggregate_with(gpu, by_name(method)?.as_mut(), rows, k)?.direction)
}

/// [`aggregate`] with a method built with chosen settings (for example
/// `&mut taskgrad::mtl::CaGrad { c: 0.5 }`), returning the
/// weights too. The method must combine per-task gradients; loss weightings
/// (equal, uncertainty, ...) are refused.
pub fn aggregate_with(
    gpu: &Gpu,
    method: &mut dyn Weighting,
    rows: &[f32],
    k: usize,
) -> Result<Aggregation> {
    pollster::block_on(aggregate_with_async(gpu, method, rows, k))
}

/// [`aggregate_with`] as a future: the form a browser needs, where the
/// readback of the direction cannot block.
pub async fn aggregate_with_async(
    gpu: &Gpu,
    method: &mut dyn Weighting,
    rows: &[f32],
    k: usize,
) -> Result<Aggregation> {
    let samples = method.samples().max(1);
    if k == 0 || rows.is_empty() || !rows.len().is_multiple_of(samples * k) {
        return Err(Error::shape(
            "aggregate rows",
            format!("{samples} × K = {samples} × {k} rows of equal length"),
            format!("{} values", rows.len()),
        ));
    }
    Aggregator::new(gpu, method, k, rows.len() / (samples * k))?
        .step_async(gpu, rows, None)
        .await
}

/// A method bound to K gradient rows of P values, whose state carries over
/// from call to call: each [`Aggregator::step`] is the next training step
/// for a method with memory (GradVac's target cosines, DB-MTL's and MoCo's
/// moving averages, GradDrop's draws), as torchjd's stateful aggregators
/// and LibMTL's weightings see a run. [`aggregate_with`] is one step of a
/// fresh one.
///
/// ```no_run
/// # fn main() -> taskgrad::Result<()> {
/// let gpu = taskgrad::Gpu::new()?;
/// let mut method = taskgrad::mtl::by_name("db_mtl")?;
/// let mut agg = taskgrad::mtl::Aggregator::new(&gpu, method.as_mut(), 2, 3)?;
/// for step in 0..3 {
///     let rows = [1.0, 0.0, step as f32, -0.5, 1.0, 0.0];
///     let d = agg.step(&gpu, &rows, Some(&[0.9, 1.3]))?.direction;
///     assert_eq!(d.len(), 3);
/// }
/// # Ok(())
/// # }
/// ```
pub struct Aggregator {
    k: usize,
    p: usize,
    /// Minibatches per step ([`Weighting::samples`]): the rows are S·K×P.
    samples: usize,
    /// Elements from one row's start to the next's (P, or P rounded up to
    /// the storage-offset alignment for several minibatches).
    stride: usize,
    rows: Tensor,
    losses: Tensor,
    weights: Tensor,
    direction: Tensor,
    dispatches: Vec<Dispatch>,
    coordinate_wise: bool,
    // Kept alive for the dispatches that bind them.
    _buffers: (Tensor, Tensor, ParamSet),
}

impl Aggregator {
    /// Build `method` over K rows of P values: its solve, its memory and its
    /// combination, recorded once. The method must combine per-task
    /// gradients; loss weightings (equal, uncertainty, ...) are refused.
    pub fn new(gpu: &Gpu, method: &mut dyn Weighting, k: usize, p: usize) -> Result<Aggregator> {
        if !method.capabilities().combines {
            return Err(Error::InvalidConfig(format!(
                "{} weights losses, not gradients: aggregate takes a method that combines \
                 per-task gradients ({})",
                method.name(),
                super::REGISTRY
                    .iter()
                    .filter(|m| m.caps.combines)
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if k == 0 || p == 0 {
            return Err(Error::shape(
                "aggregate rows",
                "K ≥ 1 rows of P ≥ 1 values",
                format!("K = {k}, P = {p}"),
            ));
        }
        let samples = method.samples().max(1);
        // Several minibatches' rows are bound a minibatch at a time: each
        // row starts at a bindable offset.
        let stride = match samples {
            1 => p,
            _ => {
                let a = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
                p.div_ceil(a) * a
            }
        };
        let rows = Tensor::zeros(gpu, &[samples * k * stride], "aggregate rows")?;
        let g = GradRows::new(rows.clone(), samples * k, p, stride)?;
        let gram_m = Tensor::zeros(gpu, &[k, k], "aggregate gram")?;
        let ones = vec![1.0; k];
        let seeds = Tensor::from_slice(gpu, &[k], &ones, "aggregate seeds")?;
        let losses = Tensor::from_slice(gpu, &[k], &ones, "aggregate losses")?;
        let weights = Tensor::from_slice(gpu, &[k], &ones, "aggregate weights")?;
        let direction = Tensor::zeros(gpu, &[p], "aggregate direction")?;
        let params = ParamBuilder::new(gpu).build_frozen(gpu)?;
        let ctx = WeightingContext {
            params: &params,
            seeds: &seeds,
            losses: &losses,
            gram: &gram_m,
            combine: &weights,
        };
        let plan = method.build(gpu, &ctx)?;
        let (mut dispatches, g) = match method.record_memory(gpu, &g, GradSpace::Parameters)? {
            Some((update, rows)) => (update, rows),
            None => (Vec::new(), g),
        };
        let gd = gram::gram(gpu, &g, &gram_m)?;
        dispatches.extend([gd.partial, gd.finish]);
        dispatches.extend(plan.after_gram);
        dispatches.push(if method.coordinate_wise() {
            method.record_combine(gpu, &g, &direction)?
        } else {
            gram::combine(gpu, &g, &weights, &direction)?
        });
        // What ends a training step for the method (GradDrop's next draw).
        dispatches.extend(plan.after_backward);
        if g.k != k {
            return Err(Error::internal(
                "aggregate",
                format!("{} left {} rows for {k} tasks", method.name(), g.k),
            ));
        }
        Ok(Aggregator {
            k,
            p,
            samples,
            stride,
            rows,
            losses,
            weights,
            direction,
            dispatches,
            coordinate_wise: method.coordinate_wise(),
            _buffers: (gram_m, seeds, params),
        })
    }

    /// The next step: the direction the method combines `rows` (K×P,
    /// row-major; S·K×P for a method of S minibatches) into, given this step's K `losses` (MoCo scales by them;
    /// ones when None).
    pub fn step(&mut self, gpu: &Gpu, rows: &[f32], losses: Option<&[f32]>) -> Result<Aggregation> {
        pollster::block_on(self.step_async(gpu, rows, losses))
    }

    /// [`Aggregator::step`] as a future.
    pub async fn step_async(
        &mut self,
        gpu: &Gpu,
        rows: &[f32],
        losses: Option<&[f32]>,
    ) -> Result<Aggregation> {
        if rows.len() != self.samples * self.k * self.p {
            return Err(Error::shape(
                "aggregate rows",
                format!("S × K × P = {} × {} × {}", self.samples, self.k, self.p),
                format!("{} values", rows.len()),
            ));
        }
        if self.stride == self.p {
            self.rows.write(gpu, rows)?;
        } else {
            let mut padded = vec![0.0; self.rows.numel()];
            for (r, row) in rows.chunks(self.p).enumerate() {
                padded[r * self.stride..r * self.stride + self.p].copy_from_slice(row);
            }
            self.rows.write(gpu, &padded)?;
        }
        let ones = vec![1.0; self.k];
        let losses = losses.unwrap_or(&ones);
        if losses.len() != self.k {
            return Err(Error::shape(
                "aggregate losses",
                format!("K = {}", self.k),
                format!("{}", losses.len()),
            ));
        }
        self.losses.write(gpu, losses)?;
        gpu.run(&self.dispatches.iter().collect::<Vec<_>>())?;
        let mut got = gpu.read_async(&[&self.direction, &self.weights]).await?;
        let weights = got.remove(1);
        Ok(Aggregation {
            // No weights make a coordinate-wise combination.
            weights: if self.coordinate_wise {
                Vec::new()
            } else {
                weights
            },
            direction: got.remove(0),
        })
    }
}
