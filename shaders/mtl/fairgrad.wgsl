// FairGrad (Ban & Ji 2024; LibMTL's FairGrad): α-fair weights w > 0 with
//
//   (G w)_k = w_k^{−1/α}   for every k,
//
// the stationary point of the convex ½ wᵀGw − Σ f(w_k), f'(w) = w^{−1/α}:
// the prelude's `alpha_fair` with q = 1/α, Nash-MTL's damped Newton (α = 1
// is its bargaining point). CPU twin: `reference` in src/mtl/fairgrad.rs.
// Shapes: G K×K (K ≤ 16) in, w K out.

struct Params {
    k: u32,
    iters: u32,
    alpha: f32,
    _pad: u32,
}

@compute @workgroup_size(1)
fn fairgrad() {
    load_gram();
    alpha_fair(1.0 / p.alpha, p.iters);
    write_weights();
}
