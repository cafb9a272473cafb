// TrimmedMean: Yin, Chen, Ramchandran & Bartlett, "Byzantine-Robust
// Distributed Learning: Towards Optimal Statistical Rates", ICML 2018; as
// torchjd's TrimmedMean(trim_number).
//
// g is K×N with row stride `stride` (≥ N): row k is task k's gradient. For
// each coordinate c, the K values g[·, c] sorted ascending as v_(0) ≤ … ≤
// v_(K−1), with t = `trim`:
//
//   out[c] = 1/(K − 2t) Σ_{q = t}^{K−1−t} v_(q)
//
// the mean of the column once its t largest and t smallest values are
// dropped (t = 0: the mean of the rows). Needs K ≥ 2t + 1 (the wrapper
// checks). K ≤ 16: each invocation ranks its column's values in private
// memory (K² comparisons, no sort).

struct Params {
    k: u32,
    n: u32,
    stride: u32,
    trim: u32,
}

const MAX_TASKS: u32 = 16u;

override WG: u32 = 256u; // kernels::WG

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;

@compute @workgroup_size(WG)
fn trimmed_mean(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (c >= p.n) { return; }
    var v: array<f32, MAX_TASKS>;
    for (var k = 0u; k < p.k; k = k + 1u) { v[k] = g[k * p.stride + c]; }
    // v[i] sits at rank r_i = #{m : v[m] < v[i], or v[m] = v[i] and m < i}
    // of the sorted column (ties by index); the middle ranks are kept.
    var s = 0.0;
    for (var i = 0u; i < p.k; i = i + 1u) {
        var rank = 0u;
        for (var m = 0u; m < p.k; m = m + 1u) {
            if (v[m] < v[i] || (v[m] == v[i] && m < i)) { rank = rank + 1u; }
        }
        if (rank >= p.trim && rank + p.trim < p.k) { s = s + v[i]; }
    }
    out[c] = s / f32(p.k - 2u * p.trim);
}
