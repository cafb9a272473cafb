// MoDo (Chen, Fernando, Ying & Chen, "Three-Way Trade-Off in Multi-Objective
// Learning: Optimization, Generalization and Conflict-Avoidance", NeurIPS
// 2023), as LibMTL's MoDo.
//
// Each step draws three minibatches; G_s (K×P) holds their per-task
// gradients. The weights λ (1/K before the first step) take one projected
// step from the product of the first two, each an unbiased estimate, so the
// step is an unbiased estimate of the gradient of ½ ‖Σ λ_k g_k‖²:
//
//   λ ← Π_Δ(λ − γ (G_0 G_1ᵀ λ + ρ λ)),      d = Σ_k λ_k g_{2,k},
//
// Π_Δ the projection onto the simplex (the prelude's `project_simplex`).
// `gram` here is the 2K×2K Gram matrix of G_0's and G_1's rows, so
// (G_0 G_1ᵀ)_ij = gram[i · 2K + K + j]. state[STEP] counts the steps,
// state[LAMBDA + k] keeps λ. CPU twin: `reference` in src/mtl/modo.rs.
// Shapes: gram 2K×2K (K ≤ 8) → weights K.

struct Params {
    k: u32,
    gamma: f32,
    rho: f32,
    _pad: u32,
}

const LAMBDA: u32 = 1u;

@compute @workgroup_size(1)
fn modo() {
    let k = p.k;
    let t = next_step();
    for (var i = 0u; i < k; i = i + 1u) {
        if (t == 0u) { w[i] = 1.0 / f32(k); } else { w[i] = state[LAMBDA + i]; }
    }
    var step: array<f32, 16>;
    for (var i = 0u; i < k; i = i + 1u) {
        var s = 0.0;
        for (var j = 0u; j < k; j = j + 1u) { s = s + gram[i * 2u * k + k + j] * w[j]; }
        step[i] = p.gamma * (s + p.rho * w[i]);
    }
    for (var i = 0u; i < k; i = i + 1u) { w[i] = w[i] - step[i]; }
    project_simplex();
    for (var i = 0u; i < k; i = i + 1u) { state[LAMBDA + i] = w[i]; }
    write_weights();
}
