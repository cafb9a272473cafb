//! The methods that work on the task gradient rows themselves: those that
//! combine them coordinate by coordinate instead of by weights (GradDrop,
//! TrimmedMean) and those that keep a memory of them (DB-MTL, MoCo, ExcessMTL): by
//! hand on the CPU reference, the GPU kernels against it on awkward shapes
//! (strided rows, N not a multiple of the workgroup, K up to 16), GradDrop's
//! seeded draws step by step on CPU and GPU, and all in training. Their
//! torchjd and LibMTL fixtures are checked in tests/fidelity.rs.

mod common;

use common::{random, rng};
use taskgrad::kernels::gram::GradRows;
use taskgrad::mtl::{graddrop, trimmed_mean, GradDrop, TrimmedMean, Weighting, WeightingContext};
use taskgrad::nn::{Arch, ParamBuilder};
use taskgrad::train::{fit, TrainConfig};
use taskgrad::{Gpu, Tensor};

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (c, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what} [{c}]: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn trimmed_mean_by_hand() {
    // Columns (3, −1, 10), (0, 0, 0), (2, 2, −5): trim 1 leaves the medians 3, 0, 2.
    let rows = [3.0, 0.0, 2.0, -1.0, 0.0, 2.0, 10.0, 0.0, -5.0];
    close(
        "median",
        &trimmed_mean::reference(&rows, 3, 1),
        &[3.0, 0.0, 2.0],
        0.0,
    );
    // Trim 0 is the mean of the rows.
    close(
        "mean",
        &trimmed_mean::reference(&rows, 3, 0),
        &[4.0, 0.0, -1.0 / 3.0],
        1e-15,
    );
    // Five rows, trim 2: the median; one row ×1000 moves nothing.
    let rows = [1.0, 2.0, 3.0, 4.0, 5000.0];
    close("robust", &trimmed_mean::reference(&rows, 5, 2), &[3.0], 0.0);
}

#[test]
fn graddrop_by_hand() {
    // Column 0: (1, 3): both positive, purity 1, kept whole whatever the draw.
    // Column 1: (−2, −2): purity 0, kept whole.
    // Column 2: (3, −1): purity ½(1 + 2/4) = 0.75; U = 0.5 keeps the positive 3,
    //   U = 0.9 keeps the negative −1; with leak ¼ the dropped part leaks ¼ of itself.
    // Column 3: zero, 0.
    let rows = [1.0, -2.0, 3.0, 0.0, 3.0, -2.0, -1.0, 0.0];
    let low = [0.5, 0.5, 0.5, 0.5];
    let high = [0.9, 0.9, 0.9, 0.9];
    close(
        "low draw",
        &graddrop::reference(&rows, 2, &low, 0.0),
        &[4.0, -4.0, 3.0, 0.0],
        0.0,
    );
    close(
        "high draw",
        &graddrop::reference(&rows, 2, &high, 0.0),
        &[4.0, -4.0, -1.0, 0.0],
        0.0,
    );
    close(
        "leak",
        &graddrop::reference(&rows, 2, &low, 0.25),
        &[4.0, -4.0, 3.0 - 0.25, 0.0],
        1e-15,
    );
    // The draw at the purity itself keeps neither sign (torchjd's strict comparisons).
    close(
        "tie",
        &graddrop::reference(&rows, 2, &[0.5, 0.5, 0.75, 0.5], 0.0)[2..3],
        &[0.0],
        0.0,
    );
}

/// K rows of length n, `stride` apart (the padding filled with NaN, which
/// no kernel may read), and the rows compacted for the references.
fn strided(k: usize, n: usize, stride: usize, seed: u64) -> (Vec<f32>, Vec<f64>) {
    let mut r = rng(seed);
    let compact = random(&mut r, k * n);
    let mut padded = vec![f32::NAN; (k - 1) * stride + n];
    for j in 0..k {
        padded[j * stride..j * stride + n].copy_from_slice(&compact[j * n..(j + 1) * n]);
    }
    (padded, compact.iter().map(|&v| v as f64).collect())
}

