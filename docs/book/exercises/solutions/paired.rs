//! Exercise 10, a solution: compare two methods run on the same seeds.
//!
//! `a[i]` and `b[i]` are one number (Δm%, a test loss) of methods A and B
//! on seed i: the same split, the same initial weights. Return the mean of
//! the differences d_i = a_i − b_i and its 95% interval,
//!
//!   mean ± t · s / √n,   s² = Σ (d_i − mean)² / (n − 1),
//!
//! with t = `T975[n − 2]`, Student's t for n − 1 degrees of freedom.
//! Pairing takes away what the seeds share: a seed that is hard for every
//! method moves a_i and b_i together and leaves d_i alone.
//!
//! Checked in every test run: cargo test --release --test exercises exercise_10

/// Student's t, 97.5% quantile, for 1 to 10 degrees of freedom.
pub const T975: [f64; 10] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
];

/// (mean difference, lower end, upper end) of the 95% interval; 2 ≤ n ≤ 11.
pub fn paired(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let n = a.len();
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let s = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let half = T975[n - 2] * s / (n as f64).sqrt();
    (mean, mean - half, mean + half)
}
