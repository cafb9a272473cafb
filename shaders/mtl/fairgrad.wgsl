// FairGrad (Ban & Ji 2024; LibMTL's FairGrad): α-fair weights w > 0 with
//
//   (G w)_k = w_k^{−1/α}   for every k,
//
// the stationary point of the convex ½ wᵀGw − Σ f(w_k), f'(w) = w^{−1/α}:
// damped Newton (`iters` steps, each keeping w > 0) on G + εI, as Nash-MTL's
// solve (α = 1 is its bargaining point): residual r = (G + εI) w − w^{−1/α},
// Hessian G + εI + diag(w^{−1/α−1}/α). CPU twin: `reference` in src/mtl/fairgrad.rs.
// Shapes: G K×K (K ≤ 16) in, w K out.

struct Params {
    k: u32,
    iters: u32,
    alpha: f32,
    _pad: u32,
}

@compute @workgroup_size(1)
fn fairgrad() {
    let k = p.k;
    load_gram();
    var mean = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { mean = mean + G[i * k + i]; }
    mean = mean / f32(k);
    let eps = 1e-8 * max(mean, 1e-30);
    let q = 1.0 / p.alpha;
    for (var i = 0u; i < k; i = i + 1u) { w[i] = 1.0 / sqrt(G[i * k + i] + eps); }
    for (var it = 0u; it < p.iters; it = it + 1u) {
        for (var i = 0u; i < k; i = i + 1u) {
            x[i] = gdot(i) + eps * w[i] - pow(w[i], -q);
            for (var j = 0u; j < k; j = j + 1u) { A[i * k + j] = G[i * k + j]; }
            A[i * k + i] = A[i * k + i] + eps + q * pow(w[i], -q - 1.0);
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
    write_weights();
}
