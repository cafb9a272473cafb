// IMTL-G (Liu et al. 2021): the update d = Σ w_i g_i has equal projections
// on every unit gradient u_i = g_i/‖g_i‖. With D_i = g_0 - g_i and
// U_i = u_0 - u_i (i = 1..K-1):  α = g_0 Uᵀ (D Uᵀ)⁻¹,  w = [1 - Σα, α].

struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

var<private> n: array<f32, 16>;

@compute @workgroup_size(1)
fn imtl_g() {
    let k = p.k;
    load_gram();
    if (k == 1u) {
        w[0] = 1.0;
        write_weights();
        return;
    }
    for (var i = 0u; i < k; i = i + 1u) { n[i] = sqrt(max(G[i * k + i], 1e-20)); }
    let m = k - 1u;
    for (var bi = 0u; bi < m; bi = bi + 1u) {
        let b = bi + 1u;
        x[bi] = G[0] / n[0] - G[b] / n[b];
        for (var ai = 0u; ai < m; ai = ai + 1u) {
            let a = ai + 1u;
            A[bi * m + ai] = G[0] / n[0] - G[b] / n[b] - G[a * k] / n[0] + G[a * k + b] / n[b];
        }
    }
    solve_linear(m);
    var s = 0.0;
    for (var i = 0u; i < m; i = i + 1u) { s = s + x[i]; w[i + 1u] = x[i]; }
    w[0] = 1.0 - s;
    write_weights();
}
