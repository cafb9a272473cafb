// Inverted dropout with a seeded hash mask, and its backward; and the step
// counter the mask reads, advanced once per training step on the GPU.
//
//   keep(i, t) = u(i, t) ≥ rate,   u(i, t) = hash(i, seed, t) / 2³²  ∈ [0, 1)
//   forward:   y[i]  = keep(i, t) ? x[i] / (1 − rate) : 0
//   backward:  dx[i] = keep(i, t) ? dy[i] / (1 − rate) : 0
//   advance:   step[0] = step[0] + 1
//
// t = step[0] is read from a GPU buffer, so each step draws a new mask
// without a write from the host, and the backward of a step recomputes the
// forward's mask (same i, seed, t) instead of storing it. The same seed gives
// the same masks, step for step. hash is the "lowbias32" integer finaliser
// (C. Wellons, 2020) applied to i, then to that mixed with seed and t.
// At evaluation the layer records no dispatch at all: dropout is the identity.
//
// Shapes: x, y (or dy, dx) n elements; step 1 u32. A grid of more than
// 65,535 workgroups is folded into two dimensions by the host.
// Bindings: 0 params, 1 y (rw), 2 x, 3 step (u32, read); advance: 0 params, 1 step (u32, rw).

struct Params {
    n: u32,
    seed: u32,
    rate: f32,
    _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> step: array<u32>;

fn flat_index(wid: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

fn lowbias32(v: u32) -> u32 {
    var h = v;
    h = h ^ (h >> 16u);
    h = h * 0x7feb352du;
    h = h ^ (h >> 15u);
    h = h * 0x846ca68bu;
    h = h ^ (h >> 16u);
    return h;
}

fn keep(i: u32) -> bool {
    let h = lowbias32(lowbias32(i) ^ lowbias32(p.seed ^ lowbias32(step[0] + 0x9e3779b9u)));
    // The top 24 bits as a float in [0, 1): exact in f32.
    let u = f32(h >> 8u) / 16777216.0;
    return u >= p.rate;
}

@compute @workgroup_size(WG)
fn masked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) {
        y[i] = select(0.0, x[i] / (1.0 - p.rate), keep(i));
    }
}
