// ExcessMTL's running sums (He, Zhou, Cheng & Tang, "Robust Multi-Task
// Learning with Excess Risks", ICML 2024; as LibMTL's ExcessMTL).
//
// g is K×N with row stride `stride` (≥ N): this step's task gradients. s
// and r are K×N (row stride N); s is zero before the first step:
//
//   s[k, c] ← s[k, c] + g[k, c]²                 (AdaGrad's sum of squares)
//   r[k, c] = g[k, c] / (s[k, c] + 1e-7)^¼
//
// so that the Gram matrix of r has on its diagonal LibMTL's excess-risk
// estimate of each task, w_k = Σ_c g_kc² / √(s_kc + 1e-7) (the solve in
// shaders/mtl/excess_mtl.wgsl reads it).

struct Params {
    k: u32,
    n: u32,
    stride: u32,
    _pad: u32,
}

override WG: u32 = 256u; // kernels::WG

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
@group(0) @binding(2) var<storage, read_write> r: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;

@compute @workgroup_size(WG)
fn excess_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (i >= p.k * p.n) { return; }
    let v = g[(i / p.n) * p.stride + i % p.n];
    let sum = s[i] + v * v;
    s[i] = sum;
    r[i] = v / sqrt(sqrt(sum + 1e-7));
}
