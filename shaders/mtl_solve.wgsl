// Task weights from the K×K Gram matrix (and, for some methods, the losses),
// solved on the GPU by one invocation so that no training step waits on a
// readback. Each entry point mirrors, step for step, its CPU reference in
// src/mtl/solve.rs, where every method's paper and formula are written out.
//
// Bindings: weights (K, written), state (method memory, ≥ 80 values, kept
// between steps), gram (K×K, row-major), losses (K). K ≤ 16.
//
//   pcgrad      w = Σ_i c_i, g_i = Σ_m c_im g_m projected away from conflicting g_j in random order
//   mgda        w = argmin_{simplex} wᵀGw       (closed form for K = 2, else Frank-Wolfe)
//   cagrad      w = (1/K + λ w*) / (1 + c²)     (w* by exponentiated gradient)
//   imtl_g      w = [1 - Σα, α], α = g_0 Uᵀ (D Uᵀ)⁻¹
//   nash_mtl    w = α with α_i (Gα)_i = 1       (damped Newton)
//   upgrad      w = mean_i argmin_{v ≥ e_i} ½ vᵀGv   (projected coordinate descent)
//   gradnorm    seeds ← GradNorm step on learned weights (state: w, L(0))
//   rlw         seeds = softmax(z), z ~ N(0, I) per step
//   famo        seeds = z_k / (c L_k) after an Adam step on the logits (state: ξ, moments, previous L)

