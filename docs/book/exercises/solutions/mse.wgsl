// Exercise 4, a solution: a fused masked MSE, the loss and its gradient in one pass.
//
//   n        = Σ_r [mask[r] > 0]                      (the labelled rows)
//   loss     = Σ_{labelled r} (pred[r] − y[r])² / n
//   grad[r]  = 2 (pred[r] − y[r]) · seed / n          for a labelled row
//            = 0                                      for an unlabelled one
//
// seed is the weight a loss weighting gives this task; the gradient is that
// of seed · loss. With no labelled row, the loss and every gradient are 0.
//
// Shapes: pred, y, mask and grad hold B values; loss holds 1. Bindings:
// 0 params, 1 loss (read_write), 2 grad (read_write), 3 pred, 4 y, 5 mask.
// The host launches one workgroup of 64 for the whole batch: invocation t
// takes rows t, t + 64, t + 128, …
//
// Checked in every test run: cargo test --release --test exercises exercise_4

struct Params {
    b: u32,
    seed: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> loss: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read> pred: array<f32>;
@group(0) @binding(4) var<storage, read> y: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;

const T: u32 = 64u;
var<workgroup> sq: array<f32, 64>;
var<workgroup> count: array<f32, 64>;

@compute @workgroup_size(64)
fn mse(@builtin(local_invocation_index) t: u32) {
    // 1. This invocation's rows: the labelled ones' squared errors and count.
    var s = 0.0;
    var c = 0.0;
    for (var r = t; r < params.b; r += T) {
        if (mask[r] > 0.0) {
            let e = pred[r] - y[r];
            s += e * e;
            c += 1.0;
        }
    }
    sq[t] = s;
    count[t] = c;
    workgroupBarrier();
    // 2. Both sums by exercise 3's tree; then every invocation reads n.
    for (var h = T / 2u; h > 0u; h = h / 2u) {
        if (t < h) {
            sq[t] += sq[t + h];
            count[t] += count[t + h];
        }
        workgroupBarrier();
    }
    let n = count[0];
    if (t == 0u) {
        loss[0] = select(0.0, sq[0] / n, n > 0.0);
    }
    // 3. Each row's gradient of seed · loss; 0 on unlabelled rows (and all
    //    of them when n = 0, since then every row is unlabelled).
    for (var r = t; r < params.b; r += T) {
        grad[r] = select(0.0, 2.0 * (pred[r] - y[r]) * params.seed / n, mask[r] > 0.0);
    }
}
