// Exercise 9 (chapter 9): MGDA for K tasks on the GPU, by Frank–Wolfe.
//
//   minimise  wᵀ G w   over the simplex (w_k ≥ 0, Σ_k w_k = 1)
//
// the min-norm point d = Σ w_k g_k of the tasks' convex hull, from the K×K
// Gram matrix alone (Sener & Koltun, NeurIPS 2018, algorithm 2). Start at
// w = (1/K, …, 1/K) and repeat ITERS times:
//
//   v = G w                        (v_k = g_k · d)
//   t = argmin_k v_k               (the task whose gradient is most against d)
//   a = wᵀ G w = w · v,  b = v_t,  c = G_tt
//   γ = (a − b) / (a − 2b + c), clipped to [0, 1]   — the exact line search
//       along the segment from d to g_t, min ‖(1 − γ) d + γ g_t‖²;
//       stop when a − 2b + c ≤ 0 (d = g_t: nothing left to gain)
//   w = (1 − γ) w, then w_t += γ
//
// Shapes: g holds n Gram matrices, K×K each, row-major, matrix i at
// i·K·K; w holds n weight vectors, vector i at i·K. K ≤ 8. Bindings:
// 0 params, 1 w (read_write), 2 g. One invocation per matrix (each a whole
// solve, in its own registers — as taskgrad's solves run, one invocation
// per problem); the host launches ceil(n / 64) workgroups of 64.
//
// Check it:   cargo test --release --test exercises -- --ignored exercise_9
// Until you write the iterations, the test fails: this stub returns the
// starting point, equal weights.

struct Params {
    k: u32,
    n: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> w_out: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;

const ITERS: u32 = 500u;

@compute @workgroup_size(64)
fn mgda_fw(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= params.n) {
        return;
    }
    let k = params.k;
    let base = i * k * k;
    var w: array<f32, 8>;
    for (var j = 0u; j < k; j = j + 1u) {
        w[j] = 1.0 / f32(k);
    }
    // TODO: ITERS Frank–Wolfe steps, as above. G[r, c] is g[base + r·k + c].
    for (var j = 0u; j < k; j = j + 1u) {
        w_out[i * k + j] = w[j];
    }
}
