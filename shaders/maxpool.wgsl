// Max pooling over NHWC images, the argmax kept for the backward.
//
//   forward:   y[b, oh, ow, c] = max over kh, kw < K of x[b, oh·S + kh, ow·S + kw, c]
//              arg[b, oh, ow, c] = the flat index in x of that maximum (the first, on ties)
//   backward:  dx[i] = Σ dy[o] over the outputs o whose arg[o] = i
//
// The backward gathers, so it needs no atomics and writes every element of
// dx. Each invocation takes one pixel and all its channels (forward: an
// output pixel; backward: an input pixel), so the index arithmetic is paid
// once per pixel, not per channel. The outputs whose window covers input row
// ih are oh in [lo, hi), lo = 0 if ih < K else (ih − K)/S + 1,
// hi = min(ih/S + 1, OH) (and likewise for columns): two divisions, not a
// modulo test per kernel position (integer division is slow on CPU adapters;
// see im2col.wgsl). No padding: OH = (H − K)/S + 1, OW = (W − K)/S + 1.
// Shapes: x, dx B·H·W·C; y, dy, arg B·OH·OW·C. n = B·OH·OW (forward) or
// B·H·W (backward) invocations; a grid of more than 65,535 workgroups is
// folded into two dimensions by the host.
// Bindings: 0 params, 1 out (rw: y | dx), 2 arg (u32; rw, only read by the
// backward), 3 src (read: x | dy).

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
@group(0) @binding(2) var<storage, read_write> arg: array<u32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;

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
    // x[b, oh·S, ow·S, 0]: the window's first pixel.
    let corner = ((b * p.height + oh * p.stride) * p.width + ow * p.stride) * p.channels;
    for (var c = 0u; c < p.channels; c = c + 1u) {
        var best = corner + c;
        var value = src[best];
        for (var kh = 0u; kh < p.kernel; kh = kh + 1u) {
            for (var kw = 0u; kw < p.kernel; kw = kw + 1u) {
                let at = corner + (kh * p.width + kw) * p.channels + c;
                let v = src[at];
                if (v > value) {
                    value = v;
                    best = at;
                }
            }
        }
        out[i * p.channels + c] = value;
        arg[i * p.channels + c] = best;
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
        let me = i * p.channels + c;
        var sum = 0.0;
        for (var oh = rows.x; oh < rows.y; oh = oh + 1u) {
            for (var ow = cols.x; ow < cols.y; ow = ow + 1u) {
                let o = ((b * p.out_h + oh) * p.out_w + ow) * p.channels + c;
                if (arg[o] == me) {
                    sum = sum + src[o];
                }
            }
        }
        out[me] = sum;
    }
}
