// The gated mixture of E experts' outputs, each H wide:
//
//   mixture:          out[b,h] = Σ_e g[b,e] · Z[b, e·H + h]
//   mixture_backward: dZ[b, e·H + h] = g[b,e] · dout[b,h]
//                     dg[b,e]        = Σ_h Z[b, e·H + h] · dout[b,h]
//
// The backward is one pass: each invocation owns one (b, e) and writes that
// expert's H gradients and its gate gradient, reading its H values of Z and
// the row's dout once. No B×E×H intermediate beyond Z itself (the experts'
// one matmul writes Z as B×(E·H), row-major, expert after expert).
//
// Shapes: g B×E, Z B×(E·H), out/dout B×H, dZ B×(E·H), dg B×E.
// Forward: one invocation per (b, h); backward: one per (b, e). A grid of more
// than 65,535 workgroups is folded into two dimensions by the host.
//
// Bindings: 0 params, 1 out (read_write), 2 g, 3 z, 4 dout, 5 dz (read_write,
// backward only). Forward: out = mixture; backward: out = dg, and dz.

struct Params {
    rows: u32,
    experts: u32,
    width: u32,
    _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> z: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> dz: array<f32>;

fn flat_index(wid: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

@compute @workgroup_size(WG)
fn mixture(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    let hw = p.width;
    if (i >= p.rows * hw) { return; }
    let b = i / hw;
    let h = i % hw;
    let e = p.experts;
    var s = 0.0;
    for (var j = 0u; j < e; j = j + 1u) {
        s = s + g[b * e + j] * z[(b * e + j) * hw + h];
    }
    out[i] = s;
}

@compute @workgroup_size(WG)
fn mixture_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    let e = p.experts;
    if (i >= p.rows * e) { return; }
    let b = i / e;
    let hw = p.width;
    let gate = g[i];
    var dg = 0.0;
    for (var h = 0u; h < hw; h = h + 1u) {
        let d = dout[b * hw + h];
        dz[i * hw + h] = gate * d;
        dg = dg + z[i * hw + h] * d;
    }
    out[i] = dg;
}
