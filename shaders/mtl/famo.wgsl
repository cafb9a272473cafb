// FAMO (Liu et al. 2023). Two entry points over the same state:
//
// `famo`, once this step's losses are known: the seeds
//   w_k = z_k / (c L_k),  c = Σ_j z_j / L_j,  z = softmax(ξ),
// keeping L as the "before" losses;
//
// `famo_update`, after the optimizer and a forward pass over the same batch
// at the updated weights (LibMTL's order): the logits learn from how much the
// step lowered each log-loss,
//   δ_k = log L_k(before) - log L_k(after),  ∇_ξ = (diag(z) - z zᵀ) δ,
// by Adam (rate lr, L2 decay gamma).
//
// With same_batch = 0, `famo` runs the update itself first, against the
// previous minibatch's losses, and `famo_update` is not dispatched.
// CPU twin: reference_seeds / reference_update in src/mtl/famo.rs.

struct Params {
    k: u32,
    same_batch: u32,
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

const EPS: f32 = 1e-8;

var<private> delta: array<f32, 16>;

// Adam on ξ from δ = log(kept losses) - log(losses).
fn update_logits() {
    let k = p.k;
    for (var i = 0u; i < k; i = i + 1u) {
        delta[i] = log(state[PREVIOUS_LOSSES + i] + EPS) - log(losses[i] + EPS);
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

@compute @workgroup_size(1)
fn famo() {
    let k = p.k;
    if (p.same_batch == 0u && state[HAS_PREVIOUS] != 0.0) { update_logits(); }
    for (var i = 0u; i < k; i = i + 1u) { w[i] = state[LOGITS + i]; }
    softmax_w();
    var c = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { c = c + w[i] / (losses[i] + EPS); }
    for (var i = 0u; i < k; i = i + 1u) {
        w[i] = w[i] / ((losses[i] + EPS) * c);
        state[PREVIOUS_LOSSES + i] = losses[i];
    }
    state[HAS_PREVIOUS] = 1.0;
    write_weights();
}

@compute @workgroup_size(1)
fn famo_update() {
    update_logits();
}
