//! A saved model in use through the library: rebuilt from its checkpoint with
//! values only (no gradients), evaluated and asked for predictions in the
//! training data's units.

mod common;

use taskgrad::cli::run::{train_run, RunSettings};
use taskgrad::data::Table;
use taskgrad::model::{checkpoint, Model, TaskPrediction};

#[test]
fn predictions_come_back_in_original_units() {
    let gpu = gpu_or_skip!();
    let out = std::env::temp_dir().join(format!("taskgrad-model-{}", std::process::id()));
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/penguins.csv");
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let settings = RunSettings {
        data: Some(data.into()),
        inputs: strings(&["bill_length_mm", "flipper_length_mm", "island"]),
        tasks: strings(&["species:class", "body_mass_g:reg"]),
        epochs: 15,
        out: out.clone(),
        ..Default::default()
    };
    train_run(gpu, &settings, &mut |_| {}).unwrap();
    let path = out.join("model.safetensors");
    let ck = checkpoint::load(&path).unwrap();
    let model = Model::from_checkpoint(gpu, &ck, &path).unwrap();
    assert!(
        model.params.grads().is_err(),
        "an inference model has no gradients"
    );

    let table = Table::from_csv(data).unwrap();
    let preds = model.predict(gpu, &table).unwrap();
    assert_eq!(preds.rows.len(), table.n_rows(), "every row is predicted");
    assert_eq!(
        preds.imputed, 2,
        "the two rows without measurements are imputed"
    );
    let species: &TaskPrediction = &preds.tasks[0];
    let (classes, labels, probabilities) =
        (&species.classes, &species.cells, &species.probabilities);
    assert_eq!(classes, &["Adelie", "Chinstrap", "Gentoo"]);
    assert_eq!(labels.len(), table.n_rows());
    for (label, p) in labels.iter().zip(probabilities) {
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let best = (0..3).fold(0, |b, j| if p[j] > p[b] { j } else { b });
        assert_eq!(label, &classes[best]);
    }
    let values = &preds.tasks[1].values;
    assert_eq!(values.len(), table.n_rows(), "body mass is a value");
    // Grams, not standardised units: penguins weigh 2.7-6.3 kg.
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!((3500.0..5000.0).contains(&mean), "mean prediction {mean} g");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_net_spec_saved_before_activations_existed_loads_as_relu() {
    // The `net` entry of a model file written before issue 9 had no activation.
    let old = r#"{"inputs": 4, "trunk": [64, 64], "tower": [], "outputs": [3, 1],
                  "head_names": ["species", "body_mass_g"]}"#;
    let spec: taskgrad::nn::NetSpec = serde_json::from_str(old).unwrap();
    assert_eq!(spec.activation, taskgrad::nn::Activation::Relu);
    // Nor an architecture (issue 13): it is the shared trunk.
    assert_eq!(spec.arch, taskgrad::nn::Arch::Shared);
    let new = serde_json::to_value(&spec).unwrap();
    assert_eq!(new["activation"], "relu");
    assert_eq!(new["arch"]["kind"], "shared");
}

#[test]
fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
    // A full disk left model.safetensors.tmp (and preds.csv.tmp) behind, and
    // a truncated plot beside a complete model (issue 11, item 2). Every file
    // goes through write_atomically: a write that fails half-way (as on a
    // full disk) leaves the old file whole and removes its temporary file.
    use taskgrad::model::checkpoint::write_atomically;
    let dir = std::env::temp_dir().join(format!("taskgrad-atomic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("metrics.csv");
    std::fs::write(&path, "old, whole\n").unwrap();
    let r = write_atomically(&path, |tmp| {
        std::fs::write(tmp, "new, but cut sh").unwrap();
        Err(taskgrad::Error::Io {
            path: tmp.to_path_buf(),
            source: std::io::Error::other("No space left on device"),
        })
    });
    assert!(r.is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old, whole\n");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["metrics.csv".to_string()], "{left:?}");
    // And a write that succeeds replaces it whole.
    write_atomically(&path, |tmp| {
        std::fs::write(tmp, "new, whole\n").map_err(|e| taskgrad::Error::Io {
            path: tmp.to_path_buf(),
            source: e,
        })
    })
    .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new, whole\n");
    let _ = std::fs::remove_dir_all(&dir);
}
