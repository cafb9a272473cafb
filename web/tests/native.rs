//! The demo's Rust side natively (lavapipe in CI): the same `demo::train`
//! the page calls, driven by pollster, and the options the page may send.
#![cfg(not(target_arch = "wasm32"))]

use taskgrad_web::demo::{self, Options};

#[test]
fn the_demo_trains_and_reports_every_epoch_of_every_run() {
    taskgrad::gpu::quiet_graphics_stack();
    let gpu = taskgrad::Gpu::new().expect("a GPU adapter (lavapipe in CI)");
    let opts = Options {
        method: "pcgrad".into(),
        arch: "mmoe".into(),
        epochs: 4,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let out = pollster::block_on(demo::train(&gpu, &opts, &mut |p| {
        seen.push((p.run.clone(), p.steps.len(), p.cosines.len(), p.gates.len()))
    }))
    .unwrap();
    // The multi-task run with per-task gradients (3×3 cosines) and gates, then
    // each task alone.
    let runs: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(runs.iter().filter(|r| **r == "mtl").count(), 4);
    for t in ["species", "petal_length", "petal_width"] {
        assert_eq!(runs.iter().filter(|r| **r == t).count(), 4, "{t}");
    }
    assert!(seen
        .iter()
        .filter(|s| s.0 == "mtl")
        .all(|s| s.2 == 9 && s.3 == 3));
    assert_eq!(out.rows.len(), 3);
    assert!(out
        .rows
        .iter()
        .all(|r| r.mtl.is_finite() && r.stl.unwrap().is_finite()));
    assert!(out.delta_m.unwrap().is_finite());
    assert_eq!((out.train_rows, out.test_rows), (90, 30));
}

#[test]
fn the_demo_trains_the_lenet_on_a_multimnist_subset() {
    // The page's MultiMNIST choice: images made from the first 150 shipped
    // digits (120 training images, a tenth for validation; 30 test images
    // from the other digits), the LeNet trunk, two digit tasks.
    taskgrad::gpu::quiet_graphics_stack();
    let gpu = taskgrad::Gpu::new().expect("a GPU adapter (lavapipe in CI)");
    let opts = Options::from_json(
        r#"{"dataset": "multimnist", "digits": 150, "method": "upgrad", "epochs": 2}"#,
    )
    .unwrap();
    let mut seen = Vec::new();
    let out = pollster::block_on(demo::train(&gpu, &opts, &mut |p| {
        seen.push((
            p.run.clone(),
            p.tasks.clone(),
            p.cosines.len(),
            p.steps.len(),
        ))
    }))
    .unwrap();
    let runs: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(runs, ["mtl", "mtl", "left", "left", "right", "right"]);
    assert!(seen.iter().all(|s| s.1 == ["left", "right"]));
    // 108 training images in batches of 64: two steps an epoch, each watched
    // (2×2 cosines).
    assert!(
        seen.iter()
            .filter(|s| s.0 == "mtl")
            .all(|s| s.2 == 4 && s.3 == 2),
        "{seen:?}"
    );
    assert_eq!(out.dataset, "multimnist");
    assert_eq!((out.train_rows, out.test_rows), (108, 30));
    let names: Vec<&str> = out.rows.iter().map(|r| r.task.as_str()).collect();
    assert_eq!(names, ["left", "right"]);
    assert!(out
        .rows
        .iter()
        .all(|r| r.metric == "accuracy" && (0.0..=1.0).contains(&r.mtl)));
    assert!(out.delta_m.unwrap().is_finite());
}

#[test]
fn options_are_checked_before_any_work() {
    let o = Options::from_json(r#"{"method": "mgda", "epochs": 3}"#).unwrap();
    assert_eq!(
        (o.method.as_str(), o.epochs, o.arch.as_str()),
        ("mgda", 3, "shared")
    );
    let e = Options::from_json(r#"{"epoch": 3}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field"), "{e}");
    let e = Options::from_json(r#"{"epochs": 0}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 to 2000"), "{e}");
    for (json, says) in [
        (r#"{"dataset": "cifar"}"#, "choose one of"),
        (r#"{"dataset": "multimnist", "digits": 10}"#, "50 to 5000"),
        (
            r#"{"dataset": "multimnist", "arch": "mmoe"}"#,
            "shared trunk",
        ),
    ] {
        let e = Options::from_json(json).unwrap_err().to_string();
        assert!(e.contains(says), "{json}: {e}");
    }
}

#[test]
fn the_methods_listed_are_the_registry() {
    let names: Vec<&str> = demo::methods().iter().map(|m| m.0).collect();
    assert!(
        names.contains(&"upgrad") && names.contains(&"equal"),
        "{names:?}"
    );
    assert_eq!(names.len(), taskgrad::mtl::REGISTRY.len());
}
