// Nash-MTL (Navon et al. 2022): the bargaining solution d = Σ α_i g_i with
// α_i (Gα)_i = 1, the minimiser of ½ αᵀGα - Σ log α_i over α > 0, by damped
// Newton (`iters` steps) on G + εI. Then, as LibMTL and torchjd do, the
// direction is clipped to norm max_norm (0: no clip): ‖d‖ = √(αᵀGα).

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
    var mean = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { mean = mean + G[i * k + i]; }
    mean = mean / f32(k);
    let eps = 1e-8 * max(mean, 1e-30);
    for (var i = 0u; i < k; i = i + 1u) { w[i] = 1.0 / sqrt(G[i * k + i] + eps); }
    for (var it = 0u; it < p.iters; it = it + 1u) {
        for (var i = 0u; i < k; i = i + 1u) {
            x[i] = gdot(i) + eps * w[i] - 1.0 / w[i];
            for (var j = 0u; j < k; j = j + 1u) { A[i * k + j] = G[i * k + j]; }
            A[i * k + i] = A[i * k + i] + eps + 1.0 / (w[i] * w[i]);
        }
        solve_linear(k);
        var s = 1.0;
        for (var h = 0u; h < 40u; h = h + 1u) {
            var ok = true;
            for (var i = 0u; i < k; i = i + 1u) { if (w[i] - s * x[i] <= 0.0) { ok = false; } }
            if (ok) { break; }
            s = s * 0.5;
        }
        for (var i = 0u; i < k; i = i + 1u) { w[i] = max(w[i] - s * x[i], 1e-12); }
    }
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
