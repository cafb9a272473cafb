// Exercise 2 (chapter 2): a register-blocked matmul, a 2×2 block of C per invocation.
//
//   C[r, c] = Σ_{k < K} A[r, k] · B[k, c]
//
// Shapes: A is M×K, B is K×N, C is M×N, all row-major. Bindings: 0 params,
// 1 C (read_write), 2 A, 3 B. Workgroups of 8×8 invocations; invocation
// gid = (x, y) owns rows 2y, 2y + 1 and columns 2x, 2x + 1 of C, so the host
// launches ceil(N / 16) × ceil(M / 16) workgroups.
//
// Why it pays: along k, the naive kernel loads one value of A and one of B
// for each multiply-add (2 loads per multiply-add). Here each step loads
// A[r, k], A[r + 1, k], B[k, c], B[k, c + 1] — 4 loads — and does the 4
// multiply-adds of the block from registers: 1 load per multiply-add.
//
// Edges: M or N may be odd, so a block's second row or column can fall
// outside C. Load from a clamped row or column (always in bounds; the
// product is thrown away) and store only what lies inside C.
//
// Check it:   cargo test --release --test exercises -- --ignored exercise_2
// Until you write the block, the test fails: this stub computes the block's
// top-left element alone.

struct Params {
    m: u32,
    k: u32,
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

@compute @workgroup_size(8, 8)
fn matmul2x2(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = 2u * gid.y;
    let c = 2u * gid.x;
    if (r >= p.m || c >= p.n) {
        return;
    }
    // TODO: the block's other three sums (rows r, r + 1; columns c, c + 1),
    // from four loads per step, and their guarded stores.
    var c00 = 0.0;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        c00 = c00 + a[r * p.k + kk] * b[kk * p.n + c];
    }
    out[r * p.n + c] = c00;
}
