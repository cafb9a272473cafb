// GradVac (Wang et al. 2021): each g_i, meeting the other tasks in a random
// order, gains a multiple of g_j whenever its cosine φ with g_j is below the
// pair's running target φ̂_ij, enough to raise it to φ̂:
//   g_i ← g_i + ‖g_i‖ (φ̂ √(1−φ²) − φ √(1−φ̂²)) / (‖g_j‖ √(1−φ̂²) + 1e-8) g_j,
//   φ̂_ij ← (1 − β) φ̂_ij + β φ,     φ = g_i·g_j / (‖g_i‖ ‖g_j‖ + 1e-8);   d = Σ_i g_i.
// Writing g_i = Σ_m c_im g_m, ‖g_i‖² = cᵀ G c and g_i·g_j = c·G_j, so the
// weights are w = Σ_i c_i. The order is PCGrad's (tasks sorted by a random key
// from (seed, step, 16 i + m), ties by index). State: state[STEP] the step
// counter, state[1 + i K + j] = φ̂_ij (zero at the start).
// Shapes: G K×K (K ≤ 16) in, w K out. CPU twin: src/mtl/gradvac.rs.

struct Params {
    k: u32,
    seed: u32,
    beta: f32,
    _pad: u32,
}

var<private> c: array<f32, 16>;

// ‖Σ_m c_m g_m‖ from the Gram matrix.
fn norm_c(k: u32) -> f32 {
    var s = 0.0;
    for (var a = 0u; a < k; a = a + 1u) {
        var row = 0.0;
        for (var b = 0u; b < k; b = b + 1u) { row = row + G[a * k + b] * c[b]; }
        s = s + c[a] * row;
    }
    return sqrt(max(s, 0.0));
}

@compute @workgroup_size(1)
fn gradvac() {
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
                let norm_i = norm_c(k);
                let norm_j = sqrt(max(G[j * k + j], 0.0));
                var dot = 0.0;
                for (var m = 0u; m < k; m = m + 1u) { dot = dot + c[m] * G[m * k + j]; }
                let phi = dot / (norm_i * norm_j + 1e-8);
                let at = 1u + i * k + j;
                let aim = state[at];
                if (phi < aim) {
                    let s = sqrt(max(1.0 - aim * aim, 0.0));
                    let coef = norm_i * (aim * sqrt(max(1.0 - phi * phi, 0.0)) - phi * s)
                        / (norm_j * s + 1e-8);
                    c[j] = c[j] + coef;
                }
                state[at] = (1.0 - p.beta) * aim + p.beta * phi;
            }
        }
        for (var m = 0u; m < k; m = m + 1u) { w[m] = w[m] + c[m]; }
    }
    write_weights();
}
