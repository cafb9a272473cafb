// UPGrad (Quinton & Rey 2024): the mean of each g_i projected onto the dual
// cone {x : G-rows · x ≥ 0}. The projection of g_i is Σ_j v_j g_j with
//
//   v = argmin_{v ≥ e_i} ½ vᵀ Ĝ v,   Ĝ = G / tr G + reg_eps·I,
//
// (G / tr G taken as 0 when tr G < norm_eps, as torchjd), by the prelude's
// active-set `qp`; w = (1/K) Σ_i v⁽ⁱ⁾. CPU twin: src/mtl/upgrad.rs.

struct Params {
    k: u32,
    norm_eps: f32,
    reg_eps: f32,
    _pad: u32,
}

var<private> total: array<f32, 16>;

@compute @workgroup_size(1)
fn upgrad() {
    let k = p.k;
    load_gram();
    trace_normalize_gram(p.norm_eps, p.reg_eps);
    for (var i = 0u; i < k; i = i + 1u) {
        total[i] = 0.0;
        lin[i] = 0.0;
        live[i] = 1u;
    }
    for (var i = 0u; i < k; i = i + 1u) {
        for (var j = 0u; j < k; j = j + 1u) { lo[j] = select(0.0, 1.0, j == i); }
        qp(false);
        for (var j = 0u; j < k; j = j + 1u) { total[j] = total[j] + w[j] / f32(k); }
    }
    for (var j = 0u; j < k; j = j + 1u) { w[j] = total[j]; }
    write_weights();
}
