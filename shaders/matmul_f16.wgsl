// Mixed-precision matrix product: any operand in f16 or f32, f32 accumulation.
//
//   C = op(A) · op(B)  [+ bias]  [ReLU]        or, with ACCUMULATE,  C += op(A) · op(B)
//
// The same product, layouts and fused options as matmul.wgsl (TRANS_A/B,
// MASK_A/B with the ReLU mask, BIAS_GRAD), where A_F16 / B_F16 / C_F16 /
// MASK_F16 say which buffers hold f16 (each read through its own binding of
// the right type; the other binding of the pair is unused). Every f16 value
// is widened to f32 as it is loaded and all products and sums are f32, so the
// error is the f16 rounding of the stored inputs (relative 2⁻¹¹ each) and, with
// C_F16, of the output. Bias and bias gradient are f32.
// Register-blocked like matmul.wgsl: a 4×4 block of C per invocation. It is a
// file of its own, repeating matmul.wgsl's loop, because `enable f16;` must
// never reach an adapter without SHADER_F16 (the f32 kernel runs everywhere).
// Needs the adapter's SHADER_F16 feature.
//
//   to_f16: y16[i] = f16(x[i])      to_f32: y[i] = f32(x16[i])     (n elements)

enable f16;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const BIAS: u32 = 4u;
const RELU: u32 = 8u;
const ACCUMULATE: u32 = 16u;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override A_F16: bool = false;
override B_F16: bool = false;
override C_F16: bool = false;
override MASK_A: bool = false;
override MASK_B: bool = false;
override MASK_F16: bool = false;
override BIAS_GRAD: bool = false;
override WGX: u32 = 8u;
override WGY: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(7) var<storage, read_write> c16: array<f16>;
@group(0) @binding(8) var<storage, read> a16: array<f16>;
@group(0) @binding(9) var<storage, read> b16: array<f16>;
@group(0) @binding(10) var<storage, read> mask16: array<f16>;

fn mask_on(i: u32) -> bool {
    if (MASK_F16) { return mask16[i] > 0.0h; }
    return mask[i] > 0.0;
}

fn load_a(i: u32) -> f32 {
    var v: f32;
    if (A_F16) { v = f32(a16[i]); } else { v = a[i]; }
    if (MASK_A) { v = select(0.0, v, mask_on(i)); }
    return v;
}

fn load_b(i: u32) -> f32 {
    var v: f32;
    if (B_F16) { v = f32(b16[i]); } else { v = b[i]; }
    if (MASK_B) { v = select(0.0, v, mask_on(i)); }
    return v;
}

fn store(row: u32, col: u32, value: f32) {
    if (row >= p.m || col >= p.n) { return; }
    let i = row * p.n + col;
    var v = value;
    if ((p.flags & ACCUMULATE) != 0u) {
        if (C_F16) { v = v + f32(c16[i]); } else { v = v + c[i]; }
    } else {
        if ((p.flags & BIAS) != 0u) { v = v + bias[col]; }
        if ((p.flags & RELU) != 0u) { v = max(v, 0.0); }
    }
    if (C_F16) { c16[i] = f16(v); } else { c[i] = v; }
}

@compute @workgroup_size(WGX, WGY)
fn matmul_mixed(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r0 = gid.y * 4u;
    let c0 = gid.x * 4u;
    if (r0 >= p.m || c0 >= p.n) { return; }
    let rows = vec4<u32>(min(r0, p.m - 1u), min(r0 + 1u, p.m - 1u), min(r0 + 2u, p.m - 1u), min(r0 + 3u, p.m - 1u));
    let cols = vec4<u32>(min(c0, p.n - 1u), min(c0 + 1u, p.n - 1u), min(c0 + 2u, p.n - 1u), min(c0 + 3u, p.n - 1u));
    var ia = select(rows * p.k, rows, TRANS_A);
    let step_a = select(1u, p.m, TRANS_A);
    var ib = select(cols, cols * p.k, TRANS_B);
    let step_b = select(p.n, 1u, TRANS_B);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var bsum = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let bv = vec4<f32>(load_b(ib.x), load_b(ib.y), load_b(ib.z), load_b(ib.w));
        acc0 = acc0 + load_a(ia.x) * bv;
        acc1 = acc1 + load_a(ia.y) * bv;
        acc2 = acc2 + load_a(ia.z) * bv;
        acc3 = acc3 + load_a(ia.w) * bv;
        if (BIAS_GRAD) { bsum = bsum + bv; }
        ia = ia + step_a;
        ib = ib + step_b;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        store(r0, c0 + j, acc0[j]);
        store(r0 + 1u, c0 + j, acc1[j]);
        store(r0 + 2u, c0 + j, acc2[j]);
        store(r0 + 3u, c0 + j, acc3[j]);
    }
    if (BIAS_GRAD && r0 == 0u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = c0 + j;
            if (col < p.n) {
                var v = bsum[j];
                if ((p.flags & ACCUMULATE) != 0u) { v = v + dbias[col]; }
                dbias[col] = v;
            }
        }
    }
}

// ---- casts (1-D, folded grid as in elementwise.wgsl) ----

struct CastParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> cp: CastParams;
@group(0) @binding(1) var<storage, read_write> out16: array<f16>;
@group(0) @binding(2) var<storage, read> in32: array<f32>;

@group(0) @binding(1) var<storage, read_write> out32: array<f32>;
@group(0) @binding(2) var<storage, read> in16: array<f16>;

@compute @workgroup_size(256)
fn to_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i < cp.n) { out16[i] = f16(in32[i]); }
}

@compute @workgroup_size(256)
fn to_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i < cp.n) { out32[i] = f32(in16[i]); }
}
