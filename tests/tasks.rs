//! Task kinds as units (issue 20): the binary kind's fitting, encoding,
//! metrics and saved form; ROC AUC with ties against the pairwise
//! definition; the registry (a kind from outside the crate); saved tasks of
//! every kind, old ones included, loading back; a binary task trained
//! on a real column; and the kind's own kernel (`task::binary::kernel`)
//! against its CPU twin and finite differences.

mod common;

use common::fd::{check, f32s, fixture, loss_buffers, upload};
use common::{assert_close, random, rng};
use rand::Rng;
use taskgrad::data::{Dataset, Split, Table};
use taskgrad::task::metrics::{log_loss, roc_auc};
use taskgrad::task::{self, binary, Binary, Class, Reg, TaskSpec, TaskType};
use taskgrad::Tape;
use taskgrad::{mtl, Error};

fn table(name: &str, text: &str) -> Table {
    let dir = std::env::temp_dir().join(format!("taskgrad-tasks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    Table::from_csv(&path).unwrap()
}

/// AUC by its definition: over every (positive, negative) pair, 1 when the
/// positive scores higher, ½ on a tie.
fn auc_pairwise(scores: &[f64], positive: &[bool]) -> f64 {
    let (mut sum, mut pairs) = (0.0, 0.0);
    for (i, &pi) in positive.iter().enumerate() {
        for (j, &pj) in positive.iter().enumerate() {
            if pi && !pj {
                sum += match scores[i].partial_cmp(&scores[j]).unwrap() {
                    std::cmp::Ordering::Greater => 1.0,
                    std::cmp::Ordering::Equal => 0.5,
                    std::cmp::Ordering::Less => 0.0,
                };
                pairs += 1.0;
            }
        }
    }
    sum / pairs
}

#[test]
fn roc_auc_by_hand_and_against_the_pairwise_definition() {
    let all = [1.0f32; 4];
    // Separated, reversed, all tied.
    let pos = [false, false, true, true];
    assert_eq!(roc_auc(&[0.1, 0.2, 0.3, 0.4], &pos, &all), 1.0);
    assert_eq!(roc_auc(&[0.4, 0.3, 0.2, 0.1], &pos, &all), 0.0);
    assert_eq!(roc_auc(&[0.5; 4], &pos, &all), 0.5);
    // A tie across the classes: the positive at 0.4 beats the negative at
    // 0.1 and ties the one at 0.4 (½); the one at 0.8 beats both: 3.5 / 4.
    assert_eq!(roc_auc(&[0.1, 0.4, 0.4, 0.8], &pos, &all), 0.875);
    // A masked row is left out: without row 3 one positive remains, tied with a negative.
    assert_eq!(
        roc_auc(&[0.1, 0.4, 0.4, 0.8], &pos, &[1.0, 1.0, 1.0, 0.0]),
        0.75
    );
    // One class only: no pair to rank.
    assert_eq!(roc_auc(&[0.1, 0.2], &[true, true], &[1.0, 1.0]), 0.5);
    // Random scores on a coarse grid (many ties), random labels and masks.
    let mut r = rng(7);
    for n in [2usize, 3, 17, 200] {
        let scores: Vec<f64> = (0..n).map(|_| r.random_range(0..5) as f64).collect();
        let mut positive: Vec<bool> = (0..n).map(|_| r.random_bool(0.4)).collect();
        positive[0] = true;
        positive[1] = false;
        let mask: Vec<f32> = (0..n)
            .map(|i| {
                if i > 1 && r.random_bool(0.2) {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        let kept: Vec<usize> = (0..n).filter(|&i| mask[i] > 0.5).collect();
        let want = auc_pairwise(
            &kept.iter().map(|&i| scores[i]).collect::<Vec<_>>(),
            &kept.iter().map(|&i| positive[i]).collect::<Vec<_>>(),
        );
        let got = roc_auc(&scores, &positive, &mask);
        assert!((got - want).abs() < 1e-12, "n={n}: {got} vs {want}");
    }
}

#[test]
fn log_loss_is_the_mean_binary_cross_entropy() {
    let z = [0.0f32, 2.0, -3.0, 40.0];
    let pos = [true, false, false, true];
    let mask = [1.0f32, 1.0, 1.0, 0.0];
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    let want = (-(sig(0.0)).ln() - (1.0 - sig(2.0)).ln() - (1.0 - sig(-3.0)).ln()) / 3.0;
    assert!((log_loss(&z, &pos, &mask) - want).abs() < 1e-12);
    let (bce, _) = taskgrad::task::binary::reference(
        &[0.0f64, 2.0, -3.0],
        &[1.0, 0.0, 0.0],
        &[1.0, 1.0, 1.0],
        3,
        1,
        1.0,
    );
    assert!((bce - want).abs() < 1e-12, "the kernel's reference agrees");
}

#[test]
fn a_binary_column_fits_its_two_values_and_names_the_positive_one() {
    let fit = |text: &str| {
        let t = table("bin.csv", text);
        let rows: Vec<usize> = (0..t.n_rows()).collect();
        Dataset::from_table(&t, &["x"], &[("y", TaskType::BINARY)], &rows)
    };
    // 0/1 (written either way): 1 is positive; a missing label masks its row.
    let data = fit("x,y\n1,0\n2,1.0\n3,NA\n4,1\n").unwrap();
    let want = Binary {
        classes: ["0".into(), "1".into()],
    };
    assert_eq!(data.tasks[0], TaskSpec::new("y", want));
    assert_eq!(data.targets[0].values_of(&[0, 1, 3]), vec![0.0, 1.0, 1.0]);
    assert_eq!(data.targets[0].mask(), &[1.0, 1.0, 0.0, 1.0]);
    // Text: the later value in sorted order (M of B/M; yes of no/yes).
    let data = fit("x,y\n1,M\n2,B\n3,M\n").unwrap();
    assert_eq!(data.tasks[0].kind.describe(), "positive: M (negative: B)");
    assert_eq!(data.targets[0].values_of(&[0, 1, 2]), vec![1.0, 0.0, 1.0]);
    // Three values, or one, are refused with what to do.
    match fit("x,y\n1,a\n2,b\n3,c\n") {
        Err(Error::Data { reason, .. }) => {
            assert!(reason.contains("has 3 (a, b, c): use class"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    match fit("x,y\n1,a\n2,a\n") {
        Err(Error::Data { reason, .. }) => assert!(reason.contains("only \"a\""), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A value the model never saw, at encoding time, names its line.
    let t = table("bin2.csv", "x,y\n1,yes\n2,no\n");
    let schema = taskgrad::data::encode::Schema::fit(
        &t,
        &["x"],
        &[("y", TaskType::BINARY)],
        &[0, 1],
        taskgrad::data::encode::Missing::Drop,
    )
    .unwrap();
    let other = table("bin3.csv", "x,y\n1,yes\n2,maybe\n");
    match schema.encode(&other, &[0, 1]) {
        Err(Error::Data { line, reason, .. }) => {
            assert_eq!(line, 3);
            assert!(reason.contains("neither of this binary task's values (no and yes)"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn binary_predictions_are_probabilities_of_the_positive_value() {
    let kind = Binary {
        classes: ["B".into(), "M".into()],
    };
    let p = taskgrad::task::TaskKind::predict(&kind, "diagnosis", &[0.0, 30.0, -30.0], 3);
    assert_eq!(p.cells, ["0.500000", "1.000000", "0.000000"]);
    assert_eq!(p.classes, ["B", "M"]);
    assert!(p.values.iter().all(|v| (0.0..=1.0).contains(v)));
    for (row, v) in p.probabilities.iter().zip(&p.values) {
        assert_eq!(row, &vec![1.0 - v, *v]);
    }
}

#[test]
fn saved_tasks_of_every_kind_load_back_and_old_ones_still_load() {
    let tasks = [
        TaskSpec::new(
            "species",
            Class {
                classes: vec!["a".into(), "b".into()],
            },
        ),
        TaskSpec::new(
            "mass",
            Reg {
                mean: 4201.75,
                std: 801.2,
            },
        ),
        TaskSpec::new(
            "sex",
            Binary {
                classes: ["female".into(), "male".into()],
            },
        ),
    ];
    for t in &tasks {
        let json = serde_json::to_string(t).unwrap();
        let back: TaskSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, t, "{json}");
    }
    // The schema of a model saved before task kinds were units (issue 20).
    let old = r#"[{"kind": "class", "name": "species", "classes": ["a", "b"]},
                  {"kind": "reg", "name": "mass", "mean": 4201.75, "std": 801.2}]"#;
    let back: Vec<TaskSpec> = serde_json::from_str(old).unwrap();
    assert_eq!(back, tasks[..2]);
    // An unknown kind is an error naming the kinds there are.
    let err = serde_json::from_str::<TaskSpec>(r#"{"kind": "ordinal", "name": "x"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown task kind \"ordinal\""), "{err}");
}

#[test]
fn a_kind_registered_from_outside_is_found_by_name_and_once() {
    static ALIAS: task::KindInfo = task::KindInfo {
        name: "my-reg",
        aliases: &["myreg"],
        summary: "regression under another name (a test)",
        shader: None,
        fit: |labels| (TaskType::REG.0.fit)(labels),
        load: |m| (TaskType::REG.0.load)(m),
    };
    static CLASH: task::KindInfo = task::KindInfo {
        name: "class",
        ..ALIAS
    };
    assert!(TaskType::by_name("myreg").is_err());
    task::register(&ALIAS).unwrap();
    task::register(&ALIAS).unwrap(); // the same entry again is harmless
    assert_eq!(TaskType::by_name("MyReg").unwrap().name(), "my-reg");
    let err = task::register(&CLASH).unwrap_err().to_string();
    assert!(err.contains("\"class\" is already registered"), "{err}");
    assert_eq!(TaskType::by_name("binary").unwrap(), TaskType::BINARY);
    let err = TaskType::by_name("nope").unwrap_err().to_string();
    assert!(err.contains("class, reg, binary, my-reg"), "{err}");
}

#[test]
fn a_binary_task_trains_on_penguins_sex_beside_species() {
    let gpu = gpu_or_skip!();
    let t = Table::from_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/penguins.csv")).unwrap();
    let inputs = [
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
    ];
    let (rows, _) =
        taskgrad::data::encode::usable_rows(&t, &inputs, taskgrad::data::encode::Missing::Drop)
            .unwrap();
    let split = Split::new(rows.len(), 0.2, 0.2, 3).unwrap();
    let train: Vec<usize> = split.train.iter().map(|&i| rows[i]).collect();
    let tasks = [("sex", TaskType::BINARY), ("species", TaskType::CLASS)];
    let schema = taskgrad::data::encode::Schema::fit(
        &t,
        &inputs,
        &tasks,
        &train,
        taskgrad::data::encode::Missing::Drop,
    )
    .unwrap();
    let data = schema.encode(&t, &rows).unwrap();
    let cfg = taskgrad::train::TrainConfig {
        epochs: 30,
        seed: 3,
        ..Default::default()
    };
    let method = mtl::by_name("pcgrad").unwrap();
    let report =
        taskgrad::train::fit(gpu, &data, &split, &[0, 1], method, &cfg, &mut |_| {}).unwrap();
    let sex = &report.test[0];
    // Sex from body size within species: a linear model reaches about 0.9.
    assert_eq!(sex.primary_metric().name, "auc");
    let (auc, higher) = sex.primary();
    assert!(higher && auc > 0.85, "AUC {auc}");
    let ll = sex.get("log_loss").unwrap();
    assert!(
        ll < 0.55 && (ll - sex.loss).abs() < 1e-3,
        "log-loss {ll}, loss {}",
        sex.loss
    );
    assert!(sex.get("accuracy").unwrap() > 0.75);
    assert!(report.test[1].get("accuracy").unwrap() > 0.9);
}

// ---- the binary kind's kernel: against its CPU twin, and its gradient -----------

const SIZES: [usize; 8] = [1, 3, 17, 63, 65, 129, 257, 1000];

fn zeros(gpu: &taskgrad::Gpu, shape: &[usize]) -> taskgrad::Tensor {
    taskgrad::Tensor::zeros(gpu, shape, "test output").expect("alloc")
}

fn run_bce(
    gpu: &taskgrad::Gpu,
    z: &[f32],
    y: &[f32],
    mask: &[f32],
    b: usize,
    cols: usize,
    scale: f32,
) -> (f32, Vec<f32>) {
    let logits = upload(gpu, &[b, cols], z);
    let target = upload(gpu, &[b, cols], y);
    let mask = upload(gpu, &[b], mask);
    let scale = upload(gpu, &[1], &[scale]);
    let (dz, loss) = (zeros(gpu, &[b, cols]), zeros(gpu, &[1]));
    gpu.run(&[&binary::kernel(gpu, &logits, &target, &mask, &scale, 0, &dz, &loss).unwrap()])
        .unwrap();
    let got = gpu.read(&[&loss, &dz]).unwrap();
    (got[0][0], got[1].clone())
}

#[test]
fn bce_hand_checked_and_stable_at_large_logits() {
    let gpu = gpu_or_skip!();
    // z = [0, 0, 100, -100, 7], y = [1, 0, 1, 1, NaN], row 4 unlabelled, n_valid = 4:
    //   ℓ(0, y) = ln 2 for either label; ℓ(100, 1) = ln(1 + e^-100) ≈ 3.7e-44;
    //   ℓ(-100, 1) = 100 + ln(1 + e^-100) = 100 (a naive log σ(z) gives ln 0 = -inf).
    //   loss = (2 ln 2 + 100) / 4; dz = (σ(z) - y) / 4 = [-1/8, 1/8, 0, -1/4, 0].
    let (loss, dz) = run_bce(
        gpu,
        &[0., 0., 100., -100., 7.],
        &[1., 0., 1., 1., f32::NAN],
        &[1., 1., 1., 1., 0.],
        5,
        1,
        1.0,
    );
    let want = (2.0 * std::f32::consts::LN_2 + 100.0) / 4.0;
    assert!((loss - want).abs() < 1e-5, "loss {loss}, want {want}");
    let want_dz = [-0.125, 0.125, 0.0, -0.25, 0.0];
    for (g, w) in dz.iter().zip(want_dz) {
        assert!((g - w).abs() < 1e-7, "dz {dz:?}, want {want_dz:?}");
    }
    // Every row masked: loss 0, gradient 0 (no division by zero).
    let (loss, dz) = run_bce(gpu, &[3., -2.], &[1., 0.], &[0., 0.], 2, 1, 1.0);
    assert_eq!(loss, 0.0);
    assert!(dz.iter().all(|&d| d == 0.0));
}

#[test]
fn bce_against_reference_with_masks() {
    let gpu = gpu_or_skip!();
    let mut r = rng(17);
    for &b in &SIZES {
        for &cols in &[1usize, 3] {
            // Logits over [-8, 8]: both tails of σ and the small-e^{-|z|} branch.
            let z: Vec<f32> = random(&mut r, b * cols).iter().map(|v| 8.0 * v).collect();
            let y: Vec<f32> = (0..b * cols)
                .map(|i| ((i * 7 + b) % 3 == 0) as u8 as f32)
                .collect();
            let mask: Vec<f32> = (0..b).map(|i| if i % 5 == 2 { 0.0 } else { 1.0 }).collect();
            let (loss, dz) = run_bce(gpu, &z, &y, &mask, b, cols, 1.5);
            let (wl, wd) = binary::reference(&z, &y, &mask, b, cols, 1.5);
            assert_close(
                &format!("bce b={b} t={cols} loss"),
                &[loss],
                &[wl],
                1e-5,
                1e-5,
            );
            assert_close(&format!("bce b={b} t={cols} dz"), &dz, &wd, 1e-6, 1e-5);
        }
    }
}

#[test]
fn bce_with_mask_and_seed() {
    let gpu = gpu_or_skip!();
    // L = 0.7 · bce(z, y) over rows with mask 1; z (5×1) is the parameter,
    // y 0 or 1, one row masked. (The kernel test covers large |z|.)
    let b = 5;
    let (fx, ids) = fixture(gpu, &[("z", vec![b, 1])], 52);
    let target = [1.0, 0.0, 1.0, 0.0, 1.0];
    let mask = vec![1.0, 1.0, 0.0, 1.0, 1.0];
    let (seeds, losses) = loss_buffers(gpu, 0.7);
    let mut tape = Tape::new(gpu);
    let z = fx.params.var(&mut tape, ids[0]).unwrap();
    let (y, m) = (
        upload(gpu, &[b, 1], &target),
        upload(gpu, &[b], &f32s(&mask)),
    );
    let l = tape
        .fused_loss("bce", z, &losses, |z, dz| {
            binary::kernel(gpu, z, &y, &m, &seeds, 0, dz, &losses)
        })
        .unwrap();
    tape.backward(&[l]).unwrap();
    let y64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "bce", |p| {
        0.7 * binary::reference(&p[0], &y64, &mask, b, 1, 1.0).0
    });
}
