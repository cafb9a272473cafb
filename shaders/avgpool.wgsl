// Average pooling over NHWC images, and its backward.
//
//   forward:   y[b, oh, ow, c] = (1/K²) Σ over kh, kw < K of x[b, oh·S + kh, ow·S + kw, c]
//   backward:  dx[b, ih, iw, c] = (1/K²) Σ dy[b, oh, ow, c] over the windows that cover (ih, iw)
//
// The backward gathers (one invocation per input element), so it needs no
// atomics and writes every element of dx. No padding: OH = (H − K)/S + 1.
// Shapes: x, dx B·H·W·C; y, dy B·OH·OW·C. One invocation per output
// (forward) or per input element (backward); a grid of more than 65,535
// workgroups is folded into two dimensions by the host.
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
    let c = i % p.channels;
    let r = i / p.channels;
    let ow = r % p.out_w;
    let rest = r / p.out_w;
    let oh = rest % p.out_h;
    let b = rest / p.out_h;
    var sum = 0.0;
    for (var kh = 0u; kh < p.kernel; kh = kh + 1u) {
        for (var kw = 0u; kw < p.kernel; kw = kw + 1u) {
            let ih = oh * p.stride + kh;
            let iw = ow * p.stride + kw;
            sum = sum + src[((b * p.height + ih) * p.width + iw) * p.channels + c];
        }
    }
    out[i] = sum / f32(p.kernel * p.kernel);
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
    let c = i % p.channels;
    let rest = i / p.channels;
    let iw = rest % p.width;
    let rest2 = rest / p.width;
    let ih = rest2 % p.height;
    let b = rest2 / p.height;
    var sum = 0.0;
    for (var kh = 0u; kh < p.kernel; kh = kh + 1u) {
        if (ih < kh || (ih - kh) % p.stride != 0u) {
            continue;
        }
        let oh = (ih - kh) / p.stride;
        if (oh >= p.out_h) {
            continue;
        }
        for (var kw = 0u; kw < p.kernel; kw = kw + 1u) {
            if (iw < kw || (iw - kw) % p.stride != 0u) {
                continue;
            }
            let ow = (iw - kw) / p.stride;
            if (ow >= p.out_w) {
                continue;
            }
            sum = sum + src[((b * p.out_h + oh) * p.out_w + ow) * p.channels + c];
        }
    }
    out[i] = sum / f32(p.kernel * p.kernel);
}
