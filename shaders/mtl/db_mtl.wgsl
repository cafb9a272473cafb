// DB-MTL (Lin, Ye, Xu, Shi & Zhang, "Dual-Balancing for Multi-Task
// Learning", 2023), as LibMTL's DB_MTL.
//
// Loss balancing: each task's loss is taken as log(L_k + 1e-8), so its seed
// (the weight of ∇L_k, heads included) is
//
//   s_k = 1 / (L_k + 1e-8)                                    (db_mtl_seeds)
//
// from this step's losses (SeedsAfterForward: the loss kernels run again).
// Gradient balancing: over m_k, the moving average of the task gradients
// (shaders/combine/memory.wgsl, mode 0, before the Gram matrix), every task
// is scaled to the largest norm:
//
//   α_k = max_j ‖m_j‖ / (‖m_k‖ + 1e-8),   ‖m_k‖ = √G_kk      (db_mtl)
//
// with G the Gram matrix of m; the combination is Σ_k α_k m_k. db_mtl also
// advances the step that the memory's rate β / t^σ counts.
// CPU twin: `reference` in src/mtl/db_mtl.rs. Shapes: losses K → seeds K;
// gram K×K → weights K.

struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@compute @workgroup_size(1)
fn db_mtl_seeds() {
    for (var i = 0u; i < p.k; i = i + 1u) { w[i] = 1.0 / (losses[i] + 1e-8); }
    write_weights();
}

@compute @workgroup_size(1)
fn db_mtl() {
    _ = next_step();
    load_gram();
    var largest = 0.0;
    for (var i = 0u; i < p.k; i = i + 1u) {
        w[i] = sqrt(max(G[i * p.k + i], 0.0));
        largest = max(largest, w[i]);
    }
    for (var i = 0u; i < p.k; i = i + 1u) { w[i] = largest / (w[i] + 1e-8); }
    write_weights();
}
