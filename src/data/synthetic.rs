//! Synthetic two-task regression data with a controllable task correlation,
//! after Ma, Zhao, Yi, Chen, Hong & Chi, "Modeling Task Relationships in
//! Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018, §3.2:
//!
//! 1. two orthogonal unit vectors u1, u2 ∈ R^d;
//! 2. w1 = c u1,  w2 = c (p u1 + √(1 - p²) u2), so cos(w1, w2) = p;
//! 3. x ~ N(0, I_d);
//! 4. y_k = w_kᵀx + Σ_{i=1..m} sin(α_i w_kᵀx + β_i) + ε_k,  ε_k ~ N(0, 0.01) (σ = 0.1).
//!
//! The α_i, β_i ~ N(0, 1) are shared by both tasks, so p alone sets how alike
//! the two tasks are: at p = 1 they differ only by noise. The paper calls c,
//! m, α and β "given parameters" and does not publish them; with
//! [`SyntheticSpec::function_seed`] they are fixed by a seed of their own, so
//! that runs with different seeds draw new u1, u2, x and ε around the same
//! function, as the paper's runs do. Without it they are drawn from `seed`
//! (each seed then a different function).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::{Dataset, Split, Table, TaskType};
use crate::error::Result;

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Settings of the generator.
#[derive(Clone, Debug)]
pub struct SyntheticSpec {
    pub rows: usize,
    pub inputs: usize,
    pub correlation: f64,
    pub scale: f64,
    pub sines: usize,
    /// Draws u1, u2, the rows and the noise (and α, β when `function_seed` is None).
    pub seed: u64,
    /// Draws α and β alone, the same for every `seed`.
    pub function_seed: Option<u64>,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            rows: 2000,
            inputs: 16,
            correlation: 0.5,
            scale: 1.0,
            sines: 10,
            seed: 0,
            function_seed: None,
        }
    }
}

/// The m pairs (α_i, β_i) that `function_seed` fixes.
pub fn sines(function_seed: u64, m: usize) -> (Vec<f64>, Vec<f64>) {
    draw_sines(&mut StdRng::seed_from_u64(function_seed), m)
}

fn draw_sines(rng: &mut StdRng, m: usize) -> (Vec<f64>, Vec<f64>) {
    let alpha: Vec<f64> = (0..m).map(|_| normal(rng)).collect();
    let beta: Vec<f64> = (0..m).map(|_| normal(rng)).collect();
    (alpha, beta)
}

/// Generate the table (columns x0.., y1, y2).
pub fn table(spec: &SyntheticSpec) -> Table {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let d = spec.inputs.max(2);
    // Orthonormal u1, u2 by Gram-Schmidt on two Gaussian vectors.
    let mut u1: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
    let n1 = u1.iter().map(|v| v * v).sum::<f64>().sqrt();
    u1.iter_mut().for_each(|v| *v /= n1);
    let mut u2: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
    let dot: f64 = u1.iter().zip(&u2).map(|(a, b)| a * b).sum();
    u2.iter_mut().zip(&u1).for_each(|(v, a)| *v -= dot * a);
    let n2 = u2.iter().map(|v| v * v).sum::<f64>().sqrt();
    u2.iter_mut().for_each(|v| *v /= n2);
    let p = spec.correlation.clamp(-1.0, 1.0);
    let w1: Vec<f64> = u1.iter().map(|a| spec.scale * a).collect();
    let w2: Vec<f64> = u1
        .iter()
        .zip(&u2)
        .map(|(a, b)| spec.scale * (p * a + (1.0 - p * p).sqrt() * b))
        .collect();
    let (alpha, beta) = match spec.function_seed {
        Some(f) => sines(f, spec.sines),
        None => draw_sines(&mut rng, spec.sines),
    };
    let target = |w: &[f64], x: &[f64], rng: &mut StdRng| {
        let z: f64 = w.iter().zip(x).map(|(a, b)| a * b).sum();
        z + alpha
            .iter()
            .zip(&beta)
            .map(|(a, b)| (a * z + b).sin())
            .sum::<f64>()
            + 0.1 * normal(rng)
    };
    let mut headers: Vec<String> = (0..d).map(|j| format!("x{j}")).collect();
    headers.extend(["y1".to_string(), "y2".to_string()]);
    let mut rows = Vec::with_capacity(spec.rows);
    for _ in 0..spec.rows {
        let x: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
        let (y1, y2) = (target(&w1, &x, &mut rng), target(&w2, &x, &mut rng));
        let mut row: Vec<String> = x.iter().map(|v| format!("{v}")).collect();
        row.extend([format!("{y1}"), format!("{y2}")]);
        rows.push(row);
    }
    Table::from_rows(
        format!("synthetic(p={p})"),
        headers,
        rows,
        (2..spec.rows as u64 + 2).collect(),
    )
}

/// The dataset (two regression tasks y1, y2) and a seeded 60/20/20 split.
pub fn dataset(spec: &SyntheticSpec) -> Result<(Dataset, Split)> {
    let t = table(spec);
    let split = Split::new(t.n_rows(), 0.2, 0.2, spec.seed)?;
    let names: Vec<String> = (0..spec.inputs.max(2)).map(|j| format!("x{j}")).collect();
    let inputs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let data = Dataset::from_table(
        &t,
        &inputs,
        &[("y1", TaskType::REG), ("y2", TaskType::REG)],
        &split.train,
    )?;
    Ok((data, split))
}
