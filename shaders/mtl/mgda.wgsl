// MGDA-UB (Sener & Koltun 2018): the min-norm point of the convex hull of the
// task gradients, w = argmin_{w ≥ 0, Σw = 1} wᵀ G w; closed form for K = 2,
// Frank-Wolfe with exact line search (`iters` steps) for more. min_norm_2 is
// Sener & Koltun's two-point MinNormSolver with their 0.999 / 0.001 clamps
// (a point at an end of the segment is moved just inside it). A zero
// gradient (squared norm ≤ 1e-12 of the largest, or all zero) makes the
// min-norm point 0: the weights go all to that task.

struct Params {
    k: u32,
    iters: u32,
    _pad0: u32,
    _pad1: u32,
}

var<private> gw: array<f32, 16>;

// A squared norm at most this fraction of the largest counts as a zero gradient.
const ZERO_NORM: f32 = 1e-12;

fn min_norm_2(v11: f32, v12: f32, v22: f32) -> f32 {
    if (v12 >= v11) { return 0.999; }
    if (v12 >= v22) { return 0.001; }
    return (v22 - v12) / (v11 + v22 - 2.0 * v12);
}

@compute @workgroup_size(1)
fn mgda() {
    let k = p.k;
    load_gram();
    // A task whose gradient is zero puts 0 in the hull: the min-norm point is
    // 0, all the weight on that task (the first such one), no shared update.
    var maxd = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { maxd = max(maxd, G[i * k + i]); }
    var zero = k;
    for (var i = 0u; i < k; i = i + 1u) {
        if (zero == k && G[i * k + i] <= ZERO_NORM * maxd) { zero = i; }
    }
    if (zero < k) {
        for (var i = 0u; i < k; i = i + 1u) { w[i] = select(0.0, 1.0, i == zero); }
    } else if (k == 1u) {
        w[0] = 1.0;
    } else if (k == 2u) {
        let gamma = min_norm_2(G[0], G[1], G[3]);
        w[0] = gamma;
        w[1] = 1.0 - gamma;
    } else {
        for (var i = 0u; i < k; i = i + 1u) { w[i] = 1.0 / f32(k); }
        for (var it = 0u; it < p.iters; it = it + 1u) {
            var v11 = 0.0;
            var t = 0u;
            for (var i = 0u; i < k; i = i + 1u) {
                gw[i] = gdot(i);
                v11 = v11 + w[i] * gw[i];
                if (gw[i] < gw[t]) { t = i; }
            }
            let gamma = min_norm_2(v11, gw[t], G[t * k + t]);
            for (var i = 0u; i < k; i = i + 1u) {
                w[i] = gamma * w[i] + select(0.0, 1.0 - gamma, i == t);
            }
        }
    }
    write_weights();
}
