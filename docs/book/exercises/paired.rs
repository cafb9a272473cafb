//! Exercise 10 (chapter 10): compare two methods run on the same seeds.
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
//! Check it:   cargo test --release --test exercises -- --ignored exercise_10
//! Until you write it, the test fails: this stub compares the two means as
//! if the runs were unrelated (Welch's interval), which the seeds' shared
//! difficulty widens.

/// Student's t, 97.5% quantile, for 1 to 10 degrees of freedom.
pub const T975: [f64; 10] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
];

/// (mean difference, lower end, upper end) of the 95% interval; 2 ≤ n ≤ 11.
pub fn paired(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    // TODO: the paired interval above. This is the unpaired one.
    let n = a.len() as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
    let var = |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    let (ma, mb) = (mean(a), mean(b));
    let se = ((var(a, ma) + var(b, mb)) / n).sqrt();
    let d = ma - mb;
    let t = T975[a.len() - 2];
    (d, d - t * se, d + t * se)
}
