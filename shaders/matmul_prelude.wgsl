// The shared part of the f32 matmul kernels (matmul_naive.wgsl,
// matmul.wgsl, matmul_tiled.wgsl), joined in front of each at build time
// (`kernels::SHADERS`): the parameters, the options as pipeline constants,
// the bindings, and the epilogue.
//
//   C = op(A) · op(B)  [+ bias]  [ReLU]        or, with ACCUMULATE,  C += op(A) · op(B)
//
// op(A) is M×K (A stored K×M when TRANS_A), op(B) is K×N (B stored N×K when
// TRANS_B), C is M×N, bias is N; all row-major f32. MASK_A / MASK_B multiply
// an operand by [mask > 0] as it is loaded (mask has that operand's stored
// layout); BIAS_GRAD also writes dbias = Σ_k op(B)[k, :] (added to it with
// ACCUMULATE). The flags select the epilogue per dispatch; the transposes,
// masks and bias gradient are pipeline constants, so each variant compiles
// without them in its inner loop. WGX×WGY is the workgroup shape.
//
// Replicas: R products of the same shape in one dispatch (independent runs
// of one model, DESIGN.md's "many runs in one program"). Workgroup layer z
// is replica z / S, split-K slice z % S (S = 1 without split-K); replica r
// reads A at r·rep_a elements past replica 0's (and the mask with its
// operand), B at r·rep_b, the bias at r·rep_bias, and writes C at r·rep_c
// and dbias at r·rep_bias. Each output is the same sum in the same order as
// in a product of its own, so replica r's numbers equal its product alone.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    rep_a: u32,
    rep_b: u32,
    rep_c: u32,
    rep_bias: u32,
}

const BIAS: u32 = 4u;
const RELU: u32 = 8u;
const ACCUMULATE: u32 = 16u;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override MASK_A: bool = false;
override MASK_B: bool = false;
override BIAS_GRAD: bool = false;
override WGX: u32 = 8u;
override WGY: u32 = 8u;
// Split-K (matmul.wgsl and matmul_tiled.wgsl): with KC > 0, workgroup layer z
// sums only k in [z·KC, (z+1)·KC) and `store` writes raw partial sums to
// c[z·M·N + row·N + col] (the bias gradient's to dbias[z·N + col]), with no
// epilogue; matmul_reduce.wgsl adds the partials up and applies it. For
// products with few outputs and a long k, which otherwise leave a GPU idle.
override KC: u32 = 0u;
// This workgroup's layer z, its split-K slice and its replica (set by each
// entry point through `set_layer`).
var<private> layer: u32;
var<private> split_z: u32;
var<private> rep: u32;

// Split-K slices per replica (1 without split-K).
fn split_slices() -> u32 {
    if (KC == 0u) { return 1u; }
    return max(1u, (p.k + KC - 1u) / max(KC, 1u));
}

fn set_layer(z: u32) {
    layer = z;
    split_z = z % split_slices();
    rep = z / split_slices();
}

// Workgroup layer z's range [begin, end) of k: all of it, or its slice.
// It takes z rather than reading `split_z`: the tiled kernel loops over this
// range around barriers, and WGSL's uniformity analysis (Tint's, in browsers)
// counts a private variable as non-uniform but the workgroup id as uniform.
fn k_range(z: u32) -> vec2<u32> {
    if (KC == 0u) { return vec2<u32>(0u, p.k); }
    let s = z % split_slices();
    return vec2<u32>(min(p.k, s * KC), min(p.k, s * KC + KC));
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;
// Separate from `bias`: a read-only and a writable binding of one buffer (the
// parameter arena holds both W and b) cannot meet in one dispatch.
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;

// ---- the epilogue (generated kernels that store C as vec4s write their own) ----

// C[row, col] = value, through the epilogue (split-K: the raw partial sum of
// this layer, at layer·M·N); nothing outside the matrix.
fn store(row: u32, col: u32, value: f32) {
    if (row >= p.m || col >= p.n) { return; }
    if (KC > 0u) {
        c[layer * p.m * p.n + row * p.n + col] = value;
        return;
    }
    let i = rep * p.rep_c + row * p.n + col;
    var v = value;
    if ((p.flags & ACCUMULATE) != 0u) {
        v = v + c[i];
    } else {
        if ((p.flags & BIAS) != 0u) { v = v + bias[rep * p.rep_bias + col]; }
        if ((p.flags & RELU) != 0u) { v = max(v, 0.0); }
    }
    c[i] = v;
}

// dbias[col] = sum (added to it with ACCUMULATE; split-K: this layer's raw partial).
fn store_bias_grad(col: u32, sum: f32) {
    if (col >= p.n) { return; }
    if (KC > 0u) {
        dbias[layer * p.n + col] = sum;
        return;
    }
    let i = rep * p.rep_bias + col;
    var v = sum;
    if ((p.flags & ACCUMULATE) != 0u) { v = v + dbias[i]; }
    dbias[i] = v;
}
