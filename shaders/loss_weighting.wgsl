// Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018), stable form with
// s_k = log σ_k² learned per task:
//
//   L = Σ_k [ ½ exp(-s_k) L_k + ½ s_k ]
//
//   uw_seeds (before the forward pass):  seed[k] = ∂L/∂L_k = ½ exp(-s_k)
//   uw_grad  (after the losses):         ds[k]   = ∂L/∂s_k = ½ - seed[k] · L_k
//
// IMTL-L (Liu et al., ICLR 2021; LibMTL's IMTL), s_k a learned log scale:
//
//   L = Σ_k [ exp(s_k) L_k − s_k ]
//
//   imtl_l_seeds (before the forward pass):  seed[k] = ∂L/∂L_k = exp(s_k)
//   imtl_l_grad  (after the losses):         ds[k]   = ∂L/∂s_k = seed[k] · L_k − 1
//
// GradNorm's loss weights (as LibMTL), w = K softmax(s) with s learned:
//
//   softmax_seeds (before the forward pass):  seed[k] = K z_k,  z = softmax(s)
//   softmax_seeds_grad (after the solve):     ds[k] = u_k - z_k Σ_j u_j
//
// where u = w ⊙ ∂L/∂w comes from GradNorm's solve (shaders/mtl/gradnorm.wgsl):
// ∂L/∂s_i = Σ_k ∂L/∂w_k · K z_k (δ_ik - z_i) = u_i - z_i Σ_k u_k.
//
// Shapes: s, seed, loss, u, ds all have K elements. One workgroup, one invocation per task.

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

// out = seed, a = s
@compute @workgroup_size(64)
fn imtl_l_seeds(@builtin(local_invocation_id) lid: vec3<u32>) {
    let k = lid.x;
    if (k < p.tasks) { out[k] = exp(a[k]); }
}

// out = ds, a = seed, b = loss
@compute @workgroup_size(64)
fn imtl_l_grad(@builtin(local_invocation_id) lid: vec3<u32>) {
    let k = lid.x;
    if (k < p.tasks) { out[k] = a[k] * b[k] - 1.0; }
}

// z_k = softmax(a)_k, each invocation summing over the K logits.
fn softmax_at(k: u32) -> f32 {
    var m = a[0];
    for (var j = 1u; j < p.tasks; j = j + 1u) { m = max(m, a[j]); }
    var total = 0.0;
    for (var j = 0u; j < p.tasks; j = j + 1u) { total = total + exp(a[j] - m); }
    return exp(a[k] - m) / total;
}

// out = seed, a = s
@compute @workgroup_size(64)
fn softmax_seeds(@builtin(local_invocation_id) lid: vec3<u32>) {
    let k = lid.x;
    if (k < p.tasks) { out[k] = f32(p.tasks) * softmax_at(k); }
}

// out = ds, a = s, b = u
@compute @workgroup_size(64)
fn softmax_seeds_grad(@builtin(local_invocation_id) lid: vec3<u32>) {
    let k = lid.x;
    if (k < p.tasks) {
        var total = 0.0;
        for (var j = 0u; j < p.tasks; j = j + 1u) { total = total + b[j]; }
        out[k] = b[k] - softmax_at(k) * total;
    }
}
