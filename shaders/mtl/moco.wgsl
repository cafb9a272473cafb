// MoCo (Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, "Mitigating
// Gradient Bias in Multi-objective Learning: A Provably Convergent
// Approach", ICLR 2023), as LibMTL's MoCo.
//
// Before this solve, y_k (the tracked gradient of task k) has moved toward
// the normalised gradient scaled by the loss (shaders/combine/memory.wgsl,
// mode 1), and G is the Gram matrix of y. With the step t = 1, 2, … and
// γ_t = γ / t^σγ, the task weights λ (1/K before the first step) take one
// projected step on ½ ‖Σ λ_k y_k‖² + ½ ρ ‖λ‖², the projection a softmax:
//
//   λ ← softmax(λ − γ_t (G + ρ I) λ),      d = Σ_k λ_k y_k.
//
// state[STEP] counts the steps (the memory reads it before the solve
// advances it), state[LAMBDA + k] keeps λ. CPU twin: `reference` in
// src/mtl/moco.rs. Shapes: gram K×K → weights K.

struct Params {
    k: u32,
    gamma: f32,
    gamma_sigma: f32,
    rho: f32,
}

const LAMBDA: u32 = 1u;

@compute @workgroup_size(1)
fn moco() {
    let k = p.k;
    let t = next_step() + 1u;
    let rate = p.gamma / pow(f32(t), p.gamma_sigma);
    load_gram();
    for (var i = 0u; i < k; i = i + 1u) {
        if (t == 1u) { w[i] = 1.0 / f32(k); } else { w[i] = state[LAMBDA + i]; }
    }
    var step: array<f32, 16>;
    for (var i = 0u; i < k; i = i + 1u) { step[i] = rate * (gdot(i) + p.rho * w[i]); }
    for (var i = 0u; i < k; i = i + 1u) { w[i] = w[i] - step[i]; }
    softmax_w();
    for (var i = 0u; i < k; i = i + 1u) { state[LAMBDA + i] = w[i]; }
    write_weights();
}
