// Tiled matrix product with a fused epilogue.
//
//   C = op(A) · op(B)  [+ bias]  [ReLU]        or, with ACCUMULATE,  C += op(A) · op(B)
//
// Shapes: op(A) is M×K, op(B) is K×N, C is M×N, bias is N; all row-major.
//   A is stored M×K, or K×M when TRANS_A (so op(A) = Aᵀ);
//   B is stored K×N, or N×K when TRANS_B (so op(B) = Bᵀ).
// The backward pass of Y = X·W needs both: dX = dY·Wᵀ (TRANS_B), dW = Xᵀ·dY (TRANS_A).
//
// Each workgroup computes a TILE×TILE block of C. It walks K in steps of TILE,
// staging one TILE×TILE tile of op(A) and one of op(B) in workgroup memory;
// loads outside the matrix read as zero, so M, N, K need not be multiples of TILE.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const TRANS_A: u32 = 1u;
const TRANS_B: u32 = 2u;
const BIAS: u32 = 4u;
const RELU: u32 = 8u;
const ACCUMULATE: u32 = 16u;

override TILE: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

var<workgroup> tile_a: array<f32, TILE * TILE>;
var<workgroup> tile_b: array<f32, TILE * TILE>;

// op(A)[row, kk]
fn load_a(row: u32, kk: u32) -> f32 {
    if (row >= p.m || kk >= p.k) { return 0.0; }
    if ((p.flags & TRANS_A) != 0u) { return a[kk * p.m + row]; }
    return a[row * p.k + kk];
}

// op(B)[kk, col]
fn load_b(kk: u32, col: u32) -> f32 {
    if (kk >= p.k || col >= p.n) { return 0.0; }
    if ((p.flags & TRANS_B) != 0u) { return b[col * p.k + kk]; }
    return b[kk * p.n + col];
}

@compute @workgroup_size(TILE, TILE)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.y * TILE + lid.y;
    let col = wid.x * TILE + lid.x;
    var acc = 0.0;
    let steps = (p.k + TILE - 1u) / TILE;
    for (var s = 0u; s < steps; s = s + 1u) {
        let k0 = s * TILE;
        tile_a[lid.y * TILE + lid.x] = load_a(row, k0 + lid.x);
        tile_b[lid.y * TILE + lid.x] = load_b(k0 + lid.y, col);
        workgroupBarrier();
        for (var t = 0u; t < TILE; t = t + 1u) {
            acc = acc + tile_a[lid.y * TILE + t] * tile_b[t * TILE + lid.x];
        }
        workgroupBarrier();
    }
    if (row < p.m && col < p.n) {
        let i = row * p.n + col;
        if ((p.flags & ACCUMULATE) != 0u) {
            c[i] = c[i] + acc;
        } else {
            if ((p.flags & BIAS) != 0u) { acc = acc + bias[col]; }
            if ((p.flags & RELU) != 0u) { acc = max(acc, 0.0); }
            c[i] = acc;
        }
    }
}
