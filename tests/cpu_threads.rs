//! A CPU adapter's threads (`CpuThreads`): a small network's step can run on
//! one thread, without llvmpipe's workers, which llvmpipe is told through
//! `LP_NUM_THREADS` while the device opens. A binary of its own, since
//! opening a device that way changes the process environment for a moment.

mod common;

use taskgrad::gpu::CpuThreads;
use taskgrad::nn::{MultiTaskNet, NetSpec};
use taskgrad::train::{fit, FitReport, TrainConfig};
use taskgrad::{mtl, Gpu};

/// Threads of this process (Linux: the entries of /proc/self/task).
fn threads() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

fn train(gpu: &Gpu) -> FitReport {
    let (data, split) = common::iris(3);
    let cfg = TrainConfig {
        epochs: 4,
        seed: 3,
        ..Default::default()
    };
    fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("mgda").unwrap(),
        &cfg,
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn a_small_step_runs_on_one_thread_with_the_same_numbers() {
    taskgrad::gpu::quiet_graphics_stack();
    common::keep_tuning_out_of_the_user_cache();
    let users = std::env::var_os("LP_NUM_THREADS");
    let t0 = threads();
    let Some(inline) = common::open_gpu_with(CpuThreads::Inline) else {
        return;
    };
    let t1 = threads();
    // Set for the opening only, and a value the user set is theirs.
    assert_eq!(std::env::var_os("LP_NUM_THREADS"), users);
    let sibling = inline.sibling().unwrap();
    let t2 = threads();
    let driver = common::open_gpu_with(CpuThreads::Driver).unwrap();
    let t3 = threads();
    assert_eq!(std::env::var_os("LP_NUM_THREADS"), users);
    println!(
        "adapter {}; threads {t0:?} → {t1:?} (inline) → {t2:?} (its sibling) → {t3:?} (driver's)",
        inline.report
    );

    let llvmpipe = inline.report.name.contains("llvmpipe");
    if llvmpipe && users.is_none() {
        assert_eq!(inline.cpu_threads, CpuThreads::Inline);
        assert_eq!(
            sibling.cpu_threads,
            CpuThreads::Inline,
            "a sibling runs as its parent"
        );
        assert_eq!(driver.cpu_threads, CpuThreads::Driver);
        assert!(!inline.threads_note().is_empty());
        assert!(driver.threads_note().is_empty());
        // llvmpipe starts its worker pools per device: none when inline.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let (Some(t1), Some(t2), Some(t3), true) = (t1, t2, t3, cores > 1) {
            assert!(
                t3.saturating_sub(t2) >= t2.saturating_sub(t1) + cores,
                "the driver's device should start at least one worker per core ({cores}) \
                 more than an inline one: {t1} → {t2} (inline sibling), {t2} → {t3} (driver's)"
            );
        }
    } else {
        println!("not llvmpipe with LP_NUM_THREADS unset: the thread counts are not checked");
    }

    // The same kernels in the same order: the same numbers, bit for bit.
    let (a, b, c) = (train(&inline), train(&sibling), train(&driver));
    let losses = |r: &FitReport| {
        r.history
            .iter()
            .map(|h| h.train_loss.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&a), losses(&c));
    assert_eq!(losses(&b), losses(&c));
    assert_eq!(a.test, c.test);
}

/// The choice by size: W-iris's network (2→64→64, heads 3+1+1, 120 rows) is
/// under the bound, the same data through 128-wide layers over it (the
/// measured crossover, BENCHMARKS.md), and a network over images is left to
/// the driver.
#[test]
fn the_thread_choice_follows_the_step_size() {
    let (data, _) = common::iris(0);
    let cfg = |trunk: Vec<usize>| TrainConfig {
        trunk,
        ..Default::default()
    };
    let spec: NetSpec = cfg(vec![64, 64]).net_spec(&data, &data.tasks);
    let work = MultiTaskNet::forward_multiply_adds(&spec, 120).unwrap();
    // Weights and biases: 2·64+64, 64·64+64, 64·3+3, 64+1, 64+1.
    assert_eq!(work, Some(120 * (192 + 4160 + 195 + 65 + 65)));
    assert_eq!(CpuThreads::for_step(work), CpuThreads::Inline);

    let wide = cfg(vec![128, 128]).net_spec(&data, &data.tasks);
    let work = MultiTaskNet::forward_multiply_adds(&wide, 120).unwrap();
    assert_eq!(CpuThreads::for_step(work), CpuThreads::Driver);

    let mut image = spec.clone();
    image.image = Some(taskgrad::nn::layer::Image::new(1, 2, 1).unwrap());
    assert_eq!(
        MultiTaskNet::forward_multiply_adds(&image, 120).unwrap(),
        None
    );
    assert_eq!(CpuThreads::for_step(None), CpuThreads::Driver);

    // Runs side by side that fill the cores take one thread each, whatever
    // their size; fewer runs than cores choose by size.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = cores.max(2);
    assert_eq!(CpuThreads::for_jobs(None, jobs), CpuThreads::Inline);
    assert_eq!(
        CpuThreads::for_jobs(Some(u64::MAX), jobs),
        CpuThreads::Inline
    );
    assert_eq!(CpuThreads::for_jobs(None, 1), CpuThreads::Driver);
    assert_eq!(CpuThreads::for_jobs(work, 1), CpuThreads::for_step(work));
}
