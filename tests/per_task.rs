//! Per-task gradients in both spaces, their combination, every method end to
//! end, and the promise that gradient-based methods read nothing back per step.

mod common;

use taskgrad::data::{Dataset, Split};
use taskgrad::mtl::{self, GradSpace, Weighting};
use taskgrad::nn::{Arch, MultiTaskNet, NetSpec, ParamBuilder, ParamSet};
use taskgrad::optim::OptimizerConfig;
use taskgrad::train::step::Program;
use taskgrad::train::{fit, TrainConfig};
use taskgrad::Gpu;

/// One gradient computation (no optimizer step) on the first 16 training rows;
/// returns the gradient arena and the Gram matrix.
fn one_step(
    gpu: &Gpu,
    data: &Dataset,
    split: &Split,
    weighting: &mut dyn Weighting,
    space: Option<GradSpace>,
) -> (Vec<f32>, Vec<f32>) {
    one_step_with(gpu, data, split, weighting, space, Arch::Shared)
}

fn one_step_with(
    gpu: &Gpu,
    data: &Dataset,
    split: &Split,
    weighting: &mut dyn Weighting,
    space: Option<GradSpace>,
    arch: Arch,
) -> (Vec<f32>, Vec<f32>) {
    let mut b = ParamBuilder::new(gpu);
    let trunk = match arch {
        Arch::Shared | Arch::CrossStitch | Arch::Ltb | Arch::Mtan => vec![8, 6],
        _ => vec![],
    };
    let spec = NetSpec {
        inputs: 2,
        image: None,
        trunk,
        tower: vec![],
        trunk_layers: vec![],
        embeddings: vec![],
        tower_layers: vec![],
        expert_layers: vec![],
        outputs: vec![3, 1, 1],
        head_names: vec!["s".into(), "l".into(), "w".into()],
        activation: Default::default(),
        arch,
    };
    let net = MultiTaskNet::new(&mut b, spec, 3).unwrap();
    weighting.add_params(&mut b, 3).unwrap();
    let params: ParamSet = b.build(gpu).unwrap();
    let prog = Program::build(
        gpu,
        &net,
        &params,
        &data.tasks,
        2,
        16,
        weighting,
        space,
        OptimizerConfig::default(),
    )
    .unwrap();
    prog.write_batch(gpu, data, &split.train[..16], &[0, 1, 2])
        .unwrap();
    let mut ds = prog.train_dispatches();
    ds.pop(); // no Adam: look at the gradients
    gpu.run(&ds).unwrap();
    let got = gpu
        .read(&[&params.grads().unwrap().whole, &prog.tasks.gram])
        .unwrap();
    (got[0].clone(), got[1].clone())
}

#[test]
fn per_task_rows_sum_to_the_joint_gradient_in_both_spaces() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    // Equal weights: Σ_k g_k (combination weights 1) must equal one joint backward pass.
    let (joint, _) = one_step(gpu, &data, &split, &mut mtl::Equal, None);
    let (params_space, g1) = one_step(
        gpu,
        &data,
        &split,
        &mut mtl::Equal,
        Some(GradSpace::Parameters),
    );
    let (rep_space, g2) = one_step(
        gpu,
        &data,
        &split,
        &mut mtl::Equal,
        Some(GradSpace::Representation),
    );
    common::assert_close("parameter space", &params_space, &joint, 1e-5, 1e-4);
    common::assert_close("representation space", &rep_space, &joint, 1e-5, 1e-4);
    // Both Gram matrices are symmetric with positive diagonals.
    for g in [&g1, &g2] {
        for i in 0..3 {
            assert!(g[i * 3 + i] > 0.0);
            for j in 0..3 {
                assert!(
                    (g[i * 3 + j] - g[j * 3 + i]).abs() <= 1e-6 * g[i * 3 + i].max(g[j * 3 + j])
                );
            }
        }
    }
}

