// A moving average of the K per-task gradient rows: the memory of DB-MTL
// (Lin et al. 2023) and MoCo (Fernando et al., ICLR 2023), as LibMTL keeps
// it. With the step t = 1, 2, … and the rate
//
//   η_t = β / t^σ,
//
//   mode 0 (DB-MTL):  m_k ← η_t m_k + (1 − η_t) g_k
//   mode 1 (MoCo):    m_k ← (1 − η_t) m_k + η_t s_k g_k,   s_k = L_k / (‖g_k‖ + 1e-8)
//
// g is K×N with row stride `stride` (≥ N): this step's task gradients; m is
// K×N (row stride N), zero before the first step; gram is g's K×K Gram
// matrix (‖g_k‖ = √G_kk, read in mode 1 only) and losses this step's K
// losses. state[0] is the step counter of the method's solve, which runs
// after this and advances it: t = state[0] + 1 here.

struct Params {
    k: u32,
    n: u32,
    stride: u32,
    mode: u32,
    beta: f32,
    sigma: f32,
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256u; // kernels::WG

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> state: array<f32>;
@group(0) @binding(4) var<storage, read> gram: array<f32>;
@group(0) @binding(5) var<storage, read> losses: array<f32>;

@compute @workgroup_size(WG)
fn ema_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (i >= p.k * p.n) { return; }
    let k = i / p.n;
    let c = i % p.n;
    let t = f32(bitcast<u32>(state[0]) + 1u);
    let eta = p.beta / pow(t, p.sigma);
    let v = g[k * p.stride + c];
    if (p.mode == 0u) {
        m[i] = eta * m[i] + (1.0 - eta) * v;
    } else {
        let s = losses[k] / (sqrt(max(gram[k * p.k + k], 0.0)) + 1e-8);
        m[i] = (1.0 - eta) * m[i] + eta * s * v;
    }
}
