//! The trainer end to end on Iris, determinism, early stopping, schedules,
//! non-finite losses, and each loss weighting on a case checkable by hand.

mod common;

use taskgrad::kernels::{loss_tracking, loss_weighting};
use taskgrad::mtl::{self, Weighting, WeightingContext};
use taskgrad::nn::ParamBuilder;
use taskgrad::train::metrics::TaskMetrics;
use taskgrad::train::{fit, Schedule, TrainConfig};
use taskgrad::{Error, Gpu, Tensor};

fn small_cfg(seed: u64) -> TrainConfig {
    TrainConfig {
        epochs: 60,
        seed,
        trunk: vec![32, 32],
        ..Default::default()
    }
}

fn assert_good(what: &str, m: &TaskMetrics) {
    // Three classes: chance is 1/3; sepal measurements separate setosa well.
    if let Some(accuracy) = m.get("accuracy") {
        assert!(accuracy > 0.55, "{what}: accuracy {accuracy}")
    } else {
        let r2 = m.get("r2").expect("a class or regression task");
        assert!(r2 > 0.0, "{what}: R² {r2}")
    }
}

#[test]
fn iris_multi_task_and_single_task_learn_every_task() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let cfg = small_cfg(0);
    let mtl_run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(mtl_run.test.len(), 3);
    for (k, m) in mtl_run.test.iter().enumerate() {
        assert_good(&format!("MTL task {k}"), m);
    }
    for k in 0..3 {
        let stl = fit(
            gpu,
            &data,
            &split,
            &[k],
            mtl::by_name("equal").unwrap(),
            &cfg,
            &mut |_| {},
        )
        .unwrap();
        assert_good(&format!("STL task {k}"), &stl.test[0]);
    }
    // Training reduced every task's loss.
    let (first, last) = (
        &mtl_run.history[0].train_loss,
        &mtl_run.history[mtl_run.best_epoch].train_loss,
    );
    for k in 0..3 {
        assert!(
            last[k] < first[k],
            "task {k}: train loss {} -> {}",
            first[k],
            last[k]
        );
    }
}

#[test]
fn uncertainty_weighting_trains_iris() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(1);
    let run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("uncertainty").unwrap(),
        &small_cfg(1),
        &mut |_| {},
    )
    .unwrap();
    for (k, m) in run.test.iter().enumerate() {
        assert_good(&format!("UW task {k}"), m);
    }
    // The learned log variances moved away from their initial 0.
    let s = run
        .params
        .read_all(gpu)
        .unwrap()
        .into_iter()
        .find(|(n, _, _)| n == "weighting.uncertainty.log_var")
        .unwrap()
        .2;
    assert!(
        s.iter().any(|v| v.abs() > 1e-3),
        "log variances did not move: {s:?}"
    );
}

#[test]
fn same_seed_gives_identical_numbers() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(2);
    let cfg = TrainConfig {
        epochs: 15,
        ..small_cfg(2)
    };
    let a = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    let b = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(a.test, b.test);
    let losses = |r: &taskgrad::train::FitReport| {
        r.history
            .iter()
            .map(|h| h.train_loss.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&a), losses(&b));
    assert_eq!(
        a.params.read_all(gpu).unwrap(),
        b.params.read_all(gpu).unwrap()
    );
    // A different seed gives a different run.
    let c = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &TrainConfig { seed: 3, ..cfg },
        &mut |_| {},
    )
    .unwrap();
    assert_ne!(losses(&a), losses(&c));
}

#[test]
fn early_stopping_stops_patience_epochs_after_the_best() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(4);
    let cfg = TrainConfig {
        epochs: 500,
        patience: Some(3),
        lr: 3e-2,
        ..small_cfg(4)
    };
    let run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    assert!(run.stopped_early, "ran all {} epochs", run.history.len());
    assert_eq!(run.history.len(), run.best_epoch + 1 + 3);
    let val = |e: usize| run.history[e].val.iter().map(|m| m.loss()).sum::<f64>();
    for e in 0..run.history.len() {
        assert!(
            val(run.best_epoch) <= val(e),
            "epoch {e} had a lower validation loss than the best"
        );
    }
}

#[test]
fn schedules_follow_their_formulas() {
    assert_eq!(Schedule::Constant.factor(7, 10), 1.0);
    // step: 0.5^(floor(epoch / 10))
    let step = Schedule::Step {
        every: 10,
        gamma: 0.5,
    };
    assert_eq!(
        (
            step.factor(0, 100),
            step.factor(9, 100),
            step.factor(10, 100),
            step.factor(25, 100)
        ),
        (1.0, 1.0, 0.5, 0.25)
    );
    // cosine: min + (1 - min)(1 + cos(π t))/2 with t = epoch / (epochs - 1)
    let cos = Schedule::Cosine { min_factor: 0.1 };
    assert!((cos.factor(0, 11) - 1.0).abs() < 1e-6);
    assert!((cos.factor(5, 11) - 0.55).abs() < 1e-6);
    assert!((cos.factor(10, 11) - 0.1).abs() < 1e-6);
    assert_eq!(
        Schedule::parse("step:5:0.1").unwrap(),
        Schedule::Step {
            every: 5,
            gamma: 0.1
        }
    );
    assert!(Schedule::parse("warmup").is_err());
}

