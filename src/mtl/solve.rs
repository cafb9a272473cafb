//! The CPU twin of shaders/mtl/prelude.wgsl: helpers shared by the methods'
//! CPU references (each method's `reference` sits in its own file, beside its
//! WGSL solve in shaders/mtl/<method>.wgsl, which it mirrors step for step).
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

pub fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}
