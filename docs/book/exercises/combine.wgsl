// Exercise 6 (chapter 6): combine the per-task gradients with the method's weights.
//
//   d[c] = Σ_{k < K} w[k] · J[k, c]        for c < P
//
// Shapes: J is K×P, row-major (row k: task k's gradient of the shared
// parameters); w holds K weights; d holds P values. Bindings: 0 params,
// 1 d (read_write), 2 J, 3 w. One invocation per column; the host launches
// ceil(P / 256) workgroups of 256 (P stays under 65,535 · 256 here: no fold).
//
// Add the K terms from k = 0 upwards, always: a fixed order, so the same
// rows and weights give the same bits (chapter 3). With w = (1, …, 1), d is
// the plain sum of the tasks' gradients, the joint gradient of Σ L_k.
//
// Check it:   cargo test --release --test exercises -- --ignored exercise_6
// Until you write the sum, the test fails: this stub takes task 0's row alone.

struct Params {
    k: u32,
    p: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> d: array<f32>;
@group(0) @binding(2) var<storage, read> jac: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;

@compute @workgroup_size(256)
fn combine(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= params.p) {
        return;
    }
    // TODO: Σ_k w[k] · J[k, c], k from 0 upwards.
    d[c] = w[0] * jac[c];
}
