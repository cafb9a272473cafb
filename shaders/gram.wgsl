// The fused per-task gradient reduction.
//
// g is K×N with row stride `stride` (≥ N): row k is task k's gradient (of the
// shared parameters, or at the shared representation). Every gradient-based
// multi-task method needs only the Gram matrix G = g gᵀ (norms ‖g_k‖ = √G_kk,
// cosines G_ij / √(G_ii G_jj)) to find its task weights w, and then the
// combination Σ_k w_k g_k.
//
//   gram_partial:  partial[t, p] = Σ_{c = t, t+T, t+2T, ...} g[i, c] · g[j, c]
//                  for every pair p = (i ≤ j); T = invocations in the grid.
//                  Each invocation reads each of its columns of all K rows once:
//                  one pass over g, whatever K.
//   gram_finish:   G[i, j] = G[j, i] = Σ_t partial[t, p]   (fixed order: deterministic)
//   combine:       out[c] = Σ_k w[k] · g[k, c]             for c < N
//   scale_rows:    out[k, c] = w[k] · g[k, c]              for k < K, c < N
//                  (each task's row weighted on its own: the seeds of K
//                  backward passes when each task has its own representation)
//
// K ≤ 16 (136 pairs). WG must be a power of two.
//
// Replicas (R runs of one model stepped together, DESIGN.md's "many runs in
// one program"): workgroup z reduces replica z, whose out, g and aux lie
// z·rep_out, z·rep_g and z·rep_aux elements past replica 0's. One replica:
// z = 0.

struct Params {
    k: u32,
    n: u32,
    stride: u32,
    threads: u32,
    rep_out: u32,
    rep_g: u32,
    rep_aux: u32,
    _pad: u32,
}

const MAX_TASKS: u32 = 16u;
const MAX_PAIRS: u32 = 136u;

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;

// ANCHOR: gram_partial
@compute @workgroup_size(WG)
fn gram_partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    if (t >= p.threads) { return; }
    let g0 = gid.z * p.rep_g;
    let out0 = gid.z * p.rep_out;
    let pairs = p.k * (p.k + 1u) / 2u;
    var acc: array<f32, MAX_PAIRS>;
    for (var q = 0u; q < pairs; q = q + 1u) { acc[q] = 0.0; }
    var v: array<f32, MAX_TASKS>;
    for (var c = t; c < p.n; c = c + p.threads) {
        for (var i = 0u; i < p.k; i = i + 1u) { v[i] = g[g0 + i * p.stride + c]; }
        var q = 0u;
        for (var i = 0u; i < p.k; i = i + 1u) {
            for (var j = i; j < p.k; j = j + 1u) {
                acc[q] = acc[q] + v[i] * v[j];
                q = q + 1u;
            }
        }
    }
    for (var q = 0u; q < pairs; q = q + 1u) { out[out0 + t * pairs + q] = acc[q]; }
}
// ANCHOR_END: gram_partial

// out = G (K×K), aux = partial (threads × pairs)
// ANCHOR: gram_finish
@compute @workgroup_size(WG)
fn gram_finish(@builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(workgroup_id) wid: vec3<u32>) {
    let pairs = p.k * (p.k + 1u) / 2u;
    let aux0 = wid.z * p.rep_aux;
    let out0 = wid.z * p.rep_out;
    for (var q = lid.x; q < pairs; q = q + WG) {
        var s = 0.0;
        for (var t = 0u; t < p.threads; t = t + 1u) { s = s + aux[aux0 + t * pairs + q]; }
        // pair index q -> (i, j), i ≤ j, in the order gram_partial enumerates them
        var i = 0u;
        var first = 0u;
        loop {
            let row = p.k - i;
            if (q < first + row) { break; }
            first = first + row;
            i = i + 1u;
        }
        let j = i + (q - first);
        out[out0 + i * p.k + j] = s;
        out[out0 + j * p.k + i] = s;
    }
}
// ANCHOR_END: gram_finish

// out = Σ_k w[k] g[k, :], aux = w (K)
@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (c >= p.n) { return; }
    let g0 = wid.z * p.rep_g;
    let aux0 = wid.z * p.rep_aux;
    var s = 0.0;
    for (var k = 0u; k < p.k; k = k + 1u) { s = s + aux[aux0 + k] * g[g0 + k * p.stride + c]; }
    out[wid.z * p.rep_out + c] = s;
}

// out (K rows of stride `stride`) = w[k] g[k, :], aux = w (K)
@compute @workgroup_size(WG)
fn scale_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (i >= p.k * p.n) { return; }
    let k = i / p.n;
    let c = i % p.n;
    out[wid.z * p.rep_out + k * p.stride + c] =
        aux[wid.z * p.rep_aux + k] * g[wid.z * p.rep_g + k * p.stride + c];
}