struct Params {
    k: u32,
    seed: u32,
    iters: u32,
    _pad: u32,
    f0: f32,
    f1: f32,
    f2: f32,
    f3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> state: array<f32>;
@group(0) @binding(3) var<storage, read> gram: array<f32>;
@group(0) @binding(4) var<storage, read> losses: array<f32>;

// The 256-element matrices live in workgroup memory and the 16-element vectors
// in private memory: that is what measured fastest on lavapipe (Mesa 22), where
// the other placements ran some solves 10-100× slower (e.g. 30 ms against
// 0.2 ms for a 256-element private matrix, 1.2 ms against 0.15 ms for GradNorm
// with workgroup vectors).
var<workgroup> G: array<f32, 256>;
var<private> c: array<f32, 16>;
var<private> delta: array<f32, 16>;
var<private> gb: array<f32, 16>;
var<private> gw: array<f32, 16>;
var<private> n: array<f32, 16>;
var<private> norms: array<f32, 16>;
var<private> key: array<f32, 16>;
var<private> ratio: array<f32, 16>;
var<private> total: array<f32, 16>;
var<private> w: array<f32, 16>;

fn load_gram() {
    for (var i = 0u; i < p.k * p.k; i = i + 1u) { G[i] = gram[i]; }
}

// G / mean diagonal, plus eps on the diagonal.
fn normalize_gram(eps: f32) {
    let k = p.k;
    var mean = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { mean = mean + G[i * k + i]; }
    mean = mean / f32(k);
    var s = 1.0;
    if (mean > 0.0) { s = 1.0 / mean; }
    for (var i = 0u; i < k * k; i = i + 1u) { G[i] = G[i] * s; }
    for (var i = 0u; i < k; i = i + 1u) { G[i * k + i] = G[i * k + i] + eps; }
}

// (G w)_i
fn gdot(i: u32) -> f32 {
    var s = 0.0;
    for (var j = 0u; j < p.k; j = j + 1u) { s = s + G[i * p.k + j] * w[j]; }
    return s;
}

fn write_weights() {
    for (var i = 0u; i < p.k; i = i + 1u) { weights[i] = w[i]; }
}

// ---- random numbers shared with the CPU (src/mtl/solve.rs) ----


fn hash(v: u32) -> u32 {
    // lowbias32 (C. Wellons): shifts and multiplies by constants only.
    var x = v;
    x = x ^ (x >> 16u);
    x = x * 0x7feb352du;
    x = x ^ (x >> 15u);
    x = x * 0x846ca68bu;
    x = x ^ (x >> 16u);
    return x;
}

fn uniform01(seed: u32, step: u32, index: u32) -> f32 {
    let h = hash(seed ^ hash((step * 0x9E3779B9u) ^ hash(index + 0x85EBCA6Bu)));
    return f32(h >> 8u) / 16777216.0;
}

// Advance and return the step counter kept (as bits) in state[0].
fn next_step() -> u32 {
    let step = bitcast<u32>(state[0]);
    state[0] = bitcast<f32>(step + 1u);
    return step;
}

@compute @workgroup_size(1)
fn pcgrad() {
    let k = p.k;
    load_gram();
    let step = next_step();
    for (var m = 0u; m < k; m = m + 1u) { w[m] = 0.0; }
    for (var i = 0u; i < k; i = i + 1u) {
        for (var m = 0u; m < k; m = m + 1u) { c[m] = 0.0; }
        c[i] = 1.0;
        // The order: tasks sorted by a random key (ties by index); each rank's task
        // is found by counting smaller keys (K ≤ 16, so K³ steps are cheap).
        for (var m = 0u; m < k; m = m + 1u) { key[m] = uniform01(p.seed, step, i * 16u + m); }
        for (var q = 0u; q < k; q = q + 1u) {
            var j = 0u;
            for (var cand = 0u; cand < k; cand = cand + 1u) {
                var rank = 0u;
                for (var m = 0u; m < k; m = m + 1u) {
                    if (key[m] < key[cand] || (key[m] == key[cand] && m < cand)) { rank = rank + 1u; }
                }
                if (rank == q) { j = cand; }
            }
            if (j != i) {
                var dot = 0.0;
                for (var m = 0u; m < k; m = m + 1u) { dot = dot + c[m] * G[m * k + j]; }
                if (dot < 0.0 && G[j * k + j] > 0.0) { c[j] = c[j] - dot / G[j * k + j]; }
            }
        }
        for (var m = 0u; m < k; m = m + 1u) { w[m] = w[m] + c[m]; }
    }
    write_weights();
}

fn min_norm_2(v11: f32, v12: f32, v22: f32) -> f32 {
    if (v12 >= v11) { return 0.999; }
    if (v12 >= v22) { return 0.001; }
    return (v22 - v12) / (v11 + v22 - 2.0 * v12);
}

@compute @workgroup_size(1)
fn mgda() {
    let k = p.k;
    load_gram();
    if (k == 1u) {
        w[0] = 1.0;
    } else if (k == 2u) {
        let gamma = min_norm_2(G[0], G[1], G[3]);
        w[0] = gamma;
        w[1] = 1.0 - gamma;
    } else {
        for (var i = 0u; i < k; i = i + 1u) { w[i] = 1.0 / f32(k); }
        for (var it = 0u; it < p.iters; it = it + 1u) {
            var v11 = 0.0;
            var t = 0u;
            for (var i = 0u; i < k; i = i + 1u) {
                gw[i] = gdot(i);
                v11 = v11 + w[i] * gw[i];
                if (gw[i] < gw[t]) { t = i; }
            }
            let gamma = min_norm_2(v11, gw[t], G[t * k + t]);
            for (var i = 0u; i < k; i = i + 1u) {
                w[i] = gamma * w[i] + select(0.0, 1.0 - gamma, i == t);
            }
        }
    }
    write_weights();
}

// f0 = c
@compute @workgroup_size(1)
fn cagrad() {
    let k = p.k;
    let c = p.f0;
    load_gram();
    normalize_gram(0.0);
    let b = 1.0 / f32(k);
    var g0_sq = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        var s = 0.0;
        for (var j = 0u; j < k; j = j + 1u) { s = s + G[i * k + j] * b; }
        gb[i] = s;
        g0_sq = g0_sq + s * b;
    }
    let sphi = c * sqrt(max(g0_sq, 0.0));
    for (var i = 0u; i < k; i = i + 1u) { w[i] = b; }
    for (var it = 0u; it < p.iters; it = it + 1u) {
        var q = 0.0;
        for (var i = 0u; i < k; i = i + 1u) { gw[i] = gdot(i); q = q + w[i] * gw[i]; }
        let nw = sqrt(max(q, 1e-20));
        var total = 0.0;
        for (var i = 0u; i < k; i = i + 1u) {
            w[i] = w[i] * exp(-(gb[i] + sphi * gw[i] / nw));
            total = total + w[i];
        }
        for (var i = 0u; i < k; i = i + 1u) { w[i] = w[i] / total; }
    }
    var q = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { q = q + w[i] * gdot(i); }
    let lambda = sphi / sqrt(max(q, 1e-20));
    for (var i = 0u; i < k; i = i + 1u) { w[i] = (b + lambda * w[i]) / (1.0 + c * c); }
    write_weights();
}

