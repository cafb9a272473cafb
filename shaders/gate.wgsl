// The gate of a mixture of experts: a softmax over the E experts of each row,
// or DSelect-k's differentiable selection of k of them.
//
//   gate:          g[b,e] = exp(x[b,e] - m_b) / Σ_j exp(x[b,j] - m_b),  m_b = max_j x[b,j]
//   gate_backward: dx[b,e] = g[b,e] (dg[b,e] - Σ_j g[b,j] dg[b,j])
//
// (the softmax's Jacobian, diag(g) - g gᵀ, applied to dg without forming it).
//
// DSelect-k (Hazimeh et al., NeurIPS 2021; as LibMTL's DSelect_k, γ = 1):
// E = 2^m experts, k selectors. Row b of x holds k·m selector logits
// z[i, j] = x[b, i·m + j] and then k weight logits v_i = x[b, k·m + i]:
//
//   S(t) = 0 (t ≤ −γ/2),  1 (t ≥ γ/2),  −2t³/γ³ + 3t/(2γ) + ½ otherwise
//   r_i(e) = Π_j (S(z_ij) if bit j of e's m-bit code is 1, else 1 − S(z_ij))
//   α = softmax(v),   g[b,e] = Σ_i α_i r_i(e)
//
// Bit j is the code's j-th digit from the most significant (numpy's
// binary_repr, as LibMTL). Each r_i sums to 1 over the E codes, so g does.
//   dselect_backward: dv_i = α_i (Σ_e dg_e r_i(e) − Σ_l α_l Σ_e dg_e r_l(e))
//                     dz_ij = α_i Σ_e dg_e (±S'(z_ij)) Π_{j'≠j} (factor j')
// with S'(t) = 3/(2γ) − 6t²/γ³ inside (−γ/2, γ/2) and 0 outside.
//
// Shapes: x, g, dg, dx all B×E, row-major, for the softmax; for DSelect-k x
// and dx are B×(k·m + k), g and dg B×E. One invocation per row (E is the
// number of experts, a handful): the row's max, sum and dot are a short loop.
// A grid of more than 65,535 workgroups is folded into two dimensions by the
// host; every invocation guards b < B.
//
// Bindings: 0 params, 1 out (g or dx, read_write), 2 a (x, or g; x for
// dselect_backward), 3 c (dg).

struct Params {
    rows: u32,
    experts: u32,
    selected: u32, // DSelect-k's k
    bits: u32,     // DSelect-k's m = log2 E
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;

fn row_index(wid: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

// out = g, a = x
@compute @workgroup_size(WG)
fn gate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = row_index(wid, lid, nwg);
    if (b >= p.rows) { return; }
    let e = p.experts;
    let base = b * e;
    var m = a[base];
    for (var j = 1u; j < e; j = j + 1u) { m = max(m, a[base + j]); }
    var s = 0.0;
    for (var j = 0u; j < e; j = j + 1u) {
        let v = exp(a[base + j] - m);
        out[base + j] = v;
        s = s + v;
    }
    for (var j = 0u; j < e; j = j + 1u) { out[base + j] = out[base + j] / s; }
}

// out = dx, a = g, c = dg
@compute @workgroup_size(WG)
fn gate_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = row_index(wid, lid, nwg);
    if (b >= p.rows) { return; }
    let e = p.experts;
    let base = b * e;
    var dot = 0.0;
    for (var j = 0u; j < e; j = j + 1u) { dot = dot + a[base + j] * c[base + j]; }
    for (var j = 0u; j < e; j = j + 1u) { out[base + j] = a[base + j] * (c[base + j] - dot); }
}

const GAMMA: f32 = 1.0;

fn smooth_step(t: f32) -> f32 {
    if (t <= -GAMMA / 2.0) { return 0.0; }
    if (t >= GAMMA / 2.0) { return 1.0; }
    return -2.0 / (GAMMA * GAMMA * GAMMA) * t * t * t + 3.0 / (2.0 * GAMMA) * t + 0.5;
}

