// Elementwise kernels over n f32 values.
//
//   fill:          y[i] = value
//   scale:         y[i] = alpha * x[i]
//   rescale:       y[i] = alpha * y[i]             (in place)
//   add:           y[i] = x[i] + b[i]
//   axpy:          y[i] = y[i] + alpha * x[i]
//   relu:          y[i] = max(x[i], 0)
//   relu_backward: y[i] = b[i] > 0 ? x[i] : 0      (x = dy, b = forward output)
//   gelu:          y[i] = ½ x (1 + tanh u),  u = √(2/π) (x + 0.044715 x³)   (GELU, tanh form)
//   gelu_backward: y[i] = x[i] · (½ (1 + tanh u) + ½ b (1 - tanh² u) √(2/π) (1 + 3·0.044715 b²))
//                                                   (x = dy, b = the forward input, u of b)
//   tanh_fwd:      y[i] = tanh(x[i])
//   tanh_backward: y[i] = x[i] · (1 - b[i]²)        (x = dy, b = forward output)
//   sigmoid:       y[i] = 1 / (1 + exp(-x[i]))       (from exp of a non-positive value only)
//   sigmoid_backward: y[i] = x[i] · b[i] (1 - b[i])  (x = dy, b = forward output)
//   mul:           y[i] = x[i] · b[i]                (its backward is two more of it)
//   broadcast:     y[i] = alpha * x[0]            (x has one element: the backward of a sum)
//
// Shapes: x, b, y all have n elements (x has 1 for broadcast). A grid of more than 65,535 workgroups
// is folded into two dimensions by the host; the flat index is rebuilt from
// workgroup_id and num_workgroups, and every kernel guards i < n.
//
// Bindings form a prefix so that each entry point uses bindings 0..k:
//   0 params, 1 y (read_write), 2 x, 3 b.

struct Params {
    n: u32,
    alpha: f32,
    value: f32,
    _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

// ANCHOR: flat_index
fn flat_index(wid: vec3<u32>, lid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}
// ANCHOR_END: flat_index

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = p.value; }
}

@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = p.alpha * x[i]; }
}

@compute @workgroup_size(WG)
fn rescale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = p.alpha * y[i]; }
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = x[i] + b[i]; }
}

@compute @workgroup_size(WG)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = y[i] + p.alpha * x[i]; }
}

// ANCHOR: relu
@compute @workgroup_size(WG)
fn relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = max(x[i], 0.0); }
}
// ANCHOR_END: relu

@compute @workgroup_size(WG)
fn relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = select(0.0, x[i], b[i] > 0.0); }
}

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_C: f32 = 0.044715;

// tanh with its argument clamped: tanh(±15) is ±1 in f32, and some drivers
// compute tanh through exp(2x), which overflows to NaN for large |x|.
fn tanh_safe(v: f32) -> f32 {
    return tanh(clamp(v, -15.0, 15.0));
}

@compute @workgroup_size(WG)
fn gelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) {
        let v = x[i];
        let t = tanh_safe(SQRT_2_OVER_PI * (v + GELU_C * v * v * v));
        y[i] = 0.5 * v * (1.0 + t);
    }
}

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) {
        let v = b[i];
        let t = tanh_safe(SQRT_2_OVER_PI * (v + GELU_C * v * v * v));
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * v * v);
        y[i] = x[i] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du);
    }
}

@compute @workgroup_size(WG)
fn tanh_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = tanh_safe(x[i]); }
}

@compute @workgroup_size(WG)
fn sigmoid(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) {
        let v = x[i];
        let e = exp(-abs(v));
        y[i] = select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
    }
}

@compute @workgroup_size(WG)
fn sigmoid_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = x[i] * b[i] * (1.0 - b[i]); }
}

@compute @workgroup_size(WG)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = x[i] * b[i]; }
}

@compute @workgroup_size(WG)
fn tanh_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = x[i] * (1.0 - b[i] * b[i]); }
}

@compute @workgroup_size(WG)
fn broadcast(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(wid, lid, nwg);
    if (i < p.n) { y[i] = p.alpha * x[0]; }
}
