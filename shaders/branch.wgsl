// Learning to Branch's choice of parent (Guo, Lee & Ulbricht, ICML 2020; as
// LibMTL's LTB): each row of R×K logits l picks one of K parents by a hard
// Gumbel-softmax, with the straight-through gradient of the soft one.
//
//   training:  g_j = −log(−log u_j),  u_j ∈ (0, 1) a hash of (seed, step, row·K + j)
//              s = softmax((l + g) / τ),   y = one_hot(argmax_j s_j)
//   evaluation: y = one_hot(argmax_j l_j)                   (no noise; s = y)
//   warm-up:   y = 1 for every j (every parent summed), s = 0
//   backward:  dl_j = s_j (dy_j − Σ_i s_i dy_i) / τ          (0 in warm-up)
//
// τ and the warm-up flag come from `schedule` ([τ, warm]), written by the
// host once an epoch; the step counter from the GPU, as dropout's. Ties in
// the argmax go to the lower index. One invocation per row (K ≤ 64).
// Shapes: l, y, s, dy, dl R×K; schedule 2; step 1 (u32).
// Bindings: 0 params, 1 out (y or dl), 2 s, 3 in (l or dy), 4 schedule, 5 step.

struct Params {
    rows: u32,
    k: u32,
    seed: u32,
    training: u32,
}

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> soft: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
@group(0) @binding(4) var<storage, read> schedule: array<f32>;
@group(0) @binding(5) var<storage, read> step: array<u32>;

fn lowbias32(v: u32) -> u32 {
    var h = v;
    h = h ^ (h >> 16u);
    h = h * 0x7feb352du;
    h = h ^ (h >> 15u);
    h = h * 0x846ca68bu;
    h = h ^ (h >> 16u);
    return h;
}

// u ∈ (0, 1): the top 24 bits of the hash, offset by half a step.
fn uniform_open(i: u32) -> f32 {
    let h = lowbias32(lowbias32(i) ^ lowbias32(p.seed ^ lowbias32(step[0] + 0x9e3779b9u)));
    return (f32(h >> 8u) + 0.5) / 16777216.0;
}

@compute @workgroup_size(WG)
fn branch(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) { return; }
    let base = r * p.k;
    if (schedule[1] > 0.0) {
        for (var j = 0u; j < p.k; j = j + 1u) { out[base + j] = 1.0; soft[base + j] = 0.0; }
        return;
    }
    let tau = schedule[0];
    var best = 0u;
    var top = -3.4e38;
    for (var j = 0u; j < p.k; j = j + 1u) {
        var z = inp[base + j];
        if (p.training != 0u) { z = (z - log(-log(uniform_open(base + j)))) / tau; }
        soft[base + j] = z;
        if (z > top) { top = z; best = j; }
    }
    var sum = 0.0;
    for (var j = 0u; j < p.k; j = j + 1u) {
        let e = exp(soft[base + j] - top);
        soft[base + j] = e;
        sum = sum + e;
    }
    for (var j = 0u; j < p.k; j = j + 1u) {
        soft[base + j] = soft[base + j] / sum;
        out[base + j] = select(0.0, 1.0, j == best);
    }
}

@compute @workgroup_size(WG)
fn branch_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) { return; }
    let base = r * p.k;
    if (schedule[1] > 0.0) {
        for (var j = 0u; j < p.k; j = j + 1u) { out[base + j] = 0.0; }
        return;
    }
    var dot = 0.0;
    for (var j = 0u; j < p.k; j = j + 1u) { dot = dot + soft[base + j] * inp[base + j]; }
    for (var j = 0u; j < p.k; j = j + 1u) {
        out[base + j] = soft[base + j] * (inp[base + j] - dot) / schedule[0];
    }
}
