//! Shared test helpers: one GPU per test binary, seeded inputs, and the
//! tolerance check `|got - want| <= atol + rtol·|want|` that prints the first mismatches.
#![allow(dead_code)]

pub mod fd;

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use taskgrad::Gpu;

static GPU: OnceLock<Option<Gpu>> = OnceLock::new();

/// The test GPU. Under `CI=true` a missing adapter fails the test loudly;
/// elsewhere the test is skipped with a message on stderr.
/// `TASKGRAD_EXPECT_ADAPTER=substring` makes any other adapter a failure.
pub fn gpu() -> Option<&'static Gpu> {
    GPU.get_or_init(|| {
        taskgrad::gpu::quiet_graphics_stack();
        keep_tuning_out_of_the_user_cache();
        open_gpu()
    })
    .as_ref()
}

/// Tests time kernels while other tests run, so the matmul choice they make
/// is noisy: keep it out of the user's cache (`TASKGRAD_CACHE_DIR`, read by
/// `kernels::matmul_choice`, and inherited by the binaries the tests run).
pub fn keep_tuning_out_of_the_user_cache() {
    let dir = std::env::temp_dir().join("taskgrad-test-cache");
    // SAFETY: set once, before this test binary starts any GPU work or thread
    // that reads the environment (the GPU is opened right after, under a OnceLock).
    unsafe { std::env::set_var("TASKGRAD_CACHE_DIR", dir) };
}

fn open_gpu() -> Option<Gpu> {
    open_gpu_with(taskgrad::gpu::CpuThreads::Driver)
}

/// Open a GPU with a CPU adapter's threads chosen, under the same rules as
/// [`gpu`] (a failure under `CI=true`, else a skip said on stderr; the
/// adapter `TASKGRAD_EXPECT_ADAPTER` names). Each call opens a new device.
pub fn open_gpu_with(threads: taskgrad::gpu::CpuThreads) -> Option<Gpu> {
    match Gpu::new_with(threads) {
        Ok(gpu) => {
            println!("taskgrad test adapter: {}", gpu.report);
            if let Ok(want) = std::env::var("TASKGRAD_EXPECT_ADAPTER") {
                let name = gpu.report.name.to_lowercase();
                assert!(
                    name.contains(&want.to_lowercase()),
                    "TASKGRAD_EXPECT_ADAPTER={want:?} but the adapter is {}",
                    gpu.report
                );
            }
            Some(gpu)
        }
        Err(e) => {
            if std::env::var("CI")
                .map(|v| v == "true" || v == "1")
                .unwrap_or(false)
            {
                panic!("CI=true and no GPU adapter: {e}");
            }
            eprintln!("SKIPPING GPU test: {e}");
            None
        }
    }
}

/// Get the GPU or return from the test (skips outside CI only; see [`gpu`]).
#[macro_export]
macro_rules! gpu_or_skip {
    () => {
        match common::gpu() {
            Some(g) => g,
            None => return,
        }
    };
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// n values uniform in [-1, 1), never all zeros.
pub fn random(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Assert `got ≈ want` elementwise; print up to 8 mismatches with their index.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut bad = Vec::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs();
        if !ok || g.is_nan() != w.is_nan() {
            bad.push((i, g, w));
        }
    }
    if !bad.is_empty() {
        let first: Vec<String> = bad
            .iter()
            .take(8)
            .map(|(i, g, w)| format!("[{i}] got {g} want {w}"))
            .collect();
        panic!(
            "{what}: {} of {} values differ beyond atol {atol} + rtol {rtol}·|ref|; first: {}",
            bad.len(),
            got.len(),
            first.join(", ")
        );
    }
}

/// Iris with the three tasks of iris_mtl, split 60/20/20 by `seed`.
pub fn iris(seed: u64) -> (taskgrad::data::Dataset, taskgrad::data::Split) {
    use taskgrad::data::{Dataset, Split, Table, TaskType};
    let table = Table::from_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv"))
        .expect("data/iris.csv");
    let split = Split::new(table.n_rows(), 0.2, 0.2, seed).expect("split");
    let tasks = [
        ("species", TaskType::CLASS),
        ("petal_length", TaskType::REG),
        ("petal_width", TaskType::REG),
    ];
    let data = Dataset::from_table(
        &table,
        &["sepal_length", "sepal_width"],
        &tasks,
        &split.train,
    )
    .expect("iris encodes");
    (data, split)
}

/// The regular files of a run folder and of its plots (hidden ones aside),
/// with their bytes, sorted: equal snapshots are byte-identical folders.
pub fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    for sub in ["", "plots"] {
        for e in std::fs::read_dir(dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_file() && !name.starts_with('.') {
                all.push((format!("{sub}/{name}"), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    all.sort();
    all
}
