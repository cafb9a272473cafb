// Aligned-MTL (Senushkin et al. 2023, Algorithm 1; LibMTL's Aligned_MTL):
// with G / tr G = V Λ Vᵀ (the prelude's `jacobi`) and the eigenvalues above
// PINV_RTOL of the largest kept (the others are f32 rounding noise; LibMTL:
// K · 1.19e-7),
//
//   B = √λ_R · V_R Λ_R^{-1/2} V_Rᵀ   (λ_R the smallest kept),   w = B 1,
//
// so the update Σ_k w_k g_k follows the gradients' principal components,
// each scaled to the smallest one's length. B is unchanged by scaling G, so
// G / tr G is decomposed. A zero G gives w = 1 (torchjd's identity, rank 0).
// CPU twin: `reference` in src/mtl/aligned_mtl.rs. Shapes: G K×K (K ≤ 16) in, w K out.

struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@compute @workgroup_size(1)
fn aligned_mtl() {
    let k = p.k;
    load_gram();
    var trace = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { trace = trace + G[i * k + i]; }
    for (var i = 0u; i < k; i = i + 1u) { w[i] = select(0.0, 1.0, trace <= 0.0); }
    if (trace > 0.0) {
        for (var i = 0u; i < k * k; i = i + 1u) { A[i] = G[i] / trace; }
        jacobi(k);
        var top = 0.0;
        for (var j = 0u; j < k; j = j + 1u) { top = max(top, A[j * k + j]); }
        var smallest = top;
        for (var j = 0u; j < k; j = j + 1u) {
            let lambda = A[j * k + j];
            if (lambda > PINV_RTOL * top) { smallest = min(smallest, lambda); }
        }
        for (var j = 0u; j < k; j = j + 1u) {
            let lambda = A[j * k + j];
            if (lambda > PINV_RTOL * top) {
                var col = 0.0;
                for (var i = 0u; i < k; i = i + 1u) { col = col + V[i * k + j]; }
                let c = sqrt(smallest / lambda) * col;
                for (var i = 0u; i < k; i = i + 1u) { w[i] = w[i] + c * V[i * k + j]; }
            }
        }
    }
    write_weights();
}
