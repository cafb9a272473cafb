// SDMGrad (Xiao, Ban & Ji, "Direction-oriented Multi-objective Learning:
// Simple and Provable Stochastic Algorithms", NeurIPS 2023), as LibMTL's
// SDMGrad.
//
// Each step draws three minibatches; G_s (K×P) holds their per-task
// gradients. The weights w (1/K before the first step) minimise
// ½ ‖Σ w_k g_k‖² + λ ⟨Σ w_k g_k, ḡ⟩ over the simplex, ḡ the mean gradient,
// with the Gram matrix estimated across two independent minibatches:
//
//   M   = G_1 G_2ᵀ / (s² + 1e-8),   s = mean_k √max(M_kk, 0)   (before the division)
//   m_k = mean_j M_kj
//   n steps (LibMTL: 20) of heavy-ball SGD from a zero buffer, each projected:
//     b ← (first step: 0) · μ b + (M w + λ m);   w ← Π_Δ(w − η b)     (η 5, μ 0.5)
//   d   = Σ_k (w_k + λ/K) / (1 + λ) · g_{0,k}
//
// Π_Δ the projection onto the simplex (the prelude's `project_simplex`).
// `gram` here is the 2K×2K Gram matrix of G_1's and G_2's rows, so
// M_ij · (s² + 1e-8) = gram[i · 2K + K + j]. state[STEP] counts the steps,
// state[W + k] keeps w. CPU twin: `reference` in src/mtl/sdmgrad.rs.
// Shapes: gram 2K×2K (K ≤ 8) → weights K.

struct Params {
    k: u32,
    iters: u32,
    lambda: f32,
    lr: f32,
    momentum: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const W: u32 = 1u;

@compute @workgroup_size(1)
fn sdmgrad() {
    let k = p.k;
    let t = next_step();
    for (var i = 0u; i < k; i = i + 1u) {
        for (var j = 0u; j < k; j = j + 1u) { G[i * k + j] = gram[i * 2u * k + k + j]; }
    }
    var s = 0.0;
    // (sqrt only of positive values: llvmpipe's GL takes sqrt(0) as 0 · inversesqrt(0) = NaN.)
    for (var i = 0u; i < k; i = i + 1u) {
        let d = G[i * k + i];
        if (d > 0.0) { s = s + sqrt(d); }
    }
    s = s / f32(k);
    let scale = 1.0 / (s * s + 1e-8);
    for (var i = 0u; i < k * k; i = i + 1u) { G[i] = G[i] * scale; }
    var mean: array<f32, 16>;
    for (var i = 0u; i < k; i = i + 1u) {
        var r = 0.0;
        for (var j = 0u; j < k; j = j + 1u) { r = r + G[i * k + j]; }
        mean[i] = r / f32(k);
    }
    for (var i = 0u; i < k; i = i + 1u) {
        if (t == 0u) { w[i] = 1.0 / f32(k); } else { w[i] = state[W + i]; }
    }
    var buf: array<f32, 16>;
    var grad: array<f32, 16>;
    for (var it = 0u; it < p.iters; it = it + 1u) {
        for (var i = 0u; i < k; i = i + 1u) { grad[i] = gdot(i) + p.lambda * mean[i]; }
        for (var i = 0u; i < k; i = i + 1u) {
            if (it == 0u) { buf[i] = grad[i]; } else { buf[i] = p.momentum * buf[i] + grad[i]; }
            w[i] = w[i] - p.lr * buf[i];
        }
        project_simplex();
    }
    for (var i = 0u; i < k; i = i + 1u) {
        state[W + i] = w[i];
        weights[i] = (w[i] + p.lambda / f32(k)) / (1.0 + p.lambda);
    }
}
