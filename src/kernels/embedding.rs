//! Embedding lookup of a categorical input column and its scatter-add
//! backward. See shaders/embedding.wgsl.

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, matrix, record};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    dim: u32,
    levels: u32,
    x_cols: u32,
    col: u32,
    out_cols: u32,
    off: u32,
    _pad: u32,
}

/// Where an embedding reads its index and writes its block.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// The column of x holding each row's level index (f32; −1: none).
    pub col: usize,
    /// The first column of its block in the output (and its gradient).
    pub off: usize,
}

fn params(x: &Tensor, table: &Tensor, out: &Tensor, at: Placement) -> Result<Params> {
    let (rows, x_cols) = matrix("embedding x", x)?;
    let (levels, dim) = matrix("embedding table", table)?;
    let (out_rows, out_cols) = matrix("embedding output", out)?;
    if out_rows != rows || at.col >= x_cols || at.off + dim > out_cols {
        return Err(Error::shape(
            "embedding",
            format!(
                "x {rows}×{x_cols} with column {}, a block of {dim} at column {}",
                at.col, at.off
            ),
            format!("an output of {out_rows}×{out_cols}"),
        ));
    }
    Ok(Params {
        rows: rows as u32,
        dim: dim as u32,
        levels: levels as u32,
        x_cols: x_cols as u32,
        col: at.col as u32,
        out_cols: out_cols as u32,
        off: at.off as u32,
        _pad: 0,
    })
}

/// out[b, off..off+dim] = table[x[b, col]] (zeros for an index outside the table).
pub fn gather(
    gpu: &Gpu,
    x: &Tensor,
    table: &Tensor,
    out: &Tensor,
    at: Placement,
) -> Result<Dispatch> {
    let p = params(x, table, out, at)?;
    use Binding::*;
    record(
        gpu,
        "embedding.wgsl",
        "gather",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &p,
        &[out, x, table],
        grid_1d(gpu, (p.rows * p.dim) as usize)?,
    )
}

/// dtable\[l\] = Σ over rows b whose index is l of dy[b, off..off+dim].
pub fn scatter(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    dtable: &Tensor,
    at: Placement,
) -> Result<Dispatch> {
    let p = params(x, dtable, dy, at)?;
    use Binding::*;
    record(
        gpu,
        "embedding.wgsl",
        "scatter",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &p,
        &[dtable, x, dy],
        grid_1d(gpu, (p.levels * p.dim) as usize)?,
    )
}