#[test]
fn learning_rate_schedule_reaches_the_optimizer() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(5);
    let cfg = TrainConfig {
        epochs: 4,
        patience: None,
        schedule: Schedule::Step {
            every: 2,
            gamma: 0.1,
        },
        ..small_cfg(5)
    };
    let run = fit(
        gpu,
        &data,
        &split,
        &[1],
        mtl::by_name("equal").unwrap(),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    let lrs: Vec<f32> = run.history.iter().map(|h| h.lr).collect();
    assert_eq!(lrs, vec![1e-2, 1e-2, 1e-3, 1e-3]);
}

#[test]
fn non_finite_loss_stops_with_the_task_and_step() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(6);
    // Adam moves each weight by about lr per step: 1e30 overflows f32 within a step or two.
    let cfg = TrainConfig {
        epochs: 5,
        lr: 1e30,
        ..small_cfg(6)
    };
    match fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &cfg,
        &mut |_| {},
    ) {
        Err(Error::NonFinite { step, task }) => {
            assert!(
                ["species", "petal_length", "petal_width"].contains(&task.as_str()),
                "{task}"
            );
            assert!((1..=4).contains(&step), "step {step}");
        }
        Err(e) => panic!("expected NonFinite, got {e}"),
        Ok(_) => panic!("expected NonFinite, training succeeded"),
    }
}

// ---- loss weighting, by hand -------------------------------------------------------

fn seeds_after(gpu: &Gpu, w: &mut dyn Weighting, k: usize) -> Vec<f32> {
    let mut b = ParamBuilder::new(gpu);
    b.add("dummy", &[1], vec![0.0]).unwrap();
    w.add_params(&mut b, k).unwrap();
    let params = b.build(gpu).unwrap();
    let seeds = Tensor::zeros(gpu, &[k], "seeds").unwrap();
    let losses = Tensor::zeros(gpu, &[k], "losses").unwrap();
    let gram = Tensor::zeros(gpu, &[k, k], "gram").unwrap();
    let combine = Tensor::zeros(gpu, &[k], "combine").unwrap();
    let ctx = WeightingContext {
        params: &params,
        seeds: &seeds,
        losses: &losses,
        gram: &gram,
        combine: &combine,
    };
    let plan = w.build(gpu, &ctx).unwrap();
    gpu.run(&plan.before.iter().collect::<Vec<_>>()).unwrap();
    gpu.read_one(&seeds).unwrap()
}

