// A small network's whole training step but the optimizer, in one dispatch
// of one workgroup: an MLP trunk (linear + ReLU layers) and one linear head
// per task, the tasks' fused losses, and the backward pass writing every
// parameter's gradient. For networks so small that the fixed cost of each of
// the general step's ~20 dispatches, not arithmetic, sets the speed (W-iris,
// penguins): the general path's numbers, in one launch.
//
//   forward:  h_0 = x (B×D);  h_l = max(h_{l−1} W_l + b_l, 0) (B×W_l), l = 1..L
//             z = h_L [V_1 … V_K] + [c_1 … c_K]      (B×T, T = Σ_k T_k: every head side by side)
//   losses:   class k: softmax cross-entropy over its T_k columns, label y (as f32);
//             reg k: squared error of its one column — each over the rows whose
//             mask is > 0.5 (and, for a class, whose label is < T_k), as
//             softmax_ce.wgsl and mse.wgsl define them:
//               loss[k] = Σ_valid ℓ_r / n_valid,  dz_r = ∂ℓ_r/∂z_r · seed[k] / n_valid
//   backward: dV_k = h_Lᵀ dz_k, dc_k = Σ_r dz_k,  dh_L = dz [V_1 … V_K]ᵀ ⊙ [h_L > 0]
//             dW_l = h_{l−1}ᵀ dh_l, db_l = Σ_r dh_l,  dh_{l−1} = dh_l W_lᵀ ⊙ [h_{l−1} > 0]
//
// Storage barriers separate the phases (one workgroup sees its own writes).
// The activations and their gradients live in `act`; the layout of the
// parameters, the activations and the batch is in `table` (src/train/mlp_step.rs):
//   [0] B  [1] D  [2] L  [3] K  [4] T  [5] z  [6] dz  [7] x (a copy of the
//   batch's inputs, so that every layer reads its input from `act`), then per
//   layer (in, out, w, b, h, dh) and per task (T_k, v, c, kind 0 class / 1 reg, column).
// batch = x (B×D), then K×B targets, then K×B masks.

override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> table: array<u32>;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;
@group(0) @binding(3) var<storage, read> batch: array<f32>;
@group(0) @binding(4) var<storage, read> seeds: array<f32>;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> act: array<f32>;

var<workgroup> red: array<f32, WG>;

const LAYERS: u32 = 8u;

fn lay(l: u32, f: u32) -> u32 { return table[LAYERS + 6u * l + f]; }
fn task(k: u32, f: u32) -> u32 { return table[LAYERS + 6u * table[2] + 5u * k + f]; }

fn sync() {
    storageBarrier();
    workgroupBarrier();
}

