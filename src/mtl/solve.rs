//! CPU reference of every small K×K solve that turns a Gram matrix (and, for
//! some methods, the losses) into task weights. The GPU runs the same
//! algorithms, step for step, in shaders/mtl_solve.wgsl, in one invocation so
//! that no training step waits on a readback; the tests compare the two.
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

/// The order in which task `i` meets the others at `step`: all tasks sorted by
/// a random key uniform(seed, step, 16 i + m), ties by index.
pub fn task_order(k: usize, seed: u32, step: u32, i: usize) -> Vec<usize> {
    let key: Vec<f64> = (0..k)
        .map(|m| uniform(seed, step, (i * 16 + m) as u32))
        .collect();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| key[a].total_cmp(&key[b]).then(a.cmp(&b)));
    order
}

/// PCGrad (Yu et al., NeurIPS 2020): each g_i, meeting the other tasks in a
/// random order, loses its component along g_j whenever g_i·g_j < 0:
///   g_i ← g_i - (g_i·g_j / ‖g_j‖²) g_j,
/// and the update is Σ_i g_i. Writing g_i = Σ_m c_im g_m, every dot product is
/// c_i·G_j, so the weights are w = Σ_i c_i.
pub fn pcgrad(g: &[f64], k: usize, seed: u32, step: u32) -> Vec<f64> {
    let mut w = vec![0.0; k];
    for i in 0..k {
        let mut c = vec![0.0; k];
        c[i] = 1.0;
        for j in task_order(k, seed, step, i) {
            if j == i {
                continue;
            }
            let dot: f64 = (0..k).map(|m| c[m] * g[m * k + j]).sum();
            if dot < 0.0 && g[j * k + j] > 0.0 {
                c[j] -= dot / g[j * k + j];
            }
        }
        for m in 0..k {
            w[m] += c[m];
        }
    }
    w
}

/// γ minimising ‖γ a + (1-γ) b‖² given a·a, a·b, b·b (Sener & Koltun's MinNormSolver).
pub fn min_norm_2(v11: f64, v12: f64, v22: f64) -> f64 {
    if v12 >= v11 {
        0.999
    } else if v12 >= v22 {
        0.001
    } else {
        (v22 - v12) / (v11 + v22 - 2.0 * v12)
    }
}

/// MGDA (Sener & Koltun, NeurIPS 2018): the min-norm point of the convex hull,
///   w = argmin_{w ≥ 0, Σw = 1} wᵀ G w,
/// in closed form for two tasks and by Frank-Wolfe with exact line search
/// (`iters` steps) for more.
pub fn mgda(g: &[f64], k: usize, iters: usize) -> Vec<f64> {
    if k == 1 {
        return vec![1.0];
    }
    if k == 2 {
        let gamma = min_norm_2(g[0], g[1], g[3]);
        return vec![gamma, 1.0 - gamma];
    }
    let mut w = vec![1.0 / k as f64; k];
    for _ in 0..iters {
        let gw: Vec<f64> = (0..k)
            .map(|i| (0..k).map(|j| g[i * k + j] * w[j]).sum())
            .collect();
        let t = (0..k).fold(0, |b, i| if gw[i] < gw[b] { i } else { b });
        let v11: f64 = (0..k).map(|i| w[i] * gw[i]).sum();
        let gamma = min_norm_2(v11, gw[t], g[t * k + t]);
        for (i, wi) in w.iter_mut().enumerate() {
            *wi = gamma * *wi + if i == t { 1.0 - gamma } else { 0.0 };
        }
    }
    w
}

/// G divided by its mean diagonal (scale-free solves), with `eps` added to the diagonal.
fn normalized(g: &[f64], k: usize, eps: f64) -> Vec<f64> {
    let mean: f64 = (0..k).map(|i| g[i * k + i]).sum::<f64>() / k as f64;
    let s = if mean > 0.0 { 1.0 / mean } else { 1.0 };
    let mut out: Vec<f64> = g.iter().map(|&x| x * s).collect();
    for i in 0..k {
        out[i * k + i] += eps;
    }
    out
}

