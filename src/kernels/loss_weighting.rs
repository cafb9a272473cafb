//! Learned loss weights' per-task kernels: uncertainty weighting's seeds from
//! the log variances and their gradient, and GradNorm's softmax-parametrised
//! seeds and theirs. See shaders/loss_weighting.wgsl.

use crate::error::Result;
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{record, tasks_of};

/// seed\[k\] = ½ exp(-s\[k\])
pub fn uw_seeds(gpu: &Gpu, log_var: &Tensor, seeds: &Tensor) -> Result<Dispatch> {
    log_var.expect_numel("uw_seeds log variances", seeds.numel())?;
    use Binding::*;
    record(
        gpu,
        "loss_weighting.wgsl",
        "uw_seeds",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &tasks_of(seeds)?,
        &[seeds, log_var],
        [1, 1, 1],
    )
}

/// ds\[k\] = ½ - seed\[k\] · loss\[k\]
pub fn uw_grad(gpu: &Gpu, seeds: &Tensor, losses: &Tensor, dlog_var: &Tensor) -> Result<Dispatch> {
    seeds.expect_numel("uw_grad seeds", dlog_var.numel())?;
    losses.expect_numel("uw_grad losses", dlog_var.numel())?;
    use Binding::*;
    record(
        gpu,
        "loss_weighting.wgsl",
        "uw_grad",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &tasks_of(dlog_var)?,
        &[dlog_var, seeds, losses],
        [1, 1, 1],
    )
}

/// IMTL-L's seeds: seed\[k\] = exp(s\[k\])
pub fn imtl_l_seeds(gpu: &Gpu, log_scale: &Tensor, seeds: &Tensor) -> Result<Dispatch> {
    log_scale.expect_numel("imtl_l_seeds log scales", seeds.numel())?;
    use Binding::*;
    record(
        gpu,
        "loss_weighting.wgsl",
        "imtl_l_seeds",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &tasks_of(seeds)?,
        &[seeds, log_scale],
        [1, 1, 1],
    )
}

/// IMTL-L's gradient: ds\[k\] = seed\[k\] · loss\[k\] − 1
pub fn imtl_l_grad(
    gpu: &Gpu,
    seeds: &Tensor,
    losses: &Tensor,
    dlog_scale: &Tensor,
) -> Result<Dispatch> {
    seeds.expect_numel("imtl_l_grad seeds", dlog_scale.numel())?;
    losses.expect_numel("imtl_l_grad losses", dlog_scale.numel())?;
    use Binding::*;
    record(
        gpu,
        "loss_weighting.wgsl",
        "imtl_l_grad",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &tasks_of(dlog_scale)?,
        &[dlog_scale, seeds, losses],
        [1, 1, 1],
    )
}

/// seed\[k\] = K softmax(s)_k
pub fn softmax_seeds(gpu: &Gpu, logits: &Tensor, seeds: &Tensor) -> Result<Dispatch> {
    logits.expect_numel("softmax_seeds logits", seeds.numel())?;
    use Binding::*;
    record(
        gpu,
        "loss_weighting.wgsl",
        "softmax_seeds",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &tasks_of(seeds)?,
        &[seeds, logits],
        [1, 1, 1],
    )
}

/// ds\[k\] = u\[k\] - softmax(s)_k Σ_j u\[j\]  (the gradient of `softmax_seeds`
/// given u = w ⊙ ∂L/∂w)
pub fn softmax_seeds_grad(
    gpu: &Gpu,
    logits: &Tensor,
    u: &Tensor,
    dlogits: &Tensor,
) -> Result<Dispatch> {
    logits.expect_numel("softmax_seeds_grad logits", dlogits.numel())?;
    u.expect_numel("softmax_seeds_grad u", dlogits.numel())?;
    use Binding::*;
    record(
        gpu,
        "loss_weighting.wgsl",
        "softmax_seeds_grad",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &tasks_of(dlogits)?,
        &[dlogits, logits, u],
        [1, 1, 1],
    )
}
