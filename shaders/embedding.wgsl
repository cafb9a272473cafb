// Embedding of a categorical input column: a learned row of E (L×dim) per
// level, looked up by the level's index, and the backward into E.
//
// The index of row b is the f32 x[b, col] (exact for levels below 2²⁴); an
// index outside 0..L (−1: a level unseen in training, or a missing value)
// reads a row of zeros and sends no gradient anywhere.
//
//   gather:  out[b, off + k] = E[i_b, k]  if 0 ≤ i_b < L, else 0        (b < B, k < dim)
//   scatter: dE[l, k] = Σ_b [i_b = l] · dy[b, off + k]                   (l < L, k < dim)
//
// The scatter-add runs one invocation per (l, k), summing the rows in order:
// no atomics, and the same sum every time. Cost B·L·dim, which is what one
// product of the same shapes costs.
//
// Shapes: x B×x_cols; E and dE L×dim; out and dy B×out_cols, the embedding's
// block at columns off..off+dim. A grid of more than 65,535 workgroups is
// folded into two dimensions by the host; every invocation guards its index.
//
// Bindings (both entry points): 0 params, 1 out (rw: out | dE), 2 x, 3 src (E | dy).

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

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;

fn flat_index(wid: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

// The level of row b, or levels (out of range) for an unseen or missing one.
fn level(b: u32) -> u32 {
    let v = round(x[b * p.x_cols + p.col]);
    if (v < 0.0 || v >= f32(p.levels)) { return p.levels; }
    return u32(v);
}

@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i >= p.rows * p.dim) { return; }
    let b = i / p.dim;
    let k = i % p.dim;
    let l = level(b);
    var v = 0.0;
    if (l < p.levels) { v = src[l * p.dim + k]; }
    out[b * p.out_cols + p.off + k] = v;
}

@compute @workgroup_size(WG)
fn scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i >= p.levels * p.dim) { return; }
    let l = i / p.dim;
    let k = i % p.dim;
    var s = 0.0;
    for (var b = 0u; b < p.rows; b = b + 1u) {
        if (level(b) == l) { s = s + src[b * p.out_cols + p.off + k]; }
    }
    out[i] = s;
}
