// Fused binary cross-entropy with logits: loss and gradient in one kernel,
// with a per-row label mask.
//
// Shapes: z (logits) and y (targets, 0 or 1; any value in [0, 1] works) are
// B×T (T = 1 for a binary task), mask is B (1 = labelled, 0 = label missing),
// scale and loss are K-element arrays shared by the K tasks, of which this
// dispatch reads scale[slot] (the upstream gradient of its loss, set on the
// GPU by the loss weighting) and writes loss[slot].
//
//   σ(z)            = 1 / (1 + e^{-z})
//   ℓ(z, y)         = -y log σ(z) - (1 - y) log(1 - σ(z))
//                   = max(z, 0) - z·y + log(1 + e^{-|z|})      (the form computed:
//                     e^{-|z|} ≤ 1, so nothing overflows for any z)
//   n_valid         = Σ_r [mask[r] > 0.5]
//   loss[slot]      = Σ_{valid r} Σ_t ℓ(z[r,t], y[r,t]) / (n_valid · T)     (0 when n_valid = 0)
//   dz[r,t]         = valid(r) ? (σ(z[r,t]) - y[r,t]) · scale[slot] / (n_valid · T) : 0
//
// σ is computed from e^{-|z|} too: σ(z) = 1/(1+e) for z ≥ 0 and e/(1+e) for
// z < 0, with e = e^{-|z|}. log(1 + e) uses e - e²/2 + e³/3 when e < 1e-3,
// where 1 + e would round away e's digits in f32.
// The target of a masked row is never read into the result, so it may hold NaN.
// One workgroup, the same structure as mse.wgsl (WG chosen as there).
//
// Replicas (R runs of one model, DESIGN.md's "many runs in one program"):
// workgroup z computes replica z's loss, its z, y and dz at z·rep_values
// elements past replica 0's, mask at z·rep_rows, scale and loss at
// z·rep_tasks. One replica: z = 0 and the strides do not matter.

struct Params {
    rows: u32,
    cols: u32,
    slot: u32,
    _pad: u32,
    rep_values: u32,
    rep_rows: u32,
    rep_tasks: u32,
    _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dz: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read> z: array<f32>;
@group(0) @binding(4) var<storage, read> y: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;
@group(0) @binding(6) var<storage, read> scale: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn tree_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half = half / 2u) {
        if (lid < half) { partial[lid] = partial[lid] + partial[lid + half]; }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// log(1 + e) for e in [0, 1].
fn log1p_small(e: f32) -> f32 {
    if (e < 1e-3) {
        return e * (1.0 - e * (0.5 - e / 3.0));
    }
    return log(1.0 + e);
}

@compute @workgroup_size(WG)
fn bce(
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let lid = lid3.x;
    // This replica's first value, first row and task slot.
    let zv = wid.z * p.rep_values;
    let zr = wid.z * p.rep_rows;
    let slot = wid.z * p.rep_tasks + p.slot;
    var count = 0.0;
    for (var r = lid; r < p.rows; r = r + WG) {
        if (mask[zr + r] > 0.5) { count = count + 1.0; }
    }
    let n_valid = tree_sum(lid, count);
    let denom = n_valid * f32(p.cols);
    let inv = select(0.0, 1.0 / denom, denom > 0.0);
    let g = scale[slot] * inv;

    var local_loss = 0.0;
    for (var r = lid; r < p.rows; r = r + WG) {
        let valid = mask[zr + r] > 0.5;
        for (var t = 0u; t < p.cols; t = t + 1u) {
            let i = zv + r * p.cols + t;
            var d = 0.0;
            if (valid) {
                let x = z[i];
                let yi = y[i];
                let e = exp(-abs(x));
                local_loss = local_loss + max(x, 0.0) - x * yi + log1p_small(e);
                let sigma = select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
                d = (sigma - yi) * g;
            }
            dz[i] = d;
        }
    }
    let total = tree_sum(lid, local_loss);
    if (lid == 0u) { loss[slot] = total * inv; }
}
