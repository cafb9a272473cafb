// Optimizers over a whole flat parameter arena in one dispatch.
//
// sgd (PyTorch's convention, momentum μ, weight decay λ):
//   g' = g + λ θ;   v = μ v + g';   θ = θ - lr v
//
// adam (Kingma & Ba 2015), bias-corrected; with DECOUPLED it is AdamW
// (Loshchilov & Hutter 2019), whose weight decay bypasses the moments:
//   Adam:   g' = g + λ θ
//   AdamW:  g' = g;   θ = θ (1 - lr λ)
//   m = β1 m + (1-β1) g';   v = β2 v + (1-β2) g'²
//   θ = θ - lr (m / bc1) / (sqrt(v / bc2) + ε),   bc1 = 1 - β1^t, bc2 = 1 - β2^t
// The host writes bc1 and bc2 for step t into the params before each step.
//
// Shapes: θ, g, m, v (or velocity) all have n elements.

struct SgdParams {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

struct AdamParams {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    decoupled: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> sp: SgdParams;
@group(0) @binding(1) var<storage, read_write> theta: array<f32>;
@group(0) @binding(2) var<storage, read_write> velocity: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;

@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read_write> a_theta: array<f32>;
@group(0) @binding(2) var<storage, read_write> a_m: array<f32>;
@group(0) @binding(3) var<storage, read_write> a_v: array<f32>;
@group(0) @binding(4) var<storage, read> a_grad: array<f32>;

@compute @workgroup_size(WG)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (i >= sp.n) { return; }
    let g = grad[i] + sp.weight_decay * theta[i];
    let v = sp.momentum * velocity[i] + g;
    velocity[i] = v;
    theta[i] = theta[i] - sp.lr * v;
}

@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (i >= ap.n) { return; }
    var t = a_theta[i];
    var g = a_grad[i];
    if (ap.decoupled != 0u) {
        t = t * (1.0 - ap.lr * ap.weight_decay);
    } else {
        g = g + ap.weight_decay * t;
    }
    let m = ap.beta1 * a_m[i] + (1.0 - ap.beta1) * g;
    let v = ap.beta2 * a_v[i] + (1.0 - ap.beta2) * g * g;
    a_m[i] = m;
    a_v[i] = v;
    a_theta[i] = t - ap.lr * (m / ap.bc1) / (sqrt(v / ap.bc2) + ap.eps);
}
