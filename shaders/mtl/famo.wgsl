// FAMO (Liu et al. 2023), given this step's losses: update the logits ξ from
// the change of log-losses since the previous step,
//   δ_k = log L_k(prev) - log L_k,  ∇_ξ = (diag(z) - z zᵀ) δ,  z = softmax(ξ),
// by Adam (rate lr, L2 decay gamma), then write the seeds
//   w_k = z_k / (c L_k),  c = Σ_j z_j / L_j.

struct Params {
    k: u32,
    _pad: u32,
    lr: f32,
    gamma: f32,
}

// The state's layout.
const HAS_PREVIOUS: u32 = 1u;
const LOGITS: u32 = 2u;
const PREVIOUS_LOSSES: u32 = 18u;
const MOMENT_1: u32 = 34u;
const MOMENT_2: u32 = 50u;
const ADAM_STEP: u32 = 66u;

var<private> delta: array<f32, 16>;

@compute @workgroup_size(1)
fn famo() {
    let k = p.k;
    let eps = 1e-8;
    if (state[HAS_PREVIOUS] != 0.0) {
        for (var i = 0u; i < k; i = i + 1u) {
            delta[i] = log(state[PREVIOUS_LOSSES + i] + eps) - log(losses[i] + eps);
            w[i] = state[LOGITS + i];
        }
        softmax_w();
        var zd = 0.0;
        for (var i = 0u; i < k; i = i + 1u) { zd = zd + w[i] * delta[i]; }
        let t = state[ADAM_STEP] + 1.0;
        state[ADAM_STEP] = t;
        let bc1 = 1.0 - pow(0.9, t);
        let bc2 = 1.0 - pow(0.999, t);
        for (var i = 0u; i < k; i = i + 1u) {
            let gi = w[i] * (delta[i] - zd) + p.gamma * state[LOGITS + i];
            let m = 0.9 * state[MOMENT_1 + i] + 0.1 * gi;
            let v = 0.999 * state[MOMENT_2 + i] + 0.001 * gi * gi;
            state[MOMENT_1 + i] = m;
            state[MOMENT_2 + i] = v;
            state[LOGITS + i] = state[LOGITS + i] - p.lr * (m / bc1) / (sqrt(v / bc2) + 1e-8);
        }
    }
    for (var i = 0u; i < k; i = i + 1u) { w[i] = state[LOGITS + i]; }
    softmax_w();
    var c = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { c = c + w[i] / (losses[i] + eps); }
    for (var i = 0u; i < k; i = i + 1u) {
        w[i] = w[i] / ((losses[i] + eps) * c);
        state[PREVIOUS_LOSSES + i] = losses[i];
    }
    state[HAS_PREVIOUS] = 1.0;
    write_weights();
}
