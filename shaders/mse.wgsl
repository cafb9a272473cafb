// Fused mean squared error with a row mask: loss and gradient in one kernel.
//
// Shapes: pred and truth (the targets) are B×T, mask is B (1 = labelled, 0 = label missing),
// scale and loss are K-element arrays shared by the K tasks, of which this
// dispatch reads scale[slot] (the upstream gradient of its loss, set on the GPU
// by the loss weighting) and writes loss[slot].
//
//   n_valid         = Σ_r [mask[r] > 0.5]
//   loss[slot]      = Σ_{valid r} Σ_t (pred[r,t] - truth[r,t])² / (n_valid · T)   (0 when n_valid = 0)
//   dpred[r,t]      = valid(r) ? 2 (pred[r,t] - truth[r,t]) · scale[slot] / (n_valid · T) : 0
//
// The truth of a masked row is never read into the result, so it may hold NaN.
// One workgroup, the same structure as softmax_ce.wgsl (WG chosen as there).
//
// Replicas (R runs of one model, DESIGN.md's "many runs in one program"):
// workgroup z computes replica z's loss, its pred, truth and dpred at z·rep_values
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
@group(0) @binding(1) var<storage, read_write> dpred: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read> pred: array<f32>;
@group(0) @binding(4) var<storage, read> truth: array<f32>;
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

@compute @workgroup_size(WG)
fn mse(
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
    let g = 2.0 * scale[slot] * inv;

    var local_loss = 0.0;
    for (var r = lid; r < p.rows; r = r + WG) {
        let valid = mask[zr + r] > 0.5;
        for (var t = 0u; t < p.cols; t = t + 1u) {
            let i = zv + r * p.cols + t;
            var d = 0.0;
            if (valid) {
                let e = pred[i] - truth[i];
                local_loss = local_loss + e * e;
                d = e * g;
            }
            dpred[i] = d;
        }
    }
    let total = tree_sum(lid, local_loss);
    if (lid == 0u) { loss[slot] = total * inv; }
}
