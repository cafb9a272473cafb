// A 2-D convolution as one matrix product: im2col lays out, for every output
// pixel, the K×K×C input patch it reads as one row; the convolution is then
// cols · W (+ bias) by the matmul kernels, and col2im (im2col's adjoint) is
// its backward. Images are NHWC: x[b, h, w, c] at ((b·H + h)·W + w)·C + c.
//
//   im2col:  cols[r, j] = x[b, oh·S − P + kh, ow·S − P + kw, c]   (0 outside the image)
//            r = (b·OH + oh)·OW + ow,   j = (kh·K + kw)·C + c
//            OH = (H + 2P − K)/S + 1,   OW = (W + 2P − K)/S + 1
//   conv:    y = cols · W + bias, W (K·K·C) × O: y is (B·OH·OW) × O, the NHWC output
//   col2im:  dx[b, ih, iw, c] = Σ dcols[r, j] over the (oh, ow) whose patch
//            covers (ih, iw), with kh = ih + P − oh·S and kw = iw + P − ow·S
//
// Layout of the work. For a fixed (r, kh) the K·C entries j = (kh·K + kw)·C + c
// are contiguous in cols and, over the image, contiguous in x too (one row of
// the patch, all channels); so im2col gives each invocation one (r, kh) and
// copies that run with no index arithmetic inside the loop. col2im gives each
// invocation one input pixel (b, ih, iw) and all its channels; the output rows
// that cover ih are an interval, oh in [lo, hi) with
//     lo = 0 if ih + P < K, else (ih + P − K)/S + 1;   hi = min((ih + P)/S + 1, OH)
// (and likewise for ow), found with two divisions rather than a modulo test
// per kernel position. On a CPU adapter integer division is not vectorised,
// and this layout took im2col and col2im from 28% of a W-lenet step's kernel
// time to 12% on lavapipe (BENCHMARKS.md, "Images").
//
// col2im gathers, so it needs no atomics and writes every element of dx: an
// overwrite, as a backward contribution must be.
//
// Shapes: x B·H·W·C; cols (B·OH·OW) × (K·K·C). One invocation per (r, kh)
// (im2col, n = B·OH·OW·K) or per input pixel (col2im, n = B·H·W); a grid of
// more than 65,535 workgroups is folded into two dimensions by the host.
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

// The outputs along one axis whose window (K wide, S apart) covers position
// `at` of the padded input: [lo, hi), empty when lo >= hi.
fn covering(at: u32, count: u32) -> vec2<u32> {
    var lo = 0u;
    if (at >= p.kernel) {
        lo = (at - p.kernel) / p.stride + 1u;
    }
    return vec2<u32>(lo, min(at / p.stride + 1u, count));
}

// ANCHOR: im2col
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
    let kh = i % p.kernel;
    let r = i / p.kernel;
    let ow = r % p.out_w;
    let rest = r / p.out_w;
    let oh = rest % p.out_h;
    let b = rest / p.out_h;
    let run = p.kernel * p.channels;
    let dest = i * run; // = r·K·K·C + kh·K·C
    let ih = i32(oh * p.stride + kh) - i32(p.pad);
    let row_inside = ih >= 0 && ih < i32(p.height);
    let iw0 = i32(ow * p.stride) - i32(p.pad);
    // x[b, ih, iw0, 0], as a signed offset (iw0 may be negative).
    let start = i32((b * p.height + u32(max(ih, 0))) * p.width * p.channels) + iw0 * i32(p.channels);
    for (var kw = 0u; kw < p.kernel; kw = kw + 1u) {
        let iw = iw0 + i32(kw);
        let inside = row_inside && iw >= 0 && iw < i32(p.width);
        for (var c = 0u; c < p.channels; c = c + 1u) {
            var v = 0.0;
            if (inside) {
                v = src[u32(start + i32(kw * p.channels + c))];
            }
            out[dest + kw * p.channels + c] = v;
        }
    }
}
// ANCHOR_END: im2col

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
    let iw = i % p.width;
    let rest = i / p.width;
    let ih = rest % p.height;
    let b = rest / p.height;
    let rows = covering(ih + p.pad, p.out_h);
    let cols = covering(iw + p.pad, p.out_w);
    let width_cols = p.kernel * p.kernel * p.channels;
    for (var c = 0u; c < p.channels; c = c + 1u) {
        var sum = 0.0;
        for (var oh = rows.x; oh < rows.y; oh = oh + 1u) {
            let kh = ih + p.pad - oh * p.stride;
            for (var ow = cols.x; ow < cols.y; ow = ow + 1u) {
                let kw = iw + p.pad - ow * p.stride;
                let r = (b * p.out_h + oh) * p.out_w + ow;
                sum = sum + src[r * width_cols + (kh * p.kernel + kw) * p.channels + c];
            }
        }
        out[i * p.channels + c] = sum;
    }
}
