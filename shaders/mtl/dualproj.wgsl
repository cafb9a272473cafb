// DualProj (GEM's projection, Lopez-Paz & Ranzato 2017; torchjd's DualProj):
// the mean gradient projected onto the dual cone {x : G-rows · x ≥ 0}. The
// projection is Σ_j w_j g_j with
//
//   w = argmin_{v ≥ u} ½ vᵀ Ĝ v,   u = (1/K, …, 1/K),   Ĝ = G / tr G + reg_eps·I,
//
// (G / tr G taken as 0 when tr G < norm_eps, as torchjd), by the prelude's
// active-set `qp`: UPGrad's problem once, from the mean, where UPGrad solves
// it from each e_i and averages. CPU twin: src/mtl/dualproj.rs.
// Shapes: G K×K (K ≤ 16) in, w K out.

struct Params {
    k: u32,
    norm_eps: f32,
    reg_eps: f32,
    _pad: u32,
}

@compute @workgroup_size(1)
fn dualproj() {
    let k = p.k;
    load_gram();
    trace_normalize_gram(p.norm_eps, p.reg_eps);
    for (var i = 0u; i < k; i = i + 1u) {
        lin[i] = 0.0;
        live[i] = 1u;
        lo[i] = 1.0 / f32(k);
    }
    qp(false);
    write_weights();
}
