//! MultiMNIST as Sener & Koltun (2018) build it for their multi-task
//! experiments ("Multi-Task Learning as Multi-Objective Optimization",
//! NeurIPS, section 5.1; their loader `multi_mnist_loader.py`): two MNIST
//! digits on a 36×36 canvas, the left one at the top left (rows and columns
//! 0–27) and the right one shifted by 6 pixels towards the bottom right
//! (6–33), overlapping in the middle where the brighter pixel wins; the
//! canvas is then resized to 28×28 by nearest-neighbour sampling. The tasks
//! are the left digit and the right digit.
//!
//! Each source digit is the left digit of `pairs_per_digit` images, each
//! time with a right digit drawn uniformly from the same split (the
//! paper's loader makes one pair per digit). Training and test images are
//! made from disjoint source digits, so a test image never shows a digit
//! seen in training. The paper uses the 60,000 + 10,000 digits of MNIST;
//! the project ships 5,000 (`data/mnist_5k.csv.gz`).
//!
//! The CSV written has columns `p0` … `p783` (the 28×28 canvas row by row,
//! 0–255) then `left` and `right`: `taskgrad train --image 28x28 --task
//! left:class --task right:class` reads it as is.

use std::io::Read;
use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::data::encode::{Missing, Schema};
use crate::data::{Dataset, Split, Table, TaskType};
use crate::error::{Error, Result};
use crate::nn::layer::Image;

/// The side of an MNIST digit and of a MultiMNIST image.
pub const SIDE: usize = 28;
/// The side of the canvas the two digits are placed on.
pub const CANVAS: usize = 36;
/// How far the right digit is moved down and right on the canvas.
pub const SHIFT: usize = 6;

/// Digits: `pixels` holds 28×28 values (0–255, row by row) per digit.
#[derive(Clone, Debug, Default)]
pub struct Digits {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Digits {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// `n` digits drawn without replacement by `seed` (all of them, shuffled,
    /// when there are fewer): a subset with every class, where the first `n`
    /// of a file sorted by label (as `mnist_5k.csv.gz` is) would hold one.
    pub fn sample(&self, n: usize, seed: u64) -> Digits {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        order.truncate(n);
        Digits {
            pixels: order.iter().flat_map(|&i| self.image(i)).copied().collect(),
            labels: order.iter().map(|&i| self.labels[i]).collect(),
        }
    }
    /// Digit `i`'s 784 pixels.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * SIDE * SIDE..(i + 1) * SIDE * SIDE]
    }

