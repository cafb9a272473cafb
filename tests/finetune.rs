//! Fine-tuning: warm starts from a trained model's parameters (kept tasks'
//! heads loaded, new tasks' heads fresh, left-out tasks' heads dropped) and
//! frozen parameters, which keep their bytes, get no gradient dispatch and
//! no optimizer update.

mod common;

use std::sync::Arc;

use taskgrad::mtl;
use taskgrad::nn::{Freeze, NamedTensor};
use taskgrad::optim::OptimizerKind;
use taskgrad::train::{fit, FitReport, InitParams, TrainConfig};
use taskgrad::Gpu;

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        trunk: vec![16, 16],
        // Decoupled weight decay moves every parameter the optimizer
        // touches, even one whose gradient is zero: a frozen parameter
        // inside an optimizer span would not keep its bytes.
        optimizer: OptimizerKind::AdamW,
        weight_decay: 0.1,
        patience: None,
        ..Default::default()
    }
}

/// The multi-task parent: all three Iris tasks, a few epochs.
fn parent(gpu: &Gpu) -> Vec<NamedTensor> {
    let (data, split) = common::iris(0);
    let run = fit(
        gpu,
        &data,
        &split,
        &[0, 1, 2],
        mtl::by_name("equal").unwrap(),
        &cfg(3),
        &mut |_| {},
    )
    .unwrap();
    run.params.read_all(gpu).unwrap()
}

fn warm(values: &[NamedTensor]) -> Option<Arc<InitParams>> {
    Some(Arc::new(InitParams {
        source: "parent.safetensors".into(),
        values: values.to_vec(),
        warm: true,
    }))
}

fn finetune(
    gpu: &Gpu,
    from: &[NamedTensor],
    subset: &[usize],
    method: &str,
    c: TrainConfig,
) -> FitReport {
    let (data, split) = common::iris(0);
    let c = TrainConfig {
        init: warm(from),
        ..c
    };
    fit(
        gpu,
        &data,
        &split,
        subset,
        mtl::by_name(method).unwrap(),
        &c,
        &mut |_| {},
    )
    .unwrap()
}

fn tensor<'a>(all: &'a [NamedTensor], name: &str) -> &'a [f32] {
    &all.iter()
        .find(|t| t.0 == name)
        .unwrap_or_else(|| panic!("{name}"))
        .2
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn a_frozen_trunk_keeps_its_bytes_while_the_kept_head_trains() {
    let gpu = gpu_or_skip!();
    let before = parent(gpu);
    let frozen = finetune(
        gpu,
        &before,
        &[0],
        "equal",
        TrainConfig {
            freeze: Freeze::Shared,
            ..cfg(4)
        },
    );
    let after = frozen.params.read_all(gpu).unwrap();
    // Only the species head is left: the other tasks' heads were dropped.
    let names: Vec<&str> = after.iter().map(|t| t.0.as_str()).collect();
    assert!(names.iter().all(|n| !n.contains("petal")), "{names:?}");
    for name in [
        "trunk.0.weight",
        "trunk.0.bias",
        "trunk.1.weight",
        "trunk.1.bias",
    ] {
        assert!(
            same_bits(tensor(&before, name), tensor(&after, name)),
            "{name} changed under a frozen trunk"
        );
    }
    let head = "head.species.out.weight";
    assert!(
        !same_bits(tensor(&before, head), tensor(&after, head)),
        "the head did not train"
    );

    // The same run without freezing moves the trunk and computes its
    // gradients: more dispatches per step than the frozen run.
    let free = finetune(gpu, &before, &[0], "equal", cfg(4));
    let free_after = free.params.read_all(gpu).unwrap();
    assert!(!same_bits(
        tensor(&before, "trunk.0.weight"),
        tensor(&free_after, "trunk.0.weight")
    ));
    assert!(
        frozen.dispatches_per_step < free.dispatches_per_step,
        "frozen {} vs free {} dispatches per step",
        frozen.dispatches_per_step,
        free.dispatches_per_step
    );
}

#[test]
fn a_frozen_first_layer_keeps_its_bytes_and_the_second_trains() {
    let gpu = gpu_or_skip!();
    let before = parent(gpu);
    let c = TrainConfig {
        freeze: Freeze::parse("trunk.0").unwrap(),
        ..cfg(3)
    };
    let after = finetune(gpu, &before, &[0, 1, 2], "equal", c)
        .params
        .read_all(gpu)
        .unwrap();
    for name in ["trunk.0.weight", "trunk.0.bias"] {
        assert!(
            same_bits(tensor(&before, name), tensor(&after, name)),
            "{name}"
        );
    }
    assert!(!same_bits(
        tensor(&before, "trunk.1.weight"),
        tensor(&after, "trunk.1.weight")
    ));
    // A frozen layer between two trained ones: the optimizer runs over two
    // spans, one on each side, and both sides train.
    let c = TrainConfig {
        freeze: Freeze::parse("trunk.1").unwrap(),
        ..cfg(3)
    };
    let after = finetune(gpu, &before, &[0, 1, 2], "equal", c)
        .params
        .read_all(gpu)
        .unwrap();
    assert!(same_bits(
        tensor(&before, "trunk.1.weight"),
        tensor(&after, "trunk.1.weight")
    ));
    for name in ["trunk.0.weight", "head.petal_width.out.bias"] {
        assert!(
            !same_bits(tensor(&before, name), tensor(&after, name)),
            "{name}"
        );
    }
}

