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
override MASK_A: bool = false;
override MASK_B: bool = false;
override BIAS_GRAD: bool = false;
override WGX: u32 = 16u;
override WGY: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;

@compute @workgroup_size(WGX, WGY)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if (row >= p.m || col >= p.n) { return; }
    var sum = 0.0;
    var bsum = 0.0;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let ia = select(row * p.k + kk, kk * p.m + row, TRANS_A);
        let ib = select(kk * p.n + col, col * p.k + kk, TRANS_B);
        var av = a[ia];
        var bv = b[ib];
        if (MASK_A) { av = select(0.0, av, mask[ia] > 0.0); }
        if (MASK_B) { bv = select(0.0, bv, mask[ib] > 0.0); }
        sum = sum + av * bv;
        bsum = bsum + bv;
    }
    let i = row * p.n + col;
    if ((p.flags & ACCUMULATE) != 0u) {
        sum = sum + c[i];
    } else {
        if ((p.flags & BIAS) != 0u) { sum = sum + bias[col]; }
        if ((p.flags & RELU) != 0u) { sum = max(sum, 0.0); }
    }
    c[i] = sum;
    if (BIAS_GRAD && row == 0u) {
        if ((p.flags & ACCUMULATE) != 0u) { bsum = bsum + dbias[col]; }
        dbias[col] = bsum;
    }
}
