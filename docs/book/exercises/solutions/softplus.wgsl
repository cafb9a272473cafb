// Exercise 5, a solution: softplus and its backward.
//
//   softplus:           y[i]  = log(1 + exp(x[i]))
//   softplus_backward:  dx[i] = dy[i] · σ(x[i]),  σ(x) = 1 / (1 + exp(−x))

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

fn index(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * groups.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn softplus(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, groups, lid);
    if (i >= params.n) {
        return;
    }
    let x = a[i];
    // max(x, 0) + log(1 + e), e = exp(−|x|): no overflow for large x. For
    // small e, 1 + e rounds e's digits away (all of them once e < 6e-8, x <
    // −16.6: log(1 + e) would be 0), so below e = 0.01 log(1 + e) is taken
    // as its series e − e²/2 + e³/3 (off by e⁴/4: 2.5e-7 of the value at most).
    let e = exp(-abs(x));
    let series = e * (1.0 - e * (0.5 - e / 3.0));
    out[i] = max(x, 0.0) + select(log(1.0 + e), series, e < 0.01);
}

@compute @workgroup_size(256)
fn softplus_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wid, groups, lid);
    if (i >= params.n) {
        return;
    }
    let x = b[i];
    out[i] = a[i] / (1.0 + exp(-x));
}
