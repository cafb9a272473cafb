// Image augmentation inside the training step: each image of the batch
// shifted by a random (dy, dx) with zero padding, and, when asked, flipped
// left-right, drawn anew each step; and the transpose, for the backward.
//
//   (dy, dx) = (u₀ mod (2S+1) − S, u₁ mod (2S+1) − S),  flip = F ∧ (u₂ odd)
//   u_k = hash(4b + k, seed, t),  t = step[0] (the GPU step counter)
//   g(j) = flip ? W − 1 − j : j
//   forward:   y[b, i, j, c] = x[b, i − dy, g(j − dx), c]   (0 outside the image)
//   backward:  dx[b, u, v, c] = dy[b, u + dy, g(v) + dx, c] (0 outside)
//
// The forward is "flip, then shift": out = shift(flip(x)). The backward is
// its transpose: each output pixel has one source, so the backward gathers
// from where each input pixel went. hash is dropout's lowbias32 mix of the
// index, the layer's seed and the step, so the same seed gives the same
// images step for step, and nothing is written from the host per step.
//
// Shapes: x, y: B images of H×W×C (NHWC), n = B·H·W·C elements; step: 1 u32.
// Bindings: 0 params, 1 y (rw), 2 x, 3 step (u32, read).

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    shift: u32,
    flip: u32,
    seed: u32,
    backward: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> step: array<u32>;

fn flat_index(wid: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

fn lowbias32(v: u32) -> u32 {
    var h = v;
    h = h ^ (h >> 16u);
    h = h * 0x7feb352du;
    h = h ^ (h >> 15u);
    h = h * 0x846ca68bu;
    h = h ^ (h >> 16u);
    return h;
}

fn draw(b: u32, k: u32) -> u32 {
    return lowbias32(lowbias32(b * 4u + k) ^ lowbias32(p.seed ^ lowbias32(step[0] + 0x9e3779b9u)));
}

@compute @workgroup_size(WG)
fn shift_flip(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i >= p.n) {
        return;
    }
    let per = p.h * p.w * p.c;
    let b = i / per;
    let r = i % per;
    let row = i32(r / (p.w * p.c));
    let col = i32((r / p.c) % p.w);
    let ch = r % p.c;
    let span = 2u * p.shift + 1u;
    let dy = i32(draw(b, 0u) % span) - i32(p.shift);
    let dx = i32(draw(b, 1u) % span) - i32(p.shift);
    let flipped = p.flip != 0u && (draw(b, 2u) & 1u) == 1u;
    let last = i32(p.w) - 1;
    var sy: i32;
    var sx: i32;
    if (p.backward == 0u) {
        sy = row - dy;
        sx = col - dx;
        if (flipped) {
            sx = last - sx;
        }
    } else {
        sy = row + dy;
        sx = col;
        if (flipped) {
            sx = last - sx;
        }
        sx = sx + dx;
    }
    var v = 0.0;
    if (sy >= 0 && sy < i32(p.h) && sx >= 0 && sx <= last) {
        v = x[b * per + (u32(sy) * p.w + u32(sx)) * p.c + ch];
    }
    y[i] = v;
}