#[test]
fn equal_and_fixed_weights_set_the_seeds() {
    let gpu = gpu_or_skip!();
    assert_eq!(
        seeds_after(gpu, mtl::by_name("equal").unwrap().as_mut(), 3),
        vec![1.0; 3]
    );
    assert_eq!(
        seeds_after(gpu, mtl::by_name("fixed:1,0.5,2").unwrap().as_mut(), 3),
        vec![1.0, 0.5, 2.0]
    );
    assert!(mtl::by_name("fixed:1,-1").is_err());
    assert!(mtl::by_name("fixed:1,x").is_err());
    assert!(matches!(
        mtl::by_name("magic"),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn uncertainty_weights_and_gradients_by_hand() {
    let gpu = gpu_or_skip!();
    // s = [0, ln 2, -ln 2]: seeds w = ½ e^{-s} = [0.5, 0.25, 1.0].
    // losses L = [1, 4, 0.25]: ds = ½ - w·L = [0, -0.5, 0.25].
    let s = Tensor::from_slice(gpu, &[3], &[0.0, 2f32.ln(), -(2f32.ln())], "s").unwrap();
    let seeds = Tensor::zeros(gpu, &[3], "seeds").unwrap();
    let losses = Tensor::from_slice(gpu, &[3], &[1.0, 4.0, 0.25], "losses").unwrap();
    let ds = Tensor::zeros(gpu, &[3], "ds").unwrap();
    let d1 = loss_weighting::uw_seeds(gpu, &s, &seeds).unwrap();
    let d2 = loss_weighting::uw_grad(gpu, &seeds, &losses, &ds).unwrap();
    gpu.run(&[&d1, &d2]).unwrap();
    let got = gpu.read(&[&seeds, &ds]).unwrap();
    common::assert_close("UW seeds", &got[0], &[0.5, 0.25, 1.0], 1e-6, 1e-6);
    common::assert_close("UW ds", &got[1], &[0.0, -0.5, 0.25], 1e-6, 1e-6);
    // Through the trait, s starts at LibMTL's -0.5: every seed is ½ e^{0.5};
    // from 0, every seed is ½.
    let w = 0.5 * 0.5f32.exp();
    common::assert_close(
        "UW seeds from -0.5",
        &seeds_after(gpu, mtl::by_name("uw").unwrap().as_mut(), 2),
        &[w, w],
        1e-6,
        1e-6,
    );
    assert_eq!(
        seeds_after(gpu, &mut mtl::Uncertainty::starting_at(0.0), 2),
        vec![0.5, 0.5]
    );
}

#[test]
fn imtl_l_scales_and_gradients_by_hand_and_imtl_drives_scaled_losses_towards_one() {
    let gpu = gpu_or_skip!();
    // s = [0, ln 2, -ln 2]: seeds exp(s) = [1, 2, 0.5]; losses [1, 4, 0.25]:
    // ds = seed·L − 1 = [0, 7, −0.875].
    let s = Tensor::from_slice(gpu, &[3], &[0.0, 2f32.ln(), -(2f32.ln())], "s").unwrap();
    let seeds = Tensor::zeros(gpu, &[3], "seeds").unwrap();
    let losses = Tensor::from_slice(gpu, &[3], &[1.0, 4.0, 0.25], "losses").unwrap();
    let ds = Tensor::zeros(gpu, &[3], "ds").unwrap();
    let d1 = loss_weighting::imtl_l_seeds(gpu, &s, &seeds).unwrap();
    let d2 = loss_weighting::imtl_l_grad(gpu, &seeds, &losses, &ds).unwrap();
    gpu.run(&[&d1, &d2]).unwrap();
    let got = gpu.read(&[&seeds, &ds]).unwrap();
    let (want_seeds, want_ds) =
        mtl::imtl::reference(&[0.0, 2f64.ln(), -(2f64.ln())], &[1.0, 4.0, 0.25]);
    let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    common::assert_close("IMTL-L seeds", &got[0], &f(&want_seeds), 1e-6, 1e-6);
    common::assert_close("IMTL-L ds", &got[1], &[0.0, 7.0, -0.875], 1e-6, 1e-6);
    common::assert_close("IMTL-L ds twin", &got[1], &f(&want_ds), 1e-6, 1e-6);
    // Trained (IMTL-G over the scaled losses), each log scale moves towards
    // −log L_k: up for a task whose loss is below 1, down above 1.
    let (data, split) = common::iris(0);
    let run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("imtl").unwrap(),
        &small_cfg(0),
        &mut |_| {},
    )
    .unwrap();
    let all = run.params.read_all(gpu).unwrap();
    let scale = &all
        .iter()
        .find(|t| t.0 == "weighting.imtl_l.log_scale")
        .unwrap()
        .2;
    let last = &run.history.last().unwrap().train_loss;
    for k in 0..3 {
        assert!(
            (scale[k] as f64) * (1.0 - last[k]) > 0.0,
            "task {k}: log scale {} with loss {}",
            scale[k],
            last[k]
        );
    }
}

#[test]
fn loss_tracking_sums_and_flags_the_first_non_finite_step() {
    let gpu = gpu_or_skip!();
    let losses = Tensor::zeros(gpu, &[2], "losses").unwrap();
    let state = Tensor::zeros(gpu, &[6], "state").unwrap();
    let track = loss_tracking::track_losses(gpu, &losses, &state).unwrap();
    for l in [[1.0, 2.0], [3.0, f32::NAN], [0.5, f32::INFINITY]] {
        losses.write(gpu, &l).unwrap();
        gpu.run(&[&track]).unwrap();
    }
    // task 0: sum 4.5, no bad step, 3 steps; task 1: sum 2 (finite only), first bad at step 2.
    assert_eq!(
        gpu.read_one(&state).unwrap(),
        vec![4.5, 0.0, 3.0, 2.0, 2.0, 3.0]
    );
}

#[test]
fn replicated_loss_tracking_keeps_each_replicas_own_books() {
    // Three replicas' bookkeeping in one dispatch, strides with gaps: each
    // replica's state is what it would be tracked alone (the test above's
    // numbers for replica 0; replica 1 never non-finite; replica 2 NaN from
    // the start), and the gaps are untouched.
    let gpu = gpu_or_skip!();
    let al = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    let (rep_loss, rep_state) = (al.max(4), al.max(8));
    let losses = Tensor::zeros(gpu, &[3 * rep_loss], "losses").unwrap();
    let state =
        Tensor::from_slice(gpu, &[3 * rep_state], &vec![-1.0; 3 * rep_state], "state").unwrap();
    for r in 0..3 {
        let s = state.slice(r * rep_state, &[6]).unwrap();
        s.write(gpu, &[0.0; 6]).unwrap();
    }
    let (l0, s0) = (
        losses.slice(0, &[2]).unwrap(),
        state.slice(0, &[6]).unwrap(),
    );
    let track =
        loss_tracking::track_losses_replicated(gpu, &l0, &s0, 3, (rep_loss, rep_state)).unwrap();
    let steps = [
        [[1.0, 2.0], [1.0, 1.0], [f32::NAN, 1.0]],
        [[3.0, f32::NAN], [2.0, 2.0], [1.0, f32::INFINITY]],
        [[0.5, f32::INFINITY], [3.0, 3.0], [1.0, 1.0]],
    ];
    for step in steps {
        let mut all = vec![0.0; 3 * rep_loss];
        for (r, l) in step.iter().enumerate() {
            all[r * rep_loss..r * rep_loss + 2].copy_from_slice(l);
        }
        losses.write(gpu, &all).unwrap();
        gpu.run(&[&track]).unwrap();
    }
    let got = gpu.read_one(&state).unwrap();
    let want = [
        [4.5, 0.0, 3.0, 2.0, 2.0, 3.0],
        [6.0, 0.0, 3.0, 6.0, 0.0, 3.0],
        [2.0, 1.0, 3.0, 2.0, 2.0, 3.0],
    ];
    for (r, w) in want.iter().enumerate() {
        assert_eq!(&got[r * rep_state..r * rep_state + 6], w, "replica {r}");
        let gap = &got[r * rep_state + 6..(r + 1) * rep_state];
        assert!(gap.iter().all(|&v| v == -1.0), "replica {r}'s gap: {gap:?}");
    }
}

#[test]
fn every_optimizer_trains_iris() {
    use taskgrad::optim::OptimizerKind;
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let mut finals = Vec::new();
    for (kind, lr) in [
        (OptimizerKind::Sgd, 0.05),
        (OptimizerKind::Adam, 1e-2),
        (OptimizerKind::AdamW, 1e-2),
    ] {
        let cfg = TrainConfig {
            optimizer: kind,
            lr,
            weight_decay: 1e-3,
            patience: None,
            ..small_cfg(0)
        };
        let report = fit(
            gpu,
            &data,
            &split,
            &[0, 1, 2],
            mtl::by_name("equal").unwrap(),
            &cfg,
            &mut |_| {},
        )
        .unwrap();
        let first: f64 = report.history[0].train_loss.iter().sum();
        let last: f64 = report.history.last().unwrap().train_loss.iter().sum();
        assert!(
            last < 0.7 * first,
            "{kind:?}: training loss {first} -> {last}"
        );
        for m in &report.test {
            assert_good(&format!("{kind:?}"), m);
        }
        finals.push(last);
    }
    // Each kind really ran its own update: the three runs end apart.
    assert!(
        finals[0] != finals[1] && finals[1] != finals[2],
        "final losses {finals:?}"
    );
}

#[test]
fn optimizer_settings_are_checked_before_training() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    for (lr, momentum, weight_decay) in [
        (0.0, 0.9, 0.0),
        (-1.0, 0.9, 0.0),
        (1e-2, 1.0, 0.0),
        (1e-2, 0.9, -1.0),
    ] {
        let cfg = TrainConfig {
            lr,
            momentum,
            weight_decay,
            ..small_cfg(0)
        };
        let got = fit(
            gpu,
            &data,
            &split,
            &[0],
            mtl::by_name("equal").unwrap(),
            &cfg,
            &mut |_| {},
        );
        assert!(
            matches!(got, Err(Error::InvalidConfig(_))),
            "lr {lr}, momentum {momentum}, weight decay {weight_decay} accepted"
        );
    }
}

#[test]
fn every_step_reports_its_progress() {
    // Progress moved once per epoch: nothing for a minute during a 1M-row
    // epoch. The step hook sees each step, with the run's planned total.
    use std::sync::{Arc, Mutex};
    use taskgrad::train::{StepHook, StepProgress};
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let seen: Arc<Mutex<Vec<StepProgress>>> = Arc::default();
    let sink = seen.clone();
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 16,
        patience: None,
        on_step: Some(StepHook::new(move |p| sink.lock().unwrap().push(p))),
        ..Default::default()
    };
    let report = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    let seen = seen.lock().unwrap();
    let per_epoch = split.train.len().div_ceil(16) as u64;
    assert_eq!(seen.len() as u64, report.steps);
    assert_eq!(report.steps, 3 * per_epoch);
    for (i, p) in seen.iter().enumerate() {
        assert_eq!((p.done, p.total), (i as u64 + 1, 3 * per_epoch));
        assert!(p.rows >= 1 && p.rows <= 16);
    }
}

