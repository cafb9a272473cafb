// MGDA-UB (Sener & Koltun 2018): the min-norm point of the convex hull of the
// task gradients,
//
//   w = argmin_{w ≥ 0, Σw = 1} wᵀ G w,
//
// exactly, by the prelude's active-set `qp` on G / mean diagonal. A zero
// gradient (squared norm ≤ ZERO_NORM of the largest, or all zero) makes the
// min-norm point 0: the weights go all to that task.

struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// ANCHOR: mgda
@compute @workgroup_size(1)
fn mgda() {
    let k = p.k;
    load_gram();
    if (find_live() < k) {
        // A task whose gradient is zero puts 0 in the hull: the min-norm point
        // is 0, all the weight on that task (the first such one), no shared update.
        var zero = k;
        for (var i = 0u; i < k; i = i + 1u) { if (zero == k && live[i] == 0u) { zero = i; } }
        for (var i = 0u; i < k; i = i + 1u) { w[i] = select(0.0, 1.0, i == zero); }
    } else {
        normalize_gram(0.0);
        for (var i = 0u; i < k; i = i + 1u) { lo[i] = 0.0; lin[i] = 0.0; }
        qp(true);
    }
    write_weights();
}
// ANCHOR_END: mgda