fn smooth_step_grad(t: f32) -> f32 {
    if (t <= -GAMMA / 2.0 || t >= GAMMA / 2.0) { return 0.0; }
    return 3.0 / (2.0 * GAMMA) - 6.0 / (GAMMA * GAMMA * GAMMA) * t * t;
}

// Selector i's factor for bit j of expert e's code.
fn selector_factor(base: u32, i: u32, j: u32, e: u32) -> f32 {
    let s = smooth_step(a[base + i * p.bits + j]);
    if (((e >> (p.bits - 1u - j)) & 1u) == 1u) { return s; }
    return 1.0 - s;
}

fn selector(base: u32, i: u32, e: u32) -> f32 {
    var r = 1.0;
    for (var j = 0u; j < p.bits; j = j + 1u) { r = r * selector_factor(base, i, j, e); }
    return r;
}

// α = softmax of the row's k weight logits, into `alpha`.
var<private> alpha: array<f32, 16>;

fn selector_weights(base: u32) {
    let v = base + p.selected * p.bits;
    var m = a[v];
    for (var i = 1u; i < p.selected; i = i + 1u) { m = max(m, a[v + i]); }
    var s = 0.0;
    for (var i = 0u; i < p.selected; i = i + 1u) { alpha[i] = exp(a[v + i] - m); s = s + alpha[i]; }
    for (var i = 0u; i < p.selected; i = i + 1u) { alpha[i] = alpha[i] / s; }
}

// out = g (B×E), a = x (B×(k·m + k))
@compute @workgroup_size(WG)
fn dselect(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = row_index(wid, lid, nwg);
    if (b >= p.rows) { return; }
    let base = b * (p.selected * p.bits + p.selected);
    selector_weights(base);
    for (var e = 0u; e < p.experts; e = e + 1u) {
        var g = 0.0;
        for (var i = 0u; i < p.selected; i = i + 1u) { g = g + alpha[i] * selector(base, i, e); }
        out[b * p.experts + e] = g;
    }
}

// out = dx (B×(k·m + k)), a = x, c = dg (B×E)
@compute @workgroup_size(WG)
fn dselect_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = row_index(wid, lid, nwg);
    if (b >= p.rows) { return; }
    let width = p.selected * p.bits + p.selected;
    let base = b * width;
    let gb = b * p.experts;
    selector_weights(base);
    // dα_i = Σ_e dg_e r_i(e), then through the softmax.
    var dalpha: array<f32, 16>;
    var dot = 0.0;
    for (var i = 0u; i < p.selected; i = i + 1u) {
        var s = 0.0;
        for (var e = 0u; e < p.experts; e = e + 1u) { s = s + c[gb + e] * selector(base, i, e); }
        dalpha[i] = s;
        dot = dot + alpha[i] * s;
    }
    for (var i = 0u; i < p.selected; i = i + 1u) {
        out[base + p.selected * p.bits + i] = alpha[i] * (dalpha[i] - dot);
    }
    // dz_ij = α_i Σ_e dg_e ∂r_i(e)/∂z_ij.
    for (var i = 0u; i < p.selected; i = i + 1u) {
        for (var j = 0u; j < p.bits; j = j + 1u) {
            let ds = smooth_step_grad(a[base + i * p.bits + j]);
            var s = 0.0;
            for (var e = 0u; e < p.experts; e = e + 1u) {
                var rest = 1.0;
                for (var q = 0u; q < p.bits; q = q + 1u) {
                    if (q != j) { rest = rest * selector_factor(base, i, q, e); }
                }
                var sign = -1.0;
                if (((e >> (p.bits - 1u - j)) & 1u) == 1u) { sign = 1.0; }
                s = s + c[gb + e] * sign * rest;
            }
            out[base + i * p.bits + j] = alpha[i] * ds * s;
        }
    }
}
