// Half-precision matrix product with single-precision accumulation.
//
//   C (f32) = op(A) · op(B) [+ bias] [ReLU]    with A, B stored as f16
//
// Shapes and layouts as in matmul.wgsl (op(A) M×K, op(B) K×N, row-major; TRANS_A /
// TRANS_B read the stored transpose). Each f16 operand is widened to f32 as it is
// loaded and every product and sum is f32, so the result differs from the f32
// product of the f16-rounded inputs only by f32 rounding; the error against the
// f32 inputs is the f16 rounding of A and B (relative 2⁻¹¹ each). Bias is f32.
// Register-blocked like matmul.wgsl: a 4×4 block of C per invocation.
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

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override WGX: u32 = 8u;
override WGY: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f16>;
@group(0) @binding(3) var<storage, read> b: array<f16>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

fn store(row: u32, col: u32, value: f32) {
    if (row >= p.m || col >= p.n) { return; }
    var v = value;
    if ((p.flags & BIAS) != 0u) { v = v + bias[col]; }
    if ((p.flags & RELU) != 0u) { v = max(v, 0.0); }
    c[row * p.n + col] = v;
}

@compute @workgroup_size(WGX, WGY)
fn matmul_f16(@builtin(global_invocation_id) gid: vec3<u32>) {
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
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let bv = vec4<f32>(f32(b[ib.x]), f32(b[ib.y]), f32(b[ib.z]), f32(b[ib.w]));
        acc0 = acc0 + f32(a[ia.x]) * bv;
        acc1 = acc1 + f32(a[ia.y]) * bv;
        acc2 = acc2 + f32(a[ia.z]) * bv;
        acc3 = acc3 + f32(a[ia.w]) * bv;
        ia = ia + step_a;
        ib = ib + step_b;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        store(r0, c0 + j, acc0[j]);
        store(r0 + 1u, c0 + j, acc1[j]);
        store(r0 + 2u, c0 + j, acc2[j]);
        store(r0 + 3u, c0 + j, acc3[j]);
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
