// Exercise 8, a solution: MGDA's weights for two tasks, from their Gram matrix.
//
// MGDA takes the point of the segment between g1 and g2 nearest the origin:
//
//   minimise ‖α g1 + (1 − α) g2‖²  over α ∈ [0, 1]
//     = α² G11 + 2α(1 − α) G12 + (1 − α)² G22
//
// Setting the derivative to 0 gives α = (G22 − G12) / (G11 + G22 − 2 G12),
// which is then clipped to [0, 1]. The denominator is ‖g1 − g2‖²: when it is
// 0 (the two gradients are the same vector) every α gives the same point;
// take α = 1/2. The weights are w = (α, 1 − α), and then d = α g1 + (1 − α) g2.
//
// Shapes: g holds n Gram matrices, 2×2 each, row-major (G11, G12, G21, G22
// at 4i); w holds n pairs of weights (w1, w2 at 2i). Bindings: 0 params,
// 1 w (read_write), 2 g. One invocation per matrix; the host launches
// ceil(n / 256) workgroups of 256 (folded into two dimensions past 65,535).
//
// Checked in every test run: cargo test --release --test exercises exercise_8

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;

@compute @workgroup_size(256)
fn mgda2(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * groups.x) * 256u + lid;
    if (i >= params.n) {
        return;
    }
    let g11 = g[4u * i];
    let g12 = g[4u * i + 1u];
    let g22 = g[4u * i + 3u];
    // ‖g1 − g2‖², written as the sum of squares would be, never below 0.
    let denom = max(g11 + g22 - 2.0 * g12, 0.0);
    // Relative to the matrix's scale: an f32 Gram of one vector twice can
    // leave a rounding residue instead of an exact 0.
    var alpha = 0.5;
    if (denom > 1e-6 * max(g11 + g22, 1e-30)) {
        alpha = clamp((g22 - g12) / denom, 0.0, 1.0);
    }
    w[2u * i] = alpha;
    w[2u * i + 1u] = 1.0 - alpha;
}
