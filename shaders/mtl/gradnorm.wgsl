// GradNorm (Chen et al. 2018) as LibMTL: w = K softmax(s), s learned by the
// model's optimizer. This solve writes u_k = w_k ∂L_grad/∂w_k, the input of
// `softmax_seeds_grad` (shaders/loss_weighting.wgsl), which turns it into
// ∂L_grad/∂s. The rows behind G were computed with the current weights, so
// n_k = ‖w_k ∇L_k‖ = √G_kk, and with r_k = (L_k/L_k(0)) / mean_j(L_j/L_j(0))
// and the target t_k = mean(n) r_k^α (held constant),
//
//   L_grad = Σ_k |n_k - t_k|,   u_k = sign(n_k - t_k) n_k.
//
// Until L(0) (the first epoch's mean losses) is in the state, u = 0: the
// first epoch trains with equal weights. CPU twin: src/mtl/gradnorm.rs.

struct Params {
    k: u32,
    _pad: u32,
    alpha: f32,
    _pad1: u32,
}

// The state's layout (written by the host once, after the first epoch).
const INITIALISED: u32 = 1u;
const INITIAL_LOSSES: u32 = 2u;

var<private> norms: array<f32, 16>;
var<private> ratio: array<f32, 16>;

@compute @workgroup_size(1)
fn gradnorm() {
    let k = p.k;
    load_gram();
    if (state[INITIALISED] == 0.0) {
        for (var i = 0u; i < k; i = i + 1u) { w[i] = 0.0; }
        write_weights();
        return;
    }
    var mean_norm = 0.0;
    var mean_ratio = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        norms[i] = sqrt(max(G[i * k + i], 0.0));
        ratio[i] = losses[i] / max(state[INITIAL_LOSSES + i], 1e-20);
        mean_norm = mean_norm + norms[i] / f32(k);
        mean_ratio = mean_ratio + ratio[i] / f32(k);
    }
    for (var i = 0u; i < k; i = i + 1u) {
        let goal = mean_norm * pow(ratio[i] / max(mean_ratio, 1e-20), p.alpha);
        w[i] = sign(norms[i] - goal) * norms[i];
    }
    write_weights();
}