#[test]
fn per_task_rows_sum_to_the_joint_gradient_for_mixtures_of_experts() {
    // With one representation per task (MMoE, CGC, PLE) the per-task paths
    // run one backward pass from each task's own mixture: in parameter space
    // each writes its row of the shared experts' gradients, in
    // representation space each starts from w_k DZ_k. With equal weights
    // either must give the joint gradient, gates and task experts included
    // (and so must cross-stitch's and LTB's columns and MTAN's masks).
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(2);
    for arch in [
        Arch::Mmoe {
            experts: 3,
            expert_hidden: 5,
        },
        Arch::Omoe {
            experts: 2,
            expert_hidden: 4,
        },
        Arch::Cgc {
            shared: 2,
            per_task: 1,
            expert_hidden: 4,
        },
        Arch::Ple {
            shared: 2,
            per_task: 1,
            expert_hidden: 4,
            levels: 2,
        },
        // Columns per task, and per-task attention over one trunk.
        Arch::CrossStitch,
        Arch::Ltb,
        Arch::Mtan,
    ] {
        let (joint, _) = one_step_with(gpu, &data, &split, &mut mtl::Equal, None, arch.clone());
        for space in [GradSpace::Parameters, GradSpace::Representation] {
            let (got, gram) = one_step_with(
                gpu,
                &data,
                &split,
                &mut mtl::Equal,
                Some(space),
                arch.clone(),
            );
            common::assert_close(&format!("{arch:?} {space:?}"), &got, &joint, 1e-5, 1e-4);
            assert!(gram[0] > 0.0 && gram[4] > 0.0 && gram[8] > 0.0, "{gram:?}");
        }
    }
}

#[test]
fn each_row_holds_only_its_own_task() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(1);
    // Seeds (0, 1, 0): only task 1 contributes, so rows 0 and 2 are zero and row 1's
    // squared norm is the squared norm of the joint trunk gradient.
    let mut fixed = mtl::Fixed::new(vec![0.0, 1.0, 0.0]).unwrap();
    let (grads, gram) = one_step(gpu, &data, &split, &mut fixed, Some(GradSpace::Parameters));
    assert_eq!((gram[0], gram[8]), (0.0, 0.0), "gram {gram:?}");
    // The trunk is the first 4 parameters (2 layers × weight, bias): read their norm from the arena.
    let mut b = ParamBuilder::new(gpu);
    let spec = NetSpec {
        inputs: 2,
        image: None,
        trunk: vec![8, 6],
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
    MultiTaskNet::new(&mut b, spec, 3).unwrap();
    let layout = b.build(gpu).unwrap().grads().unwrap().layout.clone();
    let norm2: f32 = layout.entries()[..4]
        .iter()
        .map(|(_, s, shape)| {
            grads[*s..*s + shape.iter().product::<usize>()]
                .iter()
                .map(|v| v * v)
                .sum::<f32>()
        })
        .sum();
    assert!(
        (gram[4] - norm2).abs() <= 1e-4 * norm2,
        "row 1: {} vs {norm2}",
        gram[4]
    );
}

#[test]
fn every_method_trains_iris() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(2);
    let cfg = TrainConfig {
        epochs: 25,
        patience: None,
        trunk: vec![32, 32],
        ..Default::default()
    };
    for name in mtl::names() {
        let run = fit(
            gpu,
            &data,
            &split,
            &[0, 1, 2],
            mtl::by_name(name).unwrap(),
            &cfg,
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let first = &run.history[0].train_loss;
        let last = &run.history.last().unwrap().train_loss;
        assert!(
            last.iter().zip(first).all(|(l, f)| l.is_finite() && l < f),
            "{name}: losses {first:?} -> {last:?}"
        );
        let accuracy = run.test[0].get("accuracy").unwrap();
        assert!(accuracy > 0.45, "{name}: accuracy {accuracy}");
    }
}

#[test]
fn pcgrad_and_mgda_read_nothing_back_per_step() {
    gpu_or_skip!();
    // A device of its own: the readback counter must not see the other tests' readbacks.
    let own = Gpu::new().unwrap();
    let gpu = &own;
    let (data, split) = common::iris(3);
    // Batch 8 over 90 training rows: 12 steps per epoch; validation 30 rows = 4 batches, test 4.
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 8,
        patience: None,
        trunk: vec![16],
        ..Default::default()
    };
    for name in ["pcgrad", "mgda"] {
        let before = gpu.readback_count();
        let run = fit(
            gpu,
            &data,
            &split,
            &[0, 1, 2],
            mtl::by_name(name).unwrap(),
            &cfg,
            &mut |_| {},
        )
        .unwrap();
        let readbacks = gpu.readback_count() - before;
        assert_eq!(run.steps, 36);
        // Before training, the loss of 4 training batches (the divergence
        // yardstick); per epoch: one readback of loss sums and Gram, 4
        // validation batches; then 4 test batches.
        assert_eq!(
            readbacks,
            4 + 3 * (1 + 4) + 4,
            "{name}: {readbacks} readbacks for {} steps",
            run.steps
        );
        assert_eq!(run.history[0].grad_norms.len(), 3);
    }
}

