//! The CPU twin of shaders/mtl/prelude.wgsl: helpers shared by the methods'
//! CPU references (each method's `reference` sits in its own file, beside its
//! WGSL solve in `shaders/mtl/<method>.wgsl`, which it mirrors step for step).
//!
//! `g` is the K×K Gram matrix G_ij = g_i·g_j, row-major, in f64.

/// The lowbias32 integer hash (C. Wellons), the random source shared with the
/// GPU: the same seed gives the same task orders and weights everywhere.
pub fn hash(v: u32) -> u32 {
    let mut x = v;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// A uniform draw in [0, 1) from (seed, step, index).
pub fn uniform(seed: u32, step: u32, index: u32) -> f64 {
    let h =
        hash(seed ^ hash(step.wrapping_mul(0x9E37_79B9) ^ hash(index.wrapping_add(0x85EB_CA6B))));
    (h >> 8) as f64 / (1u32 << 24) as f64
}

/// G / tr G (taken as 0 when tr G < `norm_eps`) plus `reg_eps` on the
/// diagonal: torchjd's normalize-then-regularize (UPGrad, DualProj); the
/// prelude's `trace_normalize_gram`.
pub(crate) fn trace_normalized(g: &[f64], k: usize, norm_eps: f64, reg_eps: f64) -> Vec<f64> {
    let trace: f64 = (0..k).map(|i| g[i * k + i]).sum();
    let s = if trace >= norm_eps { 1.0 / trace } else { 0.0 };
    let mut h: Vec<f64> = g.iter().map(|&v| v * s).collect();
    for i in 0..k {
        h[i * k + i] += reg_eps;
    }
    h
}

/// G divided by its mean diagonal (scale-free solves), with `eps` added to the diagonal.
pub(crate) fn normalized(g: &[f64], k: usize, eps: f64) -> Vec<f64> {
    let mean: f64 = (0..k).map(|i| g[i * k + i]).sum::<f64>() / k as f64;
    let s = if mean > 0.0 { 1.0 / mean } else { 1.0 };
    let mut out: Vec<f64> = g.iter().map(|&x| x * s).collect();
    for i in 0..k {
        out[i * k + i] += eps;
    }
    out
}

/// Eigenvalues below this fraction of the largest count as zero in a
/// pseudo-inverse (`pinv_apply`): in f32 they are rounding noise.
pub const PINV_RTOL: f64 = 1e-5;

/// Cyclic Jacobi sweeps of the eigen-decomposition.
pub const JACOBI_SWEEPS: usize = 12;

/// The eigen-decomposition of a symmetric K×K matrix by cyclic Jacobi
/// rotations: returns (eigenvalues, eigenvectors as the columns of V, row-major).
pub fn jacobi_eigen(m: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = m.to_vec();
    let mut v: Vec<f64> = (0..k * k)
        .map(|i| if i / k == i % k { 1.0 } else { 0.0 })
        .collect();
    for _ in 0..JACOBI_SWEEPS {
        for p in 0..k {
            for q in p + 1..k {
                let apq = a[p * k + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a_pq (Numerical Recipes, §11.1).
                let theta = (a[q * k + q] - a[p * k + p]) / (2.0 * apq);
                let t = if theta.abs() > 1e10 {
                    0.5 / theta
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..k {
                    let (rp, rq) = (a[r * k + p], a[r * k + q]);
                    a[r * k + p] = c * rp - s * rq;
                    a[r * k + q] = s * rp + c * rq;
                }
                for r in 0..k {
                    let (pr, qr) = (a[p * k + r], a[q * k + r]);
                    a[p * k + r] = c * pr - s * qr;
                    a[q * k + r] = s * pr + c * qr;
                }
                for r in 0..k {
                    let (rp, rq) = (v[r * k + p], v[r * k + q]);
                    v[r * k + p] = c * rp - s * rq;
                    v[r * k + q] = s * rp + c * rq;
                }
            }
        }
    }
    ((0..k).map(|i| a[i * k + i]).collect(), v)
}

/// M⁺ r for a symmetric K×K M, from its eigen-decomposition: Σ_j v_j
/// (v_j·r) / λ_j over the eigenvalues above PINV_RTOL of the largest (the
/// prelude's `pinv_apply` after `jacobi`).
pub fn pinv_apply(m: &[f64], r: &[f64], k: usize) -> Vec<f64> {
    let (lambda, q) = jacobi_eigen(m, k);
    let cutoff = PINV_RTOL * lambda.iter().cloned().fold(0.0, f64::max);
    let mut v = vec![0.0; k];
    for j in 0..k {
        if lambda[j] > cutoff {
            let c = (0..k).map(|i| q[i * k + j] * r[i]).sum::<f64>() / lambda[j];
            for i in 0..k {
                v[i] += c * q[i * k + j];
            }
        }
    }
    v
}

/// w > 0 with (G w)_k = w_k^{−q} for every k (q = 1/α of α-fairness; q = 1
/// is Nash-MTL's bargaining point α_k (Gα)_k = 1): the stationary point of
/// the convex ½ wᵀGw − Σ_k f(w_k), f'(w) = w^{−q}, by damped Newton (`iters`
/// steps, each keeping w > 0) on G + εI, ε = 1e-8 of the mean diagonal, from
/// w_k = 1/√G_kk. The prelude's `alpha_fair`; Nash-MTL and FairGrad.
pub fn alpha_fair(g: &[f64], k: usize, q: f64, iters: usize) -> Vec<f64> {
    // w^{−q} and its derivative's magnitude q w^{−q−1}; exact reciprocals at q = 1.
    let neg_pow = |w: f64, q: f64| if q == 1.0 { 1.0 / w } else { w.powf(-q) };
    let mean = (0..k).map(|i| g[i * k + i]).sum::<f64>() / k as f64;
    let eps = 1e-8 * mean.max(1e-30);
    let mut w: Vec<f64> = (0..k).map(|i| 1.0 / (g[i * k + i] + eps).sqrt()).collect();
    for _ in 0..iters {
        let r: Vec<f64> = (0..k)
            .map(|i| {
                (0..k).map(|j| g[i * k + j] * w[j]).sum::<f64>() + eps * w[i] - neg_pow(w[i], q)
            })
            .collect();
        let mut h = g.to_vec();
        for i in 0..k {
            h[i * k + i] += eps + q * neg_pow(w[i], q) / w[i];
        }
        let delta = solve_linear(&h, &r, k);
        let mut s = 1.0;
        for _ in 0..40 {
            if (0..k).all(|i| w[i] - s * delta[i] > 0.0) {
                break;
            }
            s *= 0.5;
        }
        for i in 0..k {
            w[i] = (w[i] - s * delta[i]).max(1e-12);
        }
    }
    w
}

/// Solve A x = r (n×n, row-major) by Gaussian elimination with partial pivoting.
pub fn solve_linear(a: &[f64], r: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut x = r.to_vec();
    for col in 0..n {
        let piv = (col..n).fold(col, |b, i| {
            if m[i * n + col].abs() > m[b * n + col].abs() {
                i
            } else {
                b
            }
        });
        for j in 0..n {
            m.swap(col * n + j, piv * n + j);
        }
        x.swap(col, piv);
        let d = m[col * n + col];
        if d.abs() < 1e-30 {
            continue;
        }
        for i in col + 1..n {
            let f = m[i * n + col] / d;
            for j in col..n {
                m[i * n + j] -= f * m[col * n + j];
            }
            x[i] -= f * x[col];
        }
    }
    for col in (0..n).rev() {
        let mut s = x[col];
        for j in col + 1..n {
            s -= m[col * n + j] * x[j];
        }
        let d = m[col * n + col];
        x[col] = if d.abs() < 1e-30 { 0.0 } else { s / d };
    }
    x
}

/// The Euclidean projection of `v` onto the simplex {x ≥ 0, Σ x = 1}: x =
/// max(v − θ, 0), θ from the sorted prefix sums, found by counting and
/// written in differences as `project_simplex` in shaders/mtl/prelude.wgsl.
pub fn project_simplex(v: &[f64]) -> Vec<f64> {
    let before = |m: usize, i: usize| v[m] > v[i] || (v[m] == v[i] && m < i);
    let mut place = vec![0; v.len()];
    let mut rho = 0;
    for i in 0..v.len() {
        let ahead: Vec<usize> = (0..v.len()).filter(|&m| before(m, i)).collect();
        place[i] = 1 + ahead.len();
        let gap: f64 = ahead.iter().map(|&m| v[m] - v[i]).sum();
        if 1.0 - gap > 0.0 && place[i] > rho {
            rho = place[i];
        }
    }
    (0..v.len())
        .map(|m| {
            let s: f64 = 1.0
                + (0..v.len())
                    .filter(|&r| place[r] <= rho)
                    .map(|r| v[m] - v[r])
                    .sum::<f64>();
            (s / rho as f64).max(0.0)
        })
        .collect()
}

pub fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// The optimum of the QP on the free tasks `idx` (the others held at their
/// bounds), from one linear system:
///   H_FF z + ν 1 = -lin_F - H_FB lo_B   (and Σ z = 1 - Σ lo_B when `simplex`).
/// Returns z (ν dropped). Mirrors `free_set_optimum` in shaders/mtl/prelude.wgsl.
fn free_set_optimum(
    h: &[f64],
    lin: &[f64],
    lo: &[f64],
    free: &[bool],
    idx: &[usize],
    k: usize,
    simplex: bool,
) -> Vec<f64> {
    let n = idx.len();
    let m = if simplex { n + 1 } else { n };
    let fixed = || (0..k).filter(|&j| !free[j]);
    let mut a = vec![0.0; m * m];
    let mut r = vec![0.0; m];
    for (ai, &i) in idx.iter().enumerate() {
        r[ai] = -lin[i] - fixed().map(|j| h[i * k + j] * lo[j]).sum::<f64>();
        for (bi, &j) in idx.iter().enumerate() {
            a[ai * m + bi] = h[i * k + j];
        }
        if simplex {
            a[ai * m + n] = 1.0;
        }
    }
    if simplex {
        for bi in 0..n {
            a[n * m + bi] = 1.0;
        }
        r[n] = 1.0 - fixed().map(|j| lo[j]).sum::<f64>();
    }
    let mut z = solve_linear(&a, &r, m);
    z.truncate(n);
    z
}

/// The relative tolerance of [`active_set_qp`] (of the largest |H_ii| or |lin_i|).
pub const QP_TOL: f64 = 1e-6;

/// A task whose squared gradient norm is at most this fraction of the largest
/// counts as a zero gradient.
pub const ZERO_NORM: f64 = 1e-12;

/// Which tasks have a non-zero gradient (G_ii > ZERO_NORM · max G_jj).
pub(crate) fn live_tasks(g: &[f64], k: usize) -> Vec<bool> {
    let maxd = (0..k).map(|i| g[i * k + i]).fold(0.0, f64::max);
    (0..k).map(|i| g[i * k + i] > ZERO_NORM * maxd).collect()
}

/// The small quadratic programs of the methods, exactly, by a primal active
/// set (Nocedal & Wright, Algorithm 16.3):
///
///   minimise ½ vᵀ H v + linᵀ v   over v ≥ lo   (and Σ v = 1 when `simplex`),
///
/// H (K×K) positive semi-definite, tasks with `live[i] == false` held at
/// lo[i]. Each step solves the problem on the free set (the tasks above their
/// bound) as a linear system; a step that would cross a bound stops there and
/// fixes that task; at the optimum of a free set, the task whose bound
/// multiplier is most negative is freed, until none is (the KKT conditions,
/// to QP_TOL). At most 3K + 8 steps. The simplex form starts from the best
/// vertex (lo must be 0 there), the other from v = lo.
/// Mirrors `qp` in shaders/mtl/prelude.wgsl.
pub fn active_set_qp(
    h: &[f64],
    lin: &[f64],
    lo: &[f64],
    live: &[bool],
    k: usize,
    simplex: bool,
) -> Vec<f64> {
    let scale = (0..k).fold(0.0f64, |s, i| s.max(h[i * k + i].abs()).max(lin[i].abs()));
    let tol = QP_TOL * scale.max(1e-30);
    let mut v = lo.to_vec();
    let mut free = vec![false; k];
    if simplex {
        let best = (0..k)
            .filter(|&i| live[i])
            .fold(None, |b: Option<usize>, i| {
                let val = 0.5 * h[i * k + i] + lin[i];
                match b {
                    Some(j) if 0.5 * h[j * k + j] + lin[j] <= val => Some(j),
                    _ => Some(i),
                }
            });
        let Some(best) = best else { return v };
        v[best] = 1.0;
        free[best] = true;
    }
    let grad = |v: &[f64], i: usize| (0..k).map(|j| h[i * k + j] * v[j]).sum::<f64>() + lin[i];
    for _ in 0..3 * k + 8 {
        let idx: Vec<usize> = (0..k).filter(|&i| free[i]).collect();
        let n = idx.len();
        if n > 0 {
            let z = free_set_optimum(h, lin, lo, &free, &idx, k, simplex);
            // Go as far toward z as the bounds allow.
            let mut theta = 1.0;
            let mut block = k;
            for (ai, &i) in idx.iter().enumerate() {
                // z < lo <= v, so t < 1.
                if z[ai] < lo[i] && (v[i] - lo[i]) / (v[i] - z[ai]) < theta {
                    theta = (v[i] - lo[i]) / (v[i] - z[ai]);
                    block = i;
                }
            }
            for (ai, &i) in idx.iter().enumerate() {
                v[i] += theta * (z[ai] - v[i]);
            }
            if block < k {
                for &i in &idx {
                    if i == block || v[i] <= lo[i] {
                        v[i] = lo[i];
                        free[i] = false;
                    }
                }
                continue;
            }
        }
        // Optimal on the free set: free the most violated bound, if any.
        let nu = if simplex && n > 0 {
            -idx.iter().map(|&i| grad(&v, i)).sum::<f64>() / n as f64
        } else {
            0.0
        };
        let mut enter = k;
        let mut most = -tol;
        for i in 0..k {
            if !free[i] && live[i] {
                let mu = grad(&v, i) + nu;
                if mu < most {
                    most = mu;
                    enter = i;
                }
            }
        }
        if enter == k {
            break;
        }
        free[enter] = true;
    }
    v
}