// Solve A x = r in place (n ≤ 16; A in `A`, r in `x`), Gaussian elimination with partial pivoting.
var<workgroup> A: array<f32, 256>;
var<private> x: array<f32, 16>;

fn solve_linear(n: u32) {
    for (var col = 0u; col < n; col = col + 1u) {
        var piv = col;
        for (var i = col; i < n; i = i + 1u) {
            if (abs(A[i * n + col]) > abs(A[piv * n + col])) { piv = i; }
        }
        for (var j = 0u; j < n; j = j + 1u) {
            let t = A[col * n + j];
            A[col * n + j] = A[piv * n + j];
            A[piv * n + j] = t;
        }
        let tx = x[col];
        x[col] = x[piv];
        x[piv] = tx;
        let d = A[col * n + col];
        if (abs(d) < 1e-30) { continue; }
        for (var i = col + 1u; i < n; i = i + 1u) {
            let f = A[i * n + col] / d;
            for (var j = col; j < n; j = j + 1u) { A[i * n + j] = A[i * n + j] - f * A[col * n + j]; }
            x[i] = x[i] - f * x[col];
        }
    }
    for (var cc = 0u; cc < n; cc = cc + 1u) {
        let col = n - 1u - cc;
        var s = x[col];
        for (var j = col + 1u; j < n; j = j + 1u) { s = s - A[col * n + j] * x[j]; }
        let d = A[col * n + col];
        x[col] = select(s / d, 0.0, abs(d) < 1e-30);
    }
}

@compute @workgroup_size(1)
fn imtl_g() {
    let k = p.k;
    load_gram();
    if (k == 1u) {
        w[0] = 1.0;
        write_weights();
        return;
    }
    for (var i = 0u; i < k; i = i + 1u) { n[i] = sqrt(max(G[i * k + i], 1e-20)); }
    let m = k - 1u;
    for (var bi = 0u; bi < m; bi = bi + 1u) {
        let b = bi + 1u;
        x[bi] = G[0] / n[0] - G[b] / n[b];
        for (var ai = 0u; ai < m; ai = ai + 1u) {
            let a = ai + 1u;
            A[bi * m + ai] = G[0] / n[0] - G[b] / n[b] - G[a * k] / n[0] + G[a * k + b] / n[b];
        }
    }
    solve_linear(m);
    var s = 0.0;
    for (var i = 0u; i < m; i = i + 1u) { s = s + x[i]; w[i + 1u] = x[i]; }
    w[0] = 1.0 - s;
    write_weights();
}

@compute @workgroup_size(1)
fn nash_mtl() {
    let k = p.k;
    load_gram();
    var mean = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { mean = mean + G[i * k + i]; }
    mean = mean / f32(k);
    let eps = 1e-8 * max(mean, 1e-30);
    for (var i = 0u; i < k; i = i + 1u) { w[i] = 1.0 / sqrt(G[i * k + i] + eps); }
    for (var it = 0u; it < p.iters; it = it + 1u) {
        for (var i = 0u; i < k; i = i + 1u) {
            x[i] = gdot(i) + eps * w[i] - 1.0 / w[i];
            for (var j = 0u; j < k; j = j + 1u) { A[i * k + j] = G[i * k + j]; }
            A[i * k + i] = A[i * k + i] + eps + 1.0 / (w[i] * w[i]);
        }
        solve_linear(k);
        var s = 1.0;
        for (var h = 0u; h < 40u; h = h + 1u) {
            var ok = true;
            for (var i = 0u; i < k; i = i + 1u) { if (w[i] - s * x[i] <= 0.0) { ok = false; } }
            if (ok) { break; }
            s = s * 0.5;
        }
        for (var i = 0u; i < k; i = i + 1u) { w[i] = max(w[i] - s * x[i], 1e-12); }
    }
    write_weights();
}

@compute @workgroup_size(1)
fn upgrad() {
    let k = p.k;
    load_gram();
    normalize_gram(1e-6);
    for (var j = 0u; j < k; j = j + 1u) { total[j] = 0.0; }
    for (var i = 0u; i < k; i = i + 1u) {
        for (var j = 0u; j < k; j = j + 1u) { w[j] = 0.0; }
        w[i] = 1.0;
        for (var sw = 0u; sw < p.iters; sw = sw + 1u) {
            for (var j = 0u; j < k; j = j + 1u) {
                let lb = select(0.0, 1.0, j == i);
                w[j] = max(w[j] - gdot(j) / G[j * k + j], lb);
            }
        }
        for (var j = 0u; j < k; j = j + 1u) { total[j] = total[j] + w[j] / f32(k); }
    }
    for (var j = 0u; j < k; j = j + 1u) { w[j] = total[j]; }
    write_weights();
}