#[test]
fn grad_stats_report_norms_and_cosines_for_any_method() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(4);
    let cfg = TrainConfig {
        epochs: 2,
        grad_stats: true,
        trunk: vec![16],
        ..Default::default()
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
    let h = &run.history[1];
    assert!(h.grad_norms.iter().all(|&n| n > 0.0), "{:?}", h.grad_norms);
    for i in 0..3 {
        assert!((h.cosines[i * 3 + i] - 1.0).abs() < 1e-5);
        for j in 0..3 {
            assert!(h.cosines[i * 3 + j].abs() <= 1.0 + 1e-5);
        }
    }
    // Without the flag, a loss-based method computes no per-task gradients.
    let plain = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &TrainConfig {
            grad_stats: false,
            ..cfg
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(plain.history[0].grad_norms.is_empty());
    assert!(plain.dispatches_per_step < run.dispatches_per_step);
}

#[test]
fn unknown_method_and_space_names_are_errors() {
    assert!(mtl::by_name("no_such_method").is_err());
    assert!(GradSpace::parse("both").is_err());
    assert_eq!(GradSpace::parse("rep").unwrap(), GradSpace::Representation);
    for name in mtl::names() {
        assert_eq!(mtl::by_name(name).unwrap().name(), name);
    }
    // Krum is defined from three tasks on: two are refused before any work, with the reason.
    let krum = mtl::Method::parse("krum").unwrap();
    let e = krum.check_for_tasks(2).unwrap_err().to_string();
    assert!(e.contains("krum needs at least 3 tasks"), "{e}");
    assert!(krum.check_for_tasks(3).is_ok());
    let e = mtl::Method::parse("krum+uncertainty")
        .unwrap()
        .check_for_tasks(2)
        .unwrap_err();
    assert!(e.to_string().contains("at least 3"), "{e}");
}

#[test]
fn gradient_methods_run_on_top_of_loss_weights() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(5);
    // Seeds (0, 1, 0) zero rows 0 and 2; PCGrad finds no conflict with a zero row, so it
    // combines the rows with weight 1 each: the result is the joint gradient of L_1 alone.
    let mut alone = mtl::Fixed::new(vec![0.0, 1.0, 0.0]).unwrap();
    let (want, _) = one_step(gpu, &data, &split, &mut alone, None);
    let mut composed = mtl::by_name("pcgrad+fixed:0,1,0").unwrap();
    let (got, gram) = one_step(
        gpu,
        &data,
        &split,
        composed.as_mut(),
        Some(GradSpace::Parameters),
    );
    assert_eq!((gram[0], gram[8]), (0.0, 0.0));
    common::assert_close("pcgrad over fixed seeds", &got, &want, 1e-5, 1e-4);
    // And a learned weighting under a gradient method trains.
    let cfg = TrainConfig {
        epochs: 10,
        patience: None,
        trunk: vec![16],
        ..Default::default()
    };
    let run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("mgda+uncertainty").unwrap(),
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    assert!(run
        .history
        .last()
        .unwrap()
        .train_loss
        .iter()
        .all(|l| l.is_finite()));
    assert!(
        mtl::by_name("uncertainty+pcgrad").is_err(),
        "the gradient method comes first"
    );
    assert!(
        mtl::by_name("gradnorm+fixed:1,1,1").is_err(),
        "GradNorm sets its own seeds"
    );
}

