//! Encoded data ready for training: each task's targets (with masks for
//! missing labels), seeded train/validation/test splits and fixed-shape
//! minibatches.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::task::{Target, TargetData, TaskSpec};

/// Rows of the train, validation and test splits.
#[derive(Clone, Debug)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

impl Split {
    /// Seeded shuffle, then the first `test` fraction is the test set, the next `val` fraction validation.
    pub fn new(n: usize, val: f64, test: f64, seed: u64) -> Result<Split> {
        if !(0.0..1.0).contains(&val) || !(0.0..1.0).contains(&test) || val + test >= 1.0 {
            return Err(Error::InvalidConfig(format!(
                "split fractions val={val} test={test} must be in [0, 1) with sum < 1"
            )));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut StdRng::seed_from_u64(seed));
        let n_test = (n as f64 * test).round() as usize;
        let n_val = (n as f64 * val).round() as usize;
        let test_rows = idx[..n_test].to_vec();
        let val_rows = idx[n_test..n_test + n_val].to_vec();
        let train = idx[n_test + n_val..].to_vec();
        if train.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "{n} rows leave no training rows after the split"
            )));
        }
        Ok(Split {
            train,
            val: val_rows,
            test: test_rows,
        })
    }
}

/// Inputs (standardised with training-split statistics) and targets of every task.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub input_names: Vec<String>,
    /// N×D, standardised.
    pub x: Vec<f32>,
    pub n: usize,
    pub d: usize,
    pub tasks: Vec<TaskSpec>,
    pub targets: Vec<Target>,
    /// The embedded input columns: the last `embeddings.len()` columns of x
    /// hold their level indices (−1: unseen or missing).
    pub embeddings: Vec<crate::nn::Embedding>,
    /// The inputs are one image's pixels (NHWC), when they are.
    pub image: Option<crate::nn::layer::Image>,
}

/// One fixed-shape minibatch on the host: `rows` real rows, padded to B with masked rows.
pub struct HostBatch {
    pub x: Vec<f32>,
    /// Per task of the subset: B targets as the kind stores them (0 on padded
    /// and unlabelled rows) and B mask values.
    pub targets: Vec<TargetData>,
    pub masks: Vec<Vec<f32>>,
    pub rows: usize,
}

impl Dataset {
    /// Gather `idx` (at most `b` rows) for the tasks `subset`, padding to `b` rows whose masks are 0.
    pub fn batch(&self, idx: &[usize], b: usize, subset: &[usize]) -> HostBatch {
        let d = self.d;
        let mut x = vec![0.0f32; b * d];
        for (r, &i) in idx.iter().enumerate() {
            x[r * d..(r + 1) * d].copy_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        let (mut targets, mut masks) = (Vec::new(), Vec::new());
        for &k in subset {
            let target = &self.targets[k];
            let mut mask = vec![0.0f32; b];
            for (r, &i) in idx.iter().enumerate() {
                mask[r] = target.mask[i];
            }
            let labelled = |r: usize| mask[r] > 0.0;
            targets.push(match &target.data {
                TargetData::Labels(l) => {
                    let mut lab = vec![0u32; b];
                    for (r, &i) in idx.iter().enumerate() {
                        lab[r] = l[i];
                    }
                    TargetData::Labels(lab)
                }
                TargetData::Values(v) => {
                    let mut val = vec![0.0f32; b];
                    for (r, &i) in idx.iter().enumerate() {
                        val[r] = if labelled(r) { v[i] } else { 0.0 };
                    }
                    TargetData::Values(val)
                }
            });
            masks.push(mask);
        }
        HostBatch {
            x,
            targets,
            masks,
            rows: idx.len(),
        }
    }
}
