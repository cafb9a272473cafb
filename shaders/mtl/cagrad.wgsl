// CAGrad (Liu et al. 2021), g0 the mean gradient (b = 1/K), c the radius:
//   w = argmin_{simplex} g_wᵀ g0 + √φ ‖g_w‖,  φ = c² ‖g0‖²,
//   d = g0 + (√φ / ‖g_w‖) g_w, rescaled by 1/(1 + c²) as in LibMTL:
//   weights (1/K + λ w) / (1 + c²),  λ = √φ / ‖g_w‖.
// The simplex problem by exponentiated gradient (`iters` steps, rate 1) on
// the Gram matrix normalised by its mean diagonal.

struct Params {
    k: u32,
    iters: u32,
    c: f32,
    _pad: u32,
}

var<private> gb: array<f32, 16>;
var<private> gw: array<f32, 16>;

@compute @workgroup_size(1)
fn cagrad() {
    let k = p.k;
    let c = p.c;
    load_gram();
    normalize_gram(0.0);
    let b = 1.0 / f32(k);
    var g0_sq = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        var s = 0.0;
        for (var j = 0u; j < k; j = j + 1u) { s = s + G[i * k + j] * b; }
        gb[i] = s;
        g0_sq = g0_sq + s * b;
    }
    let sphi = c * sqrt(max(g0_sq, 0.0));
    for (var i = 0u; i < k; i = i + 1u) { w[i] = b; }
    for (var it = 0u; it < p.iters; it = it + 1u) {
        var q = 0.0;
        for (var i = 0u; i < k; i = i + 1u) { gw[i] = gdot(i); q = q + w[i] * gw[i]; }
        let nw = sqrt(max(q, 1e-20));
        var total = 0.0;
        for (var i = 0u; i < k; i = i + 1u) {
            w[i] = w[i] * exp(-(gb[i] + sphi * gw[i] / nw));
            total = total + w[i];
        }
        for (var i = 0u; i < k; i = i + 1u) { w[i] = w[i] / total; }
    }
    var q = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { q = q + w[i] * gdot(i); }
    let lambda = sphi / sqrt(max(q, 1e-20));
    for (var i = 0u; i < k; i = i + 1u) { w[i] = (b + lambda * w[i]) / (1.0 + c * c); }
    write_weights();
}
