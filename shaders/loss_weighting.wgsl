// Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018), stable form with
// s_k = log σ_k² learned per task:
//
//   L = Σ_k [ ½ exp(-s_k) L_k + ½ s_k ]
//
//   uw_seeds (before the forward pass):  seed[k] = ∂L/∂L_k = ½ exp(-s_k)
//   uw_grad  (after the losses):         ds[k]   = ∂L/∂s_k = ½ - seed[k] · L_k
//
// Shapes: s, seed, loss, ds all have K elements. One workgroup, one invocation per task.

struct Params {
    tasks: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

// out = seed, a = s
@compute @workgroup_size(64)
fn uw_seeds(@builtin(local_invocation_id) lid: vec3<u32>) {
    let k = lid.x;
    if (k < p.tasks) { out[k] = 0.5 * exp(-a[k]); }
}

// out = ds, a = seed, b = loss
@compute @workgroup_size(64)
fn uw_grad(@builtin(local_invocation_id) lid: vec3<u32>) {
    let k = lid.x;
    if (k < p.tasks) { out[k] = 0.5 - a[k] * b[k]; }
}
