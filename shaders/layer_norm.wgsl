// Layer normalisation over each row of x (B×H), with a learned scale γ and
// shift β (H each), and its backward.
//
//   μ_b     = (1/H) Σ_j x[b,j]
//   σ²_b    = (1/H) Σ_j (x[b,j] − μ_b)²                        (biased, as PyTorch)
//   r_b     = 1 / √(σ²_b + ε)
//   x̂[b,j]  = (x[b,j] − μ_b) · r_b
//   y[b,j]  = γ[j] · x̂[b,j] + β[j]
//
// forward          (one invocation per row): y, and stats[b] = (μ_b, r_b) for the backward.
// backward_input   (one invocation per row), with g[b,j] = dy[b,j] · γ[j]:
//   dx[b,j] = r_b · (g[b,j] − mean_j g[b,·] − x̂[b,j] · mean_j (g[b,·] ⊙ x̂[b,·]))
// backward_params  (one invocation per column j; rows summed in order, so the
//   result does not depend on scheduling):
//   dγ[j] = Σ_b dy[b,j] · x̂[b,j],   dβ[j] = Σ_b dy[b,j],   written to out[j] and
//   out[beta_at + j] (beta_at ≥ H, chosen by the host so that dβ starts at a
//   storage-binding offset the adapter accepts: each half is then bound on its own).
//
// Shapes: x, y, dy, dx B×H; gamma, beta H; stats B×2; out of backward_params beta_at + H.
// Every index is guarded by B or H; a grid of more than 65,535 workgroups is
// folded into two dimensions by the host (the flat index is rebuilt below).
//
// One binding list for the three entry points (each uses a prefix of it):
//   0 params, 1 out (rw: y | dx | dγ,dβ), 2 stats (rw: written by forward, read by the backwards),
//   3 a (forward: x;     backwards: dy),
//   4 b (forward: gamma; backwards: x),
//   5 c (forward: beta;  backward_input: gamma).

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    beta_at: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read> a: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read> c: array<f32>;

fn flat_index(wid: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_index(wid, lid, nwg);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    var sum = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) { sum = sum + a[base + j]; }
    let mu = sum / f32(p.cols);
    var sq = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) {
        let d = a[base + j] - mu;
        sq = sq + d * d;
    }
    let r = inverseSqrt(sq / f32(p.cols) + p.eps);
    for (var j = 0u; j < p.cols; j = j + 1u) {
        out[base + j] = b[j] * (a[base + j] - mu) * r + c[j];
    }
    stats[2u * row] = mu;
    stats[2u * row + 1u] = r;
}

@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_index(wid, lid, nwg);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let mu = stats[2u * row];
    let r = stats[2u * row + 1u];
    var mean_g = 0.0;
    var mean_gx = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) {
        let g = a[base + j] * c[j];
        mean_g = mean_g + g;
        mean_gx = mean_gx + g * (b[base + j] - mu) * r;
    }
    mean_g = mean_g / f32(p.cols);
    mean_gx = mean_gx / f32(p.cols);
    for (var j = 0u; j < p.cols; j = j + 1u) {
        let xhat = (b[base + j] - mu) * r;
        out[base + j] = r * (a[base + j] * c[j] - mean_g - xhat * mean_gx);
    }
}

@compute @workgroup_size(WG)
fn backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_index(wid, lid, nwg);
    if (j >= p.cols) { return; }
    var dgamma = 0.0;
    var dbeta = 0.0;
    for (var row = 0u; row < p.rows; row = row + 1u) {
        let i = row * p.cols + j;
        let xhat = (b[i] - stats[2u * row]) * stats[2u * row + 1u];
        dgamma = dgamma + a[i] * xhat;
        dbeta = dbeta + a[i];
    }
    out[j] = dgamma;
    out[p.beta_at + j] = dbeta;
}
