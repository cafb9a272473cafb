// Exercise 3 (chapter 3): a row sum, reduced by a fixed tree in workgroup memory.
//
//   out[r] = Σ_{j < n} x[r·n + j]        for r < m
//
// Shapes: x is m×n, row-major; out holds m values. Bindings: 0 params,
// 1 out (read_write), 2 x. The host launches m workgroups of 64, one per row.
//
// Two stages, both in a fixed order, so the same x gives the same bits on
// every run:
//   1. chunk: invocation t adds x[r, t], x[r, t + 64], x[r, t + 128], …
//      front to back and stores its partial sum in partial[t];
//   2. tree: for s = 32, 16, 8, 4, 2, 1, invocation t < s adds partial[t + s]
//      into partial[t]; every invocation waits at a workgroupBarrier() after
//      each step (all 64 reach it: no early return before a barrier). Then
//      partial[0] is the row's sum.
//
// Check it:   cargo test --release --test exercises -- --ignored exercise_3
// Until you write the tree, the test fails: this stub keeps invocation 0's
// chunk alone (right only when n = 1).

struct Params {
    m: u32,
    n: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

const T: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn row_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let r = wid.x;
    // 1. This invocation's chunk, front to back.
    var acc = 0.0;
    if (r < params.m) {
        for (var j = t; j < params.n; j += T) {
            acc += x[r * params.n + j];
        }
    }
    partial[t] = acc;
    workgroupBarrier();
    // 2. TODO: the tree, s = 32, 16, …, 1, with a barrier after each step.
    if (t == 0u && r < params.m) {
        out[r] = partial[0];
    }
}