/// CAGrad (Liu et al., NeurIPS 2021), with g0 = mean gradient (b = 1/K) and c ∈ [0, 1):
///   w = argmin_{w ∈ simplex} g_wᵀ g0 + √φ ‖g_w‖,   φ = c² ‖g0‖²,
///   d = g0 + (√φ / ‖g_w‖) g_w,  returned rescaled by 1/(1 + c²) as in LibMTL.
/// The simplex problem is solved by exponentiated gradient (`iters` steps, rate 1)
/// on the normalised Gram matrix (the minimiser does not depend on G's scale).
pub fn cagrad(g: &[f64], k: usize, c: f64, iters: usize) -> Vec<f64> {
    let gn = normalized(g, k, 0.0);
    let b = 1.0 / k as f64;
    let gb: Vec<f64> = (0..k)
        .map(|i| (0..k).map(|j| gn[i * k + j] * b).sum())
        .collect();
    let g0_sq: f64 = gb.iter().sum::<f64>() * b;
    let sphi = c * g0_sq.max(0.0).sqrt();
    let mut w = vec![b; k];
    for _ in 0..iters {
        let gw: Vec<f64> = (0..k)
            .map(|i| (0..k).map(|j| gn[i * k + j] * w[j]).sum())
            .collect();
        let nw = (0..k).map(|i| w[i] * gw[i]).sum::<f64>().max(1e-20).sqrt();
        let mut total = 0.0;
        for i in 0..k {
            w[i] *= (-(gb[i] + sphi * gw[i] / nw)).exp();
            total += w[i];
        }
        for wi in &mut w {
            *wi /= total;
        }
    }
    let gw: Vec<f64> = (0..k)
        .map(|i| (0..k).map(|j| gn[i * k + j] * w[j]).sum())
        .collect();
    let nw = (0..k).map(|i| w[i] * gw[i]).sum::<f64>().max(1e-20).sqrt();
    let lambda = sphi / nw;
    w.iter()
        .map(|&wi| (b + lambda * wi) / (1.0 + c * c))
        .collect()
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

/// IMTL-G (Liu et al., ICLR 2021): the update d = Σ w_i g_i has equal
/// projections on every unit gradient u_i = g_i/‖g_i‖. With D_i = g_0 - g_i and
/// U_i = u_0 - u_i (i = 1..K-1):  α = g_0 Uᵀ (D Uᵀ)⁻¹,  w = [1 - Σα, α].
pub fn imtl_g(g: &[f64], k: usize) -> Vec<f64> {
    if k == 1 {
        return vec![1.0];
    }
    let n: Vec<f64> = (0..k).map(|i| g[i * k + i].max(1e-20).sqrt()).collect();
    let m = k - 1;
    // A = (D Uᵀ)ᵀ so that A αᵀ = (g_0 Uᵀ)ᵀ; D_a·U_b = G00/n0 - G0b/nb - Ga0/n0 + Gab/nb.
    let mut a = vec![0.0; m * m];
    let mut r = vec![0.0; m];
    for bi in 0..m {
        let b = bi + 1;
        r[bi] = g[0] / n[0] - g[b] / n[b];
        for ai in 0..m {
            let aa = ai + 1;
            a[bi * m + ai] = g[0] / n[0] - g[b] / n[b] - g[aa * k] / n[0] + g[aa * k + b] / n[b];
        }
    }
    let alpha = solve_linear(&a, &r, m);
    let mut w = vec![1.0 - alpha.iter().sum::<f64>()];
    w.extend(alpha);
    w
}

/// Nash-MTL (Navon et al., ICML 2022): the bargaining solution d = Σ α_i g_i with
/// α_i (Gα)_i = 1, i.e. the minimiser of ½ αᵀGα - Σ log α_i over α > 0 (convex),
/// found by damped Newton (`iters` steps) on G + εI.
pub fn nash_mtl(g: &[f64], k: usize, iters: usize) -> Vec<f64> {
    let mean = (0..k).map(|i| g[i * k + i]).sum::<f64>() / k as f64;
    let eps = 1e-8 * mean.max(1e-30);
    let mut a: Vec<f64> = (0..k).map(|i| 1.0 / (g[i * k + i] + eps).sqrt()).collect();
    for _ in 0..iters {
        let ga: Vec<f64> = (0..k)
            .map(|i| (0..k).map(|j| g[i * k + j] * a[j]).sum::<f64>() + eps * a[i])
            .collect();
        let r: Vec<f64> = (0..k).map(|i| ga[i] - 1.0 / a[i]).collect();
        let mut h = g.to_vec();
        for i in 0..k {
            h[i * k + i] += eps + 1.0 / (a[i] * a[i]);
        }
        let delta = solve_linear(&h, &r, k);
        let mut s = 1.0;
        for _ in 0..40 {
            if (0..k).all(|i| a[i] - s * delta[i] > 0.0) {
                break;
            }
            s *= 0.5;
        }
        for i in 0..k {
            a[i] = (a[i] - s * delta[i]).max(1e-12);
        }
    }
    a
}

/// UPGrad (Quinton & Rey 2024, torchjd): the mean of each g_i projected onto
/// the dual cone {x : G-rows · x ≥ 0}. The projection of g_i is Σ_j v_j g_j
/// with v = argmin_{v ≥ e_i} ½ vᵀ G v, solved by projected coordinate descent
/// (`sweeps` sweeps) on the normalised G; w = (1/K) Σ_i v⁽ⁱ⁾.
pub fn upgrad(g: &[f64], k: usize, sweeps: usize) -> Vec<f64> {
    let gn = normalized(g, k, 1e-6);
    let mut w = vec![0.0; k];
    for i in 0..k {
        let mut v = vec![0.0; k];
        v[i] = 1.0;
        for _ in 0..sweeps {
            for j in 0..k {
                let gv: f64 = (0..k).map(|m| gn[j * k + m] * v[m]).sum();
                let lb = if j == i { 1.0 } else { 0.0 };
                v[j] = (v[j] - gv / gn[j * k + j]).max(lb);
            }
        }
        for j in 0..k {
            w[j] += v[j] / k as f64;
        }
    }
    w
}

/// One GradNorm update (Chen et al., ICML 2018). The rows behind `g` were
/// computed with the current weights, so ‖w_k ∇L_k‖ = √G_kk. With
/// r_k = (L_k/L_k(0)) / mean_j(L_j/L_j(0)) and target t_k = mean(‖·‖) r_k^α,
/// the loss Σ_k |‖w_k∇L_k‖ - t_k| has gradient sign(‖w_k∇L_k‖ - t_k) ‖∇L_k‖ in w_k;
/// one step of rate `lr`, then renormalise to Σ w = K.
pub fn gradnorm_step(
    g: &[f64],
    k: usize,
    losses: &[f64],
    initial: &[f64],
    w: &[f64],
    alpha: f64,
    lr: f64,
) -> Vec<f64> {
    let norms: Vec<f64> = (0..k).map(|i| g[i * k + i].max(0.0).sqrt()).collect();
    let mean_norm = norms.iter().sum::<f64>() / k as f64;
    let ratio: Vec<f64> = (0..k).map(|i| losses[i] / initial[i].max(1e-20)).collect();
    let mean_ratio = ratio.iter().sum::<f64>() / k as f64;
    let mut new: Vec<f64> = (0..k)
        .map(|i| {
            let target = mean_norm * (ratio[i] / mean_ratio.max(1e-20)).powf(alpha);
            let diff = norms[i] - target;
            let sign = if diff > 0.0 {
                1.0
            } else if diff < 0.0 {
                -1.0
            } else {
                0.0
            };
            let grad = sign * norms[i] / w[i].max(1e-20);
            (w[i] - lr * grad).max(1e-4)
        })
        .collect();
    let total: f64 = new.iter().sum();
    for x in &mut new {
        *x *= k as f64 / total;
    }
    new
}

/// RLW (Lin et al., TMLR 2022): w = softmax(z), z ~ N(0, I) drawn afresh each step.
pub fn rlw(k: usize, seed: u32, step: u32) -> Vec<f64> {
    let z: Vec<f64> = (0..k)
        .map(|i| {
            let u1 = uniform(seed, step, 2 * i as u32).max(1e-7);
            let u2 = uniform(seed, step, 2 * i as u32 + 1);
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect();
    softmax(&z)
}

pub fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// DWA (Liu, Johns & Davison, CVPR 2019): w_k = K softmax(r / T)_k with
/// r_k = L_k(t-1) / L_k(t-2), the ratio of the last two epochs' mean losses.
pub fn dwa(last: &[f64], before_last: &[f64], temperature: f64) -> Vec<f64> {
    let k = last.len();
    let r: Vec<f64> = (0..k)
        .map(|i| last[i] / before_last[i].max(1e-20) / temperature)
        .collect();
    softmax(&r).iter().map(|v| v * k as f64).collect()
}

/// FAMO state: logits ξ, Adam moments, previous losses.
#[derive(Clone, Debug)]
pub struct FamoState {
    pub has_prev: bool,
    pub xi: Vec<f64>,
    pub prev: Vec<f64>,
    pub m: Vec<f64>,
    pub v: Vec<f64>,
    pub t: i32,
}

impl FamoState {
    pub fn new(k: usize) -> Self {
        FamoState {
            has_prev: false,
            xi: vec![0.0; k],
            prev: vec![0.0; k],
            m: vec![0.0; k],
            v: vec![0.0; k],
            t: 0,
        }
    }
}

/// One FAMO step (Liu et al., NeurIPS 2023) given this step's losses: update
/// the logits ξ from the change of log-losses since the previous step,
///   δ_k = log L_k(prev) - log L_k,  ∇_ξ = (diag(z) - z zᵀ) δ,  z = softmax(ξ),
/// by Adam (rate `lr`, L2 decay `gamma`), then return the seeds
///   w_k = z_k / (c L_k),  c = Σ_j z_j / L_j,
/// so that Σ_k w_k ∇L_k = ∇ (Σ_k z_k log L_k) / c.
pub fn famo_step(s: &mut FamoState, losses: &[f64], lr: f64, gamma: f64) -> Vec<f64> {
    let k = losses.len();
    let eps = 1e-8;
    if s.has_prev {
        let delta: Vec<f64> = (0..k)
            .map(|i| (s.prev[i] + eps).ln() - (losses[i] + eps).ln())
            .collect();
        let z = softmax(&s.xi);
        let zd: f64 = (0..k).map(|i| z[i] * delta[i]).sum();
        s.t += 1;
        let (b1, b2) = (0.9f64, 0.999f64);
        for i in 0..k {
            let gi = z[i] * (delta[i] - zd) + gamma * s.xi[i];
            s.m[i] = b1 * s.m[i] + (1.0 - b1) * gi;
            s.v[i] = b2 * s.v[i] + (1.0 - b2) * gi * gi;
            let mh = s.m[i] / (1.0 - b1.powi(s.t));
            let vh = s.v[i] / (1.0 - b2.powi(s.t));
            s.xi[i] -= lr * mh / (vh.sqrt() + 1e-8);
        }
    }
    let z = softmax(&s.xi);
    let c: f64 = (0..k).map(|i| z[i] / (losses[i] + eps)).sum();
    s.prev = losses.to_vec();
    s.has_prev = true;
    (0..k).map(|i| z[i] / ((losses[i] + eps) * c)).collect()
}
