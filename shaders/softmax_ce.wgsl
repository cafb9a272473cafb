// Fused softmax cross-entropy with a row mask: loss and gradient in one kernel.
//
// Shapes: logits z is B×C, labels y is B (u32 class index), mask is B (1 = labelled,
// 0 = label missing), scale and loss are K-element arrays shared by the K tasks, of which this
// dispatch reads scale[slot] (the upstream gradient of its loss, set on the GPU
// by the loss weighting) and writes loss[slot].
//
//   valid(r)      = mask[r] > 0.5 and y[r] < C
//   n_valid       = Σ_r valid(r)
//   lse(r)        = max_j z[r,j] + log Σ_j exp(z[r,j] - max_j z[r,j])
//   loss_rows[r]  = valid(r) ? lse(r) - z[r, y[r]] : 0
//   loss[slot]    = Σ_r loss_rows[r] / n_valid                  (0 when n_valid = 0)
//   dlogits[r,j]  = valid(r) ? (softmax(z[r])_j - [j = y[r]]) · scale[slot] / n_valid : 0
//
// One workgroup: it counts the valid rows, then each invocation handles rows
// lid, lid + WG, ... and the per-row losses are summed by a tree in workgroup memory.
// WG must be a power of two; the host sets it to the smallest one ≥ B from 32
// to 256 (kernels::LossParams::workgroup): the sums are those of 256
// invocations, whose idle ones add only zeros.
//
// Replicas (R runs of one model, DESIGN.md's "many runs in one program"):
// workgroup z computes replica z's loss, its z, dlogits at z·rep_values
// elements past replica 0's, y, mask and loss_rows at z·rep_rows, scale and
// loss at z·rep_tasks. One replica: z = 0 and the strides do not matter.

struct Params {
    rows: u32,
    classes: u32,
    slot: u32,
    _pad: u32,
    rep_values: u32,
    rep_rows: u32,
    rep_tasks: u32,
    _pad2: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss_rows: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read> logits: array<f32>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read> mask: array<f32>;
@group(0) @binding(7) var<storage, read> scale: array<f32>;

var<workgroup> partial: array<f32, WG>;

// Row r (already offset to its replica) has a label to learn from.
fn is_valid(r: u32) -> bool {
    return mask[r] > 0.5 && labels[r] < p.classes;
}

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

// ANCHOR: softmax_ce
@compute @workgroup_size(WG)
fn softmax_ce(
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let lid = lid3.x;
    let c = p.classes;
    // This replica's first logit, first row and task slot.
    let zv = wid.z * p.rep_values;
    let zr = wid.z * p.rep_rows;
    let slot = wid.z * p.rep_tasks + p.slot;
    var count = 0.0;
    for (var r = lid; r < p.rows; r = r + WG) {
        if (is_valid(zr + r)) { count = count + 1.0; }
    }
    let n_valid = tree_sum(lid, count);
    let inv = select(0.0, 1.0 / n_valid, n_valid > 0.0);
    let g = scale[slot] * inv;

    var local_loss = 0.0;
    for (var r = lid; r < p.rows; r = r + WG) {
        let base = zv + r * c;
        let valid = is_valid(zr + r);
        var zmax = logits[base];
        for (var j = 1u; j < c; j = j + 1u) { zmax = max(zmax, logits[base + j]); }
        var sum = 0.0;
        for (var j = 0u; j < c; j = j + 1u) { sum = sum + exp(logits[base + j] - zmax); }
        let lse = zmax + log(sum);
        var row_loss = 0.0;
        if (valid) { row_loss = lse - logits[base + labels[zr + r]]; }
        loss_rows[zr + r] = row_loss;
        local_loss = local_loss + row_loss;
        for (var j = 0u; j < c; j = j + 1u) {
            var d = 0.0;
            if (valid) {
                let onehot = select(0.0, 1.0, j == labels[zr + r]);
                d = (exp(logits[base + j] - lse) - onehot) * g;
            }
            dlogits[base + j] = d;
        }
    }
    let total = tree_sum(lid, local_loss);
    if (lid == 0u) { loss[slot] = total * inv; }
}
// ANCHOR_END: softmax_ce