#[test]
fn a_gradient_method_over_a_frozen_trunk_combines_at_the_representation() {
    let gpu = gpu_or_skip!();
    let before = parent(gpu);
    let c = TrainConfig {
        freeze: Freeze::Shared,
        grad_space: Some(mtl::GradSpace::Parameters),
        ..cfg(3)
    };
    let run = finetune(gpu, &before, &[0, 1, 2], "mgda", c);
    let after = run.params.read_all(gpu).unwrap();
    assert!(same_bits(
        tensor(&before, "trunk.1.weight"),
        tensor(&after, "trunk.1.weight")
    ));
    for k in ["species", "petal_length", "petal_width"] {
        let head = format!("head.{k}.out.weight");
        assert!(
            !same_bits(tensor(&before, &head), tensor(&after, &head)),
            "{head}"
        );
    }
    assert!(run
        .history
        .iter()
        .all(|e| e.train_loss.iter().all(|l| l.is_finite())));
}

#[test]
fn a_new_task_gets_a_fresh_head_over_the_loaded_trunk() {
    let gpu = gpu_or_skip!();
    // A parent that knew species alone.
    let (data, split) = common::iris(0);
    let one = fit(
        gpu,
        &data,
        &split,
        &[0],
        mtl::by_name("equal").unwrap(),
        &cfg(2),
        &mut |_| {},
    )
    .unwrap()
    .params
    .read_all(gpu)
    .unwrap();
    // Species and a new task, trunk frozen: the trunk is the parent's to the
    // bit, and the new head trained from its own initial values.
    let c = TrainConfig {
        freeze: Freeze::Shared,
        ..cfg(2)
    };
    let run = finetune(gpu, &one, &[0, 1], "equal", c);
    let after = run.params.read_all(gpu).unwrap();
    assert!(same_bits(
        tensor(&one, "trunk.0.weight"),
        tensor(&after, "trunk.0.weight")
    ));
    assert!(after.iter().any(|t| t.0 == "head.petal_length.out.weight"));
    assert_eq!(run.test.len(), 2);
}

#[test]
fn freezing_what_is_not_there_or_everything_is_refused_with_a_reason() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let run = |freeze: &str| {
        let c = TrainConfig {
            freeze: Freeze::parse(freeze).unwrap(),
            ..cfg(1)
        };
        fit(
            gpu,
            &data,
            &split,
            &[0],
            mtl::by_name("equal").unwrap(),
            &c,
            &mut |_| {},
        )
    };
    let e = run("trunk.7").err().expect("no such layer").to_string();
    assert!(
        e.contains("trunk.7") && e.contains("trunk.0") && e.contains("head.species.out"),
        "{e}"
    );
    let e = run("trunk,head")
        .err()
        .expect("everything frozen")
        .to_string();
    assert!(e.contains("nothing to train"), "{e}");
}

#[test]
fn a_warm_start_refuses_a_kept_head_of_another_shape_and_a_model_that_shares_nothing() {
    let gpu = gpu_or_skip!();
    let (data, split) = common::iris(0);
    let mut wrong = parent(gpu);
    for t in wrong
        .iter_mut()
        .filter(|t| t.0.starts_with("head.species.out"))
    {
        let last = t.1.len() - 1;
        t.1[last] = 4;
        t.2 = vec![0.0; t.1.iter().product()];
    }
    // The warm start's refusal, as text.
    let refusal = |from: &[NamedTensor], what: &str| {
        let c = TrainConfig {
            init: warm(from),
            ..cfg(1)
        };
        let equal = mtl::by_name("equal").unwrap();
        fit(gpu, &data, &split, &[0], equal, &c, &mut |_| {})
            .err()
            .expect(what)
            .to_string()
    };
    let e = refusal(&wrong, "a head of four classes for three");
    assert!(
        e.contains("head.species.out") && e.contains("keep its classes"),
        "{e}"
    );
    let unrelated = vec![("other.weight".to_string(), vec![2], vec![1.0, 2.0])];
    let e = refusal(&unrelated, "nothing shared");
    assert!(e.contains("shares no parameter"), "{e}");
}