// weights = seeds (next step's loss weights). f0 = alpha, f1 = lr.
// state: [1] initialised flag, [2..18) w, [18..34) L(0).
@compute @workgroup_size(1)
fn gradnorm() {
    let k = p.k;
    load_gram();
    if (state[1] == 0.0) {
        for (var i = 0u; i < k; i = i + 1u) { state[2u + i] = 1.0; state[18u + i] = losses[i]; }
        state[1] = 1.0;
    }
    var mean_norm = 0.0;
    var mean_ratio = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        norms[i] = sqrt(max(G[i * k + i], 0.0));
        ratio[i] = losses[i] / max(state[18u + i], 1e-20);
        mean_norm = mean_norm + norms[i] / f32(k);
        mean_ratio = mean_ratio + ratio[i] / f32(k);
    }
    var total = 0.0;
    for (var i = 0u; i < k; i = i + 1u) {
        let goal = mean_norm * pow(ratio[i] / max(mean_ratio, 1e-20), p.f0);
        let grad = sign(norms[i] - goal) * norms[i] / max(state[2u + i], 1e-20);
        w[i] = max(state[2u + i] - p.f1 * grad, 1e-4);
        total = total + w[i];
    }
    for (var i = 0u; i < k; i = i + 1u) {
        w[i] = w[i] * f32(k) / total;
        state[2u + i] = w[i];
    }
    write_weights();
}

fn softmax_w() {
    var m = w[0];
    for (var i = 1u; i < p.k; i = i + 1u) { m = max(m, w[i]); }
    var s = 0.0;
    for (var i = 0u; i < p.k; i = i + 1u) { w[i] = exp(w[i] - m); s = s + w[i]; }
    for (var i = 0u; i < p.k; i = i + 1u) { w[i] = w[i] / s; }
}

@compute @workgroup_size(1)
fn rlw() {
    let step = next_step();
    for (var i = 0u; i < p.k; i = i + 1u) {
        let u1 = max(uniform01(p.seed, step, 2u * i), 1e-7);
        let u2 = uniform01(p.seed, step, 2u * i + 1u);
        w[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    }
    softmax_w();
    write_weights();
}

// weights = seeds for this step's losses. f0 = lr, f1 = gamma (L2 decay of the logits).
// state: [1] has_prev, [2..18) ξ, [18..34) previous losses, [34..50) m, [50..66) v, [66] t.
@compute @workgroup_size(1)
fn famo() {
    let k = p.k;
    let eps = 1e-8;
    if (state[1] != 0.0) {
        for (var i = 0u; i < k; i = i + 1u) {
            delta[i] = log(state[18u + i] + eps) - log(losses[i] + eps);
            w[i] = state[2u + i];
        }
        softmax_w();
        var zd = 0.0;
        for (var i = 0u; i < k; i = i + 1u) { zd = zd + w[i] * delta[i]; }
        let t = state[66] + 1.0;
        state[66] = t;
        let bc1 = 1.0 - pow(0.9, t);
        let bc2 = 1.0 - pow(0.999, t);
        for (var i = 0u; i < k; i = i + 1u) {
            let gi = w[i] * (delta[i] - zd) + p.f1 * state[2u + i];
            let m = 0.9 * state[34u + i] + 0.1 * gi;
            let v = 0.999 * state[50u + i] + 0.001 * gi * gi;
            state[34u + i] = m;
            state[50u + i] = v;
            state[2u + i] = state[2u + i] - p.f0 * (m / bc1) / (sqrt(v / bc2) + 1e-8);
        }
    }
    for (var i = 0u; i < k; i = i + 1u) { w[i] = state[2u + i]; }
    softmax_w();
    var c = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { c = c + w[i] / (losses[i] + eps); }
    for (var i = 0u; i < k; i = i + 1u) {
        w[i] = w[i] / ((losses[i] + eps) * c);
        state[18u + i] = losses[i];
    }
    state[1] = 1.0;
    write_weights();
}
