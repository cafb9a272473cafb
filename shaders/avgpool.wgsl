// Average pooling over NHWC images, and its backward.
//
//   forward:   y[b, oh, ow, c] = (1/K²) Σ over kh, kw < K of x[b, oh·S + kh, ow·S + kw, c]
//   backward:  dx[b, ih, iw, c] = (1/K²) Σ dy[b, oh, ow, c] over the windows that cover (ih, iw)
//
// The backward gathers, so it needs no atomics and writes every element of
// dx. As in maxpool.wgsl, each invocation takes one pixel and all its
// channels, and the windows covering an input pixel are found as an
// interval. No padding: OH = (H − K)/S + 1.
// Shapes: x, dx B·H·W·C; y, dy B·OH·OW·C. n = B·OH·OW (forward) or B·H·W
// (backward) invocations; a grid of more than 65,535 workgroups is folded
// into two dimensions by the host.
// Bindings: 0 params, 1 out (rw: y | dx), 2 src (read: x | dy).

struct Params {
    batch: u32,
    height: u32,
    width: u32,
    channels: u32,
    kernel: u32,
    stride: u32,
    pad: u32, // always 0: pooling takes no padding (the Params of im2col.wgsl)
    out_h: u32,
    out_w: u32,
    n: u32,
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

fn flat_index(wid: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

// The outputs along one axis whose window covers input position `at`: [lo, hi).
fn covering(at: u32, count: u32) -> vec2<u32> {
    var lo = 0u;
    if (at >= p.kernel) {
        lo = (at - p.kernel) / p.stride + 1u;
    }
    return vec2<u32>(lo, min(at / p.stride + 1u, count));
}

@compute @workgroup_size(WG)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(wid, lid, nwg);
    if (i >= p.n) {
        return;
    }
    let ow = i % p.out_w;
    let rest = i / p.out_w;
    let oh = rest % p.out_h;
    let b = rest / p.out_h;
    let corner = ((b * p.height + oh * p.stride) * p.width + ow * p.stride) * p.channels;
    for (var c = 0u; c < p.channels; c = c + 1u) {
        var sum = 0.0;
        for (var kh = 0u; kh < p.kernel; kh = kh + 1u) {
            for (var kw = 0u; kw < p.kernel; kw = kw + 1u) {
                sum = sum + src[corner + (kh * p.width + kw) * p.channels + c];
            }
        }
        out[i * p.channels + c] = sum / f32(p.kernel * p.kernel);
    }
}

@compute @workgroup_size(WG)
fn backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(wid, lid, nwg);
    if (i >= p.n) {
        return;
    }
    let iw = i % p.width;
    let rest = i / p.width;
    let ih = rest % p.height;
    let b = rest / p.height;
    let rows = covering(ih, p.out_h);
    let cols = covering(iw, p.out_w);
    for (var c = 0u; c < p.channels; c = c + 1u) {
        var sum = 0.0;
        for (var oh = rows.x; oh < rows.y; oh = oh + 1u) {
            for (var ow = cols.x; ow < cols.y; ow = ow + 1u) {
                sum = sum + src[((b * p.out_h + oh) * p.out_w + ow) * p.channels + c];
            }
        }
        out[i * p.channels + c] = sum / f32(p.kernel * p.kernel);
    }
}
