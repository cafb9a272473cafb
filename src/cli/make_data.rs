//! `taskgrad make-multimnist`: the MultiMNIST images of
//! [`crate::data::multimnist`] from an MNIST CSV (gzipped or not), written
//! as two CSVs that `taskgrad train --image 28x28` and `eval` read.

use std::path::{Path, PathBuf};

use crate::data::multimnist::{make_pairs, to_csv, Digits};
use crate::error::{Error, Result};
use crate::model::checkpoint::write_atomically;

/// The two files written: training images and test images.
pub struct Written {
    pub train: (PathBuf, usize),
    pub test: (PathBuf, usize),
}

/// Write `<out>/multimnist_train.csv` and `<out>/multimnist_test.csv` from
/// the digits of `mnist`: `test_fraction` of the source digits make the
/// test images, each digit the left one of `pairs_per_digit` images.
pub fn make_multimnist(
    mnist: &Path,
    out: &Path,
    test_fraction: f64,
    pairs_per_digit: usize,
    seed: u64,
) -> Result<Written> {
    let digits = Digits::read(mnist)?;
    let (train, test) = make_pairs(&digits, test_fraction, pairs_per_digit, seed)?;
    std::fs::create_dir_all(out).map_err(|e| Error::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let write = |name: &str, pairs: &[(usize, usize)]| -> Result<(PathBuf, usize)> {
        let path = out.join(name);
        let text = to_csv(&digits, pairs);
        write_atomically(&path, |tmp| {
            std::fs::write(tmp, &text).map_err(|e| Error::Io {
                path: tmp.to_path_buf(),
                source: e,
            })
        })?;
        Ok((path, pairs.len()))
    };
    Ok(Written {
        train: write("multimnist_train.csv", &train)?,
        test: write("multimnist_test.csv", &test)?,
    })
}
