// A block of columns copied between two row-major matrices with the same rows:
//
//   copy_columns: dst[b, dst_offset + j] = src[b, src_offset + j],  j < width
//
// Concatenation along columns is one copy per input (forward), and its
// backward the same copies the other way (each input's gradient is its block
// of the output's gradient).
//
// Shapes: src B×src_cols, dst B×dst_cols; one invocation per (b, j) of the
// B×width block. A grid of more than 65,535 workgroups is folded into two
// dimensions by the host; every invocation guards its index.
//
// Bindings: 0 params, 1 dst (read_write), 2 src.

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

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

@compute @workgroup_size(WG)
fn copy_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (i >= p.rows * p.width) { return; }
    let b = i / p.width;
    let j = i % p.width;
    dst[b * p.dst_cols + p.dst_offset + j] = src[b * p.src_cols + p.src_offset + j];
}