#[test]
fn watched_steps_are_every_nth_step_and_need_no_readback_of_their_own() {
    // --grad-stats-every: each task's weight and the gradients' cosines at
    // chosen steps, copied aside on the GPU inside the step's submit and read
    // back with the epoch's losses (issue 15). A device of its own: the
    // readback counter is per device, and other tests share the common one.
    gpu_or_skip!();
    let gpu = &Gpu::new().unwrap();
    let (data, split) = common::iris(0);
    let cfg = TrainConfig {
        epochs: 3,
        patience: None,
        watch_every: 2,
        ..small_cfg(0)
    };
    let before = gpu.readback_count();
    let mut logs = Vec::new();
    let run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("pcgrad").unwrap(),
        &cfg,
        &mut |l| logs.push(l.clone()),
    )
    .unwrap();
    let readbacks = gpu.readback_count() - before;
    let steps: Vec<u64> = logs
        .iter()
        .flat_map(|l| l.steps.iter().map(|s| s.step))
        .collect();
    let want: Vec<u64> = (1..=run.steps).filter(|s| s % 2 == 0).collect();
    assert_eq!(steps, want, "{} steps in all", run.steps);
    // Before training, up to 4 training batches (the divergence yardstick);
    // per epoch: its readback and the validation pass (one batch here); then the test pass.
    let batches = |n: usize| n.div_ceil(cfg.batch_size) as u64;
    let yardstick = batches(split.train.len().min(4 * cfg.batch_size));
    assert_eq!(
        readbacks,
        yardstick + 3 * (1 + batches(split.val.len())) + batches(split.test.len()),
        "no readback of the watched steps' own"
    );
    for log in &logs {
        for s in &log.steps {
            assert_eq!(s.weights.len(), 3);
            assert!(s.weights.iter().all(|w| w.is_finite() && *w > 0.0), "{s:?}");
            for k in 0..3 {
                assert!((s.cosines[k * 3 + k] - 1.0).abs() < 1e-4, "{s:?}");
                assert!(s.grad_norms[k] > 0.0, "{s:?}");
            }
        }
        // The epoch's last step, when watched, is what the epoch log reports.
        if let Some(last) = log.steps.last() {
            let last_of_epoch =
                log.epoch as u64 * batches(split.train.len()) + batches(split.train.len());
            if last.step == last_of_epoch {
                for (a, b) in last.weights.iter().zip(&log.weights) {
                    assert!((a - b).abs() < 1e-6, "{last:?} vs {:?}", log.weights);
                }
            }
        }
    }
}

