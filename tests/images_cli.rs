//! Image models through the `taskgrad` binary, end to end: a small
//! two-digit image set made from the shipped MNIST digits, on which a
//! logistic regression (`--trunk flatten`: the output layers read the
//! pixels) reaches 94% per task on images of held-out digits, and a
//! convolutional multi-task model, trained with `--image`, must reach 93%
//! on both tasks; `eval` on the second file scores every row and `predict`
//! writes both digits. Also `make-multimnist` and the errors an image
//! spec gets before any GPU work.
//!
//! The set: digits 0–4 only (a logistic regression on all ten stays near
//! 89% here), each halved to 14×14 (2×2 means), two side by side on a
//! 14×28 image; the left and right digits are the tasks. Test images are
//! made from a fifth of the source digits that no training image uses.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use taskgrad::data::multimnist::{make_pairs, Digits};

const BIN: &str = env!("CARGO_BIN_EXE_taskgrad");
const MNIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist_5k.csv.gz");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskgrad-img-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    let o = Command::new(BIN)
        .args(args)
        .output()
        .expect("the taskgrad binary runs");
    assert!(
        o.status.success(),
        "taskgrad {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A digit halved: 14×14 means of 2×2 blocks.
fn halve(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(196);
    for r in 0..14 {
        for c in 0..14 {
            let at = |dr: usize, dc: usize| d[(2 * r + dr) * 28 + 2 * c + dc] as u32;
            out.push(((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1) + 2) / 4) as u8);
        }
    }
    out
}

/// Write train.csv and test.csv of the two-digit set to `dir`.
fn two_digit_set(dir: &Path) -> (PathBuf, PathBuf) {
    let all = Digits::read(Path::new(MNIST)).unwrap();
    let mut digits = Digits::default();
    for i in (0..all.len()).filter(|&i| all.labels[i] < 5) {
        digits.pixels.extend_from_slice(all.image(i));
        digits.labels.push(all.labels[i]);
    }
    let small: Vec<Vec<u8>> = (0..digits.len()).map(|i| halve(digits.image(i))).collect();
    let (train, test) = make_pairs(&digits, 0.2, 2, 5).unwrap();
    let write = |name: &str, pairs: &[(usize, usize)]| {
        let mut s: Vec<String> = (0..14 * 28).map(|i| format!("p{i}")).collect();
        s.push("left,right".into());
        let mut text = s.join(",") + "\n";
        for &(l, r) in pairs {
            for row in 0..14 {
                for side in [l, r] {
                    for c in 0..14 {
                        text.push_str(&small[side][row * 14 + c].to_string());
                        text.push(',');
                    }
                }
            }
            text.push_str(&format!("{},{}\n", digits.labels[l], digits.labels[r]));
        }
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    (write("train.csv", &train), write("test.csv", &test))
}

/// Each task's accuracy in `eval`'s table ("left 1000 0.1234 accuracy 0.9567").
fn accuracies(o: &Output) -> Vec<(String, f64)> {
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let at = w.iter().position(|&x| x == "accuracy")?;
            Some((w[0].to_string(), w.get(at + 1)?.parse().ok()?))
        })
        .collect()
}

