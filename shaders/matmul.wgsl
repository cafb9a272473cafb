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
//
// Vector loads. On a CPU adapter (lavapipe) every load whose address differs
// between invocations is a loop over the SIMD lanes, and a vec4 load costs
// about what a scalar one does, so loads, not multiply-adds, set the speed;
// reading four values per load made W-iris's 120×64·64×64 product 1.6×
// faster (BENCHMARKS.md, "Vector loads in the register matmul"). Where an operand's layout allows,
// it is read through a vec4 view of its buffer (bindings 7-9):
//   A_VEC = 1: op(A) = A row-major with K % 4 == 0: a row's next 4 values of k;
//   A_VEC = 2: A stored K×M (TRANS_A) with M % 4 == 0: the block's 4 rows at one k;
//   B_VEC = 1: B row-major with N % 4 == 0: the block's 4 columns at one k;
//   B_VEC = 2: B stored N×K (TRANS_B) with K % 4 == 0: a column's next 4 values of k;
// 0: scalar loads. A mask moves with its operand (its vec4 view, binding 9).
// With either operand along k the loop takes 4 values of k per turn (the
// host asks K, and a split's KC, to be multiples of 4). The sums are the same
// products added in the same order as with scalar loads, so every mode gives
// the same numbers bit for bit.
override A_VEC: u32 = 0u;
override B_VEC: u32 = 0u;

@group(0) @binding(7) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> mask4: array<vec4<f32>>;

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

// The same through the vec4 views: elements i..i+4 (i a multiple of 4).
fn load_a4(i: u32) -> vec4<f32> {
    var v = a4[i / 4u];
    if (MASK_A) { v = select(vec4<f32>(0.0), v, mask4[i / 4u] > vec4<f32>(0.0)); }
    return v;
}

fn load_b4(i: u32) -> vec4<f32> {
    var v = b4[i / 4u];
    if (MASK_B) { v = select(vec4<f32>(0.0), v, mask4[i / 4u] > vec4<f32>(0.0)); }
    return v;
}

// op(A)[rows, k] for the block's 4 rows (their flat indices at k: ia).
fn a_at(ia: vec4<u32>) -> vec4<f32> {
    if (A_VEC == 2u) { return load_a4(ia.x); }
    return vec4<f32>(load_a(ia.x), load_a(ia.y), load_a(ia.z), load_a(ia.w));
}

// op(B)[k, cols] for the block's 4 columns (their flat indices at k: ib).
fn b_at(ib: vec4<u32>) -> vec4<f32> {
    if (B_VEC == 1u) { return load_b4(ib.x); }
    return vec4<f32>(load_b(ib.x), load_b(ib.y), load_b(ib.z), load_b(ib.w));
}

