// Register-blocked matrix product with fused prologue and epilogue.
//
//   C = op(A) · op(B)  [+ bias]  [ReLU]        or, with ACCUMULATE,  C += op(A) · op(B)
//
// Shapes: op(A) is M×K, op(B) is K×N, C is M×N, bias is N; all row-major.
//   A is stored M×K, or K×M when TRANS_A (so op(A) = Aᵀ);
//   B is stored K×N, or N×K when TRANS_B (so op(B) = Bᵀ).
// The backward pass of Y = relu(X·W + b) needs both transposes:
//   dZ = dY ⊙ [Y > 0],  dW = Xᵀ·dZ,  db = Σ_rows dZ,  dX = dZ·Wᵀ.
// MASK_A / MASK_B multiply the A / B operand by [mask > 0] as it is loaded
// (mask has the operand's stored layout: the forward output Y), so dZ is never
// written out; BIAS_GRAD also writes db (to `dbias`) = Σ_k op(B)[k, :] (the invocations of
// the first row block), so dW and db come from one dispatch.
//
// Each invocation computes a TM×TN = 4×4 block of C in registers, reading A
// and B straight from memory (no workgroup barriers: they are slow on
// software adapters, and caches serve the reuse); a workgroup covers
// (WGY·4)×(WGX·4). Loads clamp their row/column into the matrix so the inner
// loop has no branches; only the stores are guarded. Transposes, masks and the
// bias gradient are pipeline constants, so each variant compiles without them
// in its inner loop.


// (Params, the options, bindings 0-6 and `store`: shaders/matmul_prelude.wgsl.)
// B row-major (not transposed, no mask) with N a multiple of 4: each step
// along k loads op(B)[k, c0..c0+4] as one vec4 through `b4`, the same buffer.
override B_VEC4: bool = false;

@group(0) @binding(7) var<storage, read> b4: array<vec4<f32>>;

// Operand loads by flat index (the caller walks the indices), with the optional ReLU mask.
fn load_a(i: u32) -> f32 {
    var v = a[i];
    if (MASK_A) { v = select(0.0, v, mask[i] > 0.0); }
    return v;
}

fn load_b(i: u32) -> f32 {
    var v = b[i];
    if (MASK_B) { v = select(0.0, v, mask[i] > 0.0); }
    return v;
}


@compute @workgroup_size(WGX, WGY)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r0 = gid.y * 4u;
    let c0 = gid.x * 4u;
    if (r0 >= p.m || c0 >= p.n) { return; }
    let rows = vec4<u32>(min(r0, p.m - 1u), min(r0 + 1u, p.m - 1u), min(r0 + 2u, p.m - 1u), min(r0 + 3u, p.m - 1u));
    let cols = vec4<u32>(min(c0, p.n - 1u), min(c0 + 1u, p.n - 1u), min(c0 + 2u, p.n - 1u), min(c0 + 3u, p.n - 1u));
    // Flat indices of op(A)[rows, 0] and op(B)[0, cols], and how far one step along k moves them.
    let step_a = select(1u, p.m, TRANS_A);
    let step_b = select(p.n, 1u, TRANS_B);
    // This workgroup's replica and range of k: all of it, or its split-K slice.
    set_layer(gid.z);
    let ks = k_range(gid.z);
    let k0 = ks.x;
    let k1 = ks.y;
    var ia = select(rows * p.k, rows, TRANS_A) + k0 * step_a + rep * p.rep_a;
    var ib = select(cols, cols * p.k, TRANS_B) + k0 * step_b + rep * p.rep_b;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var bsum = vec4<f32>(0.0);
    // ANCHOR: register_loop
    for (var kk = k0; kk < k1; kk = kk + 1u) {
        var bv: vec4<f32>;
        if (B_VEC4) {
            bv = b4[ib.x / 4u];
        } else {
            bv = vec4<f32>(load_b(ib.x), load_b(ib.y), load_b(ib.z), load_b(ib.w));
        }
        acc0 = acc0 + load_a(ia.x) * bv;
        acc1 = acc1 + load_a(ia.y) * bv;
        acc2 = acc2 + load_a(ia.z) * bv;
        acc3 = acc3 + load_a(ia.w) * bv;
        if (BIAS_GRAD) { bsum = bsum + bv; }
        ia = ia + step_a;
        ib = ib + step_b;
    }
    // ANCHOR_END: register_loop
    for (var j = 0u; j < 4u; j = j + 1u) {
        store(r0, c0 + j, acc0[j]);
        store(r0 + 1u, c0 + j, acc1[j]);
        store(r0 + 2u, c0 + j, acc2[j]);
        store(r0 + 3u, c0 + j, acc3[j]);
    }
    if (BIAS_GRAD && r0 == 0u) {
        for (var j = 0u; j < 4u; j = j + 1u) { store_bias_grad(c0 + j, bsum[j]); }
    }
}