fn fit_model(dir: &Path, csv: &Path, name: &str, trunk: &str) -> PathBuf {
    let out = dir.join(name);
    let csv = csv.to_str().unwrap();
    run(&[
        "train",
        "--data",
        csv,
        "--image",
        "14x28",
        "--task",
        "left:class",
        "--task",
        "right:class",
        "--trunk",
        trunk,
        "--epochs",
        "8",
        "--batch",
        "64",
        "--lr",
        "0.003",
        "--test-fraction",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    out.join("model.safetensors")
}

#[test]
fn a_conv_model_on_two_digit_images_beats_the_logistic_regression_bar() {
    if common::gpu().is_none() {
        return;
    }
    let dir = scratch("two-digits");
    let (train, test) = two_digit_set(&dir);
    let score = |model: &Path| {
        let o = run(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            test.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(stdout.contains("rows evaluated: every row"), "{stdout}");
        accuracies(&o)
    };
    // The bar: a logistic regression on the pixels.
    let lr = score(&fit_model(&dir, &train, "logistic", "flatten"));
    assert_eq!(lr.len(), 2, "{lr:?}");
    for (task, acc) in &lr {
        assert!(
            *acc >= 0.94,
            "logistic regression on {task}: {acc} (the set is meant to allow 94%)"
        );
    }
    let trunk = "conv:8x3p1,relu,maxpool:2,conv:16x3p1,relu,maxpool:2,flatten,linear:64,relu";
    let model = fit_model(&dir, &train, "conv", trunk);
    let conv = score(&model);
    eprintln!("test accuracy: logistic regression {lr:?}, conv {conv:?}");
    for (task, acc) in &conv {
        assert!(
            *acc >= 0.93,
            "conv MTL on {task}: {acc}; logistic regression: {lr:?}"
        );
    }
    // predict writes both digits for every image, as the labels name them.
    let o = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        test.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("line,left,right"));
    let labels: Vec<String> = std::fs::read_to_string(&test)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            cells[cells.len() - 2..].join(",")
        })
        .collect();
    let predicted: Vec<String> = lines
        .map(|l| l.split_once(',').unwrap().1.to_string())
        .collect();
    assert_eq!(predicted.len(), labels.len());
    let right = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    assert!(
        right as f64 >= 0.85 * labels.len() as f64,
        "{right} of {} images with both digits right",
        labels.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn make_multimnist_writes_train_and_test_images_of_two_digits() {
    let dir = scratch("make");
    let o = run(&[
        "make-multimnist",
        "--mnist",
        MNIST,
        "--out",
        dir.to_str().unwrap(),
        "--test-fraction",
        "0.1",
    ]);
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        said.contains("multimnist_train.csv: 4500 images")
            && said.contains("multimnist_test.csv: 500 images"),
        "{said}"
    );
    let test = std::fs::read_to_string(dir.join("multimnist_test.csv")).unwrap();
    let mut lines = test.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        (header.len(), header[0], header[784], header[785]),
        (786, "p0", "left", "right")
    );
    let row: Vec<u32> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(row[..784].iter().all(|&p| p <= 255) && row[784] < 10 && row[785] < 10);
    // A file that is not MNIST names its line.
    std::fs::write(dir.join("bad.csv"), "1,2,3\n").unwrap();
    let o = Command::new(BIN)
        .args([
            "make-multimnist",
            "--mnist",
            dir.join("bad.csv").to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && err.contains("line 1") && err.contains("3 values"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn image_specs_that_cannot_work_fail_before_training() {
    if common::gpu().is_none() {
        return;
    }
    let dir = scratch("bad-specs");
    let csv = dir.join("tiny.csv");
    let mut text = (0..16)
        .map(|i| format!("p{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + ",digit\n";
    for r in 0..20 {
        text += &((0..16)
            .map(|i| ((i * 7 + r * 3) % 256).to_string())
            .collect::<Vec<_>>()
            .join(",")
            + &format!(",{}\n", r % 2));
    }
    std::fs::write(&csv, text).unwrap();
    let fails = |extra: &[&str], needle: &str| {
        let out = dir.join("out");
        let mut args = vec![
            "train",
            "--data",
            csv.to_str().unwrap(),
            "--task",
            "digit:class",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = Command::new(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            !o.status.success() && err.contains(needle),
            "{extra:?}: {err}"
        );
        assert!(!out.join("model.safetensors").exists());
    };
    fails(
        &["--image", "4x5"],
        "--image 4x5x1 is 20 pixel values a row, and there are 16 input columns",
    );
    fails(
        &["--image", "4x4", "--trunk", "conv:4x5,flatten"],
        "5×5 kernel does not fit a 4×4 image",
    );
    fails(
        &["--image", "4x4", "--trunk", "conv:4x3,linear:8"],
        "put flatten before it",
    );
    fails(
        &["--image", "4x4", "--trunk", "maxpool:2"],
        "end --trunk with flatten",
    );
    fails(&["--image", "four"], "--image");
    fails(
        &["--trunk", "conv:4x3,flatten"],
        "declare the input an image (--image",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `<dir>/tiny.csv`: 48 rows of a 6×6 one-channel image (`p0`…`p35`) and a
/// three-class `digit`.
fn tiny_image_csv(dir: &Path) -> PathBuf {
    let csv = dir.join("tiny.csv");
    let mut text = (0..36)
        .map(|i| format!("p{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + ",digit\n";
    for r in 0..48 {
        let px: Vec<String> = (0..36)
            .map(|i| ((i * 37 + r * 11) % 256).to_string())
            .collect();
        text += &format!("{},{}\n", px.join(","), r % 3);
    }
    std::fs::write(&csv, text).unwrap();
    csv
}

#[test]
fn dump_step_and_the_profiler_name_the_image_kernels() {
    // Each convolution algorithm's kernels, and both poolings', forward and
    // backward, appear by name in the step's dispatch list (--dump-step) and
    // in the profile's table (--profile).
    if common::gpu().is_none() {
        return;
    }
    let dir = scratch("dump-images");
    let csv = tiny_image_csv(&dir);
    let pools = [
        "maxpool.wgsl::forward",
        "maxpool.wgsl::backward",
        "avgpool.wgsl::forward",
        "avgpool.wgsl::backward",
    ];
    for (conv, kernels) in [
        ("im2col", vec!["im2col.wgsl::im2col", "im2col.wgsl::col2im"]),
        (
            "direct",
            vec![
                "conv_direct.wgsl::forward",
                "conv_direct.wgsl::weight_grad",
                "conv_direct.wgsl::input_grad",
            ],
        ),
    ] {
        let out = dir.join(conv);
        let o = Command::new(BIN)
            .env("TASKGRAD_CONV", conv)
            .args(["train", "--data", csv.to_str().unwrap(), "--image", "6x6"])
            .args(["--task", "digit:class", "--epochs", "1", "--batch", "16"])
            .args([
                "--trunk",
                "conv:4x3p1,relu,maxpool:2,conv:5x2,relu,avgpool:2,flatten,linear:8,relu",
            ])
            .args(["--dump-step", "--profile", "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{conv}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let dumped = |name: &str| {
            text.lines().any(|l| {
                let mut words = l.split_whitespace();
                words.next().is_some_and(|n| n.parse::<usize>().is_ok())
                    && words.next() == Some(name)
            })
        };
        let profiled = |name: &str| {
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(name))
        };
        for name in kernels.iter().chain(&pools) {
            assert!(dumped(name), "{conv}: {name} not in --dump-step:\n{text}");
            assert!(profiled(name), "{conv}: {name} not in --profile:\n{text}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_direct_convolution_trains_the_same_model_as_im2col() {
    // TASKGRAD_CONV=direct (the implicit GEMM) and the default im2col + matmul
    // compute one function from the same initial weights: two epochs of the
    // same run must log the same losses, up to the order of the sums.
    if common::gpu().is_none() {
        return;
    }
    let dir = scratch("conv-algos");
    let csv = tiny_image_csv(&dir);
    let losses = |conv: &str| {
        let out = dir.join(conv);
        let o = Command::new(BIN)
            .env("TASKGRAD_CONV", conv)
            .args([
                "train",
                "--data",
                csv.to_str().unwrap(),
                "--image",
                "6x6",
                "--task",
                "digit:class",
            ])
            .args([
                "--trunk",
                "conv:4x3p1,relu,avgpool:2,conv:5x2s1,flatten,linear:8,relu",
            ])
            .args([
                "--epochs",
                "2",
                "--batch",
                "16",
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{conv}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        metrics
            .lines()
            .skip(1)
            .flat_map(|l| {
                l.split(',')
                    .skip(2)
                    .take(2)
                    .map(|v| v.parse::<f64>().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<f64>>()
    };
    let (a, b) = (losses("im2col"), losses("direct"));
    assert_eq!(a.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1.0),
            "im2col {a:?}, direct {b:?}"
        );
    }
    let o = Command::new(BIN)
        .env("TASKGRAD_CONV", "winograd")
        .args(["info"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && err.contains("TASKGRAD_CONV"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn augment_puts_its_layers_first_in_the_trunk_and_the_step_runs_them() {
    if common::gpu().is_none() {
        return;
    }
    let dir = scratch("augment");
    let csv = tiny_image_csv(&dir);
    let out = dir.join("run");
    let base = [
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--image",
        "6x6",
        "--task",
        "digit:class",
        "--trunk",
        "res(conv:2x3p1,relu,conv:2x3p1),flatten,linear:8,relu",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--dump-step",
    ];
    let mut args = base.to_vec();
    args.extend(["--augment", "shift:1,flip"]);
    let o = run(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Two augmentation layers: two forward dispatches (the input needs no backward).
    assert_eq!(
        stdout.matches("augment.wgsl::shift_flip").count(),
        2,
        "{stdout}"
    );
    let ck = taskgrad::model::checkpoint::load(&out.join("model.safetensors")).unwrap();
    let layers: Vec<String> = ck
        .meta
        .net
        .trunk_layers
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(
        layers[..3],
        ["shift:1", "flip", "res(conv:2x3p1,relu,conv:2x3p1)"]
    );
    let e = run(&[
        "eval",
        "--model",
        out.join("model.safetensors").to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
    ]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    // What --augment refuses, before any training.
    for (extra, needle) in [
        (vec!["--augment", "dropout:0.1"], "not an augmentation"),
        (
            vec!["--augment", "shift:9"],
            "less than the 6x6x1 image's sides",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        args.push("--force");
        let o = try_run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{needle}: {err}"
        );
    }
    let o = try_run(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--task",
        "digit:class",
        "--augment",
        "shift:1",
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("give --image"), "{err}");
}

/// The binary's output, failing or not.
fn try_run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the taskgrad binary runs")
}

#[test]
fn mtan_trains_on_images_with_two_tasks_and_loads_back() {
    // `--arch mtan` over 6×6 images: a shared conv trunk and, per task, a
    // soft-attention mask on each stage's output; two tasks (a class and
    // the image's mean brightness); saved and evaluated.
    let dir = scratch("mtan");
    let csv = dir.join("two.csv");
    let mut text = (0..36)
        .map(|i| format!("p{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + ",digit,bright\n";
    for r in 0..48 {
        let px: Vec<usize> = (0..36).map(|i| (i * 37 + r * 11) % 256).collect();
        let mean = px.iter().sum::<usize>() as f64 / 36.0 / 255.0;
        let px: Vec<String> = px.iter().map(|v| v.to_string()).collect();
        text += &format!("{},{},{mean:.4}\n", px.join(","), r % 3);
    }
    std::fs::write(&csv, text).unwrap();
    let out = dir.join("run");
    let o = run(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--image",
        "6x6",
        "--task",
        "digit:class",
        "--task",
        "bright:reg",
        "--arch",
        "mtan",
        "--trunk",
        "conv:4x3p1,relu,maxpool:2,flatten,linear:8,relu",
        "--epochs",
        "2",
        "--batch",
        "16",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = out.join("model.safetensors");
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("digit") && text.contains("bright"), "{text}");
}
