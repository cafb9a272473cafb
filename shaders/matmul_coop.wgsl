// Matrix product on the tensor cores: f16 operands, f32 accumulation, through
// 16×16×16 cooperative matrices (wgpu's EXPERIMENTAL_COOPERATIVE_MATRIX).
//
//   C = op(A) · op(B)  [+ bias]  [ReLU]        or, with ACCUMULATE,  C += op(A) · op(B)
//
// Shapes as matmul.wgsl: op(A) is M×K (A stored K×M when TRANS_A), op(B) is
// K×N (B stored N×K when TRANS_B), C is M×N in f32, bias is N in f32; A and B
// in f16. M and N must be multiples of 64 and K of 16 (the wrapper sends
// other shapes to the mixed-precision kernel), and there are no ReLU masks or
// bias gradients here. (Cooperative operations must run in uniform control
// flow, so the tiles are never skipped or clamped one by one.)
//
// One workgroup is one subgroup of 32 invocations and computes a 64×64 block
// of C as 4×4 accumulator tiles, reading op(A) and op(B) tiles straight from
// storage: per 16-wide step along k, 4 tiles of op(A) and 4 of op(B) feed 16
// tile products. The row-major tiles of a stored matrix load with
// coopLoadT, the column-major ones (a transposed operand) with coopLoad.
// Strides and offsets are bound with `let` before each cooperative load or
// store: naga 30's SPIR-V writer panics ("Expression [..] is not cached") on
// a stride or index written inline (tests/shaders_validate.rs compiles it).
// Blocks are visited in groups of GROUP block-rows (the L2 keeps a group's B
// columns while its rows pass), and the grid is folded past 65,535.
// The epilogue (bias, ReLU) runs on the stored block after a storage barrier.

enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
}

const BIAS: u32 = 4u;
const RELU: u32 = 8u;
const ACCUMULATE: u32 = 16u;
const GROUP: u32 = 8u;

override TRANS_A: bool = false;
override TRANS_B: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f16>;
@group(0) @binding(3) var<storage, read> b: array<f16>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// Tile (i, kk) of op(A): rows i..i+16, columns kk..kk+16.
fn load_a(i: u32, kk: u32) -> coop_mat16x16<f16, A> {
    let sm = p.m;
    let sk = p.k;
    if (TRANS_A) {
        let at = kk * sm + i;
        return coopLoad<coop_mat16x16<f16, A>>(&a[at], sm);
    }
    let at = i * sk + kk;
    return coopLoadT<coop_mat16x16<f16, A>>(&a[at], sk);
}

// Tile (kk, j) of op(B): rows kk..kk+16, columns j..j+16.
fn load_b(kk: u32, j: u32) -> coop_mat16x16<f16, B> {
    let sk = p.k;
    let sn = p.n;
    if (TRANS_B) {
        let at = j * sk + kk;
        return coopLoad<coop_mat16x16<f16, B>>(&b[at], sk);
    }
    let at = kk * sn + j;
    return coopLoadT<coop_mat16x16<f16, B>>(&b[at], sn);
}

// The starting value of the accumulator at (i, j): C's tile when accumulating, else zeros.
fn start(i: u32, j: u32) -> coop_mat16x16<f32, C> {
    let sn = p.n;
    if ((p.flags & ACCUMULATE) != 0u) {
        let at = i * sn + j;
        return coopLoadT<coop_mat16x16<f32, C>>(&c[at], sn);
    }
    return coop_mat16x16<f32, C>();
}

fn put(t: coop_mat16x16<f32, C>, i: u32, j: u32) {
    let sn = p.n;
    let at = i * sn + j;
    coopStoreT(t, &c[at], sn);
}

