// ConFIG (Liu et al. 2025; torchjd's ConFIG()): the update along the
// direction at equal angles to every task's gradient, as long as the sum of
// the gradients' projections on it. With u_k = g_k/‖g_k‖ (0 for a zero
// gradient), C_ij = u_i·u_j (the cosines) and c = C⁺ 1:
//
//   v = Σ_k c_k u_k,   ‖v‖² = cᵀ C c,   s = Σ_i g_i·v / ‖v‖,
//   d = s v/‖v‖ = Σ_k w_k g_k,   w_k = s c_k / (‖v‖ ‖g_k‖).
//
// C⁺ 1 by the prelude's `jacobi` and `pinv_apply` (eigenvalues below
// PINV_RTOL of the largest dropped). w = 0 when ‖v‖ ≤ 1e-12 (torchjd's
// normalize(): a zero direction stays zero).
// CPU twin: `reference` in src/mtl/config.rs. Shapes: G K×K (K ≤ 16) in, w K out.

struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

var<private> norm: array<f32, 16>;

@compute @workgroup_size(1)
fn config() {
    let k = p.k;
    load_gram();
    for (var i = 0u; i < k; i = i + 1u) {
        norm[i] = sqrt(max(G[i * k + i], 0.0));
        w[i] = 0.0;
        rhs[i] = 1.0;
    }
    for (var i = 0u; i < k; i = i + 1u) {
        for (var j = 0u; j < k; j = j + 1u) {
            var c = 0.0;
            if (norm[i] > 0.0 && norm[j] > 0.0) { c = G[i * k + j] / (norm[i] * norm[j]); }
            A[i * k + j] = c;
        }
    }
    // The cosines again, for ‖v‖²: `jacobi` rotates A in place.
    var vv = 0.0;
    jacobi(k);
    pinv_apply(k);
    for (var i = 0u; i < k; i = i + 1u) {
        for (var j = 0u; j < k; j = j + 1u) {
            if (norm[i] > 0.0 && norm[j] > 0.0) {
                vv = vv + pinv[i] * G[i * k + j] / (norm[i] * norm[j]) * pinv[j];
            }
        }
    }
    let v = sqrt(max(vv, 0.0));
    if (v > 1e-12) {
        var s = 0.0;
        for (var j = 0u; j < k; j = j + 1u) {
            if (norm[j] > 0.0) {
                var col = 0.0;
                for (var i = 0u; i < k; i = i + 1u) { col = col + G[i * k + j]; }
                s = s + pinv[j] / norm[j] * col;
            }
        }
        s = s / v;
        for (var j = 0u; j < k; j = j + 1u) {
            if (norm[j] > 0.0) { w[j] = s * pinv[j] / (v * norm[j]); }
        }
    }
    write_weights();
}
