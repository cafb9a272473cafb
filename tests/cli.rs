//! The `taskgrad` binary end to end: train, predict, eval, resume and a TOML
//! config on the penguins data; and every bad input the tool must survive,
//! each giving a clear message and a non-zero exit, never a panic, and never
//! leaving a partial model file behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use taskgrad::model::checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_taskgrad");
const PENGUINS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/penguins.csv");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskgrad-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the taskgrad binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A failure: non-zero exit, one `error:` message containing `needle`, no panic or backtrace.
#[track_caller]
fn assert_fails(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(err.contains("error: "), "no error message: {err}");
    assert!(err.contains(needle), "message lacks {needle:?}: {err}");
    assert!(
        !err.contains("panicked")
            && !err.contains("stack backtrace")
            && !err.contains("RUST_BACKTRACE"),
        "panic: {err}"
    );
}

fn no_model_left(out: &Path) {
    assert!(
        !out.join("model.safetensors").exists(),
        "a model file was left in {}",
        out.display()
    );
    no_temporary_files(out);
}

fn no_temporary_files(out: &Path) {
    // A run that failed before creating its folder leaves nothing to scan.
    let partial: Vec<_> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.ends_with(".tmp"))
        .collect();
    assert!(
        partial.is_empty(),
        "a partial file was left in {}: {partial:?}",
        out.display()
    );
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv");
/// Iris's two sepal inputs and its three tasks.
const IRIS_ARGS: [&str; 8] = [
    "--inputs",
    "sepal_length,sepal_width",
    "--task",
    "species:class",
    "--task",
    "petal_length:reg",
    "--task",
    "petal_width:reg",
];

/// `COMMAND --data iris.csv --out OUT`, Iris's inputs and tasks, then `extra`.
fn iris_args<'a>(command: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![command, "--data", IRIS, "--out", out];
    args.extend(IRIS_ARGS);
    args.extend(extra);
    args
}

const PENGUIN_ARGS: [&str; 10] = [
    "--inputs",
    "bill_length_mm,bill_depth_mm,flipper_length_mm,island",
    "--task",
    "species:class",
    "--task",
    "sex:class",
    "--task",
    "body_mass_g:reg",
    "--epochs",
    "12",
];

#[test]
fn train_predict_eval_and_resume_on_penguins() {
    gpu_or_skip!();
    let dir = scratch("penguins");
    let out = dir.join("run");
    let out_s = out.to_str().unwrap();
    let mut args = vec!["train", "--data", PENGUINS, "--out", out_s];
    args.extend(PENGUIN_ARGS);
    let o = run(&args);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("dropped 2 rows"), "{stdout}");
    for f in [
        "model.safetensors",
        "metrics.csv",
        "plots/species.svg",
        "plots/species.png",
        "plots/body_mass_g.png",
    ] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    // metrics.csv: a header and one row per epoch run.
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(
        metrics.starts_with("epoch,lr,species_train_loss,species_val_loss,species_val_accuracy"),
        "{metrics}"
    );
    // The checkpoint: documented names and shapes, schema with island one-hot.
    let ck = checkpoint::load(&out.join("model.safetensors")).unwrap();
    let names: Vec<&str> = ck.tensors.iter().map(|(n, _, _)| n.as_str()).collect();
    assert!(
        names.contains(&"trunk.0.weight") && names.contains(&"head.body_mass_g.out.bias"),
        "{names:?}"
    );
    let (_, shape, _) = ck
        .tensors
        .iter()
        .find(|(n, _, _)| n == "trunk.0.weight")
        .unwrap();
    assert_eq!(shape, &vec![6, 64], "3 numeric inputs + 3 islands");
    assert_eq!(
        ck.meta.schema.input_names(),
        vec![
            "bill_length_mm",
            "bill_depth_mm",
            "flipper_length_mm",
            "island"
        ]
    );
    let trained = ck.meta.epochs_trained;

    // predict: one line per data row, class labels and grams.
    let preds = dir.join("preds.csv");
    let model = out.join("model.safetensors");
    let o = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
        "--output",
        preds.to_str().unwrap(),
        "--probabilities",
    ]);
    assert!(o.status.success(), "predict failed: {}", stderr(&o));
    let text = std::fs::read_to_string(&preds).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 344, "a header and every row");
    // Two rows of the file have no measurements: they are predicted from training means.
    assert!(
        lines
            .iter()
            .skip(1)
            .all(|l| l.split(',').all(|cell| !cell.is_empty())),
        "an empty prediction cell"
    );
    assert!(
        stderr(&o).contains("2 rows had a missing input"),
        "{}",
        stderr(&o)
    );
    assert!(
        lines[0].starts_with("line,species,p(species=Adelie)"),
        "{}",
        lines[0]
    );
    let first: Vec<&str> = lines[1].split(',').collect();
    assert!(
        ["Adelie", "Chinstrap", "Gentoo"].contains(&first[1]),
        "{}",
        lines[1]
    );
    let mass: f64 = first.last().unwrap().parse().unwrap();
    assert!((2000.0..7000.0).contains(&mass), "body mass {mass}");

    // eval on the same file.
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert!(o.status.success(), "eval failed: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("species"));
    // On the training file, eval scores the held-out test rows: as many as
    // train reported (it scored every row, training rows included, before).
    let test_rows = stdout
        .split("test ")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .unwrap()
        .to_string();
    assert!(
        text.starts_with(&format!(
            "{test_rows} rows evaluated: the held-out test rows"
        )),
        "train said test {test_rows}: {text}"
    );
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
        "--all-rows",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.starts_with("342 rows evaluated: every row (--all-rows)"),
        "{text}"
    );
    // Another file (the first 100 data lines): all of it is unseen.
    let head: String = std::fs::read_to_string(PENGUINS)
        .unwrap()
        .lines()
        .take(101)
        .map(|l| format!("{l}\n"))
        .collect();
    let other = write(&dir, "head.csv", &head);
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        other.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("rows evaluated: every row (not the file the model was trained on)"),
        "{text}"
    );

    // resume: continue for 3 more epochs; the epoch count adds up.
    let out2 = dir.join("resumed");
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
        "--epochs",
        "3",
        "--patience",
        "100",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "resume failed: {}", stderr(&o));
    let ck2 = checkpoint::load(&out2.join("model.safetensors")).unwrap();
    assert_eq!(ck2.meta.epochs_trained, trained + 3);

    // Architecture flags with --resume were ignored and recorded as if used
    // (issue 11, item 9): now refused before any work, naming both sides.
    let out3 = dir.join("resumed-wider");
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
        "--hidden",
        "8",
        "--tower",
        "4",
        "--out",
        out3.to_str().unwrap(),
    ]);
    assert_fails(
        &o,
        "--hidden 8 (the model's: 64,64), --tower 4 (the model's: none)",
    );
    no_model_left(&out3);
    // The recorded settings are the effective ones.
    assert_eq!(ck2.meta.config["hidden"], serde_json::json!([64, 64]));
}

