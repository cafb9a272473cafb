// Block-tiled matrix product for large products, with the same fused
// prologue and epilogue as matmul.wgsl.
//
//   C = op(A) · op(B)  [+ bias]  [ReLU]        or, with ACCUMULATE,  C += op(A) · op(B)
//
// Shapes and options as matmul.wgsl: op(A) is M×K (A stored K×M when
// TRANS_A), op(B) is K×N (B stored N×K when TRANS_B), C is M×N, bias is N;
// MASK_A / MASK_B multiply an operand by [mask > 0] as it is loaded (mask has
// that operand's stored layout); BIAS_GRAD also writes dbias = Σ_k op(B)[k, :]
// (added to it with ACCUMULATE), from the workgroups of the first row block.
//
// A workgroup of WGX×WGY invocations computes a BM×BN = (WGY·8)×(WGX·8) tile
// of C. Each step along k stages a BK-wide slice of op(A) (BM×BK) and of
// op(B) (BK×BN) in workgroup memory, each invocation loading its share with
// consecutive invocations reading consecutive addresses; then every
// invocation computes its 8×8 block of C from registers: per k, two vec4 of
// op(A) (broadcast along the row of invocations) and two vec4 of op(B), 64
// multiply-adds. Out-of-range elements are staged as zeros, so the inner loop
// has no bounds checks; only the stores are guarded.
//
//   work per workgroup and k-slice: BM·BN·BK multiply-adds for (BM + BN)·BK loads
//   workgroup memory: 2 · BK · 128 f32 (16 KiB at BK = 16, 32 KiB at 32), whatever WGX, WGY ≤ 16


// Outputs per invocation along each dimension, and the k-slice width: 16, or
// 32 (MatmulKernel::Tiled32: twice the workgroup memory, half the barriers).
const TM: u32 = 8u;
const TN: u32 = 8u;
override BK: u32 = 16u;
// Largest tile side (WGX, WGY ≤ 16): the staging arrays' row length.
const MAX_TILE: u32 = 128u;

// (Params, the options, the bindings and `store`: shaders/matmul_prelude.wgsl.)

// The staged slices, k-major: as_[k][row] and bs[k][col], MAX_TILE per k, as
// vec4 so that each invocation reads its 8 rows (columns) in two loads.
var<workgroup> as_: array<vec4<f32>, BK * (MAX_TILE / 4u)>;
var<workgroup> bs: array<vec4<f32>, BK * (MAX_TILE / 4u)>;

// op(A)[row, kk], zero outside the matrix.
fn load_a(row: u32, kk: u32) -> f32 {
    if (row >= p.m || kk >= p.k) { return 0.0; }
    let i = rep * p.rep_a + select(row * p.k + kk, kk * p.m + row, TRANS_A);
    var v = a[i];
    if (MASK_A) { v = select(0.0, v, mask[i] > 0.0); }
    return v;
}

// op(B)[kk, col], zero outside the matrix.
fn load_b(kk: u32, col: u32) -> f32 {
    if (kk >= p.k || col >= p.n) { return 0.0; }
    let i = rep * p.rep_b + select(kk * p.n + col, col * p.k + kk, TRANS_B);
    var v = b[i];
    if (MASK_B) { v = select(0.0, v, mask[i] > 0.0); }
    return v;
}

// Stage op(A)[row0 + 4·r4 .. +4, k0 + kk] as one vec4 of as_[kk][4·r4 ..].
fn stage_a(row0: u32, k0: u32, r4: u32, kk: u32) {
    let r = row0 + 4u * r4;
    let k = k0 + kk;
    as_[kk * (MAX_TILE / 4u) + r4] = vec4<f32>(load_a(r, k), load_a(r + 1u, k), load_a(r + 2u, k), load_a(r + 3u, k));
}

// Stage op(B)[k0 + kk, col0 + 4·c4 .. +4] as one vec4 of bs[kk][4·c4 ..].
fn stage_b(col0: u32, k0: u32, c4: u32, kk: u32) {
    let c = col0 + 4u * c4;
    let k = k0 + kk;
    bs[kk * (MAX_TILE / 4u) + c4] = vec4<f32>(load_b(k, c), load_b(k, c + 1u), load_b(k, c + 2u), load_b(k, c + 3u));
}