@compute @workgroup_size(32)
fn matmul_coop(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lane: u32) {
    // Block (bm, bn) of the grouped order.
    let blocks_m = (p.m + 63u) / 64u;
    let blocks_n = (p.n + 63u) / 64u;
    let pid = wid.x + wid.y * nwg.x;
    if (pid >= blocks_m * blocks_n) { return; }
    let per_group = GROUP * blocks_n;
    let first_m = (pid / per_group) * GROUP;
    let group_m = min(blocks_m - first_m, GROUP);
    let bm = first_m + (pid % per_group) % group_m;
    let bn = (pid % per_group) / group_m;
    let r0 = bm * 64u;
    let c0 = bn * 64u;
    var t00 = start(r0, c0);             var t01 = start(r0, c0 + 16u);
    var t02 = start(r0, c0 + 32u);       var t03 = start(r0, c0 + 48u);
    var t10 = start(r0 + 16u, c0);       var t11 = start(r0 + 16u, c0 + 16u);
    var t12 = start(r0 + 16u, c0 + 32u); var t13 = start(r0 + 16u, c0 + 48u);
    var t20 = start(r0 + 32u, c0);       var t21 = start(r0 + 32u, c0 + 16u);
    var t22 = start(r0 + 32u, c0 + 32u); var t23 = start(r0 + 32u, c0 + 48u);
    var t30 = start(r0 + 48u, c0);       var t31 = start(r0 + 48u, c0 + 16u);
    var t32 = start(r0 + 48u, c0 + 32u); var t33 = start(r0 + 48u, c0 + 48u);
    for (var kk = 0u; kk < p.k; kk = kk + 16u) {
        let a0 = load_a(r0, kk);
        let a1 = load_a(r0 + 16u, kk);
        let a2 = load_a(r0 + 32u, kk);
        let a3 = load_a(r0 + 48u, kk);
        let b0 = load_b(kk, c0);
        let b1 = load_b(kk, c0 + 16u);
        let b2 = load_b(kk, c0 + 32u);
        let b3 = load_b(kk, c0 + 48u);
        t00 = coopMultiplyAdd(a0, b0, t00); t01 = coopMultiplyAdd(a0, b1, t01);
        t02 = coopMultiplyAdd(a0, b2, t02); t03 = coopMultiplyAdd(a0, b3, t03);
        t10 = coopMultiplyAdd(a1, b0, t10); t11 = coopMultiplyAdd(a1, b1, t11);
        t12 = coopMultiplyAdd(a1, b2, t12); t13 = coopMultiplyAdd(a1, b3, t13);
        t20 = coopMultiplyAdd(a2, b0, t20); t21 = coopMultiplyAdd(a2, b1, t21);
        t22 = coopMultiplyAdd(a2, b2, t22); t23 = coopMultiplyAdd(a2, b3, t23);
        t30 = coopMultiplyAdd(a3, b0, t30); t31 = coopMultiplyAdd(a3, b1, t31);
        t32 = coopMultiplyAdd(a3, b2, t32); t33 = coopMultiplyAdd(a3, b3, t33);
    }
    put(t00, r0, c0);             put(t01, r0, c0 + 16u);
    put(t02, r0, c0 + 32u);       put(t03, r0, c0 + 48u);
    put(t10, r0 + 16u, c0);       put(t11, r0 + 16u, c0 + 16u);
    put(t12, r0 + 16u, c0 + 32u); put(t13, r0 + 16u, c0 + 48u);
    put(t20, r0 + 32u, c0);       put(t21, r0 + 32u, c0 + 16u);
    put(t22, r0 + 32u, c0 + 32u); put(t23, r0 + 32u, c0 + 48u);
    put(t30, r0 + 48u, c0);       put(t31, r0 + 48u, c0 + 16u);
    put(t32, r0 + 48u, c0 + 32u); put(t33, r0 + 48u, c0 + 48u);
    // Epilogue on this workgroup's own block, once the tiles are in memory.
    if ((p.flags & (BIAS | RELU)) != 0u && (p.flags & ACCUMULATE) == 0u) {
        storageBarrier();
        for (var e = lane; e < 64u * 64u; e = e + 32u) {
            let row = r0 + e / 64u;
            let col = c0 + e % 64u;
            let at = row * p.n + col;
            var v = c[at];
            if ((p.flags & BIAS) != 0u) { v = v + bias[col]; }
            if ((p.flags & RELU) != 0u) { v = max(v, 0.0); }
            c[at] = v;
        }
    }
}

// ---- matmul_coop_staged: several subgroups per workgroup, operands staged
// through workgroup memory.
//
// A workgroup of 128 invocations (four subgroups of 32; the wrapper uses this
// entry only where the adapter's subgroups are exactly 32 wide) computes a
// 128×128 block of C, each subgroup a 64×64 quarter as above. Per 32-wide
// step along k the whole workgroup stages op(A)[block rows, k..k+32] (128×32)
// and op(B)[k..k+32, block columns] (32×128) in workgroup memory, neighbouring
// invocations reading neighbouring addresses; each subgroup then loads its
// tiles from there, so every operand element is read from storage once per
// workgroup instead of once per subgroup. M and N must be multiples of 128,
// K of 32.

const SBK: u32 = 32u;
var<workgroup> sa: array<f16, 4096>; // op(A) slice, row-major 128 × SBK
var<workgroup> sb: array<f16, 4096>; // op(B) slice, row-major SBK × 128

fn tile_sa(row: u32, kk: u32) -> coop_mat16x16<f16, A> {
    let at = row * SBK + kk;
    let stride = SBK;
    return coopLoadT<coop_mat16x16<f16, A>>(&sa[at], stride);
}

fn tile_sb(kk: u32, col: u32) -> coop_mat16x16<f16, B> {
    let at = kk * 128u + col;
    let stride = 128u;
    return coopLoadT<coop_mat16x16<f16, B>>(&sb[at], stride);
}

