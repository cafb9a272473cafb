// STCH (Lin et al. 2024; LibMTL's STCH): each task's seed from this step's
// losses L, at epoch e (0-based, written by the host between epochs):
//
//   e ≤ warmup:  seed_k = 1/(L_k + 1e-20)      (the total is Σ log L_k);
//                during epoch `warmup` the losses are also summed (state)
//   e > warmup:  z = the mean loss of epoch `warmup` (the nadir point, kept),
//                v_k = log(L_k/z_k + 1e-20),  s = softmax(v/μ),
//                seed_k = K s_k / (z_k (L_k/z_k + 1e-20))
//
// (the gradient of K μ log Σ exp(v_k/μ)). State: [STEP, count, flag,
// sum_0..K-1 at SUM, nadir_0..K-1 at NADIR]. CPU twin: `reference_step` in
// src/mtl/stch.rs. Shapes: losses K in, seeds K out.

struct Params {
    k: u32,
    epoch: u32,
    warmup: u32,
    mu: f32,
}

const COUNT: u32 = 1u;
const FLAG: u32 = 2u;
const SUM: u32 = 3u;
const NADIR: u32 = 19u;

@compute @workgroup_size(1)
fn stch() {
    let k = p.k;
    if (p.epoch <= p.warmup) {
        if (p.epoch == p.warmup) {
            for (var i = 0u; i < k; i = i + 1u) { state[SUM + i] = state[SUM + i] + losses[i]; }
            state[COUNT] = state[COUNT] + 1.0;
        }
        for (var i = 0u; i < k; i = i + 1u) { w[i] = 1.0 / (losses[i] + 1e-20); }
        write_weights();
        return;
    }
    if (state[FLAG] == 0.0) {
        let n = max(state[COUNT], 1.0);
        for (var i = 0u; i < k; i = i + 1u) { state[NADIR + i] = state[SUM + i] / n; }
        state[FLAG] = 1.0;
    }
    var m = -3.4e38;
    for (var i = 0u; i < k; i = i + 1u) {
        w[i] = log(losses[i] / state[NADIR + i] + 1e-20);
        m = max(m, w[i]);
    }
    var total = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        w[i] = exp((w[i] - m) / p.mu);
        total = total + w[i];
    }
    for (var i = 0u; i < k; i = i + 1u) {
        let z = state[NADIR + i];
        w[i] = f32(k) * w[i] / total / (z * (losses[i] / z + 1e-20));
    }
    write_weights();
}
