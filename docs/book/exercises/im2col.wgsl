// Exercise 12 (chapter 12): im2col, one element of the patch matrix per invocation.
//
//   cols[r, j] = x[b, ih, iw, c]   where the pixel is inside the image, else 0
//   r = (b·OH + oh)·OW + ow,   j = (kh·K + kw)·C + c
//   ih = oh·S − P + kh,        iw = ow·S − P + kw
//   OH = (H + 2P − K)/S + 1,   OW = (W + 2P − K)/S + 1
//
// Shapes: x is B×H×W×C (NHWC: x[b, h, w, c] at ((b·H + h)·W + w)·C + c);
// cols is (B·OH·OW) × (K·K·C), row-major, n = B·OH·OW·K·K·C values.
// Bindings: 0 params, 1 cols (read_write), 2 x. One invocation per element
// of cols, i = r·K·K·C + j; the host launches ceil(n / 256) workgroups of
// 256, folded into two dimensions past 65,535 (as exercise 1).
//
// Mind the signs: ih and iw are below 0 in the padding, so compute them as
// i32 before comparing with 0, H and W.
//
// Check it:   cargo test --release --test exercises -- --ignored exercise_12
// Until you write it, the test fails: this stub writes zeros.

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
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> cols: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

@compute @workgroup_size(256)
fn im2col(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * groups.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    // TODO: split i into r and j, r into (b, oh, ow) and j into (kh, kw, c);
    // then the pixel (ih, iw), and x's value there or 0 outside the image.
    cols[i] = 0.0;
}
