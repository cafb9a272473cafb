// Exercise 1 (chapter 1): leaky ReLU, one value per invocation.
//
//   y[i] = x[i]          where x[i] > 0
//   y[i] = alpha · x[i]  elsewhere                 for i < n
//
// Shapes: x and y hold n f32 values. Bindings: 0 params, 1 y (read_write), 2 x.
// The host launches ceil(n / 256) workgroups of 256 (folded into two
// dimensions past 65,535 of them, as taskgrad's own kernels are).
//
// Check it:   cargo test --release --test exercises -- --ignored exercise_1
// Until you write the body, the test fails: this stub has each invocation
// copy the value at its place in its workgroup (lid), so every workgroup
// writes the first 256 values and nothing else, and nothing stops at n.

struct Params {
    n: u32,
    alpha: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

@compute @workgroup_size(256)
fn leaky_relu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // TODO:
    //   1. this invocation's element i, from its workgroup (wid.x, wid.y) in a
    //      grid groups.x wide and its place lid among the workgroup's 256;
    //   2. return when i is past the end (i >= params.n): the last workgroup
    //      is partly beyond it;
    //   3. y[i] = x[i] where x[i] > 0, alpha · x[i] elsewhere.
    y[lid] = x[lid];
}
