// UPGrad (Quinton & Rey 2024): the mean of each g_i projected onto the dual
// cone {x : G-rows · x ≥ 0}. The projection of g_i is Σ_j v_j g_j with
// v = argmin_{v ≥ e_i} ½ vᵀ G v, by projected coordinate descent (`sweeps`
// sweeps) on the normalised G (+1e-6 on the diagonal); w = (1/K) Σ_i v⁽ⁱ⁾.

struct Params {
    k: u32,
    sweeps: u32,
    _pad0: u32,
    _pad1: u32,
}

var<private> total: array<f32, 16>;

@compute @workgroup_size(1)
fn upgrad() {
    let k = p.k;
    load_gram();
    normalize_gram(1e-6);
    for (var j = 0u; j < k; j = j + 1u) { total[j] = 0.0; }
    for (var i = 0u; i < k; i = i + 1u) {
        for (var j = 0u; j < k; j = j + 1u) { w[j] = 0.0; }
        w[i] = 1.0;
        for (var sw = 0u; sw < p.sweeps; sw = sw + 1u) {
            for (var j = 0u; j < k; j = j + 1u) {
                let lb = select(0.0, 1.0, j == i);
                w[j] = max(w[j] - gdot(j) / G[j * k + j], lb);
            }
        }
        for (var j = 0u; j < k; j = j + 1u) { total[j] = total[j] + w[j] / f32(k); }
    }
    for (var j = 0u; j < k; j = j + 1u) { w[j] = total[j]; }
    write_weights();
}