#[test]
fn the_step_graph_names_every_parameter_and_links_each_op_to_its_inputs() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let cfg = TrainConfig {
        epochs: 1,
        dump_graph: true,
        ..small_cfg(0)
    };
    let run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    let g = &run.graph;
    assert!(
        g.starts_with("digraph taskgrad_step {") && g.trim_end().ends_with('}'),
        "{g}"
    );
    for name in &run.params.names {
        assert!(
            g.contains(&format!("label=\"{name} |")),
            "{name} missing from\n{g}"
        );
    }
    // Three linear heads over a two-layer trunk: five linear ops, three losses,
    // each linear reading three nodes (x, weight, bias).
    assert_eq!(g.matches("label=\"linear |").count(), 5, "{g}");
    assert_eq!(g.matches(" loss |").count(), 3, "{g}");
    assert_eq!(g.matches(" -> ").count(), 5 * 3 + 3, "{g}");
    // Every parameter shows a finite gradient norm.
    let param_lines = g.lines().filter(|l| l.contains("#fde0c5"));
    for l in param_lines {
        let grad = l
            .split("‖∇‖ ")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or("");
        assert!(grad.parse::<f64>().is_ok_and(|v| v.is_finite()), "{l}");
    }
    let run = fit(
        gpu,
        &data,
        &split,
        &[0],
        mtl::by_name("equal").unwrap(),
        &small_cfg(0),
        &mut |_| {},
    )
    .unwrap();
    assert!(run.graph.is_empty(), "no graph unless asked");
}

#[test]
fn a_method_name_is_read_once_and_built_per_run() {
    // Issue 20: the run reads its method once (mtl::Method) and makes each
    // instance from it; the checks that used to re-read the name are the
    // parsed method's.
    use taskgrad::mtl::Method;
    let m = Method::parse(" PCGrad+Nash-MTL ").err();
    assert!(
        m.is_some_and(|e| e.to_string().contains("second method must weight losses")),
        "a gradient method as the loss half is refused when read"
    );
    let m = Method::parse("pcgrad+uncertainty").unwrap();
    assert_eq!(m.to_string(), "pcgrad+uncertainty");
    assert_eq!(
        m.build(7).unwrap().name(),
        taskgrad::mtl::by_name("pcgrad+uncertainty").unwrap().name()
    );
    let m: Method = "Nash-MTL".parse().unwrap();
    assert_eq!(m.to_string(), "nash_mtl");
    let fixed = Method::parse("fixed:1,0.5,2").unwrap();
    assert_eq!(fixed.to_string(), "fixed:1,0.5,2");
    assert!(fixed.check_for_tasks(3).is_ok());
    let e = fixed.check_for_tasks(2).unwrap_err().to_string();
    assert!(e.contains("3 fixed weights for 2 tasks"), "{e}");
    let e = Method::parse("pcgrad+fixed:1")
        .unwrap()
        .check_for_tasks(2)
        .unwrap_err();
    assert!(e.to_string().contains("1 fixed weights for 2 tasks"), "{e}");
    assert!(Method::parse("fixed:1,x").is_err());
    let e = Method::parse("gradvacc").unwrap_err().to_string();
    assert!(e.contains("unknown weighting \"gradvacc\""), "{e}");
}

