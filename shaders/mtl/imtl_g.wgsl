// IMTL-G (Liu et al. 2021): the update d = Σ w_i g_i has equal projections
// on every unit gradient u_i = g_i/‖g_i‖, so G w = μ n with n_i = ‖g_i‖.
// As torchjd: w = G⁺ n / Σ(G⁺ n), defined for identical, parallel and zero
// gradients too. G⁺ from a cyclic Jacobi eigen-decomposition of M = G / tr G
// (JACOBI_SWEEPS sweeps), eigenvalues below PINV_RTOL of the largest dropped
// (in f32 they are rounding noise); w = 0 when |Σ G⁺n| ≤ 1e-6 Σ|G⁺n|.
// CPU twin: `reference` and `jacobi_eigen` in src/mtl/imtl_g.rs.

struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const PINV_RTOL: f32 = 1e-5;
const JACOBI_SWEEPS: u32 = 12u;

// The eigenvectors, as columns (row-major K×K); M is rotated in place in `A`.
var<workgroup> V: array<f32, 256>;
var<private> n: array<f32, 16>;
var<private> v: array<f32, 16>;

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

@compute @workgroup_size(1)
fn imtl_g() {
    let k = p.k;
    load_gram();
    if (k == 1u) {
        w[0] = 1.0;
        write_weights();
        return;
    }
    var trace = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { trace = trace + G[i * k + i]; }
    for (var i = 0u; i < k; i = i + 1u) { w[i] = 0.0; v[i] = 0.0; }
    if (trace <= 0.0) {
        write_weights();
        return;
    }
    for (var i = 0u; i < k * k; i = i + 1u) { A[i] = G[i] / trace; }
    for (var i = 0u; i < k; i = i + 1u) { n[i] = sqrt(max(A[i * k + i], 0.0)); }
    jacobi(k);
    var top = 0.0;
    for (var j = 0u; j < k; j = j + 1u) { top = max(top, A[j * k + j]); }
    for (var j = 0u; j < k; j = j + 1u) {
        let lambda = A[j * k + j];
        if (lambda > PINV_RTOL * top) {
            var c = 0.0;
            for (var i = 0u; i < k; i = i + 1u) { c = c + V[i * k + j] * n[i]; }
            c = c / lambda;
            for (var i = 0u; i < k; i = i + 1u) { v[i] = v[i] + c * V[i * k + j]; }
        }
    }
    var sum = 0.0;
    var abs_sum = 0.0;
    for (var i = 0u; i < k; i = i + 1u) { sum = sum + v[i]; abs_sum = abs_sum + abs(v[i]); }
    if (abs_sum > 0.0 && abs(sum) > 1e-6 * abs_sum) {
        for (var i = 0u; i < k; i = i + 1u) { w[i] = v[i] / sum; }
    }
    write_weights();
}