/// What `method` writes from the rows: built, then its combination recorded.
struct Bound {
    rows: GradRows,
    out: Tensor,
    _seeds: [Tensor; 4],
}

fn bind(
    gpu: &Gpu,
    method: &mut dyn Weighting,
    padded: &[f32],
    k: usize,
    n: usize,
    stride: usize,
) -> (Bound, Vec<taskgrad::gpu::Dispatch>) {
    let rows = GradRows::new(
        Tensor::from_slice(gpu, &[padded.len()], padded, "rows").unwrap(),
        k,
        n,
        stride,
    )
    .unwrap();
    let ones = vec![1.0; k];
    let t = |name| Tensor::from_slice(gpu, &[k], &ones, name).unwrap();
    let seeds = [
        t("seeds"),
        t("losses"),
        Tensor::zeros(gpu, &[k, k], "gram").unwrap(),
        t("weights"),
    ];
    let params = ParamBuilder::new(gpu).build_frozen(gpu).unwrap();
    let ctx = WeightingContext {
        params: &params,
        seeds: &seeds[0],
        losses: &seeds[1],
        gram: &seeds[2],
        combine: &seeds[3],
    };
    let plan = method.build(gpu, &ctx).unwrap();
    let out = Tensor::zeros(gpu, &[n], "out").unwrap();
    let mut dispatches = vec![method.record_combine(gpu, &rows, &out).unwrap()];
    dispatches.extend(plan.after_backward);
    (
        Bound {
            rows,
            out,
            _seeds: seeds,
        },
        dispatches,
    )
}

#[test]
fn trimmed_mean_kernel_matches_the_reference_on_awkward_shapes() {
    let gpu = gpu_or_skip!();
    for (k, n, stride, trim) in [
        (3, 1, 1, 1),
        (3, 257, 260, 1),
        (4, 300, 300, 0),
        (7, 513, 515, 3),
        (16, 1000, 1003, 7),
        (16, 70, 70, 2),
    ] {
        let (padded, compact) = strided(k, n, stride, (k * n) as u64);
        let mut tm = TrimmedMean { trim };
        let (b, ds) = bind(gpu, &mut tm, &padded, k, n, stride);
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        let got: Vec<f64> = gpu
            .read_one(&b.out)
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        close(
            &format!("K {k}, N {n}, stride {stride}, trim {trim}"),
            &got,
            &trimmed_mean::reference(&compact, k, trim as usize),
            1e-6,
        );
        let _ = &b.rows;
    }
    // Too few tasks for the trim is refused, not averaged over nothing.
    let (padded, _) = strided(4, 8, 8, 1);
    let rows = GradRows::new(
        Tensor::from_slice(gpu, &[32], &padded, "rows").unwrap(),
        4,
        8,
        8,
    )
    .unwrap();
    let out = Tensor::zeros(gpu, &[8], "out").unwrap();
    let err = TrimmedMean { trim: 2 }
        .record_combine(gpu, &rows, &out)
        .unwrap_err();
    assert!(err.to_string().contains("at least 5 tasks"), "{err}");
}

#[test]
fn graddrop_draws_the_same_masks_on_cpu_and_gpu_step_by_step() {
    let gpu = gpu_or_skip!();
    let (k, n, stride) = (5, 300, 301);
    let (padded, compact) = strided(k, n, stride, 5);
    let mut gd = GradDrop::new(0.2, 99);
    let (b, ds) = bind(gpu, &mut gd, &padded, k, n, stride);
    assert_eq!(ds.len(), 2, "the combine, then the step's advance");
    let mut previous: Option<Vec<f64>> = None;
    for step in 0..4u32 {
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        let got: Vec<f64> = gpu
            .read_one(&b.out)
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let u: Vec<f64> = (0..n).map(|c| graddrop::draw(99, step, c)).collect();
        close(
            &format!("step {step}"),
            &got,
            &graddrop::reference(&compact, k, &u, 0.2),
            1e-5,
        );
        // A fresh draw each step: the masks change.
        if let Some(p) = previous.replace(got.clone()) {
            assert!(
                p != got,
                "step {step} drew the same masks as the step before"
            );
        }
    }
}

