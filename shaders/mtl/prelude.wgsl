// The shared part of every task-weight solve: the bindings, the Gram matrix
// in workgroup memory, the weights being built, and helpers. Each method's
// file in this folder (shaders/mtl/<method>.wgsl) is appended to this text at
// build time (`concat!` in src/mtl/<method>.rs) and declares its own
// `struct Params`, whose first field is K; its CPU twin is src/mtl/solve.rs
// (helpers) and each method's `reference` function.
//
// One invocation solves K ≤ 16 (small K×K problems: a whole GPU would wait on
// a readback longer than this takes), so no training step waits on the host.
//
// Bindings: 0 params (the method's Params), 1 out (K weights or seeds,
// written), 2 state (the method's memory, kept between steps, zero at the
// start), 3 gram (K×K, row-major), 4 losses (K).

// The parameters are a read-only storage buffer rather than a uniform one:
// on lavapipe a solve whose loops a uniform bounds cost milliseconds per
// call in the driver (kernels::mtl::solve says more).
@group(0) @binding(0) var<storage, read> p: Params;
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
var<private> w: array<f32, 16>;

// state[STEP]: the step counter of the random methods (its bits, as f32).
const STEP: u32 = 0u;

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

// G / tr G (taken as 0 when tr G < norm_eps), plus reg_eps on the diagonal:
// torchjd's normalize-then-regularize, for UPGrad and DualProj.
fn trace_normalize_gram(norm_eps: f32, reg_eps: f32) {
    let k = p.k;
    var trace = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { trace = trace + G[i * k + i]; }
    var s = 0.0;
    if (trace >= norm_eps) { s = 1.0 / trace; }
    for (var i = 0u; i < k * k; i = i + 1u) { G[i] = G[i] * s; }
    for (var i = 0u; i < k; i = i + 1u) { G[i * k + i] = G[i * k + i] + reg_eps; }
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

// The random order in which task i meets the tasks at `step` (PCGrad,
// GradVac): all K tasks sorted by a key uniform01(seed, step, 16 i + m), ties
// by index. `draw_keys` fills the keys; `task_of_rank(q)` is the task with q
// smaller keys (counting, K ≤ 16, so K² steps per rank are cheap).
var<private> key: array<f32, 16>;

fn draw_keys(seed: u32, step: u32, i: u32) {
    for (var m = 0u; m < p.k; m = m + 1u) { key[m] = uniform01(seed, step, i * 16u + m); }
}

fn task_of_rank(q: u32) -> u32 {
    var j = 0u;
    for (var cand = 0u; cand < p.k; cand = cand + 1u) {
        var rank = 0u;
        for (var m = 0u; m < p.k; m = m + 1u) {
            if (key[m] < key[cand] || (key[m] == key[cand] && m < cand)) { rank = rank + 1u; }
        }
        if (rank == q) { j = cand; }
    }
    return j;
}

// Advance and return the step counter kept (as bits) in state[STEP].
fn next_step() -> u32 {
    let step = bitcast<u32>(state[STEP]);
    state[STEP] = bitcast<f32>(step + 1u);
    return step;
}

fn softmax_w() {
    var m = w[0];
    for (var i = 1u; i < p.k; i = i + 1u) { m = max(m, w[i]); }
    var s = 0.0;
    for (var i = 0u; i < p.k; i = i + 1u) { w[i] = exp(w[i] - m); s = s + w[i]; }
    for (var i = 0u; i < p.k; i = i + 1u) { w[i] = w[i] / s; }
}

// w ← its Euclidean projection onto the simplex {v ≥ 0, Σ v = 1}
// (Held, Wolfe & Crowder 1974; Duchi et al. 2008): v = max(w − θ, 0), with
// u = w sorted descending, ρ the largest j with u_j > (u_1 + … + u_j − 1)/j
// and θ = (u_1 + … + u_ρ − 1)/ρ. Counting instead of sorting (K ≤ 16): entry
// i's place j is 1 + the entries before it (larger, or equal with a smaller
// index). Both tests are written in differences, 1 − Σ_{r<j} (u_r − u_j) > 0
// and v_m = (1 + Σ_{r≤ρ} (w_m − u_r)) / ρ, so that entries far larger than 1
// (SDMGrad's, when its Gram matrix's scale is near 0) keep their order where
// u_j − (u_1 + … + u_j − 1)/j would round to 0. CPU twin: solve::project_simplex.
var<private> place: array<u32, 16>;

fn project_simplex() {
    let k = p.k;
    var rho = 0u;
    for (var i = 0u; i < k; i = i + 1u) {
        var j = 1u;
        var gap = 0.0;
        for (var m = 0u; m < k; m = m + 1u) {
            if (w[m] > w[i] || (w[m] == w[i] && m < i)) { j = j + 1u; gap = gap + (w[m] - w[i]); }
        }
        place[i] = j;
        if (gap < 1.0 && j > rho) { rho = j; }
    }
    // The differences are summed from 0 and the 1 added last: llvmpipe's GL
    // compiler reassociates 1 + (w_m − w_r) into (1 + w_m) − w_r, which
    // rounds the 1 away when w_m is far larger.
    var v: array<f32, 16>;
    for (var m = 0u; m < k; m = m + 1u) {
        var acc = 0.0;
        for (var r = 0u; r < k; r = r + 1u) {
            if (place[r] <= rho) { acc = acc + (w[m] - w[r]); }
        }
        v[m] = max((1.0 + acc) / f32(rho), 0.0);
    }
    for (var m = 0u; m < k; m = m + 1u) { w[m] = v[m]; }
}

// Solve A x = r in place (n ≤ 17; A in `A`, r in `x`), Gaussian elimination with partial pivoting.
var<workgroup> A: array<f32, 289>;
var<private> x: array<f32, 17>;

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

// The eigen-decomposition of the symmetric K×K matrix in `A` by cyclic Jacobi
// rotations (JACOBI_SWEEPS sweeps): afterwards A's diagonal holds the
// eigenvalues and V's columns (row-major K×K) the eigenvectors. CPU twin:
// `solve::jacobi_eigen`. IMTL-G, ConFIG and Aligned-MTL.
const PINV_RTOL: f32 = 1e-5;
const JACOBI_SWEEPS: u32 = 12u;
var<workgroup> V: array<f32, 256>;


fn jacobi(k: u32) {
    for (var i = 0u; i < k * k; i = i + 1u) { V[i] = select(0.0, 1.0, i / k == i % k); }
    for (var sweep = 0u; sweep < JACOBI_SWEEPS; sweep = sweep + 1u) {
        for (var pp = 0u; pp < k; pp = pp + 1u) {
            for (var q = pp + 1u; q < k; q = q + 1u) {
                let apq = A[pp * k + q];
                if (apq == 0.0) { continue; }
                // The rotation that zeroes a_pq (Numerical Recipes, §11.1).
                let theta = (A[q * k + q] - A[pp * k + pp]) / (2.0 * apq);
                var t = 0.5 / theta;
                if (abs(theta) <= 1e10) {
                    t = select(-1.0, 1.0, theta >= 0.0) / (abs(theta) + sqrt(theta * theta + 1.0));
                }
                let c = 1.0 / sqrt(t * t + 1.0);
                let s = t * c;
                for (var r = 0u; r < k; r = r + 1u) {
                    let rp = A[r * k + pp];
                    let rq = A[r * k + q];
                    A[r * k + pp] = c * rp - s * rq;
                    A[r * k + q] = s * rp + c * rq;
                }
                for (var r = 0u; r < k; r = r + 1u) {
                    let pr = A[pp * k + r];
                    let qr = A[q * k + r];
                    A[pp * k + r] = c * pr - s * qr;
                    A[q * k + r] = s * pr + c * qr;
                }
                for (var r = 0u; r < k; r = r + 1u) {
                    let rp = V[r * k + pp];
                    let rq = V[r * k + q];
                    V[r * k + pp] = c * rp - s * rq;
                    V[r * k + q] = s * rp + c * rq;
                }
            }
        }
    }
}

// pinv = M⁺ rhs after `jacobi(k)` on M: Σ_j v_j (v_j·rhs) / λ_j over the
// eigenvalues above PINV_RTOL of the largest (in f32 the others are
// rounding noise). CPU twin: `solve::pinv_apply`.
var<private> rhs: array<f32, 16>;
var<private> pinv: array<f32, 16>;

fn pinv_apply(k: u32) {
    var top = 0.0;
    for (var j = 0u; j < k; j = j + 1u) { top = max(top, A[j * k + j]); }
    for (var i = 0u; i < k; i = i + 1u) { pinv[i] = 0.0; }
    for (var j = 0u; j < k; j = j + 1u) {
        let lambda = A[j * k + j];
        if (lambda > PINV_RTOL * top) {
            var c = 0.0;
            for (var i = 0u; i < k; i = i + 1u) { c = c + V[i * k + j] * rhs[i]; }
            c = c / lambda;
            for (var i = 0u; i < k; i = i + 1u) { pinv[i] = pinv[i] + c * V[i * k + j]; }
        }
    }
}

// w > 0 with (G w)_k = w_k^{−q} (q = 1/α of α-fairness; q = 1: Nash-MTL's
// bargaining point), the stationary point of the convex ½ wᵀGw − Σ f(w_k),
// f'(w) = w^{−q}: damped Newton (`iters` steps, each keeping w > 0) on
// G + εI, ε = 1e-8 of the mean diagonal, from w_k = 1/√G_kk; the residual
// (G + εI) w − w^{−q} and the Hessian G + εI + diag(q w^{−q−1}) solved in
// `A`, `x`. Nash-MTL and FairGrad. CPU twin: `solve::alpha_fair`.
fn neg_pow(v: f32, q: f32) -> f32 {
    if (q == 1.0) { return 1.0 / v; }
    return pow(v, -q);
}

fn alpha_fair(q: f32, iters: u32) {
    let k = p.k;
    var mean = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { mean = mean + G[i * k + i]; }
    mean = mean / f32(k);
    let eps = 1e-8 * max(mean, 1e-30);
    for (var i = 0u; i < k; i = i + 1u) { w[i] = 1.0 / sqrt(G[i * k + i] + eps); }
    for (var it = 0u; it < iters; it = it + 1u) {
        for (var i = 0u; i < k; i = i + 1u) {
            let np = neg_pow(w[i], q);
            x[i] = gdot(i) + eps * w[i] - np;
            for (var j = 0u; j < k; j = j + 1u) { A[i * k + j] = G[i * k + j]; }
            A[i * k + i] = A[i * k + i] + eps + q * np / w[i];
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
}

// A task whose squared gradient norm is at most this fraction of the largest
// counts as a zero gradient.
const ZERO_NORM: f32 = 1e-12;

// The small quadratic programs, exactly, by a primal active set (Nocedal &
// Wright, Algorithm 16.3); the CPU twin is `active_set_qp` in src/mtl/solve.rs:
//
//   minimise ½ vᵀ G v + linᵀ v   over v ≥ lo   (and Σ v = 1 when `simplex`),
//
// G as it stands in workgroup memory, tasks with live[i] == 0 held at lo[i];
// the result in w. Each step solves the problem on the free set (the tasks
// above their bound) as one linear system; a step that would cross a bound
// stops there and fixes that task; at the optimum of a free set the task whose
// bound multiplier is most negative is freed, until none is (the KKT
// conditions, to QP_TOL of the largest |G_ii| or |lin_i|). At most 3K + 8
// steps. The simplex form starts at the best vertex (lo = 0 there).
const QP_TOL: f32 = 1e-6;
var<private> lo: array<f32, 16>;
var<private> lin: array<f32, 16>;
var<private> live: array<u32, 16>;
var<private> free: array<u32, 16>;
var<private> idx: array<u32, 16>;

// The optimum of the QP on the n free tasks idx[0..n] (the others at their
// bounds) into x[0..n], from one linear system in A:
//   G_FF z + ν 1 = -lin_F - G_FB lo_B   (and Σ z = 1 - Σ lo_B when simplex).
fn free_set_optimum(n: u32, simplex: bool) {
    let k = p.k;
    let m = select(n, n + 1u, simplex);
    for (var a = 0u; a < n; a = a + 1u) {
        let i = idx[a];
        var r = -lin[i];
        for (var j = 0u; j < k; j = j + 1u) { if (free[j] == 0u) { r = r - G[i * k + j] * lo[j]; } }
        for (var b = 0u; b < n; b = b + 1u) { A[a * m + b] = G[i * k + idx[b]]; }
        if (simplex) { A[a * m + n] = 1.0; }
        x[a] = r;
    }
    if (simplex) {
        var rest = 1.0;
        for (var j = 0u; j < k; j = j + 1u) { if (free[j] == 0u) { rest = rest - lo[j]; } }
        for (var b = 0u; b < n; b = b + 1u) { A[n * m + b] = 1.0; }
        A[n * m + n] = 0.0;
        x[n] = rest;
    }
    solve_linear(m);
}

// ANCHOR: qp
fn qp(simplex: bool) {
    let k = p.k;
    var scale = 1e-30;
    for (var i = 0u; i < k; i = i + 1u) { scale = max(scale, max(abs(G[i * k + i]), abs(lin[i]))); }
    let tol = QP_TOL * scale;
    for (var i = 0u; i < k; i = i + 1u) { w[i] = lo[i]; free[i] = 0u; }
    if (simplex) {
        var best = k;
        for (var i = 0u; i < k; i = i + 1u) {
            if (live[i] == 1u && (best == k || 0.5 * G[i * k + i] + lin[i] < 0.5 * G[best * k + best] + lin[best])) { best = i; }
        }
        if (best == k) { return; }
        w[best] = 1.0;
        free[best] = 1u;
    }
    for (var step = 0u; step < 3u * k + 8u; step = step + 1u) {
        var n = 0u;
        for (var i = 0u; i < k; i = i + 1u) { if (free[i] == 1u) { idx[n] = i; n = n + 1u; } }
        var blocked = false;
        if (n > 0u) {
            free_set_optimum(n, simplex);
            // Go as far toward z as the bounds allow (z < lo <= w, so t < 1).
            var theta = 1.0;
            var block = k;
            for (var a = 0u; a < n; a = a + 1u) {
                let i = idx[a];
                if (x[a] < lo[i] && (w[i] - lo[i]) / (w[i] - x[a]) < theta) {
                    theta = (w[i] - lo[i]) / (w[i] - x[a]);
                    block = i;
                }
            }
            for (var a = 0u; a < n; a = a + 1u) { let i = idx[a]; w[i] = w[i] + theta * (x[a] - w[i]); }
            if (block < k) {
                for (var a = 0u; a < n; a = a + 1u) {
                    let i = idx[a];
                    if (i == block || w[i] <= lo[i]) { w[i] = lo[i]; free[i] = 0u; }
                }
                blocked = true;
            }
        }
        if (blocked) { continue; }
        // Optimal on the free set: free the most violated bound, if any.
        var nu = 0.0;
        if (simplex && n > 0u) {
            for (var a = 0u; a < n; a = a + 1u) { nu = nu - (gdot(idx[a]) + lin[idx[a]]); }
            nu = nu / f32(n);
        }
        var enter = k;
        var most = -tol;
        for (var i = 0u; i < k; i = i + 1u) {
            if (free[i] == 0u && live[i] == 1u) {
                let mu = gdot(i) + lin[i] + nu;
                if (mu < most) { most = mu; enter = i; }
            }
        }
        if (enter == k) { break; }
        free[enter] = 1u;
    }
}
// ANCHOR_END: qp

// Which tasks have a non-zero gradient, into live; returns how many.
fn find_live() -> u32 {
    let k = p.k;
    var maxd = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { maxd = max(maxd, G[i * k + i]); }
    var n = 0u;
    for (var i = 0u; i < k; i = i + 1u) {
        live[i] = select(0u, 1u, G[i * k + i] > ZERO_NORM * maxd);
        n = n + live[i];
    }
    return n;
}
