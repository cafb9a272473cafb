//! Column sums (the bias gradient) and the sum of all elements. See shaders/reduce.wgsl.

use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::Tensor;
use crate::gpu::{Binding, Gpu};
use crate::kernels::{grid_1d, record};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,
    /// The first row (sum_rows) or value (sum_all) of this dispatch's range.
    start: u32,
}

const BINDINGS: [Binding; 3] = [Binding::Uniform, Binding::ReadWrite, Binding::ReadOnly];

/// `[start, end)` ranges of at most `max` items covering `0..n` (one range
/// when there is no limit, or n = 0).
fn ranges(n: usize, max: Option<usize>) -> Vec<(usize, usize)> {
    match max {
        Some(m) if n > m => (0..n)
            .step_by(m.max(1))
            .map(|s| (s, (s + m).min(n)))
            .collect(),
        _ => vec![(0, n)],
    }
}

/// out\[j\] (+)= Σ_r x[r, j]; x is R×N, out has N elements. One dispatch,
/// or on an adapter that cuts long loops short one per range of rows (the
/// later ones accumulating), in one submit.
pub fn sum_rows(gpu: &Gpu, x: &Tensor, out: &Tensor, accumulate: bool) -> Result<Vec<Dispatch>> {
    let [rows, cols] = *x.shape() else {
        return Err(Error::shape(
            "sum_rows",
            "a 2-D matrix",
            format!("{:?}", x.shape()),
        ));
    };
    out.expect_numel("sum_rows output", cols)?;
    // One loop iteration per row.
    let max = gpu.loop_budget().map(|b| (b / 2) as usize);
    ranges(rows, max)
        .into_iter()
        .enumerate()
        .map(|(i, (start, end))| {
            let params = Params {
                rows: end as u32,
                cols: cols as u32,
                accumulate: (accumulate || i > 0) as u32,
                start: start as u32,
            };
            record(
                gpu,
                "reduce.wgsl",
                "sum_rows",
                &BINDINGS,
                &[],
                &params,
                &[out, x],
                grid_1d(gpu, cols)?,
            )
        })
        .collect()
}

/// out\[0\] (+)= Σ_i x\[i\]; out has one element. One workgroup strides
/// over x; on an adapter that cuts long loops short, one dispatch per range.
pub fn sum_all(gpu: &Gpu, x: &Tensor, out: &Tensor, accumulate: bool) -> Result<Vec<Dispatch>> {
    out.expect_numel("sum_all output", 1)?;
    // One loop iteration per WG values; the tree adds log2(WG) more.
    const WG: usize = 256;
    let max = gpu.loop_budget().map(|b| (b / 2) as usize * WG);
    ranges(x.numel(), max)
        .into_iter()
        .enumerate()
        .map(|(i, (start, end))| {
            let params = Params {
                rows: 1,
                cols: end as u32,
                accumulate: (accumulate || i > 0) as u32,
                start: start as u32,
            };
            record(
                gpu,
                "reduce.wgsl",
                "sum_all",
                &BINDINGS,
                &[],
                &params,
                &[out, x],
                [1, 1, 1],
            )
        })
        .collect()
}
