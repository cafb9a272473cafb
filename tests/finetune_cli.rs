//! `taskgrad finetune` and `train --init` end to end on penguins: one model
//! per task with the trunk frozen to the bit, the parent recorded, the
//! split kept, new and dropped tasks, and each refusal with its reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use taskgrad::model::checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_taskgrad");
const PENGUINS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/penguins.csv");
const INPUTS: &str = "bill_length_mm,bill_depth_mm,flipper_length_mm,island";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskgrad-ft-{}-{name}", std::process::id()));
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

#[track_caller]
fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "failed: {err}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[track_caller]
fn fails(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "message lacks {n:?}: {err}");
    }
}

/// A parent trained on three tasks, split with seed 3.
fn parent(dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("parent");
    let mut args = vec![
        "train",
        "--data",
        PENGUINS,
        "--inputs",
        INPUTS,
        "--task",
        "species:class",
        "--task",
        "sex:binary",
        "--task",
        "body_mass_g:reg",
        "--epochs",
        "4",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    ok(&run(&args));
    out.join("model.safetensors")
}

fn tensor<'a>(ck: &'a checkpoint::Checkpoint, name: &str) -> &'a [f32] {
    &ck.tensors
        .iter()
        .find(|t| t.0 == name)
        .unwrap_or_else(|| panic!("{name}"))
        .2
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn finetune_writes_one_model_per_task_over_a_trunk_frozen_to_the_bit() {
    gpu_or_skip!();
    let dir = scratch("per-task");
    let model = parent(&dir, &[]);
    let out = dir.join("ft");
    let args = [
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--data",
        PENGUINS,
        "--freeze",
        "trunk",
        "--epochs",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    let stdout = ok(&run(&args));
    assert!(stdout.contains("MTL+FT"), "{stdout}");
    let results = std::fs::read_to_string(out.join("results.txt")).unwrap();
    let p = checkpoint::load(&model).unwrap();
    for task in ["species", "sex", "body_mass_g"] {
        assert!(results.contains(task), "{results}");
        let child_path = out.join(task).join("model.safetensors");
        let child = checkpoint::load(&child_path).unwrap();
        // The task's head alone, the trunk the parent's to the bit.
        let heads: Vec<&str> = (child.tensors.iter())
            .map(|t| t.0.as_str())
            .filter(|n| n.starts_with("head."))
            .collect();
        assert!(
            heads
                .iter()
                .all(|h| h.starts_with(&format!("head.{task}."))),
            "{heads:?}"
        );
        for name in ["trunk.0.weight", "trunk.0.bias", "trunk.1.weight"] {
            assert_eq!(
                bits(tensor(&child, name)),
                bits(tensor(&p, name)),
                "{task}: {name}"
            );
        }
        let head = format!("head.{task}.out.weight");
        assert_ne!(
            bits(tensor(&child, &head)),
            bits(tensor(&p, &head)),
            "{task}: head untrained"
        );
        // The parent recorded, the split kept.
        let rec = child.meta.parent.as_ref().expect("a parent record");
        assert_eq!(rec.file, "model.safetensors");
        assert_eq!(rec.tasks, ["species", "sex", "body_mass_g"]);
        assert_eq!(rec.epochs_trained, p.meta.epochs_trained);
        assert_eq!(rec.checksum.len(), 16);
        assert_eq!(child.meta.split.as_ref().unwrap().seed, 3);
        // Used like any other model.
        let child_s = child_path.to_str().unwrap();
        let eval = ok(&run(&["eval", "--model", child_s, "--data", PENGUINS]));
        assert!(
            eval.contains("held-out test rows") && eval.contains(task),
            "{eval}"
        );
        let predicted = ok(&run(&["predict", "--model", child_s, "--data", PENGUINS]));
        assert!(
            predicted.starts_with(&format!("line,{task}")),
            "{predicted}"
        );
    }
}

#[test]
fn init_keeps_named_tasks_drops_the_others_and_adds_a_new_one() {
    gpu_or_skip!();
    let dir = scratch("init");
    let model = parent(&dir, &[]);
    let out = dir.join("warm");
    let args = [
        "train",
        "--data",
        PENGUINS,
        "--init",
        model.to_str().unwrap(),
        "--task",
        "species",
        "--task",
        "year:reg",
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    ok(&run(&args));
    let child = checkpoint::load(&out.join("model.safetensors")).unwrap();
    let p = checkpoint::load(&model).unwrap();
    let tasks: Vec<&str> = child.meta.schema.tasks.iter().map(|t| t.name()).collect();
    assert_eq!(tasks, ["species", "year"]);
    assert!(child
        .tensors
        .iter()
        .all(|t| !t.0.contains("body_mass_g") && !t.0.contains("sex")));
    // The kept task's encoding is the parent's (its classes in its order).
    assert_eq!(child.meta.schema.tasks[0], p.meta.schema.tasks[0]);
    assert_eq!(child.meta.schema.inputs, p.meta.schema.inputs);
    assert_eq!(child.meta.epochs_trained, 2);
    assert_eq!(child.meta.config["init"], "model.safetensors");
}

#[test]
fn warm_starts_are_refused_with_the_reason() {
    gpu_or_skip!();
    let dir = scratch("refused");
    let model = parent(&dir, &[]);
    let m = model.to_str().unwrap();
    let out = dir.join("x");
    let o = out.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train", "--data", PENGUINS, "--init", m, "--epochs", "1", "--out", o,
        ];
        args.extend(extra);
        run(&args)
    };
    fails(
        &train(&["--task", "island_size"]),
        &[
            "no task of that name",
            "species, sex, body_mass_g",
            "island_size:KIND",
        ],
    );
    fails(
        &train(&["--task", "sex:reg"]),
        &["\"sex\" is a binary task"],
    );
    fails(
        &train(&["--hidden", "8"]),
        &["--init continues the model's architecture", "--hidden 8"],
    );
    fails(
        &train(&["--freeze", "trunk.9"]),
        &["trunk.9", "trunk.0", "head.species.out"],
    );
    fails(&train(&["--resume", m]), &["--resume"]);
    // Another file without one of the model's inputs: the column is named.
    let csv = dir.join("no_island.csv");
    let text = std::fs::read_to_string(PENGUINS).unwrap();
    let cut: Vec<String> = text
        .lines()
        .map(|l| {
            let mut c: Vec<&str> = l.split(',').collect();
            c.remove(1);
            c.join(",")
        })
        .collect();
    std::fs::write(&csv, cut.join("\n")).unwrap();
    let o2 = run(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--init",
        m,
        "--out",
        o,
    ]);
    fails(&o2, &["needs input column \"island\""]);
    // A finetune of a task the model lacks, before any training.
    let o3 = run(&[
        "finetune", "--model", m, "--data", PENGUINS, "--task", "flipper", "--out", o,
    ]);
    fails(&o3, &["no task of that name"]);
    assert!(!out.join("model.safetensors").exists());
}

