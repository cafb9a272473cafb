// The plainest matrix product: one invocation per element of C, reading A and
// B straight from memory. It is the first rung of the matmul ladder
// (naive → register-blocked → block-tiled; see BENCHMARKS.md), kept for
// teaching and as a baseline, with the same options as matmul.wgsl:
//
//   C = op(A) · op(B)  [+ bias]  [ReLU]        or, with ACCUMULATE,  C += op(A) · op(B)
//
// op(A) is M×K (A stored K×M when TRANS_A), op(B) is K×N (B stored N×K when
// TRANS_B), C is M×N, bias is N. MASK_A / MASK_B multiply an operand by
// [mask > 0] as it is loaded; BIAS_GRAD also writes dbias = Σ_k op(B)[k, :]
// (from the invocations of row 0). A workgroup covers WGY×WGX elements.
//
//   C[r, c] = Σ_k op(A)[r, k] · op(B)[k, c]


// (Params, the options, the bindings and `store`: shaders/matmul_prelude.wgsl.)

// ANCHOR: naive
@compute @workgroup_size(WGX, WGY)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if (row >= p.m || col >= p.n) { return; }
    set_layer(gid.z);
    var sum = 0.0;
    var bsum = 0.0;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let ia = rep * p.rep_a + select(row * p.k + kk, kk * p.m + row, TRANS_A);
        let ib = rep * p.rep_b + select(kk * p.n + col, col * p.k + kk, TRANS_B);
        var av = a[ia];
        var bv = b[ib];
        if (MASK_A) { av = select(0.0, av, mask[ia] > 0.0); }
        if (MASK_B) { bv = select(0.0, bv, mask[ib] > 0.0); }
        sum = sum + av * bv;
        bsum = bsum + bv;
    }
    store(row, col, sum);
    if (BIAS_GRAD && row == 0u) { store_bias_grad(col, bsum); }
}
// ANCHOR_END: naive