#[test]
fn graddrop_keeps_each_sign_as_often_as_its_purity() {
    // Leak 0: coordinate c is Σ of its positive parts with probability P_c,
    // else Σ of its negative parts. Over 400 steps each coordinate's
    // frequency of the positive side is within 0.1 of P_c (4σ at P = ½).
    let gpu = gpu_or_skip!();
    let (k, n) = (3, 64);
    let (padded, compact) = strided(k, n, n, 11);
    let mut gd = GradDrop::new(0.0, 3);
    let (b, ds) = bind(gpu, &mut gd, &padded, k, n, n);
    let list: Vec<_> = ds.iter().collect();
    let steps = 400;
    let mut positive = vec![0usize; n];
    for _ in 0..steps {
        gpu.run(&list).unwrap();
        let got = gpu.read_one(&b.out).unwrap();
        for c in 0..n {
            let pos: f64 = (0..k).map(|j| compact[j * n + c].max(0.0)).sum();
            let neg: f64 = (0..k).map(|j| compact[j * n + c].min(0.0)).sum();
            let v = got[c] as f64;
            assert!(
                (v - pos).abs() < 1e-5 || (v - neg).abs() < 1e-5,
                "coordinate {c}: {v} is neither side"
            );
            if (v - pos).abs() < 1e-5 && pos != 0.0 {
                positive[c] += 1;
            }
        }
    }
    for c in 0..n {
        let sum: f64 = (0..k).map(|j| compact[j * n + c]).sum();
        let mag: f64 = (0..k).map(|j| compact[j * n + c].abs()).sum();
        let purity = 0.5 * (1.0 + sum / mag);
        let freq = positive[c] as f64 / steps as f64;
        assert!(
            (freq - purity).abs() < 0.1,
            "coordinate {c}: positive {freq}, purity {purity}"
        );
    }
}

#[test]
fn coordinate_wise_methods_train_and_refuse_per_task_representations() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(4);
    let base = TrainConfig {
        epochs: 15,
        patience: None,
        trunk: vec![16],
        ..Default::default()
    };
    let rep = TrainConfig {
        grad_space: Some(taskgrad::mtl::GradSpace::Representation),
        ..base.clone()
    };
    for (name, cfg) in [
        ("graddrop", &base),
        ("trimmed_mean+uncertainty", &base),
        ("graddrop", &rep),
        ("trimmed_mean", &rep),
    ] {
        let method = taskgrad::mtl::by_name(name).unwrap();
        let run = fit(gpu, &data, &split, &[0, 1, 2], method, cfg, &mut |_| {})
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (first, last) = (
            &run.history[0].train_loss,
            &run.history.last().unwrap().train_loss,
        );
        assert!(
            last.iter().zip(first).all(|(l, f)| l.is_finite() && l < f),
            "{name} ({:?}): {first:?} -> {last:?}",
            cfg.grad_space
        );
    }
    // MMoE in representation space weights each task's row on its own: no
    // coordinate-wise combination there, and the error says what to do.
    let mmoe = TrainConfig {
        arch: Arch::Mmoe {
            experts: 2,
            expert_hidden: 8,
        },
        trunk: Vec::new(),
        ..rep
    };
    let err = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        taskgrad::mtl::by_name("graddrop").unwrap(),
        &mmoe,
        &mut |_| {},
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("--space params"), "{err}");
}

