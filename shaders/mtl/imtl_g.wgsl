// IMTL-G (Liu et al. 2021): the update d = Σ w_i g_i has equal projections
// on every unit gradient u_i = g_i/‖g_i‖, so G w = μ n with n_i = ‖g_i‖.
// As torchjd: w = G⁺ n / Σ(G⁺ n), defined for identical, parallel and zero
// gradients too. G⁺ from a cyclic Jacobi eigen-decomposition of M = G / tr G
// (JACOBI_SWEEPS sweeps), eigenvalues below PINV_RTOL of the largest dropped
// (in f32 they are rounding noise); w = 0 when |Σ G⁺n| ≤ 1e-6 Σ|G⁺n|.
// The eigen-decomposition and the pseudo-inverse are the prelude's `jacobi`
// and `pinv_apply`. CPU twin: `reference` in src/mtl/imtl_g.rs.

struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@compute @workgroup_size(1)
fn imtl_g() {
    let k = p.k;
    load_gram();
    if (k == 1u) {
        w[0] = 1.0;
        write_weights();
        return;
    }
    var trace = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { trace = trace + G[i * k + i]; }
    for (var i = 0u; i < k; i = i + 1u) { w[i] = 0.0; }
    if (trace <= 0.0) {
        write_weights();
        return;
    }
    for (var i = 0u; i < k * k; i = i + 1u) { A[i] = G[i] / trace; }
    for (var i = 0u; i < k; i = i + 1u) { rhs[i] = sqrt(max(A[i * k + i], 0.0)); }
    jacobi(k);
    pinv_apply(k);
    var sum = 0.0;
    var abs_sum = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { sum = sum + pinv[i]; abs_sum = abs_sum + abs(pinv[i]); }
    if (abs_sum > 0.0 && abs(sum) > 1e-6 * abs_sum) {
        for (var i = 0u; i < k; i = i + 1u) { w[i] = pinv[i] / sum; }
    }
    write_weights();
}