#[test]
fn settings_from_a_toml_file() {
    gpu_or_skip!();
    let dir = scratch("toml");
    let out = dir.join("run");
    let cfg = write(
        &dir,
        "run.toml",
        &format!(
            "data = {PENGUINS:?}\ninputs = [\"bill_length_mm\", \"flipper_length_mm\"]\ntasks = [\"species:class\", \"body_mass_g:reg\"]\nepochs = 3\nhidden = [16]\nout = {:?}\n",
            out.to_str().unwrap()
        ),
    );
    let o = run(&["train", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ck = checkpoint::load(&out.join("model.safetensors")).unwrap();
    assert_eq!(ck.meta.net.trunk, vec![16]);
}

// ---- bad input ------------------------------------------------------------------

fn train_on(dir: &Path, csv: &Path, inputs: &str, tasks: &[&str]) -> (Output, PathBuf) {
    let out = dir.join("out");
    let mut args = vec![
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--inputs",
        inputs,
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    for t in tasks {
        args.extend(["--task", t]);
    }
    (run(&args), out)
}

#[test]
fn bad_data_files() {
    let dir = scratch("bad-data");
    let missing = dir.join("nope.csv");
    let (o, out) = train_on(&dir, &missing, "a", &["y:reg"]);
    assert_fails(&o, "nope.csv");
    no_model_left(&out);

    let cases: &[(&str, &str, &str, &[&str], &str)] = &[
        ("empty.csv", "", "a", &["y:reg"], "empty"),
        ("header.csv", "a,y\n", "a", &["y:reg"], "no data rows"),
        (
            "unknown.csv",
            "a,y\n1,2\n3,4\n",
            "zzz",
            &["y:reg"],
            "no such column",
        ),
        (
            "text.csv",
            "a,y\n1,2\n3,4\nfive,6\n",
            "a",
            &["y:reg"],
            "text.csv:4:a: \"five\" is not a number",
        ),
        (
            "oneclass.csv",
            "a,c\n1,x\n2,x\n3,x\n",
            "a",
            &["c:class"],
            "at least two classes",
        ),
        (
            "allmissing.csv",
            "a,y\n1,NA\n2,NA\n3,\n",
            "a",
            &["y:reg"],
            "every value of this task is missing",
        ),
        (
            "nan.csv",
            "a,y\n1,2\nNaN,3\n4,5\n",
            "a",
            &["y:reg"],
            "not finite",
        ),
        (
            "inf.csv",
            "a,y\n1,2\n2,inf\n4,5\n",
            "a",
            &["y:reg"],
            "not finite",
        ),
        (
            "ragged.csv",
            "a,y\n1,2\n3\n",
            "a",
            &["y:reg"],
            "expected 2 fields",
        ),
    ];
    for (name, body, inputs, tasks, needle) in cases {
        let sub = dir.join(name.trim_end_matches(".csv"));
        std::fs::create_dir_all(&sub).unwrap();
        let csv = write(&sub, name, body);
        let (o, out) = train_on(&sub, &csv, inputs, tasks);
        eprintln!("case {name}");
        assert_fails(&o, needle);
        no_model_left(&out);
    }
}

#[test]
fn bad_checkpoints_and_mismatched_data() {
    gpu_or_skip!();
    let dir = scratch("bad-ckpt");
    // A real model to damage.
    let out = dir.join("run");
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--inputs",
        "bill_length_mm,island",
        "--task",
        "species:class",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(
        &run(&[
            "predict",
            "--model",
            truncated.to_str().unwrap(),
            "--data",
            PENGUINS,
        ]),
        "truncated",
    );

    let not_st = write(&dir, "notes.safetensors", "this is not a model\n");
    assert_fails(
        &run(&[
            "predict",
            "--model",
            not_st.to_str().unwrap(),
            "--data",
            PENGUINS,
        ]),
        "not a readable safetensors file",
    );

    // Data without the model's input column (island), and without its task column.
    let other = write(
        &dir,
        "other.csv",
        "bill_length_mm,flipper_length_mm,species\n40,190,Adelie\n50,210,Gentoo\n",
    );
    assert_fails(
        &run(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            other.to_str().unwrap(),
        ]),
        "needs input column \"island\"",
    );
    let no_task = write(&dir, "notask.csv", "bill_length_mm,island\n40,Dream\n");
    assert_fails(
        &run(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            no_task.to_str().unwrap(),
        ]),
        "nothing to score for species (no such column) among the 1 rows evaluated",
    );
    // Issue 24, item 4: a task column whose every label is missing printed
    // "loss 0.0000 accuracy 0.0000" and exit 0, as if it were a result.
    let unlabelled = write(
        &dir,
        "unlabelled.csv",
        "bill_length_mm,island,species\n40,Dream,\n41,Biscoe,\n",
    );
    assert_fails(
        &run(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            unlabelled.to_str().unwrap(),
        ]),
        "nothing to score for species (every label is missing) among the 2 rows evaluated",
    );
    // Resuming with other tasks than the model's.
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
        "--task",
        "sex:class",
        "--out",
        dir.join("r2").to_str().unwrap(),
    ]);
    assert_fails(&o, "the model's tasks are");
    no_model_left(&dir.join("r2"));
}

#[test]
fn bad_config_and_unwritable_output() {
    let dir = scratch("bad-config");
    let cfg = write(
        &dir,
        "run.toml",
        &format!("data = {PENGUINS:?}\nepochz = 3\n"),
    );
    assert_fails(
        &run(&["train", "--config", cfg.to_str().unwrap()]),
        "unknown field `epochz`",
    );
    // Issue 24, item 11: `lr = nan` said "invalid type: null, expected f32",
    // naming neither the file nor the key.
    for (line, needle) in [
        ("lr = nan", "run.toml: lr = NaN is not a finite number"),
        (
            "momentum = -inf",
            "run.toml: momentum = -inf is not a finite number",
        ),
        (
            "lr = 1e39",
            "run.toml: lr = 1e39 is too large: taskgrad computes in f32",
        ),
    ] {
        let cfg = write(&dir, "run.toml", &format!("data = {PENGUINS:?}\n{line}\n"));
        assert_fails(&run(&["train", "--config", cfg.to_str().unwrap()]), needle);
    }

    // An output folder below a regular file cannot be created (root can write anywhere else).
    let file = write(&dir, "a-file", "x");
    let out = file.join("run");
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--inputs",
        "bill_length_mm",
        "--task",
        "species:class",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails(&o, "a-file/run");
    assert_fails(
        &run(&[
            "train",
            "--data",
            PENGUINS,
            "--inputs",
            "bill_length_mm",
            "--task",
            "species:klass",
        ]),
        "is not one of class, reg, binary",
    );
    assert_fails(
        &run(&[
            "train",
            "--data",
            PENGUINS,
            "--inputs",
            "bill_length_mm",
            "--task",
            "species:class",
            "--weighting",
            "magic",
            "--out",
            dir.join("o").to_str().unwrap(),
        ]),
        "unknown weighting",
    );
}

#[test]
fn sgd_and_gelu_train_penguins_and_are_saved_with_the_model() {
    gpu_or_skip!();
    let dir = scratch("sgd-gelu");
    let out = dir.join("run");
    // The config file asks for AdamW and tanh; the flags given win.
    let cfg = write(
        &dir,
        "run.toml",
        "optimizer = \"adamw\"\nactivation = \"tanh\"\nmomentum = 0.8\nlr = 0.05\n",
    );
    let mut args = vec![
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        PENGUINS,
        "--out",
        out.to_str().unwrap(),
        "--optimizer",
        "sgd",
        "--activation",
        "gelu",
    ];
    args.extend(PENGUIN_ARGS);
    let o = run(&args);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let model = out.join("model.safetensors");
    let ck = checkpoint::load(&model).unwrap();
    assert_eq!(ck.meta.net.activation, taskgrad::nn::Activation::Gelu);
    let cfg = &ck.meta.config;
    assert_eq!(cfg["optimizer"], "sgd", "{cfg}");
    assert_eq!(cfg["activation"], "gelu", "{cfg}");
    // From the file (no flag given), and defaults recorded as the values used.
    assert_eq!(
        cfg["momentum"].as_f64().map(|m| (m * 10.0).round()),
        Some(8.0),
        "{cfg}"
    );
    assert_eq!(cfg["epochs"], 12, "{cfg}");
    assert_eq!(cfg["batch"], 32, "{cfg}");
    let preds = dir.join("preds.csv");
    let o = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
        "--output",
        preds.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "predict failed: {}", stderr(&o));
    let text = std::fs::read_to_string(&preds).unwrap();
    assert_eq!(text.lines().count(), 345, "one header and 344 rows");
}

#[test]
fn train_help_lists_every_registered_method_and_the_defaults() {
    let o = run(&["train", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for name in taskgrad::mtl::names() {
        assert!(
            help.contains(&format!("  {name} ")),
            "{name} missing from: {help}"
        );
    }
    for default in [
        "[default: 100]",
        "[default: adam]",
        "[default: relu]",
        "[default: 64,64]",
    ] {
        assert!(help.contains(default), "{default} missing from: {help}");
    }
}

#[test]
fn bad_optimizer_settings_fail_before_the_gpu() {
    let dir = scratch("bad-optim");
    let out = dir.join("run");
    for (flag, value, needle) in [
        ("--lr", "0", "learning rate"),
        ("--momentum", "1.5", "momentum"),
        ("--optimizer", "lion", "lion"),
        ("--activation", "swish", "swish"),
    ] {
        let mut args = vec![
            "train",
            "--data",
            PENGUINS,
            "--out",
            out.to_str().unwrap(),
            flag,
            value,
        ];
        args.extend(PENGUIN_ARGS);
        assert_fails(&run(&args), needle);
        no_model_left(&out);
    }
}

#[test]
fn impossible_sizes_and_weights_fail_before_the_gpu_and_create_no_folder() {
    // Each of these used to be refused only once the GPU had started, leaving
    // an empty --out folder (issue 11, item 16).
    let dir = scratch("sizes");
    let out = dir.join("never");
    for (extra, needle) in [
        (vec!["--epochs", "0"], "--epochs"),
        (vec!["--batch", "0"], "--batch"),
        (vec!["--hidden", "16,0"], "widths"),
        (vec!["--tower", "0"], "widths"),
        (
            vec!["--weighting", "fixed:1,2"],
            "2 fixed weights for 3 tasks",
        ),
        (vec!["--task", "species:class"], "given twice"),
        // Issue 24, item 11: all-zero weights trained nothing and exited 0.
        (
            vec!["--weighting", "fixed:0,0,0"],
            "all zero: no task would be trained",
        ),
    ] {
        let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
        args.extend(PENGUIN_ARGS);
        args.extend(extra.iter().copied());
        assert_fails(&run(&args), needle);
        assert!(!out.exists(), "{extra:?} created {}", out.display());
    }
    // An input named twice was accepted (a task named twice was not).
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--out",
        out.to_str().unwrap(),
        "--inputs",
        "bill_length_mm, bill_length_mm",
        "--task",
        "species:class",
    ]);
    assert_fails(&o, "--inputs names \"bill_length_mm\" twice");
    assert!(!out.exists());
}