// Four outputs of one row.
fn store4(row: u32, col: u32, v: vec4<f32>) {
    store(row, col, v.x);
    store(row, col + 1u, v.y);
    store(row, col + 2u, v.z);
    store(row, col + 3u, v.w);
}


@compute @workgroup_size(WGX, WGY)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let bm = WGY * TM;
    let bn = WGX * TN;
    let row0 = wid.y * bm;
    let col0 = wid.x * bn;
    let threads = WGX * WGY;
    let t = lid.y * WGX + lid.x;
    // This invocation's 8×8 block of C: rows i = 0..8, each two vec4 (columns
    // 0..4, 4..8), in named registers (an indexed array would live in memory).
    var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0); var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0); var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0); var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0); var c71 = vec4<f32>(0.0);
    var bsum0 = vec4<f32>(0.0);
    var bsum1 = vec4<f32>(0.0);
    let ra = lid.y * (TM / 4u);
    let cb = lid.x * (TN / 4u);
    // This workgroup's replica, and all of k or its split-K slice (KC is a
    // multiple of BK there).
    set_layer(wid.z);
    let ks = k_range(wid.z);
    // ANCHOR: tiled_loop
    for (var k0 = ks.x; k0 < ks.y; k0 = k0 + BK) {
        // Stage op(A)[row0.., k0..] (bm×BK) and op(B)[k0.., col0..] (BK×bn),
        // four elements per vec4; the index order follows the stored layout,
        // so that neighbouring invocations read neighbouring addresses.
        for (var e = t; e < (bm / 4u) * BK; e = e + threads) {
            if (TRANS_A) { stage_a(row0, k0, e % (bm / 4u), e / (bm / 4u)); }
            else { stage_a(row0, k0, e / BK, e % BK); }
        }
        for (var e = t; e < (bn / 4u) * BK; e = e + threads) {
            if (TRANS_B) { stage_b(col0, k0, e / BK, e % BK); }
            else { stage_b(col0, k0, e % (bn / 4u), e / (bn / 4u)); }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let base = kk * (MAX_TILE / 4u);
            let a0 = as_[base + ra];
            let a1 = as_[base + ra + 1u];
            let b0 = bs[base + cb];
            let b1 = bs[base + cb + 1u];
            c00 = c00 + a0.x * b0; c01 = c01 + a0.x * b1;
            c10 = c10 + a0.y * b0; c11 = c11 + a0.y * b1;
            c20 = c20 + a0.z * b0; c21 = c21 + a0.z * b1;
            c30 = c30 + a0.w * b0; c31 = c31 + a0.w * b1;
            c40 = c40 + a1.x * b0; c41 = c41 + a1.x * b1;
            c50 = c50 + a1.y * b0; c51 = c51 + a1.y * b1;
            c60 = c60 + a1.z * b0; c61 = c61 + a1.z * b1;
            c70 = c70 + a1.w * b0; c71 = c71 + a1.w * b1;
            if (BIAS_GRAD) { bsum0 = bsum0 + b0; bsum1 = bsum1 + b1; }
        }
        workgroupBarrier();
    }
    // ANCHOR_END: tiled_loop
    let r0 = row0 + lid.y * TM;
    let c0 = col0 + lid.x * TN;
    store4(r0, c0, c00);      store4(r0, c0 + 4u, c01);
    store4(r0 + 1u, c0, c10); store4(r0 + 1u, c0 + 4u, c11);
    store4(r0 + 2u, c0, c20); store4(r0 + 2u, c0 + 4u, c21);
    store4(r0 + 3u, c0, c30); store4(r0 + 3u, c0 + 4u, c31);
    store4(r0 + 4u, c0, c40); store4(r0 + 4u, c0 + 4u, c41);
    store4(r0 + 5u, c0, c50); store4(r0 + 5u, c0 + 4u, c51);
    store4(r0 + 6u, c0, c60); store4(r0 + 6u, c0 + 4u, c61);
    store4(r0 + 7u, c0, c70); store4(r0 + 7u, c0 + 4u, c71);
    // The bias gradient: every invocation of the first row block has summed
    // op(B) over all of k for its 8 columns; those of the first row write it.
    if (BIAS_GRAD && wid.y == 0u && lid.y == 0u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            store_bias_grad(c0 + j, bsum0[j]);
            store_bias_grad(c0 + 4u + j, bsum1[j]);
        }
    }
}
