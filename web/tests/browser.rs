//! The kernels in a real browser: run by `wasm-bindgen-test` in headless
//! Chromium through its WebGPU (SwiftShader on a machine with no GPU),
//! against the CPU reference in `taskgrad::reference`, as `tests/kernels.rs`
//! does natively. A representative subset: the matmul ladder with every
//! epilogue, softmax cross-entropy, MSE, the Gram matrix and combination,
//! Adam, the MTL solves against LibMTL and torchjd, the trainer, and f16
//! refused where the adapter lacks it.
//!
//!     scripts/browser_tests.sh      # installs what is missing, then runs these and the page test
//!
//! Every readback is awaited (`Gpu::read_async`): a browser cannot block.
#![cfg(target_arch = "wasm32")]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wasm_bindgen_test::*;

use taskgrad::kernels::matmul::{self, MatmulKernel, MatmulOptions};
use taskgrad::kernels::{gram, mse, softmax_ce};
use taskgrad::optim;
use taskgrad::optim::Optimizer as _;
use taskgrad::reference as cpu;
use taskgrad::{Gpu, Tensor};

wasm_bindgen_test_configure!(run_in_browser);

async fn gpu() -> Gpu {
    let gpu = Gpu::new_async()
        .await
        .expect("this browser offers no WebGPU adapter: the browser tests never skip");
    log(&format!("taskgrad browser test adapter: {}", gpu.report));
    gpu
}

/// A line on the browser's console (the runner shows it).
fn log(s: &str) {
    wasm_bindgen_test::console_log!("{s}");
}

fn random(r: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

fn up(gpu: &Gpu, shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_slice(gpu, shape, v, "test input").unwrap()
}

fn zeros(gpu: &Gpu, shape: &[usize]) -> Tensor {
    Tensor::zeros(gpu, shape, "test output").unwrap()
}

async fn read(gpu: &Gpu, ts: &[&Tensor]) -> Vec<Vec<f32>> {
    gpu.read_async(ts).await.unwrap()
}

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs() && g.is_nan() == w.is_nan(),
            "{what}: [{i}] got {g} want {w}"
        );
    }
}

#[wasm_bindgen_test]
async fn matmul_ladder_matches_the_reference_on_awkward_shapes() {
    let gpu = gpu().await;
    let mut r = StdRng::seed_from_u64(1);
    for (m, k, n) in [(1, 1, 1), (17, 63, 65), (33, 7, 129), (64, 64, 64)] {
        for (ta, tb) in [(false, false), (true, false), (false, true)] {
            let a = random(&mut r, m * k);
            let b = random(&mut r, k * n);
            let bias = random(&mut r, n);
            let ga = up(&gpu, &if ta { [k, m] } else { [m, k] }, &a);
            let gb = up(&gpu, &if tb { [n, k] } else { [k, n] }, &b);
            let gbias = up(&gpu, &[n], &bias);
            let want = cpu::matmul(&a, &b, m, k, n, ta, tb, Some(&bias), true);
            for kernel in MatmulKernel::ALL {
                if !kernel.fits(&gpu) {
                    log(&format!(
                        "{kernel:?}: not enough workgroup memory here: skipped"
                    ));
                    continue;
                }
                let c = zeros(&gpu, &[m, n]);
                let opts = MatmulOptions {
                    trans_a: ta,
                    trans_b: tb,
                    bias: Some(&gbias),
                    relu: true,
                    ..Default::default()
                };
                let d =
                    matmul::matmul_kernel(&gpu, &ga, &gb, &c, opts, kernel, kernel.default_wg())
                        .unwrap();
                gpu.run(&[&d]).unwrap();
                let got = read(&gpu, &[&c]).await.remove(0);
                let what = format!("{kernel:?} m={m} k={k} n={n} ta={ta} tb={tb}");
                assert_close(&what, &got, &want, 1e-5 * k as f32 + 1e-5, 1e-4);
            }
        }
    }
}

#[wasm_bindgen_test]
async fn softmax_cross_entropy_matches_the_reference_with_masks() {
    let gpu = gpu().await;
    let mut r = StdRng::seed_from_u64(2);
    for (b, c) in [(1, 2), (17, 3), (65, 10)] {
        let z: Vec<f32> = random(&mut r, b * c).iter().map(|v| 4.0 * v).collect();
        let y: Vec<u32> = (0..b).map(|_| r.random_range(0..c as u32)).collect();
        let mask: Vec<f32> = (0..b).map(|i| (i % 4 != 3) as u32 as f32).collect();
        let logits = up(&gpu, &[b, c], &z);
        let labels = Tensor::from_u32(&gpu, &[b], &y, "labels").unwrap();
        let (gmask, scale) = (up(&gpu, &[b], &mask), up(&gpu, &[1], &[0.7]));
        let (dlogits, loss_rows, loss) =
            (zeros(&gpu, &[b, c]), zeros(&gpu, &[b]), zeros(&gpu, &[1]));
        let out = softmax_ce::SoftmaxCeOutputs {
            dlogits: &dlogits,
            loss_rows: &loss_rows,
            loss: &loss,
        };
        let d = softmax_ce::softmax_ce(&gpu, &logits, &labels, &gmask, &scale, 0, out).unwrap();
        gpu.run(&[&d]).unwrap();
        let got = read(&gpu, &[&loss, &loss_rows, &dlogits]).await;
        let want = cpu::softmax_ce(&z, &y, &mask, b, c, 0.7);
        assert_close("softmax-ce loss", &got[0], &[want.loss], 1e-5, 1e-5);
        assert_close("softmax-ce rows", &got[1], &want.loss_rows, 1e-5, 1e-5);
        assert_close("softmax-ce dlogits", &got[2], &want.dlogits, 1e-6, 1e-5);
    }
}