#[test]
fn a_mixture_with_a_gate_per_task_keeps_its_tasks_in_a_warm_start() {
    gpu_or_skip!();
    let dir = scratch("mmoe");
    let model = parent(
        &dir,
        &["--arch", "mmoe", "--experts", "2", "--expert-hidden", "8"],
    );
    let m = model.to_str().unwrap();
    let out = dir.join("x");
    let o = out.to_str().unwrap();
    let subset = [
        "train", "--data", PENGUINS, "--init", m, "--task", "sex", "--epochs", "1", "--out", o,
    ];
    fails(
        &run(&subset),
        &["a gate per task", "species, sex, body_mass_g"],
    );
    // All its tasks, in order: allowed; the experts frozen, each task's gate trained.
    let all = [
        "train", "--data", PENGUINS, "--init", m, "--freeze", "trunk", "--epochs", "1", "--out", o,
    ];
    ok(&run(&all));
    let p = checkpoint::load(&model).unwrap();
    let child = checkpoint::load(&out.join("model.safetensors")).unwrap();
    let experts: Vec<_> = p
        .tensors
        .iter()
        .filter(|t| t.0.starts_with("moe.0.shared."))
        .collect();
    assert!(!experts.is_empty());
    for (name, _, v) in experts {
        assert_eq!(bits(tensor(&child, name)), bits(v), "{name}");
    }
    let gate = "moe.0.gate0.weight";
    assert_ne!(bits(tensor(&child, gate)), bits(tensor(&p, gate)), "{gate}");
}

#[test]
fn compare_finetune_adds_a_fine_tuned_row_after_each_method() {
    gpu_or_skip!();
    let dir = scratch("compare");
    let compare = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "compare",
            "--data",
            PENGUINS,
            "--inputs",
            INPUTS,
            "--task",
            "species:class",
            "--task",
            "body_mass_g:reg",
            "--methods",
            "equal,mgda",
            "--seeds",
            "2",
            "--epochs",
            "6",
            "--out",
            out,
        ];
        args.extend(extra);
        run(&args)
    };
    let with = dir.join("with");
    let stdout = ok(&compare(
        with.to_str().unwrap(),
        &["--finetune", "3", "--freeze", "trunk"],
    ));
    let rows: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| ["equal", "equal+ft", "mgda", "mgda+ft", "single-task"].contains(w))
        .collect();
    assert_eq!(
        rows,
        ["equal", "equal+ft", "mgda", "mgda+ft", "single-task"],
        "{stdout}"
    );
    let csv = std::fs::read_to_string(with.join("results.csv")).unwrap();
    assert_eq!(
        (csv.lines())
            .filter(|l| l.starts_with("mgda+ft,0,") || l.starts_with("mgda+ft,1,"))
            .count(),
        2,
        "{csv}"
    );
    // The multi-task rows are those of a comparison without fine-tuning.
    let without = dir.join("without");
    ok(&compare(without.to_str().unwrap(), &[]));
    let plain = std::fs::read_to_string(without.join("results.csv")).unwrap();
    for seed_row in plain
        .lines()
        .filter(|l| l.starts_with("equal,") || l.starts_with("mgda,"))
    {
        assert!(
            csv.lines().any(|l| l == seed_row),
            "{seed_row} not in\n{csv}"
        );
    }
    // --freeze belongs to the fine-tuning.
    let o = compare(dir.join("x").to_str().unwrap(), &["--freeze", "trunk"]);
    fails(&o, &["--freeze applies to the fine-tuning"]);
}