#[test]
fn the_one_dispatch_mlp_step_computes_the_general_steps_numbers() {
    // train::mlp_step (asked for with StepOptions::mlp_step): the same
    // network, initial weights and minibatches through the general step and
    // through the one-dispatch step, five Adam steps each; the losses of
    // every step and the parameters after each must agree (the sums run in
    // another order), and the one-dispatch step must be three dispatches.
    use taskgrad::nn::{MultiTaskNet, NetSpec};
    use taskgrad::optim::OptimizerConfig;
    use taskgrad::train::step::{Program, StepOptions};
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(4);
    let run = |mlp_step: bool| {
        let mut b = ParamBuilder::new(gpu);
        let spec = NetSpec {
            inputs: 2,
            image: None,
            trunk: vec![16, 8],
            tower: vec![],
            trunk_layers: vec![],
            embeddings: vec![],
            tower_layers: vec![],
            expert_layers: vec![],
            outputs: vec![3, 1, 1],
            head_names: vec!["s".into(), "l".into(), "w".into()],
            activation: Default::default(),
            arch: Default::default(),
        };
        let net = MultiTaskNet::new(&mut b, spec, 9).unwrap();
        let params = b.build(gpu).unwrap();
        let mut method = mtl::Fixed::new(vec![1.0, 0.5, 2.0]).unwrap();
        let opts = StepOptions {
            mlp_step,
            ..Default::default()
        };
        let mut prog = Program::build_with(
            gpu,
            &net,
            &params,
            &data.tasks,
            2,
            20,
            &mut method,
            None,
            OptimizerConfig::default(),
            opts,
        )
        .unwrap();
        assert_eq!(prog.mlp_step.is_some(), mlp_step);
        let mut trace = Vec::new();
        for step in 0..5 {
            // 17 labelled rows and 3 padded ones, a new minibatch each step.
            let rows = &split.train[17 * step..17 * (step + 1)];
            prog.write_batch(gpu, &data, rows, &[0, 1, 2]).unwrap();
            prog.optimizer.prepare_step(gpu);
            let ds = prog.train_dispatches();
            if mlp_step {
                assert_eq!(ds.len(), 3, "the step, Adam, the loss bookkeeping");
            }
            gpu.run(&ds).unwrap();
            let got = gpu
                .read(&[&prog.tasks.losses, &params.values.whole])
                .unwrap();
            trace.push(got);
        }
        trace
    };
    let (general, one) = (run(false), run(true));
    for (step, (g, o)) in general.iter().zip(&one).enumerate() {
        common::assert_close(&format!("losses at step {step}"), &o[0], &g[0], 1e-6, 1e-5);
        common::assert_close(
            &format!("parameters after step {step}"),
            &o[1],
            &g[1],
            1e-6,
            1e-4,
        );
        assert!(g[0].iter().all(|&l| l > 0.0), "{:?}", g[0]);
    }
    assert_ne!(general[0][1], general[4][1], "the parameters moved");
}

#[test]
fn logged_step_losses_average_to_the_epoch_loss_and_max_steps_cuts_the_run() {
    // Every step's losses (issue 26: the MMoE experiment's loss per step),
    // copied aside in the step's submit; max_steps ends the run mid-epoch.
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let per_epoch = split.train.len().div_ceil(32);
    assert!(per_epoch >= 3, "{per_epoch} steps an epoch");
    let max = (2 * per_epoch + 1) as u64;
    let cfg = TrainConfig {
        epochs: 5,
        batch_size: 32,
        patience: None,
        log_losses: true,
        max_steps: Some(max),
        ..small_cfg(0)
    };
    let mut logs = Vec::new();
    let run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &cfg,
        &mut |l| logs.push(l.clone()),
    )
    .unwrap();
    assert_eq!(run.steps, max);
    assert_eq!(logs.len(), 3, "two whole epochs and one step of a third");
    let counts: Vec<usize> = logs.iter().map(|l| l.step_losses.len()).collect();
    assert_eq!(counts, vec![per_epoch, per_epoch, 1]);
    for log in &logs {
        for k in 0..3 {
            let steps: Vec<f64> = log.step_losses.iter().map(|s| s[k]).collect();
            assert!(steps.iter().all(|v| v.is_finite() && *v > 0.0), "{steps:?}");
            let mean = steps.iter().sum::<f64>() / steps.len() as f64;
            let want = log.train_loss[k];
            assert!(
                (mean - want).abs() <= 1e-5 * want.abs().max(1.0),
                "epoch {} task {k}: mean of steps {mean}, epoch loss {want}",
                log.epoch
            );
        }
        // Steps differ (a loss per minibatch, not one value copied).
        if log.step_losses.len() > 1 {
            assert_ne!(log.step_losses[0], log.step_losses[1]);
        }
    }
    // Without the option nothing is logged.
    let plain = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &TrainConfig {
            log_losses: false,
            ..cfg.clone()
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(plain.history.iter().all(|l| l.step_losses.is_empty()));
    assert_eq!(plain.steps, max);
}

