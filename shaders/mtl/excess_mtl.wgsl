// ExcessMTL (He, Zhou, Cheng & Tang, ICML 2024), as LibMTL's ExcessMTL:
// each task's excess risk is estimated from its gradient under AdaGrad's
// diagonal preconditioner,
//
//   w_k = Σ_c g_kc² / √(s_kc + 1e-7) = G_kk   (G the Gram matrix of r,
//                                              shaders/combine/excess.wgsl),
//
// and the task weights λ (1 at the start) take an exponentiated step on the
// estimates relative to the first step's, renormalised to sum to K:
//
//   step 1:  w⁰ = w, λ = 1
//   later:   λ_k ← λ_k exp(η w_k / w⁰_k),   λ ← K λ / Σ λ
//
// (a task whose first estimate is 0 takes the ratio as 0). state[STEP]
// counts the steps, state[LAMBDA + k] keeps λ, state[FIRST + k] keeps w⁰.
// CPU twin: `reference` in src/mtl/excess_mtl.rs. Shapes: G K×K → weights K.

struct Params {
    k: u32,
    step_size: f32,
    _pad0: u32,
    _pad1: u32,
}

const LAMBDA: u32 = 1u;
const FIRST: u32 = 17u;

@compute @workgroup_size(1)
fn excess_mtl() {
    let k = p.k;
    let t = next_step();
    load_gram();
    if (t == 0u) {
        for (var i = 0u; i < k; i = i + 1u) {
            state[FIRST + i] = G[i * k + i];
            w[i] = 1.0;
        }
    } else {
        var total = 0.0;
        for (var i = 0u; i < k; i = i + 1u) {
            let first = state[FIRST + i];
            var ratio = 0.0;
            if (first > 0.0) { ratio = G[i * k + i] / first; }
            w[i] = state[LAMBDA + i] * exp(p.step_size * ratio);
            total = total + w[i];
        }
        for (var i = 0u; i < k; i = i + 1u) { w[i] = w[i] / total * f32(k); }
    }
    for (var i = 0u; i < k; i = i + 1u) { state[LAMBDA + i] = w[i]; }
    write_weights();
}