#[test]
fn unbounded_inputs_and_counts_are_refused_before_any_allocation() {
    // Issue 24, item 6: `--data /dev/zero` read until a 16 GiB allocation
    // aborted; `compare --seeds 100000000000` aborted on an 800 GB one and
    // left a stale lock.
    let dir = scratch("unbounded");
    let out = dir.join("never");
    let o = run(&[
        "train",
        "--data",
        "/dev/zero",
        "--inputs",
        "a",
        "--task",
        "b:class",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_fails(&o, "without a line break: not a CSV file");
    let mut args = vec![
        "compare",
        "--data",
        PENGUINS,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(PENGUIN_ARGS);
    args.extend(["--methods", "equal", "--seeds", "100000000000"]);
    assert_fails(&run(&args), "--seeds 100000000000: at most 1000");
    assert!(!out.exists(), "a folder (or a lock) was left");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fixed_weights_may_be_written_with_exponents() {
    // `fixed:1e-3,1,1` was read as "1e_3" (every '-' became '_'; issue 11, item 17).
    gpu_or_skip!();
    let dir = scratch("fixed-exp");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(PENGUIN_ARGS);
    args.extend(["--weighting", "fixed:1e-3,1,1"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        taskgrad::mtl::by_name("nash-mtl").is_ok(),
        "names still take '-' for '_'"
    );
}

#[test]
fn no_graphics_stack_noise_on_stderr() {
    // Without XDG_RUNTIME_DIR, Mesa's Wayland client printed two or four
    // "error: XDG_RUNTIME_DIR is invalid…" lines per command (issue 11, item 4);
    // taskgrad's own errors must be the only lines that start with "error:".
    gpu_or_skip!();
    let o = Command::new(BIN)
        .arg("info")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(!err.contains("error:"), "stderr: {err}");
}

#[test]
fn divergence_is_stopped_with_advice_and_no_model() {
    // --lr 1e9 used to train to a loss of 2.5e29 and save the model, exit 0
    // (issue 11, item 7): now the run stops, names the task and says to lower --lr.
    gpu_or_skip!();
    let dir = scratch("diverge");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(PENGUIN_ARGS);
    args.extend(["--lr", "1e9"]);
    assert_fails(&run(&args), "--lr");
    no_model_left(&out);
    // Issue 24, item 5: the loss was compared with the first epoch's, which
    // had diverged already: one epoch at --lr 1e2 trained to a loss of 3e8
    // and saved the model, exit 0. Now the loss before training is the yardstick.
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--epochs", "1", "--lr", "1e2"]);
    let o = run(&args);
    assert_fails(&o, "before training to");
    assert_fails(
        &o,
        "in epoch 1 (epochs counted from 1); lower the learning rate (--lr)",
    );
    no_model_left(&out);
}

#[test]
fn tasks_whose_names_meet_as_file_names_get_their_own_plots() {
    // "a b" and "a_b" both became plots/a_b.svg, the second overwriting the first
    // (issue 11, item 13); every file of the run folder is written through a
    // temporary file, none of which is left behind.
    gpu_or_skip!();
    let dir = scratch("plot-names");
    let mut body = String::from("x,a b,a_b\n");
    for i in 0..40 {
        body += &format!("{},{},{}\n", i as f32 / 10.0, i % 2, (i * 7) % 5);
    }
    let data = write(&dir, "names.csv", &body);
    let out = dir.join("run");
    let o = run(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--inputs",
        "x",
        "--task",
        "a b:class",
        "--task",
        "a_b:reg",
        "--epochs",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plots = out.join("plots");
    for f in ["a_b.svg", "a_b.png", "a_b-1.svg", "a_b-1.png"] {
        assert!(plots.join(f).exists(), "{f} missing");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .chain(std::fs::read_dir(&plots).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn predict_never_overwrites_its_input_and_duplicate_headers_are_refused() {
    // `predict --data x.csv --output x.csv` overwrote its own input (item 7's list);
    // a duplicated header name silently used the first column (item 11).
    gpu_or_skip!();
    let dir = scratch("overwrite");
    let copy = dir.join("data.csv");
    std::fs::copy(PENGUINS, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let o = run(&[
        "predict",
        "--model",
        "no-such-model.safetensors",
        "--data",
        copy.to_str().unwrap(),
        "--output",
        copy.to_str().unwrap(),
    ]);
    assert_fails(&o, "would overwrite");
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    let dup = write(&dir, "dup.csv", "a,b,a\n1,2,3\n4,5,6\n");
    let o = run(&[
        "train",
        "--data",
        dup.to_str().unwrap(),
        "--inputs",
        "a",
        "--task",
        "b:reg",
        "--out",
        dir.join("run").to_str().unwrap(),
    ]);
    assert_fails(&o, "columns 1 and 3 are both named \"a\"");
}

#[test]
fn predict_never_reads_label_columns() {
    // An unseen class or text in a label column made predict fail, though it
    // does not need labels (issue 11, item 14).
    gpu_or_skip!();
    let dir = scratch("predict-labels");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(PENGUIN_ARGS);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(PENGUINS).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let (species, mass) = (
        header.iter().position(|h| *h == "species").unwrap(),
        header.iter().position(|h| *h == "body_mass_g").unwrap(),
    );
    let mut cells: Vec<String> = lines[1].split(',').map(String::from).collect();
    cells[species] = "Emperor".into();
    cells[mass] = "heavy".into();
    lines[1] = cells.join(",");
    let data = write(&dir, "odd-labels.csv", &(lines.join("\n") + "\n"));
    let preds = dir.join("preds.csv");
    let o = run(&[
        "predict",
        "--model",
        out.join("model.safetensors").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        preds.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&preds).unwrap().lines().count(),
        lines.len()
    );
}

#[test]
fn metadata_that_does_not_fit_the_tensors_is_an_error_not_a_panic() {
    // A model whose metadata listed 4 classes for a 3-output head made
    // predict and eval panic (exit 101), and 2 classes gave misaligned
    // probabilities with exit 0 (issue 11, item 1).
    use taskgrad::task::{Class, TaskSpec};
    gpu_or_skip!();
    let dir = scratch("meta-mismatch");
    let out = dir.join("run");
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--inputs",
        "bill_length_mm,island",
        "--task",
        "species:class",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ck = checkpoint::load(&out.join("model.safetensors")).unwrap();
    for (name, extra) in [
        ("four.safetensors", Some("Emperor")),
        ("two.safetensors", None),
    ] {
        let mut meta = ck.meta.clone();
        let saved = meta.schema.tasks[0].to_json();
        let mut classes: Vec<String> = serde_json::from_value(saved["classes"].clone()).unwrap();
        match extra {
            Some(c) => classes.push(c.to_string()),
            None => {
                classes.pop();
            }
        }
        meta.schema.tasks[0] = TaskSpec::new("species", Class { classes });
        let edited = dir.join(name);
        checkpoint::save(&edited, &ck.tensors, &meta).unwrap();
        for cmd in ["predict", "eval"] {
            let o = run(&[cmd, "--model", edited.to_str().unwrap(), "--data", PENGUINS]);
            assert_fails(&o, "its head has 3");
        }
    }
}

#[test]
fn a_damaged_model_file_is_refused() {
    // 50 of 50 bit flips in tensor data were accepted, giving changed
    // predictions or NaN probabilities with exit 0 (issue 11, item 6): each
    // tensor and the metadata now carry a checksum, and values must be finite.
    gpu_or_skip!();
    let dir = scratch("damaged");
    let out = dir.join("run");
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--inputs",
        "bill_length_mm,island",
        "--task",
        "species:class",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data_start = 8 + header;
    // Flips spread over the tensor data, and one inside the metadata JSON.
    let mut spots: Vec<(usize, &str)> = (0..10)
        .map(|i| {
            (
                data_start + i * (bytes.len() - data_start - 1) / 9,
                "checksum",
            )
        })
        .collect();
    // A digit of a standardisation mean: still valid JSON, another model.
    let mean = bytes[..data_start]
        .windows(4)
        .position(|w| w == b"mean")
        .expect("a mean in the metadata");
    let digit = mean
        + bytes[mean..data_start]
            .iter()
            .position(|b| b.is_ascii_digit())
            .unwrap();
    spots.push((digit, "checksum"));
    for (at, needle) in spots {
        let mut damaged = bytes.clone();
        // Flip the lowest bit: a digit stays a digit, a float another float.
        damaged[at] ^= 0x01;
        let path = dir.join(format!("damaged-{at}.safetensors"));
        std::fs::write(&path, &damaged).unwrap();
        let o = run(&[
            "predict",
            "--model",
            path.to_str().unwrap(),
            "--data",
            PENGUINS,
        ]);
        assert_fails(&o, needle);
    }
}

#[test]
fn a_run_folder_is_neither_overwritten_silently_nor_shared() {
    // Two train runs into one --out both succeeded, the last writer winning
    // silently (issue 11, item 5): now a folder with a model needs --force, and
    // a run under way holds a lock that a second run is refused by.
    gpu_or_skip!();
    let dir = scratch("out-lock");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(PENGUIN_ARGS);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !out.join(".taskgrad.lock").exists(),
        "the lock outlived the run"
    );
    assert_fails(&run(&args), "--force");
    let mut forced = args.clone();
    forced.push("--force");
    let o = run(&forced);
    assert!(o.status.success(), "{}", stderr(&o));
    // A run that holds the lock (here: this test process) refuses a second.
    let lock = std::fs::File::create(out.join(".taskgrad.lock")).unwrap();
    lock.try_lock().unwrap();
    std::fs::write(out.join(".taskgrad.lock"), b"4242").unwrap();
    assert_fails(&run(&forced), "another taskgrad run (pid 4242) is writing");
    assert!(
        out.join("model.safetensors").exists(),
        "the refused run removed the model"
    );
    drop(lock);
    // Issue 24: a lock left by a run that was killed (its file, no holder)
    // and a write it cut short are taken over and cleaned, with a word.
    std::fs::write(out.join(".taskgrad.lock"), b"4242").unwrap();
    std::fs::write(out.join("plots").join(".partial-species.png"), b"half").unwrap();
    let o = run(&forced);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("took over the lock of an earlier run (pid 4242)"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join(".taskgrad.lock").exists());
    assert!(!out.join("plots").join(".partial-species.png").exists());
}

#[test]
fn a_forced_run_that_fails_leaves_exactly_the_old_folder() {
    // Issue 24, item 2: a --force run that failed while writing its plots
    // (a full disk) had already replaced the model and the metrics. Here the
    // file size limit (ulimit -f: a model fits, a PNG plot does not) stops
    // the run in its writes; the folder must be the previous run's, byte for
    // byte, and the next run into it must work.
    gpu_or_skip!();
    let dir = scratch("half-replaced");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--epochs", "3"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let snapshot = common::snapshot;
    let before = snapshot(&out);
    assert!(before.iter().any(|(n, _)| n.ends_with(".png")));
    let model_size = before
        .iter()
        .find(|(n, _)| n.ends_with("model.safetensors"))
        .unwrap()
        .1
        .len();
    let largest = before.iter().map(|(_, b)| b.len()).max().unwrap();
    assert!(
        model_size < 40_000 && largest > 56_000,
        "sizes changed: {model_size}, {largest}"
    );
    let mut forced: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    forced.extend(["--force".into(), "--seed".into(), "9".into()]);
    let quoted: Vec<String> = forced.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "ulimit -f 48; exec '{}' {}",
        env!("CARGO_BIN_EXE_taskgrad"),
        quoted.join(" ")
    );
    let o = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "the limited run succeeded: {}",
        stderr(&o)
    );
    assert!(
        snapshot(&out) == before,
        "the failed run changed the folder"
    );
    let o = run(&forced.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(snapshot(&out) != before);
    assert!(!out.join(".staging").exists() && !out.join(".taskgrad.lock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_never_writes_over_its_own_data() {
    // Issue 24, item 7: `--data d/metrics.csv --out d` (or a CSV among the
    // plots, which a run replaces as a folder) was read, then overwritten.
    gpu_or_skip!();
    let dir = scratch("own-input");
    let out = dir.join("run");
    std::fs::create_dir_all(out.join("plots")).unwrap();
    let csv = std::fs::read_to_string(PENGUINS).unwrap();
    for place in ["metrics.csv", "plots/species.svg", "plots/mine.csv"] {
        let data = out.join(place);
        std::fs::write(&data, &csv).unwrap();
        let mut args = vec![
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(PENGUIN_ARGS);
        args.push("--force");
        assert_fails(&run(&args), "lies where this run writes its outputs");
        assert_eq!(
            std::fs::read_to_string(&data).unwrap(),
            csv,
            "{place} changed"
        );
    }
    let data = out.join("results.csv");
    std::fs::write(&data, &csv).unwrap();
    let mut args = vec![
        "compare",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(PENGUIN_ARGS);
    args.extend(["--methods", "equal", "--force"]);
    assert_fails(&run(&args), "lies where this run writes its outputs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_shared_model_names_no_folder_and_no_data_fingerprint_unless_asked() {
    // Issue 24, item 10: the model kept --data and --out as typed (absolute
    // paths, a home folder's user name) and a fingerprint of the training
    // rows with which anyone could confirm a candidate data set.
    gpu_or_skip!();
    let dir = scratch("privacy");
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
        args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
        args.extend(["--epochs", "2"]);
        args.extend(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        checkpoint::load(&out.join("model.safetensors")).unwrap()
    };
    let plain = dir.join("plain");
    let ck = train(&plain, &[]);
    assert_eq!(ck.meta.config["data"], "penguins.csv");
    assert_eq!(ck.meta.config["out"], "plain");
    let split = ck.meta.split.as_ref().unwrap();
    assert_eq!(
        (split.fingerprint.as_deref(), split.file.as_deref()),
        (None, Some("penguins.csv"))
    );
    let text = String::from_utf8_lossy(&std::fs::read(plain.join("model.safetensors")).unwrap())
        .to_string();
    assert!(
        !text.contains(dir.to_str().unwrap()),
        "a folder is in the model"
    );
    // eval still finds the held-out rows of the training file, and says how.
    let model = plain.join("model.safetensors");
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("recognised by its name and row count"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Asked for, the fingerprint is kept, and recognises a renamed copy.
    let marked = dir.join("marked");
    let ck = train(&marked, &["--record-data-fingerprint"]);
    assert!(ck.meta.split.as_ref().unwrap().fingerprint.is_some());
    let copy = dir.join("copy.csv");
    std::fs::copy(PENGUINS, &copy).unwrap();
    let model = marked.join("model.safetensors");
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        copy.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("recognised by its contents' fingerprint"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_is_an_io_error_and_a_constant_column_is_no_drift() {
    // Issue 24, item 11: a full disk during predict was labelled "invalid
    // configuration"; a constant input column (saved with spread 1) made
    // predict on the training file itself warn "renamed or swapped".
    gpu_or_skip!();
    let dir = scratch("full-disk");
    let mut body = String::from("x,flat,y\n");
    for i in 0..40 {
        body += &format!("{},7.5,{}\n", i as f32 / 10.0, i % 2);
    }
    let data = write(&dir, "flat.csv", &body);
    let out = dir.join("run");
    let o = run(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--inputs",
        "x,flat",
        "--task",
        "y:class",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.safetensors");
    let o = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("renamed or swapped"), "{}", stderr(&o));
    let script = format!(
        "'{}' predict --model '{}' --data '{}' > /dev/full",
        env!("CARGO_BIN_EXE_taskgrad"),
        model.display(),
        data.display()
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_fails(&o, "I/O error on standard output: No space left on device");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_closed_output_pipe_ends_the_run_quietly() {
    // Issue 24, item 8: `taskgrad train … 2>&1 | head -2` ended with a panic
    // (exit 101) in the next progress line. Now it ends as `cat` would, by SIGPIPE.
    gpu_or_skip!();
    let dir = scratch("pipe");
    let out = dir.join("run");
    let script = format!(
        "'{}' train --data '{PENGUINS}' --inputs bill_length_mm,bill_depth_mm --task species:class \
         --epochs 200 --patience 1000 --out '{}' 2>&1 | head -2 >/dev/null; echo ${{PIPESTATUS[0]}}",
        env!("CARGO_BIN_EXE_taskgrad"),
        out.display()
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    let status = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(status, "141", "exit status {status}, stderr {}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_run_leaves_no_lock_that_stops_the_next() {
    // Issue 24, item 1: kill -9 during training left .taskgrad.lock behind
    // and every later run into the folder was refused, --force or not.
    gpu_or_skip!();
    let dir = scratch("killed");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--epochs", "100000", "--patience", "100000"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_taskgrad"))
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it trains (the lock is taken before), then kill it.
    let clock = std::time::Instant::now();
    while !out.join(".taskgrad.lock").exists() {
        assert!(
            clock.elapsed().as_secs() < 60,
            "the run never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        out.join(".taskgrad.lock").exists(),
        "kill -9 left no lock to test with"
    );
    let mut again = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    again.extend(PENGUIN_ARGS);
    let o = run(&again);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("took over the lock"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_shows_and_logs_per_task_gradients_weights_and_a_profile() {
    // --space, --grad-stats and --profile were only in iris_mtl, and the
    // weights a method chooses were never shown or logged (issue 11).
    gpu_or_skip!();
    let dir = scratch("grad-stats");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]); // all but --epochs 12
    args.extend([
        "--epochs",
        "2",
        "--weighting",
        "mgda",
        "--space",
        "params",
        "--grad-stats",
        "--profile",
        "--dump-step",
        "--grad-stats-every",
        "3",
        "--dump-graph",
    ]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("epoch   2: ‖g‖ species ") && text.contains("cos(species,sex) "),
        "{text}"
    );
    assert!(text.contains("| weights species "), "{text}");
    assert!(text.contains("dispatches per step"), "{text}");
    // --dump-step lists the step's dispatches, as many as the profile counts,
    // from the first matmul to the optimizer.
    let count: usize = text
        .split("one training step: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text.contains(&format!("profile: {count} dispatches per step")),
        "{text}"
    );
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .split("  ")
                .next()
                .is_some_and(|n| n.parse::<usize>().is_ok())
                && l.contains(".wgsl::")
        })
        .collect();
    assert_eq!(listed.len(), count, "{text}");
    assert!(
        listed[0].contains("matmul") && listed[count - 1].contains("optim.wgsl::adam"),
        "{listed:?}"
    );
    assert!(
        listed.iter().any(|l| l.contains("gram.wgsl::gram_partial")),
        "{listed:?}"
    );
    // Not a terminal: one plain progress line per epoch on stderr.
    assert!(
        stderr(&o).contains("epoch 2/2 train loss ["),
        "{}",
        stderr(&o)
    );
    // steps.csv: every third step, each task's weight, gradient norm and the cosines.
    let steps = std::fs::read_to_string(out.join("steps.csv")).unwrap();
    let mut lines = steps.lines();
    assert_eq!(
        lines.next().unwrap(),
        "step,epoch,species_weight,sex_weight,body_mass_g_weight,species_grad_norm,\
         sex_grad_norm,body_mass_g_grad_norm,cos_species_sex,cos_species_body_mass_g,\
         cos_sex_body_mass_g"
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() >= 2, "{steps}");
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], 3.0 * (i + 1) as f64, "{steps}");
        // MGDA's weights are a convex combination.
        assert!((r[2] + r[3] + r[4] - 1.0).abs() < 1e-4, "{steps}");
    }
    // graph.dot: the step's graph, drawable by Graphviz.
    let graph = std::fs::read_to_string(out.join("graph.dot")).unwrap();
    assert!(
        graph.starts_with("digraph") && graph.contains("softmax_ce loss"),
        "{graph}"
    );
    // metrics.csv: each task's weight, and the cosines of each pair.
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    for col in [
        "species_weight",
        "body_mass_g_weight",
        "cos_species_sex",
        "cos_sex_body_mass_g",
    ] {
        assert!(header.contains(&col), "{header:?}");
    }
    // MGDA's weights are a convex combination: they sum to 1 in every row.
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for line in metrics.lines().skip(1) {
        let cells: Vec<f64> = line
            .split(',')
            .map(|c| c.parse().unwrap_or(f64::NAN))
            .collect();
        let sum: f64 = ["species_weight", "sex_weight", "body_mass_g_weight"]
            .iter()
            .map(|n| cells[at(n)])
            .sum();
        assert!((sum - 1.0).abs() < 1e-4, "{line}");
    }
    // A bad space is refused before any work.
    let bad = dir.join("bad");
    let mut args = vec!["train", "--data", PENGUINS, "--out", bad.to_str().unwrap()];
    args.extend(PENGUIN_ARGS);
    args.extend(["--space", "sideways"]);
    assert_fails(&run(&args), "--space");
    assert!(!bad.exists(), "no folder for a refused run");
}

#[test]
fn compare_methods_over_seeds_on_penguins() {
    // Issue 11's first "done means": 4 methods and 3 seeds on penguins give
    // the mean ± std table, results.csv and the comparison plot.
    gpu_or_skip!();
    let dir = scratch("compare");
    let out = dir.join("cmp");
    let mut args = vec![
        "compare",
        "--data",
        PENGUINS,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend([
        "--epochs",
        "6",
        "--methods",
        "equal,uncertainty,pcgrad,mgda",
        "--seeds",
        "3",
    ]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.starts_with("3 seeds (0, 1, 2); mean ± standard deviation"),
        "{text}"
    );
    for m in ["equal", "uncertainty", "pcgrad", "mgda", "single-task"] {
        let row = text
            .lines()
            .find(|l| l.starts_with(m))
            .unwrap_or_else(|| panic!("{m}: {text}"));
        assert_eq!(
            row.matches('±').count(),
            if m == "single-task" { 3 } else { 4 },
            "{row}"
        );
    }
    // Every column has a best method.
    assert!(text.matches('*').count() >= 4, "{text}");
    // Non-terminal progress: one line per model, 3 × (3 baselines + 4 methods).
    assert!(
        stderr(&o).contains("[21/21] seed 2, mgda"),
        "{}",
        stderr(&o)
    );
    // results.csv: per model, a row per seed then mean and std.
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "method,seed,species_accuracy,sex_accuracy,body_mass_g_rmse,delta_m"
    );
    assert_eq!(lines.len(), 1 + 5 * (3 + 2));
    let mean: Vec<f64> = lines
        .iter()
        .find(|l| l.starts_with("mgda,mean,"))
        .unwrap()
        .split(',')
        .skip(2)
        .map(|c| c.parse().unwrap())
        .collect();
    let per_seed: Vec<Vec<f64>> = lines
        .iter()
        .filter(|l| l.starts_with("mgda,") && !l.contains("mean") && !l.contains("std"))
        .map(|l| l.split(',').skip(2).map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(per_seed.len(), 3);
    for c in 0..4 {
        let m = per_seed.iter().map(|r| r[c]).sum::<f64>() / 3.0;
        assert!((m - mean[c]).abs() < 1e-9, "column {c}: {m} vs {}", mean[c]);
    }
    for f in ["results.txt", "compare.svg", "compare.png"] {
        assert!(out.join(f).metadata().unwrap().len() > 0, "{f}");
    }
    no_temporary_files(&out);
    // The seeds trained at once, on two devices (issue 23): the same numbers
    // to the last digit, and every model still reported.
    let parallel = dir.join("cmp-jobs");
    let mut jobs_args = args.clone();
    jobs_args[4] = parallel.to_str().unwrap();
    jobs_args.extend(["--jobs", "2"]);
    let o = run(&jobs_args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(parallel.join("results.csv")).unwrap(),
        csv,
        "--jobs 2 changed the results"
    );
    assert!(stderr(&o).contains("[21/21] "), "{}", stderr(&o));
    // Every seed of a model stepped together on one device (issue 23): the
    // same numbers again, one progress line per model for all seeds.
    let lockstep = dir.join("cmp-lockstep");
    let mut lockstep_args = args.clone();
    lockstep_args[4] = lockstep.to_str().unwrap();
    lockstep_args.push("--lockstep");
    let o = run(&lockstep_args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(lockstep.join("results.csv")).unwrap(),
        csv,
        "--lockstep changed the results"
    );
    assert!(
        stderr(&o).contains("[7/7] seeds 0–2, mgda"),
        "{}",
        stderr(&o)
    );
    // The seeds' models shared out to two devices, each model still all
    // seeds stepped together: one progress line per model, as above.
    let mut both = lockstep_args.clone();
    both.extend(["--jobs", "2", "--force"]);
    let o = run(&both);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(lockstep.join("results.csv")).unwrap(),
        csv,
        "--lockstep --jobs 2 changed the results"
    );
    assert!(stderr(&o).contains("[7/7] seeds 0–2, "), "{}", stderr(&o));
    // The folder holds results: a second compare into it needs --force.
    assert_fails(&run(&args), "already holds results");
    // A bad method, or no seeds, fail before any work and make no folder.
    for (flag, value, needle) in [
        ("--methods", "equal,magic", "--methods magic"),
        ("--seeds", "0", "--seeds must be at least 1"),
    ] {
        let bad = dir.join(format!("bad{}", value.len()));
        let mut args = vec![
            "compare",
            "--data",
            PENGUINS,
            "--out",
            bad.to_str().unwrap(),
        ];
        args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
        args.extend([flag, value]);
        assert_fails(&run(&args), needle);
        assert!(!bad.exists());
    }
}

#[test]
fn errors_found_late_are_found_early_and_messages_name_what_is_at_fault() {
    // Issue 11, items 15 and 18: a directory where the model or metrics.csv
    // goes failed only after training; a 300-character task name made a plot
    // file name too long; `--inputs "a, b"` was not trimmed; a huge network
    // was reported as a byte count (after minutes drawing its weights); 1e39
    // was called "not finite".
    gpu_or_skip!();
    let dir = scratch("late-errors");
    let long = "t".repeat(300);
    let mut body = format!("a,b,{long},y\n");
    for i in 0..40 {
        body += &format!("{},{},{},{}\n", i % 7, (i * 3) % 5, i % 2, i % 3);
    }
    let data = write(&dir, "d.csv", &body);
    let d = data.to_str().unwrap();
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            d,
            "--inputs",
            "a, b",
            "--task",
            "y:class",
            "--epochs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        run(&args)
    };
    // "a, b": the names are trimmed, and a 300-character task trains and plots.
    let out = dir.join("ok");
    let long_task = format!("{long}:class");
    let o = train(&out, &["--task", &long_task]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plots: Vec<_> = std::fs::read_dir(out.join("plots")).unwrap().collect();
    assert_eq!(plots.len(), 4, "two tasks, svg and png each");
    // A directory where a file of the run goes: refused before training.
    for blocked in ["model.safetensors", "metrics.csv"] {
        let out = dir.join(format!("blocked-{blocked}"));
        std::fs::create_dir_all(out.join(blocked)).unwrap();
        let o = train(&out, &[]);
        assert_fails(&o, &format!("{blocked} is a directory"));
        assert!(
            !stderr(&o).contains("epoch 1/"),
            "it trained first: {}",
            stderr(&o)
        );
    }
    // A network no adapter binds: the flags named, at once, no folder left.
    let out = dir.join("huge");
    let clock = std::time::Instant::now();
    let o = train(&out, &["--hidden", "65536,65536"]);
    assert_fails(&o, "the network (--hidden 65536,65536; 4295");
    assert_fails(
        &o,
        "parameters, activations up to 65536 wide) with --batch 32 needs a buffer of",
    );
    // The sizes are the built network's, whatever its architecture: a
    // mixture's experts (E·H wide together) and a layer list.
    let o = train(
        &out,
        &[
            "--arch",
            "mmoe",
            "--experts",
            "16",
            "--expert-hidden",
            "4000000",
        ],
    );
    assert_fails(
        &o,
        "the network (--arch mmoe with 16 experts of width 4000000; ",
    );
    assert_fails(&o, "parameters, activations up to 64000000 wide)");
    assert_fails(&o, "fewer or narrower experts");
    let o = train(
        &out,
        &["--trunk", "linear:70000,relu,layernorm,linear:70000"],
    );
    assert_fails(
        &o,
        "the network (--trunk linear:70000,relu,layernorm,linear:70000; 4900",
    );
    assert!(clock.elapsed().as_secs() < 60, "{:?}", clock.elapsed());
    assert!(!out.exists(), "an empty folder was left");
    // A number too large for f32 is called that.
    let big = write(&dir, "big.csv", "a,b,y\n1,2,x\n3,1e39,y\n5,6,x\n7,8,y\n");
    let o = run(&[
        "train",
        "--data",
        big.to_str().unwrap(),
        "--inputs",
        "a,b",
        "--task",
        "y:class",
        "--out",
        dir.join("big").to_str().unwrap(),
    ]);
    assert_fails(&o, "\"1e39\" is too large: taskgrad computes in f32");
}

#[test]
fn a_header_only_column_swap_is_pointed_out() {
    // Issue 11, item 11: swapping two input names in the header (not the
    // data) trained and predicted silently on the wrong columns. The model's
    // standardisation says what each column looked like in training.
    gpu_or_skip!();
    let dir = scratch("swap");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--epochs", "2"]);
    assert!(run(&args).status.success());
    let text = std::fs::read_to_string(PENGUINS).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    let swapped_header = header
        .replace("bill_length_mm", "TMP")
        .replace("flipper_length_mm", "bill_length_mm")
        .replace("TMP", "flipper_length_mm");
    let swapped = write(&dir, "swapped.csv", &format!("{swapped_header}\n{rest}"));
    let model = out.join("model.safetensors");
    let m = model.to_str().unwrap();
    let o = run(&["eval", "--model", m, "--data", swapped.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for col in ["\"bill_length_mm\"", "\"flipper_length_mm\""] {
        assert!(
            err.contains(&format!("warning: {}: column {col}", swapped.display())),
            "{err}"
        );
    }
    assert!(err.contains("a renamed or swapped header"), "{err}");
    // The file it was trained on raises nothing.
    let o = run(&["eval", "--model", m, "--data", PENGUINS]);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    // Nor does resuming on it; resuming on the swapped file says so.
    let o = run(&[
        "train",
        "--data",
        swapped.to_str().unwrap(),
        "--resume",
        m,
        "--epochs",
        "1",
        "--out",
        dir.join("resumed").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: --resume"), "{}", stderr(&o));
}

#[test]
fn plots_say_what_they_show() {
    // Issue 11: no y-axis labels, a legend over the curves, 0-1 accuracy axes,
    // epoch ticks reading "5.0", a low-contrast green, no best epoch, no STL.
    gpu_or_skip!();
    let dir = scratch("plots");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--epochs", "4", "--baselines"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = |task: &str| std::fs::read_to_string(out.join(format!("plots/{task}.svg"))).unwrap();
    let texts = |svg: &str| -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .map(|t| {
                t.split_once('>')
                    .unwrap()
                    .1
                    .split("</text>")
                    .next()
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .collect()
    };
    let species = texts(&svg("species"));
    for want in [
        "train",
        "validation",
        "single-task validation",
        "best epoch (weights kept)",
        "cross-entropy (nats)",
        "accuracy",
        "epoch",
        "1",
        "2",
        "3",
        "4",
    ] {
        assert!(
            species.iter().any(|t| t == want),
            "{want:?} not in {species:?}"
        );
    }
    assert!(
        !species.iter().any(|t| t == "5.0" || t == "1.0e0"),
        "{species:?}"
    );
    let mass = texts(&svg("body_mass_g"));
    for want in ["MSE (standardised target)", "RMSE (original units)"] {
        assert!(mass.iter().any(|t| t == want), "{want:?} not in {mass:?}");
    }
    // The Okabe-Ito blue and orange, not plotters' pure green.
    let s = svg("species");
    assert!(s.contains("#0072B2") && s.contains("#E69F00") && !s.contains("#00FF00"));
}

#[test]
fn cross_stitch_trains_penguins_with_a_column_per_task_and_loads_back() {
    // `--arch cross_stitch --hidden 16,8`: each task a column of the trunk's
    // layers, a unit after each stage; saved, evaluated, resumed.
    gpu_or_skip!();
    let dir = scratch("cross");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend([
        "--epochs",
        "3",
        "--arch",
        "cross_stitch",
        "--hidden",
        "16,8",
    ]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.safetensors");
    let ck = checkpoint::load(&model).unwrap();
    assert_eq!(ck.meta.net.arch, taskgrad::nn::Arch::CrossStitch);
    assert_eq!(ck.meta.config["arch"], "cross_stitch");
    let names: Vec<&str> = ck.tensors.iter().map(|(n, _, _)| n.as_str()).collect();
    for n in [
        "cross.0.t0.0.weight",
        "cross.0.t2.0.bias",
        "cross.1.t1.0.weight",
        "cross.1.alpha2",
    ] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("trunk.")), "{names:?}");
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed = dir.join("r");
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        resumed.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn dselect_k_trains_penguins_loads_back_and_refuses_odd_expert_counts() {
    // `--arch dselect_k:2 --experts 4`: MMoE with DSelect-k gates; the model
    // keeps its k, evaluates, and resumes with it; 3 experts are refused.
    gpu_or_skip!();
    let dir = scratch("dselect");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend([
        "--epochs",
        "3",
        "--arch",
        "dselect_k:2",
        "--experts",
        "4",
        "--expert-hidden",
        "8",
    ]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.safetensors");
    let ck = checkpoint::load(&model).unwrap();
    assert_eq!(
        ck.meta.net.arch,
        taskgrad::nn::Arch::DselectK {
            experts: 4,
            expert_hidden: 8,
            selected: 2
        }
    );
    assert_eq!(ck.meta.config["arch"], "dselect_k:2");
    // Each task's gate: 2 selectors × 2 bits + 2 weight logits per input.
    let gate = ck
        .tensors
        .iter()
        .find(|(n, _, _)| n == "moe.0.gate0.weight")
        .unwrap();
    assert_eq!(gate.1[1], 6, "{:?}", gate.1);
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(
        metrics.lines().next().unwrap().contains("species_gate3"),
        "{metrics}"
    );
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bad = dir.join("bad");
    let mut args = vec!["train", "--data", PENGUINS, "--out", bad.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--arch", "dselect_k:2", "--experts", "3"]);
    let o = run(&args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("power of two"), "{}", stderr(&o));
}

#[test]
fn a_mixture_of_experts_trains_penguins_and_loads_back() {
    // Issue 13: `taskgrad train --arch mmoe --experts 4` trains penguins and
    // the model loads back for predict; the architecture is in the metadata.
    gpu_or_skip!();
    let dir = scratch("mmoe");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend([
        "--epochs",
        "5",
        "--arch",
        "mmoe",
        "--experts",
        "4",
        "--expert-hidden",
        "16",
    ]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.safetensors");
    let ck = checkpoint::load(&model).unwrap();
    assert_eq!(
        ck.meta.net.arch,
        taskgrad::nn::Arch::Mmoe {
            experts: 4,
            expert_hidden: 16
        }
    );
    assert!(ck.meta.net.trunk.is_empty());
    assert_eq!(ck.meta.config["arch"], "mmoe");
    let names: Vec<&str> = ck.tensors.iter().map(|(n, _, _)| n.as_str()).collect();
    for n in [
        "moe.0.shared.weight",
        "moe.0.gate0.weight",
        "moe.0.gate2.bias",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    // Which experts each task uses: metrics.csv has each task's gate weights
    // (a distribution over the 4 experts in every row), and plots/gates.*.
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    for task in ["species", "sex", "body_mass_g"] {
        let cols: Vec<usize> = (0..4)
            .map(|j| {
                header
                    .iter()
                    .position(|h| *h == format!("{task}_gate{j}"))
                    .unwrap_or_else(|| panic!("{task}_gate{j} in {header:?}"))
            })
            .collect();
        for line in metrics.lines().skip(1) {
            let cells: Vec<&str> = line.split(',').collect();
            let sum: f64 = cols.iter().map(|&c| cells[c].parse::<f64>().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-4, "{task}: {line}");
        }
    }
    assert!(out.join("plots/gates.svg").exists() && out.join("plots/gates.png").exists());
    let preds = dir.join("preds.csv");
    let o = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
        "--output",
        preds.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&preds).unwrap().lines().count(),
        345
    );
    // Resuming keeps the architecture; asking for another is refused.
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
        "--arch",
        "ple",
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert_fails(&o, "--arch ple (the model's: mmoe)");
    // Bad architectures fail before any work.
    for (extra, needle) in [
        (
            vec!["--arch", "moe"],
            "unknown architecture \"moe\": use shared, cross_stitch, ltb, mtan, omoe, mmoe, cgc, ple or dselect_k[:K]",
        ),
        (
            vec!["--arch", "mmoe", "--experts", "0"],
            "--experts 0, --task-experts 1, --expert-hidden 32, --levels 2): the mmoe architecture: experts must be at least 1",
        ),
        (
            vec!["--arch", "ple", "--levels", "0"],
            "--levels 0): the ple architecture: levels must be at least 1",
        ),
    ] {
        let bad = dir.join("bad");
        let mut args = vec!["train", "--data", PENGUINS, "--out", bad.to_str().unwrap()];
        args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
        args.extend(extra);
        assert_fails(&run(&args), needle);
        assert!(!bad.exists());
    }
}

#[test]
fn a_binary_task_trains_predicts_probabilities_and_compare_ranks_it_by_auc() {
    // Issue 20: `--task sex:binary` reports AUC and log-loss, `predict`
    // writes each row's probability of the positive value (male, the later
    // of female/male), `eval` names the metrics and `compare` ranks by AUC.
    gpu_or_skip!();
    let dir = scratch("binary");
    let out = dir.join("run");
    let inputs = "bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,species";
    let mut args = vec!["train", "--data", PENGUINS, "--inputs", inputs];
    args.extend(["--task", "sex:binary", "--epochs", "15", "--baselines"]);
    args.extend(["--out", out.to_str().unwrap()]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    for want in [
        "auc",
        "log_loss",
        "accuracy",
        "positive: male (negative: female)",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(
        metrics.starts_with(
            "epoch,lr,sex_train_loss,sex_val_loss,sex_val_auc,sex_val_log_loss,sex_val_accuracy"
        ),
        "{metrics}"
    );
    let model = out.join("model.safetensors");
    let preds = dir.join("preds.csv");
    let o = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
        "--output",
        preds.to_str().unwrap(),
        "--probabilities",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&preds).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("line,sex,p(sex=female),p(sex=male)"));
    let mut n = 0;
    for l in lines.filter(|l| !l.ends_with(",,,")) {
        let cells: Vec<f64> = l.split(',').skip(1).map(|c| c.parse().unwrap()).collect();
        assert!((0.0..=1.0).contains(&cells[0]), "{l}");
        assert!((cells[0] - cells[2]).abs() < 1e-6 && (cells[1] + cells[2] - 1.0).abs() < 1e-5);
        n += 1;
    }
    assert!(n > 300, "{n} rows predicted");
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("auc ") && text.contains("log_loss "),
        "{text}"
    );
    // A model of a later format is refused, saying which format each side has.
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.windows(10).position(|w| w == b"taskgrad-2").unwrap();
    bytes[at + 9] = b'9';
    let later = dir.join("later.safetensors");
    std::fs::write(&later, bytes).unwrap();
    let o = run(&[
        "eval",
        "--model",
        later.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert_fails(
        &o,
        "a taskgrad model in format taskgrad-9, written by taskgrad 0.1.0",
    );
    assert_fails(&o, "reads taskgrad-1 and taskgrad-2");

    let cmp = dir.join("compare");
    let measures = "bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g";
    let mut args = vec!["compare", "--data", PENGUINS, "--inputs", measures];
    args.extend(["--task", "sex:binary", "--task", "species:class"]);
    args.extend(["--epochs", "4", "--methods", "equal,mgda", "--seeds", "2"]);
    args.extend(["--out", cmp.to_str().unwrap()]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("sex auc") && text.contains("species accuracy"),
        "{text}"
    );
    let csv = std::fs::read_to_string(cmp.join("results.csv")).unwrap();
    assert!(
        csv.starts_with("method,seed,sex_auc,species_accuracy,delta_m"),
        "{csv}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_trunk_and_towers_of_layers_train_save_resume_and_predict() {
    // Issue 20: `--trunk` and `--tower` take layer lists (LayerNorm, dropout
    // among them); the spec is saved with the model, resume keeps it and
    // refuses another, predict rebuilds it (dropout the identity), and the
    // same seed gives the same numbers, dropout masks included.
    gpu_or_skip!();
    let dir = scratch("layers");
    let trunk = "linear:24,relu,layernorm,dropout:0.2,linear:16,gelu";
    let train = |out: &Path, seed: &str| {
        let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
        args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
        args.extend(["--trunk", trunk, "--tower", "linear:8,tanh,dropout:0.1"]);
        args.extend(["--embed", "island:3"]);
        args.extend(["--epochs", "4", "--seed", seed]);
        run(&args)
    };
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    for (out, seed) in [(&a, "5"), (&b, "5"), (&c, "6")] {
        let o = train(out, seed);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let metrics = |p: &Path| std::fs::read_to_string(p.join("metrics.csv")).unwrap();
    assert_eq!(metrics(&a), metrics(&b), "same seed, same numbers");
    assert_ne!(metrics(&a), metrics(&c), "another seed, other numbers");
    let model = a.join("model.safetensors");
    let ck = checkpoint::load(&model).unwrap();
    let saved: Vec<String> = ck
        .meta
        .net
        .trunk_layers
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(saved.join(","), trunk);
    assert!(ck.tensors.iter().any(|(n, _, _)| n == "trunk.1.gamma"));
    let table = ck
        .tensors
        .iter()
        .find(|(n, _, _)| n == "embed.island")
        .unwrap();
    assert_eq!(table.1, vec![3, 3], "three islands, three values each");
    assert_eq!(ck.meta.config["trunk"][2], "layernorm");

    let o = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Evaluation is deterministic: dropout is the identity there.
    let again = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert_eq!(o.stdout, again.stdout);
    // An island never seen in training reads a row of zeros: a prediction all the same.
    let new = write(
        &dir,
        "new.csv",
        "bill_length_mm,bill_depth_mm,flipper_length_mm,island\n39.1,18.7,181,Atlantis\n",
    );
    let o = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        new.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("2,") && !l.ends_with(",,")),
        "{text}"
    );

    let resumed = dir.join("resumed");
    let mut args = vec![
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
    ];
    args.extend(["--epochs", "2", "--out", resumed.to_str().unwrap()]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = checkpoint::load(&resumed.join("model.safetensors")).unwrap();
    assert_eq!(back.meta.net.trunk_layers, ck.meta.net.trunk_layers);
    args.extend(["--trunk", "linear:8", "--embed", "island:2"]);
    *args.iter_mut().find(|a| a.ends_with("resumed")).unwrap() = "unused";
    let o = run(&args);
    assert_fails(
        &o,
        "--trunk linear:8 (the model's: linear:24,relu,layernorm",
    );
    assert_fails(&o, "--embed island:2 (the model's: island:3)");
    // A flag given at its default value is given all the same (it was taken
    // for unset, and silently ignored, when it equalled the default).
    let mut args = vec![
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
    ];
    args.extend(["--hidden", "64,64", "--out", "unused"]);
    assert_fails(&run(&args), "--hidden 64,64 (the model's: none)");

    // Bad lists are refused before any work, naming what is wrong.
    let bad = dir.join("bad");
    for (list, needle) in [
        (
            "linear:8,batchnorm",
            "unknown layer \"batchnorm\": use one of linear, relu",
        ),
        ("linear:8,dropout:1.5", "the rate is in [0, 1)"),
        ("linear,relu", "linear needs a width"),
    ] {
        let mut args = vec!["train", "--data", PENGUINS, "--out", bad.to_str().unwrap()];
        args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
        args.extend(["--trunk", list, "--epochs", "1"]);
        assert_fails(&run(&args), needle);
        no_model_left(&bad);
    }
    let mut args = vec!["train", "--data", PENGUINS, "--out", bad.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--trunk", "linear:8", "--hidden", "16"]);
    assert_fails(&run(&args), "--hidden");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn experts_as_layer_lists_train_save_resume_and_predict() {
    // Issue 20: each expert of a mixture is a layer list (`--expert`); the
    // list is saved with the model, resume keeps it and refuses another,
    // predict rebuilds it; --expert needs a mixture and excludes --expert-hidden.
    gpu_or_skip!();
    let dir = scratch("experts");
    let expert = "linear:12,relu,layernorm,linear:6,gelu";
    let out = dir.join("a");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--arch", "ple", "--experts", "2", "--task-experts", "1"]);
    args.extend(["--expert", expert, "--epochs", "3"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.safetensors");
    let ck = checkpoint::load(&model).unwrap();
    let saved: Vec<String> = ck
        .meta
        .net
        .expert_layers
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(saved.join(","), expert);
    // Two levels: a second-level expert reads the first level's 6-wide mixture.
    let shape = |name: &str| {
        ck.tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1
            .clone()
    };
    assert_eq!(shape("moe.1.shared.e1.0.weight"), vec![6, 12]);
    assert_eq!(shape("moe.0.shared.e0.1.gamma"), vec![12]);
    let o = run(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed = dir.join("resumed");
    let mut args = vec![
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
    ];
    args.extend(["--epochs", "1", "--out", resumed.to_str().unwrap()]);
    assert!(run(&args).status.success());
    let back = checkpoint::load(&resumed.join("model.safetensors")).unwrap();
    assert_eq!(back.meta.net.expert_layers, ck.meta.net.expert_layers);
    *args.iter_mut().find(|a| a.ends_with("resumed")).unwrap() = "unused";
    args.extend(["--expert", "linear:8,relu"]);
    assert_fails(
        &run(&args),
        "--expert linear:8,relu (the model's: linear:12,relu,layernorm",
    );
    // Refused before any work.
    let bad = dir.join("bad");
    for (extra, needle) in [
        (vec!["--expert", "8"], "--expert sets a mixture's experts"),
        (
            vec!["--arch", "mmoe", "--expert", "8", "--expert-hidden", "4"],
            "--expert",
        ),
        (
            vec!["--arch", "mmoe", "--expert", "linear:8,softsign"],
            "unknown layer",
        ),
    ] {
        let mut args = vec!["train", "--data", PENGUINS, "--out", bad.to_str().unwrap()];
        args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
        args.extend(extra);
        assert_fails(&run(&args), needle);
        no_model_left(&bad);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_matmul_tuning_is_a_step_of_its_own_announced_once() {
    // Issue 20: the first run on an adapter searched for the fastest matmul
    // inside its first product, and its time counted as training time. Now
    // the search is announced with its time before training, and a later run
    // reads the cached choice silently.
    gpu_or_skip!();
    let dir = scratch("tuning");
    let cache = dir.join("cache");
    let train = |out: &str| {
        let out = dir.join(out);
        let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
        args.extend(PENGUIN_ARGS);
        Command::new(BIN)
            .args(&args)
            .env("TASKGRAD_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    let first = train("a");
    assert!(first.status.success(), "{}", stderr(&first));
    let err = stderr(&first);
    let line = err
        .lines()
        .find(|l| l.starts_with("tuning the matmul for "))
        .unwrap_or_else(|| panic!("no announcement: {err}"));
    assert!(
        line.contains(&format!("(once, cached in {})", cache.display())) && line.ends_with(" s"),
        "{line}"
    );
    assert!(cache.join("matmul-choice.json").exists());
    let second = train("b");
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        !stderr(&second).contains("tuning the matmul"),
        "{}",
        stderr(&second)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_kernel_variable_stops_the_run_before_training() {
    // Issue 20: a bad TASKGRAD_SPLITK was silently ignored at every product.
    let dir = scratch("bad-env");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(PENGUIN_ARGS);
    let o = Command::new(BIN)
        .args(&args)
        .env("TASKGRAD_SPLITK", "many")
        .output()
        .unwrap();
    assert_fails(&o, "TASKGRAD_SPLITK=\"many\": a whole number of slices");
    no_model_left(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_error_says_its_context_once() {
    // Issue 20: "invalid configuration: --space: invalid configuration: …".
    let dir = scratch("context");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(PENGUIN_ARGS);
    args.extend(["--space", "sideways"]);
    let o = run(&args);
    assert_fails(
        &o,
        "invalid configuration: --space: unknown gradient space \"sideways\"",
    );
    assert_eq!(
        stderr(&o).matches("invalid configuration").count(),
        1,
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn three_minibatch_methods_and_cr_mogm_train_iris_and_penguins() {
    // MoDo and SDMGrad draw three minibatches a step: through the CLI they
    // train penguins and Iris and refuse --space rep with the way out;
    // cr_mogm:METHOD:α (a wrapper with its own syntax) trains both too.
    gpu_or_skip!();
    let dir = scratch("three");
    for method in ["modo", "sdmgrad", "cr_mogm:pcgrad:0.8"] {
        let out = dir.join(format!("penguins-{}", method.replace(':', "-")));
        let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
        args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
        args.extend(["--epochs", "3", "--weighting", method]);
        let o = run(&args);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        assert!(out.join("model.safetensors").exists());
        let out = dir.join(format!("iris-{}", method.replace(':', "-")));
        let o = run(&iris_args(
            "train",
            out.to_str().unwrap(),
            &["--epochs", "3", "--weighting", method],
        ));
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        if method.starts_with("cr_mogm") {
            continue;
        }
        let rep = dir.join(format!("rep-{method}"));
        let mut args = vec!["train", "--data", PENGUINS, "--out", rep.to_str().unwrap()];
        args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
        args.extend(["--epochs", "1", "--weighting", method, "--space", "rep"]);
        assert_fails(&run(&args), "needs --space params");
    }
}

#[test]
fn ltb_trains_penguins_and_iris_loads_back_and_needs_two_stages() {
    // `--arch ltb --hidden 16,8`: a column per task, the second stage's
    // input one parent column picked by a hard Gumbel-softmax; saved (with
    // its logits), evaluated, resumed; a single stage is refused by name.
    gpu_or_skip!();
    let dir = scratch("ltb");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--epochs", "3", "--arch", "ltb", "--hidden", "16,8"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.safetensors");
    let ck = checkpoint::load(&model).unwrap();
    assert_eq!(ck.meta.net.arch, taskgrad::nn::Arch::Ltb);
    assert_eq!(ck.meta.config["arch"], "ltb");
    let names: Vec<&str> = ck.tensors.iter().map(|(n, _, _)| n.as_str()).collect();
    for n in ["ltb.0.t0.0.weight", "ltb.1.t2.0.bias", "ltb.0.logits1"] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("ltb.1.logits")),
        "{names:?}"
    );
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "train",
        "--data",
        PENGUINS,
        "--resume",
        model.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&iris_args(
        "train",
        dir.join("iris").to_str().unwrap(),
        &["--epochs", "3", "--arch", "ltb", "--hidden", "16,8"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let one = dir.join("one");
    let mut args = vec!["train", "--data", PENGUINS, "--out", one.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--arch", "ltb", "--hidden", "16"]);
    assert_fails(&run(&args), "ltb branches between stages");
}

#[test]
fn compare_all_methods_completes_on_penguins_and_iris() {
    // `compare --methods all`: every registered method defined for three
    // tasks, one seed, one epoch each, on penguins and on Iris through the
    // CLI; every one gets its row.
    gpu_or_skip!();
    let dir = scratch("compare-all");
    let out = dir.join("cmp");
    let mut args = vec![
        "compare",
        "--data",
        PENGUINS,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--epochs", "1", "--methods", "all", "--seeds", "1"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let names = taskgrad::mtl::names();
    for m in &names {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{m} "))),
            "{m} has no row: {text}"
        );
    }
    let total = names.len() + 3;
    assert!(
        stderr(&o).contains(&format!("[{total}/{total}]")),
        "{}",
        stderr(&o)
    );
    // And Iris (three tasks too).
    let out = dir.join("iris");
    let o = run(&iris_args(
        "compare",
        out.to_str().unwrap(),
        &["--epochs", "1", "--methods", "all", "--seeds", "1"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    for m in &names {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{m} "))),
            "{m} has no row on Iris: {text}"
        );
    }
}

#[test]
fn mtan_trains_penguins_and_iris_and_loads_back() {
    // `--arch mtan --hidden 16,8`: the shared trunk with a per-task soft
    // attention mask on each stage's output; saved with its masks, evaluated.
    gpu_or_skip!();
    let dir = scratch("mtan");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--epochs", "3", "--arch", "mtan", "--hidden", "16,8"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.safetensors");
    let ck = checkpoint::load(&model).unwrap();
    assert_eq!(ck.meta.net.arch, taskgrad::nn::Arch::Mtan);
    let names: Vec<&str> = ck.tensors.iter().map(|(n, _, _)| n.as_str()).collect();
    for n in [
        "mtan.0.shared.0.weight",
        "mtan.1.carry.0.weight",
        "mtan.1.att2.1.bias",
    ] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&iris_args(
        "train",
        dir.join("iris").to_str().unwrap(),
        &["--epochs", "3", "--arch", "mtan"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn every_architecture_trains_iris_through_the_cli() {
    // Issue 22's architectures on Iris's three tasks (penguins has a test
    // of its own for each): two epochs, a model written.
    gpu_or_skip!();
    let dir = scratch("archs-iris");
    for arch in [
        vec!["--arch", "cross_stitch", "--hidden", "16,8"],
        vec!["--arch", "dselect_k:2", "--experts", "4"],
        vec!["--arch", "ltb", "--hidden", "16,8"],
        vec!["--arch", "mtan", "--hidden", "16,8"],
    ] {
        let out = dir.join(arch[1].replace(':', "-"));
        let mut args = iris_args("train", out.to_str().unwrap(), &["--epochs", "2"]);
        args.extend(&arch);
        let o = run(&args);
        assert!(o.status.success(), "{arch:?}: {}", stderr(&o));
        assert!(out.join("model.safetensors").exists(), "{arch:?}");
    }
}

#[test]
fn a_small_run_says_it_runs_on_one_thread_and_the_users_setting_wins() {
    // Issue 23: on llvmpipe a step this small (penguins, 64-64 trunk, batch
    // 32: 0.16 M forward multiply-adds) runs each dispatch on one thread,
    // and the adapter line says so; an LP_NUM_THREADS the user set wins.
    let gpu = gpu_or_skip!();
    if !gpu.report.name.contains("llvmpipe") || std::env::var_os("LP_NUM_THREADS").is_some() {
        println!("not llvmpipe with LP_NUM_THREADS unset: nothing to check");
        return;
    }
    let dir = scratch("threads");
    let out = dir.join("run");
    let mut args = vec!["train", "--data", PENGUINS, "--out", out.to_str().unwrap()];
    args.extend(&PENGUIN_ARGS[..PENGUIN_ARGS.len() - 2]);
    args.extend(["--epochs", "1", "--force"]);
    let note = ", each dispatch on one thread";
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(note), "stderr: {}", stderr(&o));
    let o = Command::new(BIN)
        .args(&args)
        .env("LP_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains(note), "stderr: {}", stderr(&o));
    let o = run(&["info"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("LP_NUM_THREADS=0"));
    let _ = std::fs::remove_dir_all(&dir);
}
