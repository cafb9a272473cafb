// GradNorm (Chen et al. 2018), one update of the learned loss weights per
// step; writes them as next step's seeds. The rows behind G were computed
// with the current weights, so ‖w_k ∇L_k‖ = √G_kk. With
// r_k = (L_k/L_k(0)) / mean_j(L_j/L_j(0)) and target t_k = mean(‖·‖) r_k^α,
// the loss Σ_k |‖w_k∇L_k‖ - t_k| has gradient sign(‖w_k∇L_k‖ - t_k) ‖∇L_k‖ in
// w_k; one step of rate lr (weights floored at 1e-4), then Σ w = K.

struct Params {
    k: u32,
    _pad: u32,
    alpha: f32,
    lr: f32,
}

// The state's layout.
const INITIALISED: u32 = 1u;
const WEIGHTS: u32 = 2u;
const INITIAL_LOSSES: u32 = 18u;

var<private> norms: array<f32, 16>;
var<private> ratio: array<f32, 16>;

@compute @workgroup_size(1)
fn gradnorm() {
    let k = p.k;
    load_gram();
    if (state[INITIALISED] == 0.0) {
        for (var i = 0u; i < k; i = i + 1u) { state[WEIGHTS + i] = 1.0; state[INITIAL_LOSSES + i] = losses[i]; }
        state[INITIALISED] = 1.0;
    }
    var mean_norm = 0.0;
    var mean_ratio = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        norms[i] = sqrt(max(G[i * k + i], 0.0));
        ratio[i] = losses[i] / max(state[INITIAL_LOSSES + i], 1e-20);
        mean_norm = mean_norm + norms[i] / f32(k);
        mean_ratio = mean_ratio + ratio[i] / f32(k);
    }
    var total = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        let goal = mean_norm * pow(ratio[i] / max(mean_ratio, 1e-20), p.alpha);
        let grad = sign(norms[i] - goal) * norms[i] / max(state[WEIGHTS + i], 1e-20);
        w[i] = max(state[WEIGHTS + i] - p.lr * grad, 1e-4);
        total = total + w[i];
    }
    for (var i = 0u; i < k; i = i + 1u) {
        w[i] = w[i] * f32(k) / total;
        state[WEIGHTS + i] = w[i];
    }
    write_weights();
}
