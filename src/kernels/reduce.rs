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

/// `entry` over `0..n` in ranges of at most `per_dispatch` items (one range
/// without a limit), the later ranges accumulating into `out`; `dims` gives
/// a range's (rows, cols) parameters from its end.
#[allow(clippy::too_many_arguments)]
fn over_ranges(
    gpu: &Gpu,
    entry: &'static str,
    (out, x): (&Tensor, &Tensor),
    n: usize,
    per_dispatch: Option<usize>,
    accumulate: bool,
    grid: [u32; 3],
    dims: impl Fn(usize) -> (usize, usize),
) -> Result<Vec<Dispatch>> {
    let step = per_dispatch.filter(|&m| n > m).unwrap_or(n).max(1);
    (0..n.max(1))
        .step_by(step)
        .enumerate()
        .map(|(i, start)| {
            let (rows, cols) = dims((start + step).min(n));
            let params = Params {
                rows: rows as u32,
                cols: cols as u32,
                accumulate: (accumulate || i > 0) as u32,
                start: start as u32,
            };
            record(
                gpu,
                "reduce.wgsl",
                entry,
                &BINDINGS,
                &[],
                &params,
                &[out, x],
                grid,
            )
        })
        .collect()
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
    let grid = grid_1d(gpu, cols)?;
    over_ranges(
        gpu,
        "sum_rows",
        (out, x),
        rows,
        max,
        accumulate,
        grid,
        |end| (end, cols),
    )
}

/// out\[0\] (+)= Σ_i x\[i\]; out has one element. One workgroup strides
/// over x; on an adapter that cuts long loops short, one dispatch per range.
pub fn sum_all(gpu: &Gpu, x: &Tensor, out: &Tensor, accumulate: bool) -> Result<Vec<Dispatch>> {
    out.expect_numel("sum_all output", 1)?;
    // One loop iteration per WG values; the tree adds log2(WG) more.
    const WG: usize = 256;
    let max = gpu.loop_budget().map(|b| (b / 2) as usize * WG);
    let n = x.numel();
    over_ranges(
        gpu,
        "sum_all",
        (out, x),
        n,
        max,
        accumulate,
        [1, 1, 1],
        |end| (1, end),
    )
}