    /// Digits from MNIST as CSV lines of 784 pixel values then the label
    /// (no header; the layout of `mnist_5k.csv.gz`).
    pub fn from_csv_lines(text: &str) -> Result<Digits> {
        let mut d = Digits::default();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = |why: String| Error::InvalidConfig(format!("MNIST line {}: {why}", n + 1));
            let values: Vec<&str> = line.split(',').collect();
            if values.len() != SIDE * SIDE + 1 {
                return Err(bad(format!(
                    "{} values, where a digit is 784 pixels and a label",
                    values.len()
                )));
            }
            for v in &values[..SIDE * SIDE] {
                d.pixels.push(
                    v.trim()
                        .parse()
                        .map_err(|_| bad(format!("pixel {v:?} is not 0–255")))?,
                );
            }
            let label: u8 = (values[SIDE * SIDE].trim().parse().ok())
                .filter(|l| *l < 10)
                .ok_or_else(|| bad(format!("label {:?} is not 0–9", values[SIDE * SIDE])))?;
            d.labels.push(label);
        }
        Ok(d)
    }

    /// The digits of an MNIST CSV file (the layout of
    /// [`Digits::from_csv_lines`]), read through gzip when the name ends in
    /// `.gz`.
    pub fn read(path: &Path) -> Result<Digits> {
        let io = |e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let bytes = std::fs::read(path).map_err(io)?;
        let gz = path.extension().is_some_and(|e| e == "gz");
        let text = if gz {
            gunzip(&bytes).map_err(io)?
        } else {
            String::from_utf8(bytes)
                .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?
        };
        Digits::from_csv_lines(&text).map_err(|e| match e {
            Error::InvalidConfig(m) => Error::InvalidConfig(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// The digits of a gzipped MNIST CSV held in memory (the browser page
    /// embeds one; there is no file system there).
    pub fn from_gz_bytes(bytes: &[u8]) -> Result<Digits> {
        let text =
            gunzip(bytes).map_err(|e| Error::InvalidConfig(format!("gzipped MNIST CSV: {e}")))?;
        Digits::from_csv_lines(&text)
    }
}

fn gunzip(bytes: &[u8]) -> std::io::Result<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text)?;
    Ok(text)
}

/// The 28×28 MultiMNIST image of `left` and `right` (784 pixels each).
pub fn compose(left: &[u8], right: &[u8]) -> Vec<u8> {
    let mut canvas = [0u8; CANVAS * CANVAS];
    for r in 0..SIDE {
        let row = &left[r * SIDE..(r + 1) * SIDE];
        canvas[r * CANVAS..r * CANVAS + SIDE].copy_from_slice(row);
    }
    for r in 0..SIDE {
        for c in 0..SIDE {
            let at = (r + SHIFT) * CANVAS + c + SHIFT;
            canvas[at] = canvas[at].max(right[r * SIDE + c]);
        }
    }
    // Nearest neighbour, as PIL's NEAREST: output pixel i samples the canvas
    // at floor((i + ½)·36/28).
    let src = |i: usize| ((2 * i + 1) * CANVAS / (2 * SIDE)).min(CANVAS - 1);
    let mut out = Vec::with_capacity(SIDE * SIDE);
    for r in 0..SIDE {
        for c in 0..SIDE {
            out.push(canvas[src(r) * CANVAS + src(c)]);
        }
    }
    out
}

/// One split's images: (left digit index, right digit index) pairs.
pub type Pairs = Vec<(usize, usize)>;

/// Training and test pairs from disjoint source digits: a `test_fraction`
/// of the digits (chosen by `seed`) are the test split's sources.
pub fn make_pairs(
    digits: &Digits,
    test_fraction: f64,
    pairs_per_digit: usize,
    seed: u64,
) -> Result<(Pairs, Pairs)> {
    if !(0.0..1.0).contains(&test_fraction) || pairs_per_digit == 0 {
        return Err(Error::InvalidConfig(format!(
            "MultiMNIST needs a test fraction in [0, 1) and at least one pair per digit, got {test_fraction} and {pairs_per_digit}"
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..digits.len()).collect();
    order.shuffle(&mut rng);
    let n_test = (digits.len() as f64 * test_fraction).round() as usize;
    let (test, train) = order.split_at(n_test);
    let mut pair = |sources: &[usize]| -> Pairs {
        let mut out = Vec::new();
        for &left in sources {
            for _ in 0..pairs_per_digit {
                out.push((left, sources[rng.random_range(0..sources.len())]));
            }
        }
        out
    };
    let train_pairs = pair(train);
    let test_pairs = if test.is_empty() {
        Vec::new()
    } else {
        pair(test)
    };
    Ok((train_pairs, test_pairs))
}

/// The CSV of `pairs`: a header `p0,…,p783,left,right`, one image a line.
pub fn to_csv(digits: &Digits, pairs: &[(usize, usize)]) -> String {
    let mut s = String::new();
    for i in 0..SIDE * SIDE {
        s.push_str(&format!("p{i},"));
    }
    s.push_str("left,right\n");
    for &(l, r) in pairs {
        for p in compose(digits.image(l), digits.image(r)) {
            s.push_str(&p.to_string());
            s.push(',');
        }
        s.push_str(&format!("{},{}\n", digits.labels[l], digits.labels[r]));
    }
    s
}

/// MultiMNIST encoded for training: the training images (rows
/// `0..n_train`), then the test images (rows `n_train..`), 28×28×1 pixels
/// scaled as `taskgrad train --image 28x28` scales them (the scale fitted on
/// the training rows), tasks `left` and `right` (10 classes each).
pub struct Encoded {
    pub data: Dataset,
    pub n_train: usize,
    pub n_test: usize,
}

impl Encoded {
    /// Encode the images of `train` and `test` pairs of `digits`.
    pub fn new(
        digits: &Digits,
        train: &[(usize, usize)],
        test: &[(usize, usize)],
    ) -> Result<Encoded> {
        let all: Vec<(usize, usize)> = train.iter().chain(test).copied().collect();
        let table = Table::from_csv_text("MultiMNIST", &to_csv(digits, &all))?;
        let pixels: Vec<String> = (0..SIDE * SIDE).map(|i| format!("p{i}")).collect();
        let inputs: Vec<&str> = pixels.iter().map(|s| s.as_str()).collect();
        let train_rows: Vec<usize> = (0..train.len()).collect();
        let schema = Schema::fit(&table, &inputs, &TASKS, &train_rows, Missing::Drop)?.as_image(
            Image::new(SIDE, SIDE, 1)?,
            &table,
            &train_rows,
        )?;
        let rows: Vec<usize> = (0..all.len()).collect();
        Ok(Encoded {
            data: schema.encode(&table, &rows)?,
            n_train: train.len(),
            n_test: test.len(),
        })
    }

    /// Seed `seed`'s split: `val_fraction` of the training images for
    /// validation (early stopping), the test images (other source digits)
    /// for the test.
    pub fn split(&self, val_fraction: f64, seed: u64) -> Result<Split> {
        let within = Split::new(self.n_train, val_fraction, 0.0, seed)?;
        Ok(Split {
            train: within.train,
            val: within.val,
            test: (self.n_train..self.n_train + self.n_test).collect(),
        })
    }
}

/// The two tasks: the left digit and the right digit.
pub const TASKS: [(&str, TaskType); 2] = [("left", TaskType::CLASS), ("right", TaskType::CLASS)];

#[cfg(test)]
mod tests {
    use super::*;

    fn digit(f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        (0..SIDE * SIDE).map(|i| f(i / SIDE, i % SIDE)).collect()
    }

    #[test]
    fn a_sample_keeps_each_digit_with_its_label() {
        // Ten digits, each filled with its own label, sorted by label.
        let mut all = Digits::default();
        for label in 0..10u8 {
            all.pixels.extend(digit(|_, _| label));
            all.labels.push(label);
        }
        let s = all.sample(4, 7);
        assert_eq!(s.len(), 4);
        for i in 0..4 {
            assert!(s.image(i).iter().all(|&p| p == s.labels[i]));
        }
        let mut labels = s.labels.clone();
        labels.dedup();
        assert_eq!(labels.len(), 4, "drawn without replacement: {:?}", s.labels);
        assert_ne!(s.labels, [0, 1, 2, 3], "drawn, not the first four");
        assert_eq!(all.sample(4, 7).labels, s.labels, "seeded");
        assert_eq!(all.sample(99, 0).len(), 10);
    }

    #[test]
    fn the_left_digit_sits_top_left_and_the_right_one_bottom_right() {
        // A left digit lit only at its top-left pixel, a right one only at
        // its pixel (26,26): they land on the canvas at (0,0) and (32,32),
        // which outputs (0,0) and (25,25) sample: floor(25.5·36/28) = 32.
        // (Canvas rows 33 and 35 are sampled by no output.)
        let left = digit(|r, c| if r == 0 && c == 0 { 200 } else { 0 });
        let right = digit(|r, c| if r == 26 && c == 26 { 100 } else { 0 });
        let img = compose(&left, &right);
        assert_eq!(img[0], 200);
        assert_eq!(img[25 * SIDE + 25], 100);
        assert_eq!(img.iter().filter(|&&p| p > 0).count(), 2);
    }

    #[test]
    fn where_the_digits_overlap_the_brighter_pixel_wins() {
        let left = digit(|_, _| 50);
        let right = digit(|_, _| 90);
        let img = compose(&left, &right);
        // Canvas (14,14) is inside both: max(50, 90); canvas (3,3) is only the left one.
        let at = |canvas: usize| (0..SIDE).find(|&i| (2 * i + 1) * CANVAS / (2 * SIDE) == canvas);
        let (mid, corner) = (at(14).unwrap(), at(3).unwrap());
        assert_eq!(img[mid * SIDE + mid], 90);
        assert_eq!(img[corner * SIDE + corner], 50);
        assert_eq!(img[corner * SIDE + SIDE - 1], 0, "top right: neither digit");
    }

    #[test]
    fn train_and_test_images_come_from_disjoint_digits() {
        let n = 50;
        let digits = Digits {
            pixels: vec![0; n * SIDE * SIDE],
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
        };
        let (train, test) = make_pairs(&digits, 0.2, 3, 7).unwrap();
        assert_eq!((train.len(), test.len()), (40 * 3, 10 * 3));
        let used = |p: &Pairs| {
            p.iter()
                .flat_map(|&(l, r)| [l, r])
                .collect::<std::collections::HashSet<_>>()
        };
        assert!(used(&train).is_disjoint(&used(&test)));
        assert_eq!(used(&test).len(), 10, "every test digit is a left digit");
        assert!(make_pairs(&digits, 1.0, 1, 7).is_err());
    }

    #[test]
    fn mnist_lines_are_read_and_bad_ones_named() {
        let line = |label: &str| format!("{}{label}", "0,".repeat(784));
        let d = Digits::from_csv_lines(&format!("{}\n{}\n", line("3"), line("9"))).unwrap();
        assert_eq!(d.labels, vec![3, 9]);
        let e = Digits::from_csv_lines(&line("12")).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("0–9"), "{e}");
        let e = Digits::from_csv_lines("1,2,3").unwrap_err().to_string();
        assert!(e.contains("3 values"), "{e}");
    }
}
