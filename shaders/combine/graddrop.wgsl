// GradDrop: Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, "Just
// Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout",
// NeurIPS 2020, Algorithm 1 lines 10–15; as torchjd's GradDrop (f the
// identity, one leak ℓ for every task).
//
// g is K×N with row stride `stride` (≥ N): row k is task k's gradient. For
// each coordinate c, independently:
//
//   P_c = ½ (1 + Σ_k g[k, c] / Σ_k |g[k, c]|)    the positive sign purity (½ for a zero column)
//   U_c = uniform01(seed, step, c)                 a fresh draw per coordinate and step
//   M_kc = [P_c > U_c] [g[k, c] > 0] + [P_c < U_c] [g[k, c] < 0]
//   out[c] = Σ_k (ℓ + (1 − ℓ) M_kc) g[k, c]
//
// So with probability P_c only the positive components of column c survive,
// otherwise only the negative ones: the combined step never fights itself
// in any coordinate. Where every task agrees in sign (P_c = 1 or 0), the
// column's sum is kept whole.
//
// graddrop: out (N) from g; state[0] holds the step (as a u32's bits).
// advance:  state[0] += 1; one invocation, after the combine of each step.

struct Params {
    k: u32,
    n: u32,
    stride: u32,
    seed: u32,
    leak: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override WG: u32 = 256u; // kernels::WG

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;

// The draws of shaders/mtl/prelude.wgsl (lowbias32, C. Wellons), so that
// the CPU reference (mtl::solve::uniform) draws the same U_c.
fn hash(v: u32) -> u32 {
    var x = v;
    x = x ^ (x >> 16u);
    x = x * 0x7feb352du;
    x = x ^ (x >> 15u);
    x = x * 0x846ca68bu;
    x = x ^ (x >> 16u);
    return x;
}

fn uniform01(seed: u32, step: u32, index: u32) -> f32 {
    let h = hash(seed ^ hash((step * 0x9E3779B9u) ^ hash(index + 0x85EBCA6Bu)));
    return f32(h >> 8u) / 16777216.0;
}

@compute @workgroup_size(WG)
fn graddrop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (c >= p.n) { return; }
    var sum = 0.0;
    var mag = 0.0;
    for (var k = 0u; k < p.k; k = k + 1u) {
        let v = g[k * p.stride + c];
        sum = sum + v;
        mag = mag + abs(v);
    }
    var purity = 0.5;
    if (mag > 0.0) { purity = 0.5 * (1.0 + sum / mag); }
    let u = uniform01(p.seed, bitcast<u32>(state[0]), c);
    let keep_pos = purity > u;
    let keep_neg = purity < u;
    var s = 0.0;
    for (var k = 0u; k < p.k; k = k + 1u) {
        let v = g[k * p.stride + c];
        var m = 0.0;
        if ((keep_pos && v > 0.0) || (keep_neg && v < 0.0)) { m = 1.0; }
        s = s + (p.leak + (1.0 - p.leak) * m) * v;
    }
    out[c] = s;
}

@compute @workgroup_size(1)
fn advance() {
    state[0] = bitcast<f32>(bitcast<u32>(state[0]) + 1u);
}
