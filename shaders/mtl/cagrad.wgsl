// CAGrad (Liu et al. 2021), g0 the mean gradient (b = 1/K), c the radius:
//
//   w = argmin_{simplex} g_wᵀ g0 + √φ ‖g_w‖,  φ = c² ‖g0‖²,
//   d = g0 + (√φ / ‖g_w‖) g_w, rescaled by 1/(1 + c²) as in LibMTL:
//   weights (1/K + λ w) / (1 + c²),  λ = √φ / ‖g_w‖.
//
// Solved to the optimum: with x = g_w, the optimum x* also minimises
// ⟨x, g0⟩ + ‖x‖²/(2s) over the hull for s = ‖x*‖/√φ, i.e. x* is the hull
// point nearest to -s·g0, the prelude's active-set `qp` with lin = s·G b.
// s by bisection on ‖x(s)‖ - √φ s (≥ 0 at 0, ≤ 0 at max‖g_i‖/√φ), BISECT
// halvings, on G / mean diagonal. Zero-gradient tasks are left out of the
// max-min; if x* = 0, d = g0. CPU twin: `reference` in src/mtl/cagrad.rs.

struct Params {
    k: u32,
    c: f32,
    _pad0: u32,
    _pad1: u32,
}

const BISECT: u32 = 40u;

var<private> gb: array<f32, 16>;

// ‖Σ w_i g_i‖ on the normalised G.
fn norm_w() -> f32 {
    var q = 0.0;
    for (var i = 0u; i < p.k; i = i + 1u) { q = q + w[i] * gdot(i); }
    return sqrt(max(q, 0.0));
}

// w := the weights of the hull point nearest to -s·g0.
fn nearest(s: f32) {
    for (var i = 0u; i < p.k; i = i + 1u) { lin[i] = s * gb[i]; lo[i] = 0.0; }
    qp(true);
}

@compute @workgroup_size(1)
fn cagrad() {
    let k = p.k;
    let c = p.c;
    load_gram();
    let n_live = find_live();
    normalize_gram(0.0);
    let b = 1.0 / f32(k);
    var g0_sq = 0.0;
    var max_norm = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        var s = 0.0;
        for (var j = 0u; j < k; j = j + 1u) { s = s + G[i * k + j] * b; }
        gb[i] = s;
        g0_sq = g0_sq + s * b;
        max_norm = max(max_norm, sqrt(max(G[i * k + i], 0.0)));
    }
    let sphi = c * sqrt(max(g0_sq, 0.0));
    let rescale = 1.0 / (1.0 + c * c);
    if (sphi <= 0.0 || n_live == 0u) {
        for (var i = 0u; i < k; i = i + 1u) { w[i] = b * rescale; }
        write_weights();
        return;
    }
    var s_lo = 0.0;
    var s_hi = max_norm / sphi;
    for (var it = 0u; it < BISECT; it = it + 1u) {
        let s = 0.5 * (s_lo + s_hi);
        nearest(s);
        if (norm_w() > sphi * s) { s_lo = s; } else { s_hi = s; }
    }
    nearest(0.5 * (s_lo + s_hi));
    let nx = norm_w();
    var lambda = 0.0;
    if (nx > 1e-6 * max_norm) { lambda = sphi / nx; }
    for (var i = 0u; i < k; i = i + 1u) { w[i] = (b + lambda * w[i]) * rescale; }
    write_weights();
}
