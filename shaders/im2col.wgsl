// A 2-D convolution as one matrix product: im2col lays out, for every output
// pixel, the K×K×C input patch it reads as one row; the convolution is then
// cols · W (+ bias) by the matmul kernels, and col2im (im2col's adjoint) is
// its backward. Images are NHWC: x[b, h, w, c] at ((b·H + h)·W + w)·C + c.
//
//   im2col:  cols[r, j] = x[b, oh·S − P + kh, ow·S − P + kw, c]   (0 outside the image)
//            r = (b·OH + oh)·OW + ow,   j = (kh·K + kw)·C + c
//            OH = (H + 2P − K)/S + 1,   OW = (W + 2P − K)/S + 1
//   conv:    y = cols · W + bias, W (K·K·C) × O: y is (B·OH·OW) × O, the NHWC output
//   col2im:  dx[b, ih, iw, c] = Σ dcols[r, j] over the (kh, kw) whose patch
//            covers (ih, iw): oh = (ih + P − kh)/S and ow = (iw + P − kw)/S
//            whole numbers inside the output
//
// col2im gathers (one invocation per input element, summing the at most K²
// patch entries that read it), so it needs no atomics and writes every
// element of dx: an overwrite, as a backward contribution must be.
//
// Shapes: x B·H·W·C; cols (B·OH·OW) × (K·K·C). One invocation per output
// element (im2col: a cols entry; col2im: an x entry); a grid of more than
// 65,535 workgroups is folded into two dimensions by the host.
// Bindings: 0 params, 1 out (rw: cols | dx), 2 in (read: x | dcols).

struct Params {
    batch: u32,
    height: u32,
    width: u32,
    channels: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
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
fn im2col(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(wid, lid, nwg);
    if (i >= p.n) {
        return;
    }
    let width_cols = p.kernel * p.kernel * p.channels;
    let j = i % width_cols;
    let r = i / width_cols;
    let c = j % p.channels;
    let kk = j / p.channels;
    let kw = kk % p.kernel;
    let kh = kk / p.kernel;
    let ow = r % p.out_w;
    let rest = r / p.out_w;
    let oh = rest % p.out_h;
    let b = rest / p.out_h;
    let ih = i32(oh * p.stride + kh) - i32(p.pad);
    let iw = i32(ow * p.stride + kw) - i32(p.pad);
    var v = 0.0;
    if (ih >= 0 && iw >= 0 && ih < i32(p.height) && iw < i32(p.width)) {
        v = src[((b * p.height + u32(ih)) * p.width + u32(iw)) * p.channels + c];
    }
    out[i] = v;
}

@compute @workgroup_size(WG)
fn col2im(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(wid, lid, nwg);
    if (i >= p.n) {
        return;
    }
    let width_cols = p.kernel * p.kernel * p.channels;
    let c = i % p.channels;
    let rest = i / p.channels;
    let iw = rest % p.width;
    let rest2 = rest / p.width;
    let ih = rest2 % p.height;
    let b = rest2 / p.height;
    var sum = 0.0;
    for (var kh = 0u; kh < p.kernel; kh = kh + 1u) {
        let nh = i32(ih + p.pad) - i32(kh);
        if (nh < 0 || nh % i32(p.stride) != 0) {
            continue;
        }
        let oh = u32(nh) / p.stride;
        if (oh >= p.out_h) {
            continue;
        }
        for (var kw = 0u; kw < p.kernel; kw = kw + 1u) {
            let nw = i32(iw + p.pad) - i32(kw);
            if (nw < 0 || nw % i32(p.stride) != 0) {
                continue;
            }
            let ow = u32(nw) / p.stride;
            if (ow >= p.out_w) {
                continue;
            }
            let r = (b * p.out_h + oh) * p.out_w + ow;
            let j = (kh * p.kernel + kw) * p.channels + c;
            sum = sum + src[r * width_cols + j];
        }
    }
    out[i] = sum;
}