// op(B)[k + j, cols] into bj, j = 0..3, for the 4 columns whose flat indices
// at k are ib: with B_VEC = 2 four vec4s along k, one per column, transposed.
fn b_block(ib: vec4<u32>, step_b: u32, b0: ptr<function, vec4<f32>>, b1: ptr<function, vec4<f32>>,
           b2: ptr<function, vec4<f32>>, b3: ptr<function, vec4<f32>>) {
    if (B_VEC == 2u) {
        let x = load_b4(ib.x);
        let y = load_b4(ib.y);
        let z = load_b4(ib.z);
        let w = load_b4(ib.w);
        *b0 = vec4(x.x, y.x, z.x, w.x);
        *b1 = vec4(x.y, y.y, z.y, w.y);
        *b2 = vec4(x.z, y.z, z.z, w.z);
        *b3 = vec4(x.w, y.w, z.w, w.w);
    } else {
        *b0 = b_at(ib);
        *b1 = b_at(ib + step_b);
        *b2 = b_at(ib + 2u * step_b);
        *b3 = b_at(ib + 3u * step_b);
    }
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
    if (A_VEC == 1u || B_VEC == 2u) {
        // Four values of k per turn: av[j] and bv[j] hold op(A)[rows, k + j]
        // and op(B)[k + j, cols], read as rows of k where the layout allows.
        for (var kk = k0; kk < k1; kk = kk + 4u) {
            var a0: vec4<f32>;
            var a1: vec4<f32>;
            var a2: vec4<f32>;
            var a3: vec4<f32>;
            if (A_VEC == 1u) {
                let x = load_a4(ia.x);
                let y = load_a4(ia.y);
                let z = load_a4(ia.z);
                let w = load_a4(ia.w);
                a0 = vec4(x.x, y.x, z.x, w.x);
                a1 = vec4(x.y, y.y, z.y, w.y);
                a2 = vec4(x.z, y.z, z.z, w.z);
                a3 = vec4(x.w, y.w, z.w, w.w);
            } else {
                a0 = a_at(ia);
                a1 = a_at(ia + step_a);
                a2 = a_at(ia + 2u * step_a);
                a3 = a_at(ia + 3u * step_a);
            }
            var b0: vec4<f32>;
            var b1: vec4<f32>;
            var b2: vec4<f32>;
            var b3: vec4<f32>;
            b_block(ib, step_b, &b0, &b1, &b2, &b3);
            // k, k+1, k+2, k+3 in turn: the scalar loop's order.
            acc0 = acc0 + a0.x * b0;
            acc1 = acc1 + a0.y * b0;
            acc2 = acc2 + a0.z * b0;
            acc3 = acc3 + a0.w * b0;
            acc0 = acc0 + a1.x * b1;
            acc1 = acc1 + a1.y * b1;
            acc2 = acc2 + a1.z * b1;
            acc3 = acc3 + a1.w * b1;
            acc0 = acc0 + a2.x * b2;
            acc1 = acc1 + a2.y * b2;
            acc2 = acc2 + a2.z * b2;
            acc3 = acc3 + a2.w * b2;
            acc0 = acc0 + a3.x * b3;
            acc1 = acc1 + a3.y * b3;
            acc2 = acc2 + a3.z * b3;
            acc3 = acc3 + a3.w * b3;
            if (BIAS_GRAD) { bsum = bsum + b0 + b1 + b2 + b3; }
            ia = ia + 4u * step_a;
            ib = ib + 4u * step_b;
        }
    } else {
        for (var kk = k0; kk < k1; kk = kk + 1u) {
            let av = a_at(ia);
            let bv = b_at(ib);
            acc0 = acc0 + av.x * bv;
            acc1 = acc1 + av.y * bv;
            acc2 = acc2 + av.z * bv;
            acc3 = acc3 + av.w * bv;
            if (BIAS_GRAD) { bsum = bsum + bv; }
            ia = ia + step_a;
            ib = ib + step_b;
        }
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

// ---- matmul_rows: 8 rows × RN columns per invocation, rows shared by the workgroup ----
//
// The same sums as `matmul` (each output's products in ascending k, from
// zero), computed by another arrangement: a 1-D workgroup of WGX invocations
// (WGY = 1) covers 8 rows and RN·WGX columns, the rows given by the workgroup
// id. On lavapipe every load in a loop is a loop over the SIMD lanes (the
// note above), whether or not its address is the same in every lane, so what
// sets the speed is loads per multiply-add: per four values of k an
// invocation makes 8 loads of op(A) and RN of op(B) (vec4s where the layout
// allows) for 32·RN multiply-adds, against `matmul`'s 8 for 64. RN = 8 for
// outputs at least 8 wide, 4 for narrower ones (a head of 3 columns). On GPUs
// the timed search decides whether it is used at all (`kernels::matmul_choice`).
override RN: u32 = 8u;

// acc += a.x·b0 + a.y·b1 + a.z·b2 + a.w·b3, term by term in that order.
fn madd4(acc: ptr<function, vec4<f32>>, a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) {
    *acc = *acc + a.x * b0;
    *acc = *acc + a.y * b1;
    *acc = *acc + a.z * b2;
    *acc = *acc + a.w * b3;
}

// Flat index of op(A)[row, k] (replica offset included).
fn a_index(row: u32, k: u32) -> u32 {
    return select(row * p.k + k, k * p.m + row, TRANS_A) + rep * p.rep_a;
}

// op(A)[row, k..k+4].
fn a_along_k(row: u32, k: u32) -> vec4<f32> {
    if (A_VEC == 1u) { return load_a4(a_index(row, k)); }
    return vec4<f32>(load_a(a_index(row, k)), load_a(a_index(row, k + 1u)),
                     load_a(a_index(row, k + 2u)), load_a(a_index(row, k + 3u)));
}

// The loops below are written out row by row: on lavapipe, accumulators in
// an array indexed in a loop stayed in memory, which made this kernel no
// faster than the register kernel and on some products 2× slower.
@compute @workgroup_size(WGX)
fn matmul_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r0 = wid.y * 8u;
    let c0 = (wid.x * WGX + lid.x) * RN;
    if (c0 >= p.n) { return; }
    // The workgroup's 8 rows, clamped into the matrix (the same in every invocation).
    let lastr = p.m - 1u;
    let ra = vec4<u32>(min(r0, lastr), min(r0 + 1u, lastr), min(r0 + 2u, lastr), min(r0 + 3u, lastr));
    let rb = vec4<u32>(min(r0 + 4u, lastr), min(r0 + 5u, lastr), min(r0 + 6u, lastr), min(r0 + 7u, lastr));
    // Columns c0.. and c0+4.. (clamped; with B_VEC = 1 the second four start
    // at a multiple of 4, past N when they are past it).
    let lastc = p.n - 1u;
    let lo = vec4<u32>(min(c0, lastc), min(c0 + 1u, lastc), min(c0 + 2u, lastc), min(c0 + 3u, lastc));
    var hi = vec4<u32>(min(c0 + 4u, lastc), min(c0 + 5u, lastc), min(c0 + 6u, lastc), min(c0 + 7u, lastc));
    if (B_VEC == 1u) { hi.x = min(c0 + 4u, p.n - 4u); }
    let step_b = select(p.n, 1u, TRANS_B);
    set_layer(wid.z);
    let ks = k_range(wid.z);
    let k0 = ks.x;
    let k1 = ks.y;
    let base_b = k0 * step_b + rep * p.rep_b;
    var ib = select(lo, lo * p.k, TRANS_B) + base_b;
    var ibh = select(hi, hi * p.k, TRANS_B) + base_b;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var ach0 = vec4<f32>(0.0);
    var ach1 = vec4<f32>(0.0);
    var ach2 = vec4<f32>(0.0);
    var ach3 = vec4<f32>(0.0);
    var ach4 = vec4<f32>(0.0);
    var ach5 = vec4<f32>(0.0);
    var ach6 = vec4<f32>(0.0);
    var ach7 = vec4<f32>(0.0);
    var bsum = vec4<f32>(0.0);
    var bsumh = vec4<f32>(0.0);
    if (A_VEC == 1u || B_VEC == 2u) {
        // Four values of k per turn (K, and a split's KC, multiples of 4).
        for (var kk = k0; kk < k1; kk = kk + 4u) {
            // op(B)[k + j, cols] in bj (the low 4 columns) and hj (the high 4).
            var b0: vec4<f32>;
            var b1: vec4<f32>;
            var b2: vec4<f32>;
            var b3: vec4<f32>;
            var h0: vec4<f32>;
            var h1: vec4<f32>;
            var h2: vec4<f32>;
            var h3: vec4<f32>;
            b_block(ib, step_b, &b0, &b1, &b2, &b3);
            if (RN == 8u) { b_block(ibh, step_b, &h0, &h1, &h2, &h3); }
            let a0 = a_along_k(ra.x, kk);
            let a1 = a_along_k(ra.y, kk);
            let a2 = a_along_k(ra.z, kk);
            let a3 = a_along_k(ra.w, kk);
            let a4 = a_along_k(rb.x, kk);
            let a5 = a_along_k(rb.y, kk);
            let a6 = a_along_k(rb.z, kk);
            let a7 = a_along_k(rb.w, kk);
            madd4(&acc0, a0, b0, b1, b2, b3);
            madd4(&acc1, a1, b0, b1, b2, b3);
            madd4(&acc2, a2, b0, b1, b2, b3);
            madd4(&acc3, a3, b0, b1, b2, b3);
            madd4(&acc4, a4, b0, b1, b2, b3);
            madd4(&acc5, a5, b0, b1, b2, b3);
            madd4(&acc6, a6, b0, b1, b2, b3);
            madd4(&acc7, a7, b0, b1, b2, b3);
            if (RN == 8u) {
                madd4(&ach0, a0, h0, h1, h2, h3);
                madd4(&ach1, a1, h0, h1, h2, h3);
                madd4(&ach2, a2, h0, h1, h2, h3);
                madd4(&ach3, a3, h0, h1, h2, h3);
                madd4(&ach4, a4, h0, h1, h2, h3);
                madd4(&ach5, a5, h0, h1, h2, h3);
                madd4(&ach6, a6, h0, h1, h2, h3);
                madd4(&ach7, a7, h0, h1, h2, h3);
            }
            if (BIAS_GRAD) {
                bsum = bsum + b0 + b1 + b2 + b3;
                if (RN == 8u) { bsumh = bsumh + h0 + h1 + h2 + h3; }
            }
            ib = ib + 4u * step_b;
            ibh = ibh + 4u * step_b;
        }
    } else {
        for (var kk = k0; kk < k1; kk = kk + 1u) {
            let bv = b_at(ib);
            var bw: vec4<f32>;
            if (RN == 8u) { bw = b_at(ibh); }
            var al: vec4<f32>;
            var ah: vec4<f32>;
            if (A_VEC == 2u) {
                // Aᵀ stored K×M, M a multiple of 4: the 8 rows are two vec4s
                // (the second clamped; its rows lie past M when it is).
                al = load_a4(a_index(ra.x, kk));
                ah = load_a4(a_index(min(r0 + 4u, p.m - 4u), kk));
            } else {
                al = vec4<f32>(load_a(a_index(ra.x, kk)), load_a(a_index(ra.y, kk)),
                               load_a(a_index(ra.z, kk)), load_a(a_index(ra.w, kk)));
                ah = vec4<f32>(load_a(a_index(rb.x, kk)), load_a(a_index(rb.y, kk)),
                               load_a(a_index(rb.z, kk)), load_a(a_index(rb.w, kk)));
            }
            acc0 = acc0 + al.x * bv;
            acc1 = acc1 + al.y * bv;
            acc2 = acc2 + al.z * bv;
            acc3 = acc3 + al.w * bv;
            acc4 = acc4 + ah.x * bv;
            acc5 = acc5 + ah.y * bv;
            acc6 = acc6 + ah.z * bv;
            acc7 = acc7 + ah.w * bv;
            if (RN == 8u) {
                ach0 = ach0 + al.x * bw;
                ach1 = ach1 + al.y * bw;
                ach2 = ach2 + al.z * bw;
                ach3 = ach3 + al.w * bw;
                ach4 = ach4 + ah.x * bw;
                ach5 = ach5 + ah.y * bw;
                ach6 = ach6 + ah.z * bw;
                ach7 = ach7 + ah.w * bw;
            }
            if (BIAS_GRAD) {
                bsum = bsum + bv;
                if (RN == 8u) { bsumh = bsumh + bw; }
            }
            ib = ib + step_b;
            ibh = ibh + step_b;
        }
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        store(r0, c0 + j, acc0[j]);
        store(r0 + 1u, c0 + j, acc1[j]);
        store(r0 + 2u, c0 + j, acc2[j]);
        store(r0 + 3u, c0 + j, acc3[j]);
        store(r0 + 4u, c0 + j, acc4[j]);
        store(r0 + 5u, c0 + j, acc5[j]);
        store(r0 + 6u, c0 + j, acc6[j]);
        store(r0 + 7u, c0 + j, acc7[j]);
    }
    if (RN == 8u) {
        let c4 = c0 + 4u;
        for (var j = 0u; j < 4u; j = j + 1u) {
            store(r0, c4 + j, ach0[j]);
            store(r0 + 1u, c4 + j, ach1[j]);
            store(r0 + 2u, c4 + j, ach2[j]);
            store(r0 + 3u, c4 + j, ach3[j]);
            store(r0 + 4u, c4 + j, ach4[j]);
            store(r0 + 5u, c4 + j, ach5[j]);
            store(r0 + 6u, c4 + j, ach6[j]);
            store(r0 + 7u, c4 + j, ach7[j]);
        }
    }
    if (BIAS_GRAD && r0 == 0u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            store_bias_grad(c0 + j, bsum[j]);
            if (RN == 8u) { store_bias_grad(c0 + 4u + j, bsumh[j]); }
        }
    }
}