@compute @workgroup_size(128)
fn matmul_coop_staged(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lane: u32) {
    let blocks_m = p.m / 128u;
    let blocks_n = p.n / 128u;
    let pid = wid.x + wid.y * nwg.x;
    if (pid >= blocks_m * blocks_n) { return; }
    let per_group = GROUP * blocks_n;
    let first_m = (pid / per_group) * GROUP;
    let group_m = min(blocks_m - first_m, GROUP);
    let row0 = (first_m + (pid % per_group) % group_m) * 128u;
    let col0 = ((pid % per_group) / group_m) * 128u;
    // This subgroup's 64×64 quarter, in block and in C coordinates.
    let sg = lane / 32u;
    let qr = (sg / 2u) * 64u;
    let qc = (sg % 2u) * 64u;
    let r0 = row0 + qr;
    let c0 = col0 + qc;
    var t00 = start(r0, c0);             var t01 = start(r0, c0 + 16u);
    var t02 = start(r0, c0 + 32u);       var t03 = start(r0, c0 + 48u);
    var t10 = start(r0 + 16u, c0);       var t11 = start(r0 + 16u, c0 + 16u);
    var t12 = start(r0 + 16u, c0 + 32u); var t13 = start(r0 + 16u, c0 + 48u);
    var t20 = start(r0 + 32u, c0);       var t21 = start(r0 + 32u, c0 + 16u);
    var t22 = start(r0 + 32u, c0 + 32u); var t23 = start(r0 + 32u, c0 + 48u);
    var t30 = start(r0 + 48u, c0);       var t31 = start(r0 + 48u, c0 + 16u);
    var t32 = start(r0 + 48u, c0 + 32u); var t33 = start(r0 + 48u, c0 + 48u);
    for (var k0 = 0u; k0 < p.k; k0 = k0 + SBK) {
        for (var e = lane; e < 128u * SBK; e = e + 128u) {
            if (TRANS_A) {
                let r = e % 128u;
                let kk = e / 128u;
                sa[r * SBK + kk] = a[(k0 + kk) * p.m + row0 + r];
            } else {
                let r = e / SBK;
                let kk = e % SBK;
                sa[r * SBK + kk] = a[(row0 + r) * p.k + k0 + kk];
            }
            if (TRANS_B) {
                let kk = e % SBK;
                let cc = e / SBK;
                sb[kk * 128u + cc] = b[(col0 + cc) * p.k + k0 + kk];
            } else {
                let cc = e % 128u;
                let kk = e / 128u;
                sb[kk * 128u + cc] = b[(k0 + kk) * p.n + col0 + cc];
            }
        }
        workgroupBarrier();
        for (var ks = 0u; ks < SBK; ks = ks + 16u) {
            let a0 = tile_sa(qr, ks);
            let a1 = tile_sa(qr + 16u, ks);
            let a2 = tile_sa(qr + 32u, ks);
            let a3 = tile_sa(qr + 48u, ks);
            let b0 = tile_sb(ks, qc);
            let b1 = tile_sb(ks, qc + 16u);
            let b2 = tile_sb(ks, qc + 32u);
            let b3 = tile_sb(ks, qc + 48u);
            t00 = coopMultiplyAdd(a0, b0, t00); t01 = coopMultiplyAdd(a0, b1, t01);
            t02 = coopMultiplyAdd(a0, b2, t02); t03 = coopMultiplyAdd(a0, b3, t03);
            t10 = coopMultiplyAdd(a1, b0, t10); t11 = coopMultiplyAdd(a1, b1, t11);
            t12 = coopMultiplyAdd(a1, b2, t12); t13 = coopMultiplyAdd(a1, b3, t13);
            t20 = coopMultiplyAdd(a2, b0, t20); t21 = coopMultiplyAdd(a2, b1, t21);
            t22 = coopMultiplyAdd(a2, b2, t22); t23 = coopMultiplyAdd(a2, b3, t23);
            t30 = coopMultiplyAdd(a3, b0, t30); t31 = coopMultiplyAdd(a3, b1, t31);
            t32 = coopMultiplyAdd(a3, b2, t32); t33 = coopMultiplyAdd(a3, b3, t33);
        }
        workgroupBarrier();
    }
    put(t00, r0, c0);             put(t01, r0, c0 + 16u);
    put(t02, r0, c0 + 32u);       put(t03, r0, c0 + 48u);
    put(t10, r0 + 16u, c0);       put(t11, r0 + 16u, c0 + 16u);
    put(t12, r0 + 16u, c0 + 32u); put(t13, r0 + 16u, c0 + 48u);
    put(t20, r0 + 32u, c0);       put(t21, r0 + 32u, c0 + 16u);
    put(t22, r0 + 32u, c0 + 32u); put(t23, r0 + 32u, c0 + 48u);
    put(t30, r0 + 48u, c0);       put(t31, r0 + 48u, c0 + 16u);
    put(t32, r0 + 48u, c0 + 32u); put(t33, r0 + 48u, c0 + 48u);
    if ((p.flags & (BIAS | RELU)) != 0u && (p.flags & ACCUMULATE) == 0u) {
        storageBarrier();
        for (var e = lane; e < 128u * 128u; e = e + 128u) {
            let at = (row0 + e / 128u) * p.n + col0 + e % 128u;
            var v = c[at];
            if ((p.flags & BIAS) != 0u) { v = v + bias[col0 + e % 128u]; }
            if ((p.flags & RELU) != 0u) { v = max(v, 0.0); }
            c[at] = v;
        }
    }
}
