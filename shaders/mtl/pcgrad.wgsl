// PCGrad (Yu et al. 2020): each task's gradient, meeting the others in a
// random order, loses its component along any g_j it conflicts with:
//   g_i ← g_i - (g_i·g_j / ‖g_j‖²) g_j  when g_i·g_j < 0;   d = Σ_i g_i.
// Writing g_i = Σ_m c_im g_m, every dot product is c_i·G_j, so the weights
// are w = Σ_i c_i. The order: the tasks sorted by a random key from
// (seed, step, 16 i + m), ties by index (the prelude's `draw_keys` and
// `task_of_rank`; the step counter is state[STEP]).

struct Params {
    k: u32,
    seed: u32,
    _pad0: u32,
    _pad1: u32,
}

var<private> c: array<f32, 16>;

@compute @workgroup_size(1)
fn pcgrad() {
    let k = p.k;
    load_gram();
    let step = next_step();
    for (var m = 0u; m < k; m = m + 1u) { w[m] = 0.0; }
    for (var i = 0u; i < k; i = i + 1u) {
        for (var m = 0u; m < k; m = m + 1u) { c[m] = 0.0; }
        c[i] = 1.0;
        draw_keys(p.seed, step, i);
        for (var q = 0u; q < k; q = q + 1u) {
            let j = task_of_rank(q);
            if (j != i) {
                var dot = 0.0;
                for (var m = 0u; m < k; m = m + 1u) { dot = dot + c[m] * G[m * k + j]; }
                if (dot < 0.0 && G[j * k + j] > 0.0) { c[j] = c[j] - dot / G[j * k + j]; }
            }
        }
        for (var m = 0u; m < k; m = m + 1u) { w[m] = w[m] + c[m]; }
    }
    write_weights();
}
