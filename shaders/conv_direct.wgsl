// A 2-D convolution over NHWC images computed directly: the implicit GEMM.
// im2col.wgsl writes the patch matrix cols ((B·OH·OW) × (K·K·C)) and the
// matmul multiplies it by W; here no patch matrix exists: each product reads
// the image where im2col would have copied from it.
//
//   forward:      y[r, o] = act(b[o] + Σ_j x(r, j) · w[j, o])
//   weight_grad:  dw[j, o] = Σ_r x(r, j) · dz[r, o]
//   bias_grad:    db[o]    = Σ_r dz[r, o]
//   input_grad:   dx[b, ih, iw, c] = Σ_{kh, kw, o} dz[(b, oh, ow), o] · w[(kh·K + kw)·C + c, o]
//                 over the (oh, ow) with oh·S − P + kh = ih and ow·S − P + kw = iw
//
// where r = (b, oh, ow) is an output pixel, j = (kh, kw, c) a patch entry,
// x(r, j) = x[b, oh·S − P + kh, ow·S − P + kw, c] (zero outside the image),
// act is ReLU or the identity, and dz = dy ⊙ [y > 0] with the ReLU (read
// from y), dy without it.
// Shapes: x, dx B·H·W·C; w, dw (K·K·C) × O; b, db O; y, dy (B·OH·OW) × O.
// One invocation per (output pixel, block of 4 output channels) forward,
// per (j, o) for dw, per o for db, per input element for dx; a grid of more
// than 65,535 workgroups is folded into two dimensions by the host.
// Bindings: 0 params; 1 out (rw: y | dw | db | dx); 2 a (read: x | x | dy | dy);
// 3 bmat (read: w | dy | y | y); 4 c (read: b | y | — | w). An unused
// binding is bound to a one-element buffer.

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
    out_channels: u32,
    relu: u32,
    n: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> bmat: array<f32>;
@group(0) @binding(4) var<storage, read> c: array<f32>;

fn flat_index(wid: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

// y[r, o..o+4]: each x value read once for four output channels.
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
    let o_blocks = (p.out_channels + 3u) / 4u;
    let o0 = (i % o_blocks) * 4u;
    let r = i / o_blocks;
    let ow = r % p.out_w;
    let oh = (r / p.out_w) % p.out_h;
    let b = r / (p.out_w * p.out_h);
    let o_n = p.out_channels;
    var acc = vec4<f32>(0.0);
    for (var kh = 0u; kh < p.kernel; kh = kh + 1u) {
        let ih = i32(oh * p.stride + kh) - i32(p.pad);
        if (ih < 0 || ih >= i32(p.height)) {
            continue;
        }
        for (var kw = 0u; kw < p.kernel; kw = kw + 1u) {
            let iw = i32(ow * p.stride + kw) - i32(p.pad);
            if (iw < 0 || iw >= i32(p.width)) {
                continue;
            }
            let xb = ((b * p.height + u32(ih)) * p.width + u32(iw)) * p.channels;
            let jb = (kh * p.kernel + kw) * p.channels;
            for (var ch = 0u; ch < p.channels; ch = ch + 1u) {
                let xv = a[xb + ch];
                let wrow = (jb + ch) * o_n + o0;
                var wv = vec4<f32>(0.0);
                for (var q = 0u; q < 4u; q = q + 1u) {
                    if (o0 + q < o_n) {
                        wv[q] = bmat[wrow + q];
                    }
                }
                acc = acc + xv * wv;
            }
        }
    }
    for (var q = 0u; q < 4u; q = q + 1u) {
        if (o0 + q < o_n) {
            var v = acc[q] + c[o0 + q];
            if (p.relu != 0u) {
                v = max(v, 0.0);
            }
            out[r * o_n + o0 + q] = v;
        }
    }
}

// dz[r, o]: dy, masked by y > 0 with the fused ReLU.
fn dz(bind_dy_in_a: bool, r: u32, o: u32) -> f32 {
    let at = r * p.out_channels + o;
    var g = 0.0;
    if (bind_dy_in_a) {
        g = a[at];
        if (p.relu != 0u && bmat[at] <= 0.0) {
            g = 0.0;
        }
    } else {
        g = bmat[at];
        if (p.relu != 0u && c[at] <= 0.0) {
            g = 0.0;
        }
    }
    return g;
}

// dw[j, o] = Σ_r x(r, j) dz[r, o]: a reduction over every output pixel.
// Bindings: a = x, bmat = dy, c = y.
@compute @workgroup_size(WG)
fn weight_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(wid, lid, nwg);
    if (i >= p.n) {
        return;
    }
    let o = i % p.out_channels;
    let j = i / p.out_channels;
    let ch = j % p.channels;
    let kw = (j / p.channels) % p.kernel;
    let kh = j / (p.channels * p.kernel);
    var acc = 0.0;
    for (var b = 0u; b < p.batch; b = b + 1u) {
        for (var oh = 0u; oh < p.out_h; oh = oh + 1u) {
            let ih = i32(oh * p.stride + kh) - i32(p.pad);
            if (ih < 0 || ih >= i32(p.height)) {
                continue;
            }
            for (var ow = 0u; ow < p.out_w; ow = ow + 1u) {
                let iw = i32(ow * p.stride + kw) - i32(p.pad);
                if (iw < 0 || iw >= i32(p.width)) {
                    continue;
                }
                let r = (b * p.out_h + oh) * p.out_w + ow;
                let xv = a[((b * p.height + u32(ih)) * p.width + u32(iw)) * p.channels + ch];
                acc = acc + xv * dz(false, r, o);
            }
        }
    }
    out[i] = acc;
}

// db[o] = Σ_r dz[r, o]. Bindings: a = dy, bmat = y.
@compute @workgroup_size(WG)
fn bias_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let o = flat_index(wid, lid, nwg);
    if (o >= p.n) {
        return;
    }
    let rows = p.batch * p.out_h * p.out_w;
    var acc = 0.0;
    for (var r = 0u; r < rows; r = r + 1u) {
        acc = acc + dz(true, r, o);
    }
    out[o] = acc;
}

// dx[b, ih, iw, ch]: every (kh, kw) whose window covers the pixel, every o.
// Bindings: a = dy, bmat = y, c = w.
@compute @workgroup_size(WG)
fn input_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = flat_index(wid, lid, nwg);
    if (i >= p.n) {
        return;
    }
    let ch = i % p.channels;
    let iw = (i / p.channels) % p.width;
    let ih = (i / (p.channels * p.width)) % p.height;
    let b = i / (p.channels * p.width * p.height);
    let o_n = p.out_channels;
    var acc = 0.0;
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
            let wrow = ((kh * p.kernel + kw) * p.channels + ch) * o_n;
            for (var o = 0u; o < o_n; o = o + 1u) {
                acc = acc + dz(true, r, o) * c[wrow + o];
            }
        }
    }
    out[i] = acc;
}