// Σ over the workgroup of `v`; every invocation gets the sum.
fn reduce(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

// Where layer l's input starts in `act`: x for the first layer, else h_{l−1}.
fn input_at(l: u32) -> u32 {
    if (l == 0u) { return table[7]; }
    return lay(l - 1u, 4u);
}

@compute @workgroup_size(WG)
fn mlp_step(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let b = table[0];
    let nl = table[2];
    let nk = table[3];
    let t_all = table[4];
    let z = table[5];
    let dz = table[6];

    for (var e = lid; e < b * table[1]; e = e + WG) { act[table[7] + e] = batch[e]; }
    sync();
    // ---- forward through the trunk ----
    for (var l = 0u; l < nl; l = l + 1u) {
        let n_in = lay(l, 0u);
        let n_out = lay(l, 1u);
        let w = lay(l, 2u);
        let bias = lay(l, 3u);
        let h = lay(l, 4u);
        let src = input_at(l);
        for (var e = lid; e < b * n_out; e = e + WG) {
            let r = e / n_out;
            let j = e % n_out;
            var s = values[bias + j];
            let row = src + r * n_in;
            for (var i = 0u; i < n_in; i = i + 1u) { s = s + act[row + i] * values[w + i * n_out + j]; }
            act[h + e] = max(s, 0.0);
        }
        sync();
    }
    // ---- the heads, side by side ----
    let hl = lay(nl - 1u, 4u);
    let wl = lay(nl - 1u, 1u);
    for (var e = lid; e < b * t_all; e = e + WG) {
        let r = e / t_all;
        let col = e % t_all;
        var k = 0u;
        for (var q = 0u; q < nk; q = q + 1u) { if (col >= task(q, 4u)) { k = q; } }
        let tk = task(k, 0u);
        let v = task(k, 1u);
        let c = task(k, 2u);
        let j = col - task(k, 4u);
        var s = values[c + j];
        for (var i = 0u; i < wl; i = i + 1u) { s = s + act[hl + r * wl + i] * values[v + i * tk + j]; }
        act[z + e] = s;
    }
    sync();

    // ---- the losses and dz ----
    let targets = b * table[1];
    let masks = targets + nk * b;
    for (var k = 0u; k < nk; k = k + 1u) {
        let tk = task(k, 0u);
        let kind = task(k, 3u);
        let col = task(k, 4u);
        var count = 0.0;
        for (var r = lid; r < b; r = r + WG) {
            let y = batch[targets + k * b + r];
            let ok = batch[masks + k * b + r] > 0.5 && (kind == 1u || u32(y) < tk);
            if (ok) { count = count + 1.0; }
        }
        let n_valid = reduce(lid, count);
        var part = 0.0;
        for (var r = lid; r < b; r = r + WG) {
            let y = batch[targets + k * b + r];
            let ok = batch[masks + k * b + r] > 0.5 && (kind == 1u || u32(y) < tk);
            let row = z + r * t_all + col;
            let drow = dz + r * t_all + col;
            if (!ok || n_valid == 0.0) {
                for (var j = 0u; j < tk; j = j + 1u) { act[drow + j] = 0.0; }
                continue;
            }
            let g = seeds[k] / n_valid;
            if (kind == 0u) {
                var m = act[row];
                for (var j = 1u; j < tk; j = j + 1u) { m = max(m, act[row + j]); }
                var se = 0.0;
                for (var j = 0u; j < tk; j = j + 1u) { se = se + exp(act[row + j] - m); }
                let label = u32(y);
                part = part + (m + log(se) - act[row + label]);
                for (var j = 0u; j < tk; j = j + 1u) {
                    let p = exp(act[row + j] - m) / se;
                    act[drow + j] = (p - select(0.0, 1.0, j == label)) * g;
                }
            } else {
                let diff = act[row] - y;
                part = part + diff * diff;
                act[drow] = 2.0 * diff * g;
            }
        }
        let total = reduce(lid, part);
        if (lid == 0u) { losses[k] = select(0.0, total / n_valid, n_valid > 0.0); }
    }
    sync();

    // ---- backward: the heads ----
    for (var e = lid; e < (wl + 1u) * t_all; e = e + WG) {
        let i = e / t_all;
        let col = e % t_all;
        var k = 0u;
        for (var q = 0u; q < nk; q = q + 1u) { if (col >= task(q, 4u)) { k = q; } }
        let tk = task(k, 0u);
        let v = task(k, 1u);
        let c = task(k, 2u);
        let j = col - task(k, 4u);
        var s = 0.0;
        if (i < wl) {
            for (var r = 0u; r < b; r = r + 1u) { s = s + act[hl + r * wl + i] * act[dz + r * t_all + col]; }
            grads[v + i * tk + j] = s;
        } else {
            for (var r = 0u; r < b; r = r + 1u) { s = s + act[dz + r * t_all + col]; }
            grads[c + j] = s;
        }
    }
    // dh_L = dz [V_1 … V_K]ᵀ ⊙ [h_L > 0]
    let dhl = lay(nl - 1u, 5u);
    for (var e = lid; e < b * wl; e = e + WG) {
        let r = e / wl;
        let i = e % wl;
        var s = 0.0;
        if (act[hl + e] > 0.0) {
            for (var k = 0u; k < nk; k = k + 1u) {
                let tk = task(k, 0u);
                let v = task(k, 1u);
                let col = task(k, 4u);
                for (var j = 0u; j < tk; j = j + 1u) {
                    s = s + act[dz + r * t_all + col + j] * values[v + i * tk + j];
                }
            }
        }
        act[dhl + e] = s;
    }
    sync();

    // ---- backward: the trunk, last layer first ----
    for (var q = 0u; q < nl; q = q + 1u) {
        let l = nl - 1u - q;
        let n_in = lay(l, 0u);
        let n_out = lay(l, 1u);
        let w = lay(l, 2u);
        let bias = lay(l, 3u);
        let dh = lay(l, 5u);
        for (var e = lid; e < (n_in + 1u) * n_out; e = e + WG) {
            let i = e / n_out;
            let j = e % n_out;
            var s = 0.0;
            if (i < n_in) {
                let src = input_at(l) + i;
                for (var r = 0u; r < b; r = r + 1u) { s = s + act[src + r * n_in] * act[dh + r * n_out + j]; }
                grads[w + i * n_out + j] = s;
            } else {
                for (var r = 0u; r < b; r = r + 1u) { s = s + act[dh + r * n_out + j]; }
                grads[bias + j] = s;
            }
        }
        if (l > 0u) {
            let h_prev = lay(l - 1u, 4u);
            let dh_prev = lay(l - 1u, 5u);
            for (var e = lid; e < b * n_in; e = e + WG) {
                let r = e / n_in;
                let i = e % n_in;
                var s = 0.0;
                if (act[h_prev + e] > 0.0) {
                    for (var j = 0u; j < n_out; j = j + 1u) { s = s + act[dh + r * n_out + j] * values[w + i * n_out + j]; }
                }
                act[dh_prev + e] = s;
            }
        }
        sync();
    }
}
