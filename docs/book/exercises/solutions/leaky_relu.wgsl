// Exercise 1, a solution: leaky ReLU, one value per invocation.
//
//   y[i] = x[i]          where x[i] > 0
//   y[i] = alpha · x[i]  elsewhere                 for i < n

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
    // The flat index, with the grid folded past 65,535 workgroups.
    let i = (wid.x + wid.y * groups.x) * 256u + lid;
    if (i >= params.n) {
        return;
    }
    let v = x[i];
    y[i] = select(params.alpha * v, v, v > 0.0);
}
