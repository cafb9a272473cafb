// Krum (Blanchard et al. 2017; torchjd's Krum(n_byzantine, n_selected)):
// each task gradient is scored by the sum of its distances to its
// K − f − 2 nearest other gradients (at least 1),
//
//   ‖g_i − g_j‖ = √(G_ii + G_jj − 2 G_ij)   (clamped at 0 under the root),
//
// and the update is the mean of the m lowest-scored gradients: w_i = 1/m on
// them, 0 elsewhere; ties to the lower index. f = n_byzantine, m = n_selected.
// CPU twin: `reference` in src/mtl/krum.rs. Shapes: G K×K (K ≤ 16) in, w K out.

struct Params {
    k: u32,
    n_byzantine: u32,
    n_selected: u32,
    _pad: u32,
}

var<private> score: array<f32, 16>;
var<private> dist: array<f32, 16>;
var<private> taken: array<u32, 16>;

@compute @workgroup_size(1)
fn krum() {
    let k = p.k;
    load_gram();
    if (k == 1u) {
        w[0] = 1.0;
        write_weights();
        return;
    }
    var near = 1u;
    if (k > p.n_byzantine + 3u) { near = k - p.n_byzantine - 2u; }
    near = min(near, k - 1u);
    for (var i = 0u; i < k; i = i + 1u) {
        // The distances to the others, then the `near` smallest summed (selection).
        for (var j = 0u; j < k; j = j + 1u) {
            let d2 = G[i * k + i] + G[j * k + j] - 2.0 * G[i * k + j];
            dist[j] = sqrt(max(d2, 0.0));
            taken[j] = select(0u, 1u, j == i);
        }
        var s = 0.0;
        for (var n = 0u; n < near; n = n + 1u) {
            var best = 0u;
            var best_d = 3.4e38;
            for (var j = 0u; j < k; j = j + 1u) {
                if (taken[j] == 0u && dist[j] < best_d) { best = j; best_d = dist[j]; }
            }
            taken[best] = 1u;
            s = s + best_d;
        }
        score[i] = s;
    }
    let m = clamp(p.n_selected, 1u, k);
    for (var i = 0u; i < k; i = i + 1u) { w[i] = 0.0; taken[i] = 0u; }
    for (var n = 0u; n < m; n = n + 1u) {
        var best = 0u;
        var best_s = 3.4e38;
        for (var i = 0u; i < k; i = i + 1u) {
            if (taken[i] == 0u && score[i] < best_s) { best = i; best_s = score[i]; }
        }
        taken[best] = 1u;
        w[best] = 1.0 / f32(m);
    }
    write_weights();
}
