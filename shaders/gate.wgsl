// The gate of a mixture of experts: a softmax over the E experts of each row.
//
//   gate:          g[b,e] = exp(x[b,e] - m_b) / Σ_j exp(x[b,j] - m_b),  m_b = max_j x[b,j]
//   gate_backward: dx[b,e] = g[b,e] (dg[b,e] - Σ_j g[b,j] dg[b,j])
//
// (the softmax's Jacobian, diag(g) - g gᵀ, applied to dg without forming it).
//
// Shapes: x, g, dg, dx all B×E, row-major. One invocation per row (E is the
// number of experts, a handful): the row's max, sum and dot are a short loop.
// A grid of more than 65,535 workgroups is folded into two dimensions by the
// host; every invocation guards b < B.
//
// Bindings: 0 params, 1 out (g or dx, read_write), 2 a (x, or g), 3 c (dg).

struct Params {
    rows: u32,
    experts: u32,
    _pad0: u32,
    _pad1: u32,
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
