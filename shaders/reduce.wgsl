// Sum reductions.
//
//   sum_rows: out[j] (+)= Σ_r x[r, j]        x is R×N, out is N (the bias gradient db = Σ_r dY[r, :])
//   sum_all:  out[0] (+)= Σ_i x[i]           x has n = R·N values, out has 1
//
// With ACCUMULATE the result is added to out instead of overwriting it.
// Each dispatch sums a range of rows (sum_rows: r in [start, rows)) or of
// values (sum_all: i in [start, rows·cols)): on an adapter that cuts long
// loops short (llvmpipe ends an invocation's loops after 65,535 iterations)
// the host splits a long sum into ranges, the later ones accumulating.
// sum_rows gives each invocation one column (neighbouring invocations read
// neighbouring addresses); sum_all is one workgroup that strides over x and
// then reduces a tree in workgroup memory, so its result does not depend on
// how many workgroups the adapter would have run.

struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,
    start: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

var<workgroup> partial: array<f32, WG>;

// ANCHOR: sum_rows
@compute @workgroup_size(WG)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (j >= p.cols) { return; }
    var s = 0.0;
    for (var r = p.start; r < p.rows; r = r + 1u) {
        s = s + x[r * p.cols + j];
    }
    if (p.accumulate != 0u) { s = s + out[j]; }
    out[j] = s;
}
// ANCHOR_END: sum_rows

// ANCHOR: sum_all
@compute @workgroup_size(WG)
fn sum_all(@builtin(local_invocation_id) lid: vec3<u32>) {
    let n = p.rows * p.cols;
    var s = 0.0;
    for (var i = p.start + lid.x; i < n; i = i + WG) {
        s = s + x[i];
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half = half / 2u) {
        if (lid.x < half) { partial[lid.x] = partial[lid.x] + partial[lid.x + half]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        var total = partial[0];
        if (p.accumulate != 0u) { total = total + out[0]; }
        out[0] = total;
    }
}
// ANCHOR_END: sum_all
