// Nash-MTL (Navon et al. 2022): the bargaining solution d = Σ α_i g_i with
// α_i (Gα)_i = 1, the minimiser of ½ αᵀGα - Σ log α_i over α > 0, by damped
// Newton (`iters` steps) on G + εI: the prelude's `alpha_fair` with q = 1.
// Then, as LibMTL and torchjd do, the direction is clipped to norm max_norm
// (0: no clip): ‖d‖ = √(αᵀGα).

struct Params {
    k: u32,
    iters: u32,
    max_norm: f32,
    _pad: u32,
}

@compute @workgroup_size(1)
fn nash_mtl() {
    let k = p.k;
    load_gram();
    alpha_fair(1.0, p.iters);
    if (p.max_norm > 0.0) {
        var q = 0.0;
        for (var i = 0u; i < k; i = i + 1u) { q = q + w[i] * gdot(i); }
        let norm = sqrt(max(q, 0.0));
        if (norm > p.max_norm) {
            for (var i = 0u; i < k; i = i + 1u) { w[i] = w[i] * p.max_norm / norm; }
        }
    }
    write_weights();
}
