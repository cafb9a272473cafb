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
//
// Replicas (R runs of one model stepped together, DESIGN.md's "many runs in
// one program"): workgroup z updates replica z, whose θ, m, v (velocity)
// and g lie z·rep_theta, z·rep_m, z·rep_v, z·rep_grad elements past
// replica 0's. One replica: z = 0. Every replica takes the same step's
// settings (the host writes them once for all).

struct SgdParams {
    n: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    rep_theta: u32,
    rep_v: u32,
    rep_grad: u32,
    _pad: u32,
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
    rep_theta: u32,
    rep_m: u32,
    rep_v: u32,
    rep_grad: u32,
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
    let e = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (e >= sp.n) { return; }
    let i = wid.z * sp.rep_theta + e;
    let iv = wid.z * sp.rep_v + e;
    let g = grad[wid.z * sp.rep_grad + e] + sp.weight_decay * theta[i];
    let v = sp.momentum * velocity[iv] + g;
    velocity[iv] = v;
    theta[i] = theta[i] - sp.lr * v;
}

@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (e >= ap.n) { return; }
    let i = wid.z * ap.rep_theta + e;
    let im = wid.z * ap.rep_m + e;
    let iv = wid.z * ap.rep_v + e;
    var t = a_theta[i];
    var g = a_grad[wid.z * ap.rep_grad + e];
    if (ap.decoupled != 0u) {
        t = t * (1.0 - ap.lr * ap.weight_decay);
    } else {
        g = g + ap.weight_decay * t;
    }
    let m = ap.beta1 * a_m[im] + (1.0 - ap.beta1) * g;
    let v = ap.beta2 * a_v[iv] + (1.0 - ap.beta2) * g * g;
    a_m[im] = m;
    a_v[iv] = v;
    a_theta[i] = t - ap.lr * (m / ap.bc1) / (sqrt(v / ap.bc2) + ap.eps);
}