#[wasm_bindgen_test]
async fn mse_matches_the_reference_with_masks() {
    let gpu = gpu().await;
    let mut r = StdRng::seed_from_u64(3);
    for (b, t) in [(1, 1), (17, 1), (129, 3)] {
        let (p, y) = (random(&mut r, b * t), random(&mut r, b * t));
        let mask: Vec<f32> = (0..b).map(|i| (i % 5 != 4) as u32 as f32).collect();
        let (dpred, loss) = (zeros(&gpu, &[b, t]), zeros(&gpu, &[1]));
        let d = mse::mse(
            &gpu,
            &up(&gpu, &[b, t], &p),
            &up(&gpu, &[b, t], &y),
            &up(&gpu, &[b], &mask),
            &up(&gpu, &[1], &[1.5]),
            0,
            &dpred,
            &loss,
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        let got = read(&gpu, &[&loss, &dpred]).await;
        let (want_loss, want_d) = cpu::mse(&p, &y, &mask, b, t, 1.5);
        assert_close("mse loss", &got[0], &[want_loss], 1e-5, 1e-5);
        assert_close("mse dpred", &got[1], &want_d, 1e-6, 1e-5);
    }
}

#[wasm_bindgen_test]
async fn gram_and_combination_match_the_reference() {
    let gpu = gpu().await;
    let mut r = StdRng::seed_from_u64(4);
    for (k, n) in [(1, 17), (3, 1000), (7, 4099)] {
        let stride = n + 5;
        let (gv, wv) = (random(&mut r, k * stride), random(&mut r, k));
        let g = gram::GradRows::new(up(&gpu, &[k * stride], &gv), k, n, stride).unwrap();
        let (gm, out) = (zeros(&gpu, &[k, k]), zeros(&gpu, &[n]));
        let gd = gram::gram(&gpu, &g, &gm).unwrap();
        let cd = gram::combine(&gpu, &g, &up(&gpu, &[k], &wv), &out).unwrap();
        gpu.run(&[&gd.partial, &gd.finish, &cd]).unwrap();
        let got = read(&gpu, &[&gm, &out]).await;
        let tol = 1e-6 * n as f32 + 1e-5;
        assert_close("gram", &got[0], &cpu::gram(&gv, k, n, stride), tol, 1e-4);
        assert_close(
            "combine",
            &got[1],
            &cpu::combine(&gv, &wv, n, stride),
            1e-5,
            1e-5,
        );
    }
}

#[wasm_bindgen_test]
async fn adam_matches_the_reference_over_steps() {
    let gpu = gpu().await;
    let mut r = StdRng::seed_from_u64(5);
    let n = 1000;
    let mut theta = random(&mut r, n);
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    let (gt, gm, gv, gg) = (
        up(&gpu, &[n], &theta),
        zeros(&gpu, &[n]),
        zeros(&gpu, &[n]),
        zeros(&gpu, &[n]),
    );
    let cfg = optim::AdamConfig {
        lr: 1e-2,
        weight_decay: 0.1,
        decoupled: true,
        ..Default::default()
    };
    let mut adam = taskgrad::optim::Adam::new(&gpu, cfg, &gt, &gm, &gv, &gg).unwrap();
    for t in 1..=5 {
        let g = random(&mut r, n);
        gg.write(&gpu, &g).unwrap();
        adam.prepare_step(&gpu);
        gpu.run(&[&adam.dispatch]).unwrap();
        optim::adam::reference(
            &mut theta, &mut m, &mut v, &g, t, 1e-2, 0.9, 0.999, 1e-8, 0.1, true,
        );
    }
    let got = read(&gpu, &[&gt, &gm, &gv]).await;
    assert_close("adamw theta", &got[0], &theta, 1e-5, 1e-4);
    assert_close("adamw m", &got[1], &m, 1e-6, 1e-4);
    assert_close("adamw v", &got[2], &v, 1e-7, 1e-4);
}

/// The GPU solves (K×K, in WGSL) on two of the fidelity fixtures, against
/// the exact answer or torchjd's, as `tests/fidelity.rs` does natively.
#[wasm_bindgen_test]
async fn mtl_solves_agree_with_their_references() {
    let gpu = gpu().await;
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/fixtures/fidelity.json")).unwrap();
    let wanted = ["gauss_k3", "conflict_k3"];
    let mut checked = 0;
    for case in fixtures["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if !wanted.contains(&name) {
            continue;
        }
        let k = case["k"].as_u64().unwrap() as usize;
        let rows: Vec<f32> = floats(&case["rows"]);
        for method in ["mgda", "upgrad", "cagrad", "imtl_g", "nash_mtl"] {
            let m = &case["methods"][method];
            let want = match m.get("exact") {
                Some(e) => floats(&e["direction"]),
                None => floats(&m["refs"][0]["direction"]),
            };
            let mut w = taskgrad::mtl::by_name(method).unwrap();
            let got = taskgrad::mtl::aggregate_with_async(&gpu, w.as_mut(), &rows, k)
                .await
                .unwrap()
                .direction;
            let scale = want.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
            let err = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0.0f32, f32::max);
            assert!(
                err <= 1e-4 * scale.max(1e-6),
                "{method} on {name}: max error {err} (scale {scale})"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 10, "both fixtures, five methods each");
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The trainer end to end (async readbacks), and the page's own code path.
#[wasm_bindgen_test]
async fn the_demo_trains_iris_with_every_readback_awaited() {
    let gpu = gpu().await;
    let opts = taskgrad_web::demo::Options {
        method: "mgda".into(),
        epochs: 5,
        ..Default::default()
    };
    let mut epochs = 0;
    let out = taskgrad_web::demo::train(&gpu, &opts, &mut |_| epochs += 1)
        .await
        .unwrap();
    assert_eq!(
        epochs,
        5 * 4,
        "five epochs of the MTL run and of three baselines"
    );
    assert!(out.rows.iter().all(|r| r.mtl.is_finite()));
    assert!(out.delta_m.unwrap().is_finite());
}

/// The LeNet on a small MultiMNIST subset: convolutions, poolings and
/// both digits' towers train through WebGPU, readbacks awaited.
#[wasm_bindgen_test]
async fn the_demo_trains_the_lenet_on_multimnist() {
    let gpu = gpu().await;
    let opts = taskgrad_web::demo::Options::from_json(
        r#"{"dataset": "multimnist", "digits": 100, "method": "mgda", "epochs": 2}"#,
    )
    .unwrap();
    let mut epochs = 0;
    let out = taskgrad_web::demo::train(&gpu, &opts, &mut |_| epochs += 1)
        .await
        .unwrap();
    assert_eq!(
        epochs,
        2 * 3,
        "two epochs of the MTL run and of two baselines"
    );
    assert_eq!(out.rows.len(), 2);
    assert!(out
        .rows
        .iter()
        .all(|r| r.mtl.is_finite() && r.stl.unwrap().is_finite()));
    assert_eq!(out.test_rows, 20);
}

/// Every method and every architecture trains in the browser (two epochs
/// each, no baselines): each method's WGSL solve compiles and runs on this
/// adapter and the losses stay finite.
#[wasm_bindgen_test]
async fn every_method_and_every_architecture_trains_here() {
    let gpu = gpu().await;
    let runs = taskgrad::mtl::REGISTRY
        .iter()
        .map(|m| (m.name, "shared"))
        .chain(["omoe", "mmoe", "cgc", "ple"].map(|a| ("equal", a)));
    for (method, arch) in runs {
        let opts = taskgrad_web::demo::Options {
            method: method.into(),
            arch: arch.into(),
            epochs: 2,
            baselines: false,
            ..Default::default()
        };
        let mut losses = Vec::new();
        let out = taskgrad_web::demo::train(&gpu, &opts, &mut |p| {
            losses.extend(p.train_loss.iter().copied())
        })
        .await
        .unwrap_or_else(|e| panic!("{method} on {arch}: {e}"));
        assert!(
            losses.len() == 6 && losses.iter().all(|l| l.is_finite()),
            "{method} on {arch}: {losses:?}"
        );
        assert!(
            out.rows.iter().all(|r| r.mtl.is_finite()),
            "{method} on {arch}"
        );
    }
}

/// A blocking call says it cannot work here rather than hanging the page,
/// and f16 is refused cleanly on an adapter without shader-f16.
#[wasm_bindgen_test]
async fn blocking_readback_and_missing_f16_are_refused_with_a_reason() {
    let gpu = gpu().await;
    let t = up(&gpu, &[2], &[1.0, 2.0]);
    let err = gpu.read_one(&t).unwrap_err().to_string();
    assert!(err.contains("read_async"), "{err}");
    if !gpu.has_f16() {
        let opts = taskgrad_web::demo::Options {
            half: true,
            epochs: 1,
            baselines: false,
            ..Default::default()
        };
        let err = taskgrad_web::demo::train(&gpu, &opts, &mut |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.to_lowercase().contains("f16"), "{err}");
    }
}
