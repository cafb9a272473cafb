//! A block of columns copied between two row-major matrices with the same
//! number of rows: concatenation along columns and its backward. See
//! shaders/columns.wgsl.

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, record};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    width: u32,
    src_cols: u32,
    dst_cols: u32,
    src_offset: u32,
    dst_offset: u32,
    _pad0: u32,
    _pad1: u32,
}

fn rows_cols(what: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match *t.shape() {
        [r, c] => Ok((r, c)),
        _ => Err(Error::shape(what, "a matrix", format!("{:?}", t.shape()))),
    }
}

/// dst[:, dst_offset..dst_offset + width] = src[:, src_offset..src_offset + width].
pub fn copy_columns(
    gpu: &Gpu,
    src: &Tensor,
    src_offset: usize,
    dst: &Tensor,
    dst_offset: usize,
    width: usize,
) -> Result<Dispatch> {
    let (rows, src_cols) = rows_cols("copy_columns source", src)?;
    let (dst_rows, dst_cols) = rows_cols("copy_columns target", dst)?;
    if dst_rows != rows || src_offset + width > src_cols || dst_offset + width > dst_cols {
        return Err(Error::shape(
            "copy_columns",
            format!(
                "columns {src_offset}..+{width} of {rows}×{src_cols} into {dst_offset}..+{width}"
            ),
            format!("{dst_rows}×{dst_cols}"),
        ));
    }
    use Binding::*;
    record(
        gpu,
        "columns.wgsl",
        "copy_columns",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &Params {
            rows: rows as u32,
            width: width as u32,
            src_cols: src_cols as u32,
            dst_cols: dst_cols as u32,
            src_offset: src_offset as u32,
            dst_offset: dst_offset as u32,
            _pad0: 0,
            _pad1: 0,
        },
        &[dst, src],
        grid_1d(gpu, rows * width)?,
    )
}