#[test]
fn db_mtl_seeds_follow_the_log_losses_and_averages_refuse_representations() {
    let gpu = gpu_or_skip!();
    // Seeds 1/(L_k + 1e-8), from this step's losses, on the GPU.
    let losses = [0.5f32, 2.0, 1e-3];
    let t = |v: &[f32], name| Tensor::from_slice(gpu, &[v.len()], v, name).unwrap();
    let (seeds, loss_t, gram, combine) = (
        t(&[1.0; 3], "seeds"),
        t(&losses, "losses"),
        t(&[0.0; 9], "gram"),
        t(&[1.0; 3], "combine"),
    );
    let params = ParamBuilder::new(gpu).build_frozen(gpu).unwrap();
    let ctx = WeightingContext {
        params: &params,
        seeds: &seeds,
        losses: &loss_t,
        gram: &gram,
        combine: &combine,
    };
    let mut db = taskgrad::mtl::DbMtl::default();
    let plan = db.build(gpu, &ctx).unwrap();
    assert_eq!(
        plan.after_forward.len(),
        1,
        "the seeds follow this step's losses"
    );
    gpu.run(&plan.after_forward.iter().collect::<Vec<_>>())
        .unwrap();
    let got: Vec<f64> = gpu
        .read_one(&seeds)
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let want = taskgrad::mtl::db_mtl::seeds(&losses.map(|l| l as f64));
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6 * w, "seeds {got:?}, want {want:?}");
    }
    // By hand, the average with β 0.5, σ 1 (η_t = 0.5 / t): rows 2, 4, 6 in
    // turn: m = 0.5·0 + 0.5·2 = 1; η_2 = ¼: m = ¼·1 + ¾·4 = 3.25;
    // η_3 = ⅙: m = 3.25/6 + 5 = 5.541666….
    let mut m = [0.0];
    for (t, v) in [2.0, 4.0, 6.0].into_iter().enumerate() {
        taskgrad::mtl::memory::reference(
            taskgrad::mtl::memory::Update::Keep,
            0.5,
            1.0,
            t as u32 + 1,
            &mut m,
            &[v],
            &[1.0],
        );
    }
    assert!((m[0] - (3.25 / 6.0 + 5.0)).abs() < 1e-12, "{m:?}");
    // Representation gradients are refused, as LibMTL does.
    let (data, split) = common::iris(4);
    let cfg = TrainConfig {
        epochs: 1,
        trunk: vec![8],
        grad_space: Some(taskgrad::mtl::GradSpace::Representation),
        ..Default::default()
    };
    for name in ["db_mtl", "moco", "excess_mtl"] {
        let method = taskgrad::mtl::by_name(name).unwrap();
        let err = fit(gpu, &data, &split, &[0, 1, 2], method, &cfg, &mut |_| {})
            .err()
            .expect("refused");
        assert!(err.to_string().contains("--space params"), "{name}: {err}");
    }
}

#[test]
fn excess_mtl_by_hand_with_a_task_silent_on_the_first_step() {
    // K = 2, N = 1, η = 0.5. Step 1: g = (0, 2): s = (0, 4), w⁰ = (0, 4/√4) = (0, 2),
    // λ = (1, 1). Step 2: g = (1, 2): s = (1, 8), w = (1/1, 4/√8) = (1, √2);
    // task 0's first estimate is 0, so its ratio is taken as 0 (LibMTL: 1/0):
    // λ ∝ (1, e^{0.5·√2/2}), summing to 2.
    let steps = vec![vec![0.0, 2.0], vec![1.0, 2.0]];
    let e = (0.5 * 2f64.sqrt() / 2.0).exp();
    let want = [2.0 / (1.0 + e), 2.0 * e / (1.0 + e)];
    let cpu = taskgrad::mtl::excess_mtl::reference(&steps, 2, 0.5);
    close("first step", &cpu[0], &[1.0, 1.0], 0.0);
    close("second step", &cpu[1], &want, 1e-6);
    let gpu = gpu_or_skip!();
    let mut method = taskgrad::mtl::ExcessMtl::new(0.5);
    let mut agg = taskgrad::mtl::Aggregator::new(gpu, &mut method, 2, 1).unwrap();
    for (t, rows) in steps.iter().enumerate() {
        let rows: Vec<f32> = rows.iter().map(|&v| v as f32).collect();
        let got = agg.step(gpu, &rows, None).unwrap();
        let w: Vec<f64> = got.weights.iter().map(|&v| v as f64).collect();
        close(&format!("GPU step {t}"), &w, &cpu[t], 1e-5);
        let d = got.direction[0] as f64;
        let want_d = cpu[t][0] * rows[0] as f64 + cpu[t][1] * rows[1] as f64;
        assert!((d - want_d).abs() <= 1e-5, "step {t}: d {d}, want {want_d}");
    }
}
