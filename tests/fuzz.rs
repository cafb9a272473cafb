//! Seeded mutation fuzzing of the two kinds of file taskgrad reads, CSV data
//! and checkpoints: random byte flips, interesting bytes (quotes, commas,
//! line breaks, NUL, 0xFF, exponents) inserted or overwritten, ranges
//! deleted, lines duplicated or swapped, files truncated. Each mutated file
//! must give a result or an error — never a panic, never a hang — and a run
//! of the real binary must leave no temporary, partial or lock file behind.
//!
//! Seeds are fixed, so a failure reproduces; `TASKGRAD_FUZZ_CASES` raises the
//! library-level case counts (CI runs the defaults, a few seconds).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use taskgrad::cli::run::{prepare_run, RunSettings};
use taskgrad::data::Table;
use taskgrad::model::checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_taskgrad");
const PENGUINS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/penguins.csv");

fn cases(default: usize) -> usize {
    std::env::var("TASKGRAD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskgrad-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const INTERESTING: &[u8] = b",\"\n\r\0\xff-e.+ ;\t9NaN?";

/// One to four random mutations of `bytes`.
fn mutate(bytes: &[u8], rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if b.is_empty() {
            b.push(INTERESTING[rng.random_range(0..INTERESTING.len())]);
            continue;
        }
        let at = rng.random_range(0..b.len());
        match rng.random_range(0..7) {
            0 => b[at] ^= 1 << rng.random_range(0..8),
            1 => b[at] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            2 => b.insert(at, INTERESTING[rng.random_range(0..INTERESTING.len())]),
            3 => {
                let end = (at + rng.random_range(1..64)).min(b.len());
                b.drain(at..end);
            }
            4 => b.truncate(at),
            5 => {
                // Duplicate the line holding `at`.
                let start = b[..at]
                    .iter()
                    .rposition(|&c| c == b'\n')
                    .map_or(0, |i| i + 1);
                let end = b[at..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |i| at + i + 1);
                let line = b[start..end].to_vec();
                b.splice(end..end, line);
            }
            _ => {
                // Swap the first line (the header) with another.
                let text = String::from_utf8_lossy(&b).into_owned();
                let mut lines: Vec<&str> = text.split('\n').collect();
                if lines.len() > 2 {
                    let j = rng.random_range(1..lines.len());
                    lines.swap(0, j);
                }
                b = lines.join("\n").into_bytes();
            }
        }
    }
    b
}

/// Run `f` on another thread; fail if it panics or takes longer than `limit`.
fn no_panic_no_hang<T: Send + 'static>(
    what: String,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => panic!("{what}: panicked"),
        Err(_) => panic!("{what}: no answer in {limit:?}"),
    }
}

fn settings(data: &Path, out: &Path) -> RunSettings {
    RunSettings {
        data: Some(data.to_path_buf()),
        inputs: [
            "bill_length_mm",
            "bill_depth_mm",
            "flipper_length_mm",
            "island",
        ]
        .map(String::from)
        .to_vec(),
        tasks: ["species:class", "sex:class", "body_mass_g:reg"]
            .map(String::from)
            .to_vec(),
        epochs: 1,
        out: out.to_path_buf(),
        ..Default::default()
    }
}

/// Nothing temporary is left in `dir` (or below it).
fn assert_clean(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".tmp") && !name.contains("partial") && name != ".taskgrad.lock",
            "{} left in {}",
            name,
            dir.display()
        );
        if e.path().is_dir() {
            assert_clean(&e.path());
        }
    }
}

#[test]
fn mutated_csv_files_give_a_result_or_an_error() {
    // Reading, checking and encoding (everything before the GPU) on 300
    // mutations of penguins.csv.
    let dir = scratch("csv");
    let original = std::fs::read(PENGUINS).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut ok, mut refused) = (0, 0);
    for case in 0..cases(300) {
        let path = dir.join(format!("m{case}.csv"));
        std::fs::write(&path, mutate(&original, &mut rng)).unwrap();
        let out = dir.join(format!("out{case}"));
        let s = settings(&path, &out);
        let result = no_panic_no_hang(format!("case {case}"), Duration::from_secs(20), move || {
            let table = Table::from_csv(s.data.clone().unwrap());
            (
                table.is_ok(),
                prepare_run(&s).map(|_| ()).map_err(|e| e.to_string()),
            )
        });
        match result {
            (_, Ok(())) => ok += 1,
            (_, Err(msg)) => {
                assert!(!msg.is_empty(), "case {case}: an empty message");
                refused += 1;
            }
        }
        // The prepared run was dropped: its lock and empty folder are gone.
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    }
    println!("{ok} mutated files accepted, {refused} refused with a message");
    assert!(
        ok > 0 && refused > 0,
        "the mutations should both pass and fail"
    );
    assert_clean(&dir);
}

