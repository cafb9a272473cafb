//! Task kinds as units (issue 20): the binary kind's fitting, encoding,
//! metrics and saved form; ROC AUC with ties against the pairwise
//! definition; the registry (a kind from outside the crate); saved tasks of
//! every kind, old ones included, loading back; and a binary task trained
//! on a real column.

mod common;

use common::rng;
use rand::Rng;
use taskgrad::data::{Dataset, Split, Table};
use taskgrad::task::metrics::{log_loss, roc_auc};
use taskgrad::task::{self, Binary, Class, Reg, TaskSpec, TaskType};
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
    let (bce, _) = taskgrad::reference::bce(
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