#[test]
fn famo_sees_the_same_batch_again_after_the_update_in_the_same_submit() {
    // LibMTL's FAMO compares each loss before the step with the same batch's
    // loss after it: the step list ends with the optimizer, the forward pass
    // and losses again, and FAMO's update — all in the one submit.
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let mut b = ParamBuilder::new(gpu);
    let spec = NetSpec {
        inputs: 2,
        image: None,
        trunk: vec![8],
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
    let net = MultiTaskNet::new(&mut b, spec, 3).unwrap();
    let params: ParamSet = b.build(gpu).unwrap();
    let mut famo = mtl::Famo::default();
    let prog = Program::build(
        gpu,
        &net,
        &params,
        &data.tasks,
        2,
        16,
        &mut famo,
        None,
        OptimizerConfig {
            lr: 0.05,
            ..OptimizerConfig::default()
        },
    )
    .unwrap();
    let ds = prog.train_dispatches();
    let opt = ds
        .iter()
        .position(|d| std::ptr::eq(*d, prog.optimizer.dispatches()[0]))
        .unwrap();
    let tail: Vec<_> = prog
        .plan
        .network
        .iter()
        .chain(&prog.plan.losses)
        .chain(&prog.plan.after_update)
        .collect();
    assert_eq!(ds.len() - opt - 1, tail.len());
    assert!(ds[opt + 1..]
        .iter()
        .zip(&tail)
        .all(|(a, b)| std::ptr::eq(*a, *b)));

    prog.write_batch(gpu, &data, &split.train[..16], &[0, 1, 2])
        .unwrap();
    gpu.run(&ds).unwrap();
    // The tracked losses are the step's (before the update); the losses
    // buffer holds the same batch at the updated weights, which a separate
    // forward pass reproduces.
    let got = gpu.read(&[&prog.tasks.state, &prog.tasks.losses]).unwrap();
    let before: Vec<f32> = (0..3).map(|j| got[0][3 * j]).collect();
    let after = got[1].clone();
    let again: Vec<_> = prog.plan.network.iter().chain(&prog.plan.losses).collect();
    gpu.run(&again).unwrap();
    common::assert_close(
        "losses after the update",
        &gpu.read_one(&prog.tasks.losses).unwrap(),
        &after,
        1e-6,
        1e-5,
    );
    assert!(
        before.iter().zip(&after).any(|(b, a)| (b - a).abs() > 1e-4),
        "the second forward pass saw the updated weights: {before:?} vs {after:?}"
    );
}

#[test]
fn the_shared_parameters_are_one_segment_and_an_intruder_is_caught() {
    // Issue 20: per-task gradients in parameter space are rows over one
    // range of the arena; that it holds the shared parameters and nothing
    // else was an unwritten rule (made first, they were contiguous). Now it
    // is checked where the step relies on it.
    let gpu = gpu_or_skip!();
    let spec = NetSpec {
        inputs: 3,
        image: None,
        trunk: vec![],
        tower: vec![],
        trunk_layers: taskgrad::nn::LayerSpec::parse_list("linear:8,relu,layernorm,linear:4")
            .unwrap(),
        embeddings: vec![taskgrad::nn::Embedding {
            column: "c".into(),
            levels: 5,
            dim: 2,
        }],
        tower_layers: vec![],
        expert_layers: vec![],
        outputs: vec![3, 1],
        head_names: vec!["a".into(), "b".into()],
        activation: Default::default(),
        arch: Arch::Shared,
    };
    let mut b = ParamBuilder::new(gpu);
    let mut net = MultiTaskNet::new(&mut b, spec, 1).unwrap();
    let params = b.build(gpu).unwrap();
    let range = net.shared_segment(&params).unwrap();
    // The embedding table, two linears and a layer norm: 5·2 + (4·8 + 8) + 2·8 + (8·4 + 4) at least.
    assert!(range.len() >= 10 + 40 + 16 + 36, "{range:?}");
    // Call the last head's output weight shared: the first head sits in between.
    let last = taskgrad::nn::ParamId(params.len() - 2);
    net.tables.push(last);
    let err = net.shared_segment(&params).unwrap_err().to_string();
    assert!(
        err.contains("head.a.out") && err.contains("inside the shared segment"),
        "{err}"
    );
}

#[test]
fn a_coordinate_wise_method_replaces_the_weighted_sum_in_the_step() {
    // TrimmedMean with trim 0 is the mean of the rows: the trunk's gradient
    // (8·2 + 8 + 6·8 + 6 = 78 values) is Σ_k g_k / 3 where equal weights give
    // Σ_k g_k, in either space; the heads get their own task's gradient both ways.
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let (equal, _) = one_step(
        gpu,
        &data,
        &split,
        &mut mtl::Equal,
        Some(GradSpace::Parameters),
    );
    for space in [GradSpace::Parameters, GradSpace::Representation] {
        let mut tm = mtl::TrimmedMean { trim: 0 };
        let (got, _) = one_step(gpu, &data, &split, &mut tm, Some(space));
        let tol = |v: f32| 1e-5 + 1e-4 * v.abs();
        // The trunk's parameters come first in the arena.
        for (i, (g, e)) in got.iter().zip(&equal).enumerate() {
            let want = if i < 78 { e / 3.0 } else { *e };
            assert!(
                (g - want).abs() <= tol(*e),
                "{space:?} [{i}]: {g}, want {want}"
            );
        }
        let live = equal[..78].iter().filter(|e| e.abs() > 1e-6).count();
        assert!(
            live > 60,
            "{space:?}: only {live} trunk gradients are not zero"
        );
    }
}

/// The gradient arena after one step's backward passes (no optimizer) of a
/// shared trunk over Iris, each of the method's minibatches from `batches`
/// (one, or one per sample), and the arena's shared segment.
fn grads_on(
    gpu: &Gpu,
    data: &Dataset,
    weighting: &mut dyn Weighting,
    space: Option<GradSpace>,
    batches: &[&[usize]],
) -> (Vec<f32>, std::ops::Range<usize>) {
    let mut b = ParamBuilder::new(gpu);
    let spec = NetSpec {
        inputs: 2,
        image: None,
        trunk: vec![8, 6],
        tower: vec![],
        trunk_layers: vec![],
        embeddings: vec![],
        tower_layers: vec![],
        expert_layers: vec![],
        outputs: vec![3, 1, 1],
        head_names: vec!["s".into(), "l".into(), "w".into()],
        activation: Default::default(),
        arch: Arch::Shared,
    };
    let net = MultiTaskNet::new(&mut b, spec, 3).unwrap();
    let params: ParamSet = b.build(gpu).unwrap();
    let prog = Program::build(
        gpu,
        &net,
        &params,
        &data.tasks,
        2,
        16,
        weighting,
        space,
        OptimizerConfig::default(),
    )
    .unwrap();
    assert_eq!(prog.samples(), batches.len());
    for (s, rows) in batches.iter().enumerate() {
        prog.write_sample(gpu, s, data, rows, &[0, 1, 2]).unwrap();
    }
    let mut ds = prog.train_dispatches();
    ds.pop(); // no Adam: look at the gradients
    gpu.run(&ds).unwrap();
    let arena = gpu.read_one(&params.grads().unwrap().whole).unwrap();
    (arena, net.shared_segment(&params).unwrap())
}

#[test]
fn three_minibatch_methods_combine_the_rows_of_the_right_minibatches() {
    // MoDo and SDMGrad draw three minibatches a step. Their step must equal
    // the method's reference on the per-task gradients of each minibatch
    // (each found alone: one-hot fixed weights, one minibatch), with the
    // heads at the mean of the three minibatches' gradients.
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let batches: Vec<&[usize]> = (0..3).map(|s| &split.train[16 * s..16 * (s + 1)]).collect();
    let k = 3;
    // rows[s·K + j]: task j's gradient of the shared parameters on minibatch s.
    let mut rows = Vec::new();
    let mut joint = Vec::new();
    let mut shared = 0..0;
    for batch in &batches {
        for j in 0..k {
            let mut one_hot = vec![0.0; k];
            one_hot[j] = 1.0;
            let mut fixed = mtl::Fixed::new(one_hot).unwrap();
            let (arena, seg) = grads_on(
                gpu,
                &data,
                &mut fixed,
                Some(GradSpace::Parameters),
                &[batch],
            );
            rows.push(arena[seg.clone()].to_vec());
            shared = seg;
        }
        joint.push(grads_on(gpu, &data, &mut mtl::Equal, None, &[batch]).0);
    }
    let flat: Vec<f64> = rows.iter().flatten().map(|&v| v as f64).collect();
    let cases: Vec<(Box<dyn Weighting>, Vec<f64>)> = vec![
        (
            Box::new(mtl::MoDo::default()),
            mtl::modo::reference(&mtl::MoDo::default(), std::slice::from_ref(&flat), k).0[0]
                .clone(),
        ),
        (
            Box::new(mtl::SdmGrad::default()),
            mtl::sdmgrad::reference(&mtl::SdmGrad::default(), std::slice::from_ref(&flat), k).0[0]
                .clone(),
        ),
    ];
    for (mut method, want_shared) in cases {
        let name = method.name();
        let (got, seg) = grads_on(
            gpu,
            &data,
            method.as_mut(),
            Some(GradSpace::Parameters),
            &batches,
        );
        assert_eq!(seg, shared);
        let want_shared: Vec<f32> = want_shared.iter().map(|&v| v as f32).collect();
        common::assert_close(
            &format!("{name}: shared gradients"),
            &got[seg.clone()],
            &want_shared,
            1e-5,
            1e-4,
        );
        // The heads (everything outside the trunk): the mean of the three minibatches'.
        let heads: Vec<usize> = (0..got.len()).filter(|i| !seg.contains(i)).collect();
        let mean: Vec<f32> = (heads.iter())
            .map(|&i| joint.iter().map(|g| g[i]).sum::<f32>() / 3.0)
            .collect();
        let got_heads: Vec<f32> = heads.iter().map(|&i| got[i]).collect();
        assert!(mean.iter().any(|&v| v != 0.0));
        common::assert_close(&format!("{name}: heads"), &got_heads, &mean, 1e-5, 1e-4);
    }
}