#[test]
fn mutated_checkpoints_are_refused_or_load_whole() {
    let gpu = gpu_or_skip!();
    let dir = scratch("ckpt");
    let out = dir.join("run");
    let o = Command::new(BIN)
        .args(["train", "--data", PENGUINS, "--out", out.to_str().unwrap()])
        .args([
            "--inputs",
            "bill_length_mm,bill_depth_mm,flipper_length_mm,island",
        ])
        .args([
            "--task",
            "species:class",
            "--task",
            "body_mass_g:reg",
            "--epochs",
            "2",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let original = std::fs::read(out.join("model.safetensors")).unwrap();
    let table = Table::from_csv(PENGUINS).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let (mut loaded, mut refused) = (0, 0);
    for case in 0..cases(200) {
        let path = dir.join(format!("m{case}.safetensors"));
        std::fs::write(&path, mutate(&original, &mut rng)).unwrap();
        let p = path.clone();
        let ck = no_panic_no_hang(format!("case {case}"), Duration::from_secs(20), move || {
            checkpoint::load(&p).map_err(|e| e.to_string())
        });
        match ck {
            Err(msg) => {
                assert!(msg.contains(path.to_str().unwrap()), "case {case}: {msg}");
                refused += 1;
            }
            Ok(ck) => {
                // A mutation the checksums do not cover (the header's
                // spacing, say) must still give a working model.
                loaded += 1;
                let m = taskgrad::model::Model::from_checkpoint(gpu, &ck, &path).unwrap();
                let preds = m.predict(gpu, &table).unwrap();
                assert_eq!(preds.rows.len(), table.n_rows());
            }
        }
    }
    println!("{loaded} mutated checkpoints loaded whole, {refused} refused");
    assert!(refused > 0);
}

#[test]
fn the_binary_survives_mutated_files_and_leaves_nothing_behind() {
    // The real binary end to end on a few mutations: exit 0 with a whole
    // run folder, or exit 1 with one `error:` line; never a panic (101), a
    // signal or a hang; never a temporary, partial or lock file.
    gpu_or_skip!();
    let dir = scratch("bin");
    let original = std::fs::read(PENGUINS).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut trained = 0;
    for case in 0..8 {
        let path = dir.join(format!("m{case}.csv"));
        std::fs::write(&path, mutate(&original, &mut rng)).unwrap();
        let out = dir.join(format!("out{case}"));
        let mut child = Command::new(BIN)
            .args([
                "train",
                "--data",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .args([
                "--inputs",
                "bill_length_mm,bill_depth_mm,flipper_length_mm,island",
            ])
            .args([
                "--task",
                "species:class",
                "--task",
                "body_mass_g:reg",
                "--epochs",
                "2",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("case {case}: no exit in 120 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        match status.code() {
            Some(0) => {
                assert!(out.join("model.safetensors").exists(), "case {case}");
                trained += 1;
            }
            Some(1) => {
                assert!(err.contains("error: "), "case {case}: {err}");
                assert!(!out.join("model.safetensors").exists(), "case {case}");
            }
            other => panic!("case {case}: exit {other:?}: {err}"),
        }
        assert!(!err.contains("panicked"), "case {case}: {err}");
    }
    println!("{trained} of 8 mutated files trained, the others refused");
    assert_clean(&dir);
}

/// FNV-1a 64 in hex: the checksum taskgrad keeps, recomputed after an edit.
fn fnv(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Rewrite `original` with its `model` metadata edited by `edit` (or, when
/// `drop` names one, without that metadata key) and its checksum recomputed.
fn edited(
    original: &[u8],
    edit: impl FnOnce(&mut serde_json::Value),
    drop: Option<&str>,
) -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(original).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(original).unwrap();
    let mut info = header.metadata().clone().unwrap();
    let mut model: serde_json::Value = serde_json::from_str(&info["model"]).unwrap();
    edit(&mut model);
    let text = model.to_string();
    info.insert("model_checksum".into(), fnv(text.as_bytes()));
    info.insert("model".into(), text);
    if let Some(key) = drop {
        info.remove(key);
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .names()
        .into_iter()
        .map(|n| (n.to_string(), st.tensor(n).unwrap()))
        .collect();
    safetensors::serialize(views, Some(info)).unwrap()
}

/// Every numeric leaf of `v`, as a JSON pointer.
fn numbers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Number(_) => out.push(at),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                numbers(x, format!("{at}/{i}"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                numbers(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn edited_metadata_with_recomputed_checksums_is_refused_or_works() {
    // Issue 24, item 3: with the checksum recomputed, a trunk width of 2e9
    // aborted on a 96 GB allocation, 1e18 panicked, a spread of 0 or −1 and
    // duplicate class names gave exit 0 with one class for every row. Now
    // the metadata is checked as untrusted input: each edit is refused
    // quickly with a message naming the file, or gives a working model.
    let gpu = gpu_or_skip!();
    let dir = scratch("meta");
    let out = dir.join("run");
    let o = Command::new(BIN)
        .args(["train", "--data", PENGUINS, "--out", out.to_str().unwrap()])
        .args([
            "--inputs",
            "bill_length_mm,bill_depth_mm,island",
            "--hidden",
            "16",
        ])
        .args([
            "--task",
            "species:class",
            "--task",
            "body_mass_g:reg",
            "--epochs",
            "2",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let original = std::fs::read(out.join("model.safetensors")).unwrap();
    let table = Table::from_csv(PENGUINS).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let set = |at: &'static str, v: serde_json::Value| -> Edit {
        Box::new(move |m| *m.pointer_mut(at).unwrap() = v.clone())
    };
    use serde_json::json;
    // The attack's edits, each of which must be refused.
    let named: Vec<(&str, Edit)> = vec![
        ("width 2e9", set("/net/trunk/0", json!(2_000_000_000u64))),
        (
            "width 1e18",
            set("/net/trunk/0", json!(1_000_000_000_000_000_000u64)),
        ),
        ("width 3e7", set("/net/trunk/0", json!(30_000_000u64))),
        ("spread 0", set("/schema/inputs/0/std", json!(0.0))),
        ("spread -1", set("/schema/inputs/0/std", json!(-1.0))),
        ("mean 1e300", set("/schema/inputs/0/mean", json!(1e300))),
        (
            "classes twice",
            set("/schema/tasks/0/classes/1", json!("Adelie")),
        ),
        (
            "task renamed in the schema",
            set("/schema/tasks/0/name", json!("kind")),
        ),
        ("test fraction 1", set("/split/test_fraction", json!(1.0))),
        (
            "regression spread 0",
            set("/schema/tasks/1/std", json!(0.0)),
        ),
        ("more heads", set("/net/outputs/0", json!(4))),
    ];
    for (what, edit) in &named {
        let path = dir.join("named.safetensors");
        std::fs::write(&path, edited(&original, edit, None)).unwrap();
        let p = path.clone();
        let got = no_panic_no_hang(what.to_string(), Duration::from_secs(10), move || {
            checkpoint::load(&p).map(|_| ()).map_err(|e| e.to_string())
        });
        let msg = got.expect_err(what);
        assert!(msg.contains(path.to_str().unwrap()), "{what}: {msg}");
    }
    // Checksums removed from a file of this format turn no checking off.
    for key in ["model_checksum", "checksums"] {
        let path = dir.join("unsummed.safetensors");
        std::fs::write(&path, edited(&original, |_| {}, Some(key))).unwrap();
        let msg = checkpoint::load(&path).map(|_| ()).unwrap_err().to_string();
        assert!(msg.contains(&format!("without its {key} entry")), "{msg}");
    }
    // Random numeric leaves set to awkward values.
    let model: serde_json::Value = {
        let (_, h) = safetensors::SafeTensors::read_metadata(&original).unwrap();
        serde_json::from_str(&h.metadata().as_ref().unwrap()["model"]).unwrap()
    };
    let mut leaves = Vec::new();
    numbers(&model, String::new(), &mut leaves);
    let awkward = [
        json!(0),
        json!(-1),
        json!(2_000_000_000u64),
        json!(1e300),
        json!(0.5),
        json!(7),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(24);
    let (mut loaded, mut refused) = (0, 0);
    for case in 0..cases(120) {
        let at = leaves[rng.random_range(0..leaves.len())].clone();
        let value = awkward[rng.random_range(0..awkward.len())].clone();
        let what = format!("case {case}: {at} = {value}");
        let path = dir.join(format!("e{case}.safetensors"));
        let bytes = edited(&original, |m| *m.pointer_mut(&at).unwrap() = value, None);
        std::fs::write(&path, bytes).unwrap();
        let p = path.clone();
        let ck = no_panic_no_hang(what.clone(), Duration::from_secs(10), move || {
            checkpoint::load(&p).map_err(|e| e.to_string())
        });
        match ck {
            Err(msg) => {
                assert!(msg.contains(path.to_str().unwrap()), "{what}: {msg}");
                refused += 1;
            }
            Ok(ck) => {
                loaded += 1;
                let m = taskgrad::model::Model::from_checkpoint(gpu, &ck, &path)
                    .unwrap_or_else(|e| panic!("{what}: loaded, then {e}"));
                let preds = m
                    .predict(gpu, &table)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(preds.rows.len(), table.n_rows(), "{what}");
            }
        }
    }
    println!("{loaded} edited models loaded and predicted, {refused} refused");
    assert!(refused > 0 && loaded > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn runs_killed_at_random_times_leave_the_old_folder_or_a_whole_new_one() {
    // Issue 24, items 1 and 2, as an attack: --force runs into a folder that
    // holds a model, killed (SIGKILL) at seeded random moments — reading,
    // training, writing. After each, the folder is the previous one byte for
    // byte, or (the run had finished) a whole new one; and the next run into
    // it is never refused for a stale lock and cleans what a kill left.
    gpu_or_skip!();
    let dir = scratch("killed");
    let out = dir.join("run");
    let args = |epochs: &str, seed: &str| -> Vec<String> {
        let mut a: Vec<String> = ["train", "--data", PENGUINS, "--out", out.to_str().unwrap()]
            .map(String::from)
            .to_vec();
        for x in [
            "--inputs",
            "bill_length_mm,bill_depth_mm,island",
            "--task",
            "species:class",
            "--task",
            "body_mass_g:reg",
            "--epochs",
            epochs,
            "--patience",
            "1000",
            "--seed",
            seed,
            "--force",
        ] {
            a.push(x.to_string());
        }
        a
    };
    let o = Command::new(BIN).args(args("2", "0")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut before = common::snapshot(&out);
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let (mut killed, mut finished) = (0, 0);
    for case in 0..cases(8) {
        let mut child = Command::new(BIN)
            .args(args("30", &(case + 1).to_string()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let now = common::snapshot(&out);
        if status.success() {
            finished += 1;
            let ck = checkpoint::load(&out.join("model.safetensors")).unwrap();
            assert_eq!(ck.meta.split.unwrap().seed, case as u64 + 1, "case {case}");
            assert!(
                now.iter().any(|(n, _)| n == "plots/body_mass_g.png"),
                "case {case}"
            );
        } else {
            if now == before {
                killed += 1;
            } else {
                // Killed after its outputs were moved into place, before the
                // process exited: the run had finished its work, and the
                // folder must then be a whole new one. Its outputs move in
                // this order: plots, model, metrics; a kill between two
                // moves would leave an old model or old metrics here.
                let file = |set: &[(String, Vec<u8>)], name: &str| {
                    set.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone())
                };
                let changed: Vec<&str> = (now.iter())
                    .filter(|(n, b)| file(&before, n).as_ref() != Some(b))
                    .map(|(n, _)| n.as_str())
                    .collect();
                let ck = checkpoint::load(&out.join("model.safetensors")).unwrap();
                let whole = ck.meta.split.unwrap().seed == case as u64 + 1
                    && ["/metrics.csv", "plots/body_mass_g.png"]
                        .iter()
                        .all(|n| file(&now, n).is_some() && file(&now, n) != file(&before, n));
                assert!(
                    whole,
                    "case {case}: a killed run changed the folder in part: {changed:?}"
                );
                finished += 1;
            }
        }
        before = now;
    }
    println!("{killed} runs killed, {finished} finished before the kill");
    assert!(killed > 0);
    let o = Command::new(BIN).args(args("2", "99")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_clean(&out);
    assert!(!out.join(".staging").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
