// Exercise 7, a solution: the Gram matrix of K per-task gradients.
//
//   G[i, j] = Σ_{c < P} J[i, c] · J[j, c]        for i, j < K
//
// Shapes: J is K×P, row-major (row k: task k's gradient); G is K×K,
// row-major. Bindings: 0 params, 1 G (read_write), 2 J. The host launches
// K×K workgroups of 64, workgroup (i, j) for the pair (i, j) (a simple
// kernel: chapter 7's fused one reads each column once for every pair).
//
// Chapter 3's two stages again: invocation t adds the products of its
// columns t, t + 64, t + 128, … front to back, then exercise 3's tree adds
// the 64 partial sums. Both are in a fixed order, and a·b = b·a exactly, so
// G[i, j] and G[j, i] come out as the same bits: the matrix is symmetric to
// the last digit, as a solve downstream may assume.
//
// Checked in every test run: cargo test --release --test exercises exercise_7

struct Params {
    k: u32,
    p: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read> jac: array<f32>;

const T: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn gram(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let i = wid.x;
    let j = wid.y;
    let live = i < params.k && j < params.k;
    // 1. This invocation's columns, front to back.
    var acc = 0.0;
    if (live) {
        for (var c = t; c < params.p; c += T) {
            acc += jac[i * params.p + c] * jac[j * params.p + c];
        }
    }
    partial[t] = acc;
    workgroupBarrier();
    // 2. The tree of exercise 3.
    for (var s = T / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            partial[t] += partial[t + s];
        }
        workgroupBarrier();
    }
    if (t == 0u && live) {
        g[i * params.k + j] = partial[0];
    }
}
