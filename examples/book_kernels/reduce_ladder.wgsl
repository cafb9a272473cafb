// The reduction ladder of chapter 3: three ways to sum n f32 values on the GPU.
//
//   serial     one invocation adds x[0], x[1], …, x[n − 1] in order
//              (1 dispatch, 1 invocation; one running sum as long as x)
//   one_group  one workgroup of 256: invocation t adds x[t], x[t + 256], …,
//              then a fixed tree in workgroup memory adds the 256 partial sums
//              (1 dispatch, 256 invocations; reduce.wgsl's sum_all)
//   chunks     pass 1 of two: workgroup g sums its own contiguous chunk
//              x[g·C .. (g + 1)·C) the same way, into partial[g]; pass 2 is
//              one_group over the G partial sums
//              (2 dispatches, G·256 + 256 invocations; every running sum short)
//
// Bindings: 0 params (n values, chunk length C), 1 out (read_write), 2 x.
// Every rung adds in a fixed order, so each gives the same bits on every run;
// they differ in how many invocations work at once and in how long each
// running sum gets (the longer, the more rounding it gathers).

struct Params {
    n: u32,
    chunk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

const WG: u32 = 256u;
var<workgroup> tree: array<f32, 256>;

// ANCHOR: tree
/// Add the workgroup's 256 values v in a fixed binary tree; every
/// invocation gets the total.
fn tree_sum(t: u32, v: f32) -> f32 {
    tree[t] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            tree[t] += tree[t + s];
        }
        workgroupBarrier();
    }
    let total = tree[0];
    workgroupBarrier();
    return total;
}
// ANCHOR_END: tree

// ANCHOR: serial
@compute @workgroup_size(1)
fn serial() {
    var acc = 0.0;
    for (var i = 0u; i < p.n; i = i + 1u) {
        acc += x[i];
    }
    out[0] = acc;
}
// ANCHOR_END: serial

// ANCHOR: one_group
@compute @workgroup_size(256)
fn one_group(@builtin(local_invocation_index) t: u32) {
    var acc = 0.0;
    for (var i = t; i < p.n; i += WG) {
        acc += x[i];
    }
    let total = tree_sum(t, acc);
    if (t == 0u) {
        out[0] = total;
    }
}
// ANCHOR_END: one_group

// ANCHOR: chunks
@compute @workgroup_size(256)
fn chunks(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let start = wid.x * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var i = start + t; i < end; i += WG) {
        acc += x[i];
    }
    let total = tree_sum(t, acc);
    if (t == 0u) {
        out[wid.x] = total;
    }
}
// ANCHOR_END: chunks