#[test]
fn keep_best_off_returns_the_last_steps_weights() {
    // An experiment that reports where training ended (issue 26) keeps the
    // last weights; by default the best epoch's come back. A learning rate
    // high enough that the monitored loss is not lowest at the last epoch
    // tells the two apart (checked first, so the test cannot pass vacuously).
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let cfg = TrainConfig {
        epochs: 30,
        patience: None,
        lr: 0.05,
        ..small_cfg(1)
    };
    let run = |keep_best: bool| {
        fit(
            gpu,
            &data,
            &split,
            &[0, 1, 2],
            mtl::by_name("equal").unwrap(),
            &TrainConfig {
                keep_best,
                ..cfg.clone()
            },
            &mut |_| {},
        )
        .unwrap()
    };
    let (best, last) = (run(true), run(false));
    let losses: Vec<f64> = best.history.iter().map(|l| l.monitored_loss()).collect();
    assert!(
        best.best_epoch + 1 < losses.len(),
        "precondition: the best epoch is not the last ({losses:?})"
    );
    assert_eq!(last.best_epoch, losses.len() - 1);
    let (b, l) = (
        best.params.read_all(gpu).unwrap(),
        last.params.read_all(gpu).unwrap(),
    );
    assert_ne!(b, l, "the last weights differ from the best epoch's");
    // Evaluated where each run ended: the best run's validation loss is its
    // best epoch's, the other's the last epoch's.
    let val = |r: &taskgrad::FitReport| {
        let eval = taskgrad::train::ForwardProgram::build(
            gpu,
            &r.net,
            &r.params,
            &r.tasks,
            data.d,
            32,
            Default::default(),
        )
        .unwrap();
        let m = eval.evaluate(gpu, &data, &split.val, &[0, 1, 2]).unwrap();
        m.iter().map(|m| m.loss()).sum::<f64>()
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
    assert!(
        close(val(&best), losses[best.best_epoch]),
        "{} {losses:?}",
        val(&best)
    );
    assert!(
        close(val(&last), losses[losses.len() - 1]),
        "{} {losses:?}",
        val(&last)
    );
}

#[test]
fn runs_on_several_devices_come_back_in_order_and_stop_at_the_first_error() {
    // `train::on_devices` (compare --jobs): each item's result in the
    // items' order whatever device took it, progress lines passed to the
    // caller's thread, and an error returned rather than lost.
    let gpu = gpu_or_skip!();
    let square = |gpu: &Gpu, x: u32, say: &dyn Fn(&str)| -> taskgrad::Result<f32> {
        say(&format!("item {x}"));
        let t = Tensor::from_slice(gpu, &[1], &[x as f32], "x")?;
        Ok(gpu.read_one(&t)?[0] * x as f32)
    };
    for jobs in [1, 3] {
        let mut lines = Vec::new();
        let got = taskgrad::train::on_devices(
            gpu,
            jobs,
            (0..7).collect(),
            &mut |l| lines.push(l.to_string()),
            square,
        )
        .unwrap();
        assert_eq!(got, [0.0, 1.0, 4.0, 9.0, 16.0, 25.0, 36.0], "jobs {jobs}");
        lines.sort();
        assert_eq!(lines.len(), 7, "jobs {jobs}: {lines:?}");
        let failed = taskgrad::train::on_devices(gpu, jobs, (0..7).collect(), &mut |_| {}, {
            |gpu: &Gpu, x: u32, say: &dyn Fn(&str)| match x {
                4 => Err(Error::InvalidConfig("item 4 fails".into())),
                _ => square(gpu, x, say),
            }
        });
        assert!(
            matches!(&failed, Err(Error::InvalidConfig(m)) if m == "item 4 fails"),
            "jobs {jobs}: {:?}",
            failed.map(|_| ())
        );
    }
}

// ---- runs stepped together --------------------------------------------------------

/// Runs stepped together (one submit per step for all) compute what each
/// computes alone: different seeds, splits, methods (one with per-task
/// gradients and a seeded task order), epochs, early stopping, watched and
/// logged steps, and a run that fails with a non-finite loss while the
/// others go on.
#[test]
fn lockstep_runs_equal_each_run_alone_bit_for_bit() {
    use taskgrad::train::{fit_lockstep, FitReport, LockstepRun};
    let gpu = gpu_or_skip!();
    let datas: Vec<_> = (2..6).map(common::iris).collect();
    let cfgs = [
        TrainConfig {
            epochs: 40,
            patience: Some(2),
            lr: 3e-2,
            ..small_cfg(2)
        },
        TrainConfig {
            epochs: 6,
            ..small_cfg(3)
        },
        TrainConfig {
            epochs: 9,
            watch_every: 3,
            log_losses: true,
            max_steps: Some(20),
            ..small_cfg(4)
        },
        TrainConfig {
            epochs: 5,
            lr: 1e30,
            ..small_cfg(5)
        },
    ];
    let methods = ["equal", "mgda", "pcgrad", "equal"];
    let all = [0, 1, 2];
    let alone: Vec<_> = (0..4)
        .map(|r| {
            let (data, split) = &datas[r];
            let w = mtl::by_name(methods[r]).unwrap();
            fit(gpu, data, split, &all, w, &cfgs[r], &mut |_| {})
        })
        .collect();
    let mut epochs_seen = [0; 4];
    let together = fit_lockstep(
        gpu,
        (0..4)
            .map(|r| LockstepRun {
                data: &datas[r].0,
                split: &datas[r].1,
                subset: &all,
                weighting: Box::new(move || mtl::by_name(methods[r])),
                cfg: &cfgs[r],
            })
            .collect(),
        &mut |r, _| epochs_seen[r] += 1,
    )
    .reports;
    assert_eq!(together.len(), 4);
    let key = |r: &FitReport| lockstep_key(gpu, r);
    for (r, (a, t)) in alone.iter().zip(&together).enumerate() {
        match (a, t) {
            (Ok(a), Ok(t)) => {
                assert!(key(a) == key(t), "run {r} differs when stepped with others");
                assert_eq!(epochs_seen[r], t.history.len(), "run {r}'s epochs told");
            }
            (Err(a), Err(t)) => assert_eq!(a.to_string(), t.to_string(), "run {r}"),
            _ => panic!(
                "run {r}: alone {:?}, together {:?}",
                a.as_ref().err().map(|e| e.to_string()),
                t.as_ref().err().map(|e| e.to_string())
            ),
        }
    }
    // The cases the test means to cover did happen.
    let ok = |r: usize| alone[r].as_ref().unwrap();
    assert!(ok(0).stopped_early && ok(0).history.len() < 40);
    assert_eq!(ok(2).steps, 20);
    assert!(!ok(2).history[0].steps.is_empty() && !ok(2).history[0].step_losses.is_empty());
    assert!(matches!(alone[3], Err(Error::NonFinite { .. })));
}

/// What must agree between a run alone and stepped with others: every
/// epoch's losses, validation, watched and logged steps, the test metrics,
/// the weights, steps, best epoch and early stop.
fn lockstep_key(gpu: &Gpu, r: &taskgrad::train::FitReport) -> String {
    let history: Vec<_> = (r.history.iter())
        .map(|h| {
            let val: Vec<_> = h.val.iter().map(|m| m.loss()).collect();
            let watched = (h.steps.clone(), h.step_losses.clone());
            (h.train_loss.clone(), val, watched)
        })
        .collect();
    let params = r.params.read_all(gpu).unwrap();
    let ends = (r.steps, r.best_epoch, r.stopped_early);
    format!("{:?}", (history, &r.test, params, ends))
}

/// Runs of one setting with different seeds are built alike, each in its
/// own region of one buffer, and share their products, losses, loss
/// bookkeeping, Gram reduction and optimizer: one dispatch over the replica
/// axis for all runs. Each run still computes what it computes alone, with
/// early stopping parting them (one run stops first, the others go on with
/// their own optimizer, which must leave the stopped run's weights as they
/// ended).
#[test]
fn lockstep_runs_of_one_setting_share_dispatches_and_keep_their_numbers() {
    use taskgrad::train::{fit_lockstep, LockstepRun};
    let gpu = gpu_or_skip!();
    let datas: Vec<_> = (7..10).map(common::iris).collect();
    for method in ["equal", "mgda"] {
        let cfgs: Vec<TrainConfig> = (7..10)
            .map(|seed| TrainConfig {
                epochs: 25,
                patience: Some(3),
                lr: 3e-2,
                ..small_cfg(seed)
            })
            .collect();
        let all = [0, 1, 2];
        let alone: Vec<_> = (0..3)
            .map(|r| {
                let (data, split) = &datas[r];
                let w = mtl::by_name(method).unwrap();
                fit(gpu, data, split, &all, w, &cfgs[r], &mut |_| {}).unwrap()
            })
            .collect();
        let together = fit_lockstep(
            gpu,
            (0..3)
                .map(|r| LockstepRun {
                    data: &datas[r].0,
                    split: &datas[r].1,
                    subset: &all,
                    weighting: Box::new(move || mtl::by_name(method)),
                    cfg: &cfgs[r],
                })
                .collect(),
            &mut |_, _| {},
        );
        let solo = alone[0].dispatches_per_step;
        // Sharing happened: the products, losses, loss bookkeeping, Gram
        // reduction and optimizer of all three in one dispatch each. Each
        // run keeps its own a method's solve and, on llvmpipe, its
        // written-out products (that kernel has no replica axis).
        let (solves, others): (Vec<&String>, Vec<&String>) = (together.own.iter())
            .filter(|k| !k.starts_with("generated/matmul_unrolled.wgsl"))
            .partition(|k| k.starts_with("mtl/"));
        let want: Vec<String> = match method {
            "equal" => vec![],
            _ => vec![format!("mtl/{method}.wgsl::{method}")],
        };
        assert_eq!(solves, want.iter().collect::<Vec<_>>(), "{method}: own");
        assert!(others.is_empty(), "{method}: own {:?}", together.own);
        assert_eq!(solo - together.shared, together.own.len(), "{method}");
        assert!(together.shared >= 5, "{method}: {} shared", together.shared);
        assert_eq!(
            together.dispatches_per_step,
            together.shared + 3 * (solo - together.shared),
            "{method}"
        );
        for (r, (a, t)) in alone.iter().zip(&together.reports).enumerate() {
            let t = t.as_ref().unwrap();
            assert!(
                lockstep_key(gpu, a) == lockstep_key(gpu, t),
                "{method}: run {r} differs when shared"
            );
        }
        let lengths: Vec<usize> = alone.iter().map(|a| a.history.len()).collect();
        assert!(
            lengths.iter().any(|&l| l != lengths[0]),
            "{method}: the runs should part (epochs {lengths:?})"
        );
    }
}
