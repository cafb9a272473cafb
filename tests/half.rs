//! Half precision: casts and the f16 matmul (f32 accumulation) against the CPU
//! reference, with stated f16 tolerances; without `SHADER_F16` every f16 kernel
//! must refuse with `Error::MissingFeature` (never a shader compile failure).

mod common;

use common::{assert_close, random, rng};
use taskgrad::kernels::matmul_f16::{matmul_f16, to_f16, to_f32};
use taskgrad::reference as cpu;
use taskgrad::{Error, Tensor};

fn round16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

#[test]
fn f16_kernels_refuse_cleanly_without_the_feature() {
    let gpu = gpu_or_skip!();
    let a = Tensor::from_f16(gpu, &[2, 3], &[1.0; 6], "a").unwrap();
    let b = Tensor::from_f16(gpu, &[3, 2], &[1.0; 6], "b").unwrap();
    let c = Tensor::zeros(gpu, &[2, 2], "c").unwrap();
    let got = matmul_f16(gpu, &a, &b, &c, false, false, None, false);
    if gpu.has_f16() {
        gpu.run(&[&got.unwrap()]).unwrap();
        assert_eq!(gpu.read_one(&c).unwrap(), vec![3.0; 4]);
    } else {
        assert!(
            matches!(
                got,
                Err(Error::MissingFeature {
                    feature: "SHADER_F16",
                    ..
                })
            ),
            "{:?}",
            got.err()
        );
        let x = Tensor::zeros(gpu, &[4], "x").unwrap();
        assert!(matches!(
            to_f16(gpu, &x, &a),
            Err(Error::MissingFeature { .. })
        ));
    }
}

#[test]
fn casts_round_to_nearest_f16_and_back_exactly() {
    let gpu = gpu_or_skip!();
    if !gpu.has_f16() {
        eprintln!(
            "adapter without SHADER_F16: covered by f16_kernels_refuse_cleanly_without_the_feature"
        );
        return;
    }
    let mut r = rng(41);
    for &n in &[1usize, 3, 257, 1001] {
        // Values across f16's range, including ones that need rounding.
        let x: Vec<f32> = random(&mut r, n)
            .iter()
            .enumerate()
            .map(|(i, v)| v * 10f32.powi((i % 7) as i32 - 3))
            .collect();
        let gx = Tensor::from_slice(gpu, &[n], &x, "x").unwrap();
        let h = Tensor::zeros_f16(gpu, &[n], "h").unwrap();
        let back = Tensor::zeros(gpu, &[n], "back").unwrap();
        gpu.run(&[
            &to_f16(gpu, &gx, &h).unwrap(),
            &to_f32(gpu, &h, &back).unwrap(),
        ])
        .unwrap();
        // The GPU's rounding must be the host's (the `half` crate): round to nearest even.
        assert_close(
            &format!("f16 round trip n={n}"),
            &gpu.read_one(&back).unwrap(),
            &round16(&x),
            0.0,
            0.0,
        );
        assert_close(
            &format!("read_f16 n={n}"),
            &gpu.read_f16(&[&h]).unwrap()[0],
            &round16(&x),
            0.0,
            0.0,
        );
    }
}

#[test]
fn matmul_f16_against_reference_awkward_shapes() {
    // Tolerances: against the f32 product of the f16-rounded inputs, only f32
    // accumulation error (1e-5·K); against the original f32 inputs, the rounding
    // of both operands, |Δc_ij| ≤ 2·2⁻¹¹ Σ_k |a_ik b_kj| (+ the same f32 term).
    let gpu = gpu_or_skip!();
    if !gpu.has_f16() {
        eprintln!(
            "adapter without SHADER_F16: covered by f16_kernels_refuse_cleanly_without_the_feature"
        );
        return;
    }
    let mut r = rng(43);
    for &(m, k, n) in &[(1, 1, 1), (3, 17, 5), (63, 65, 17), (129, 33, 257)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (a, b, bias) = (
                random(&mut r, m * k),
                random(&mut r, k * n),
                random(&mut r, n),
            );
            let a_shape = if ta { [k, m] } else { [m, k] };
            let b_shape = if tb { [n, k] } else { [k, n] };
            let ga = Tensor::from_f16(gpu, &a_shape, &a, "a16").unwrap();
            let gb = Tensor::from_f16(gpu, &b_shape, &b, "b16").unwrap();
            let gbias = Tensor::from_slice(gpu, &[n], &bias, "bias").unwrap();
            let c = Tensor::zeros(gpu, &[m, n], "c").unwrap();
            gpu.run(&[&matmul_f16(gpu, &ga, &gb, &c, ta, tb, Some(&gbias), true).unwrap()])
                .unwrap();
            let got = gpu.read_one(&c).unwrap();
            let what = format!("matmul_f16 {m}x{k}x{n} ta={ta} tb={tb}");
            let exact16 = cpu::matmul(
                &round16(&a),
                &round16(&b),
                m,
                k,
                n,
                ta,
                tb,
                Some(&bias),
                true,
            );
            assert_close(
                &format!("{what} vs rounded inputs"),
                &got,
                &exact16,
                1e-5 * k as f32 + 1e-6,
                1e-5,
            );
            let exact32 = cpu::matmul(&a, &b, m, k, n, ta, tb, Some(&bias), true);
            let abs_a: Vec<f32> = a.iter().map(|v| v.abs()).collect();
            let abs_b: Vec<f32> = b.iter().map(|v| v.abs()).collect();
            let mag = cpu::matmul(&abs_a, &abs_b, m, k, n, ta, tb, None, false);
            for i in 0..m * n {
                let bound = 2.0 * 2f32.powi(-11) * mag[i] + 1e-5 * k as f32 + 1e-6;
                assert!(
                    (got[i] - exact32[i]).abs() <= bound,
                    "{what}: [{i}] {} vs {} (bound {bound})",
                    got[i],
                    exact32[i]
                );
            }
        }
    }
}

#[test]
fn f16_dtype_mismatches_are_shape_errors() {
    let gpu = gpu_or_skip!();
    if !gpu.has_f16() {
        return;
    }
    let a32 = Tensor::zeros(gpu, &[2, 2], "a").unwrap();
    let b16 = Tensor::from_f16(gpu, &[2, 2], &[0.0; 4], "b").unwrap();
    let c = Tensor::zeros(gpu, &[2, 2], "c").unwrap();
    assert!(matches!(
        matmul_f16(gpu, &a32, &b16, &c, false, false, None, false),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn both_matmul_kernels_check_options_the_same_way() {
    // One plan checks every product: what the f32 kernel refuses, the mixed one
    // refuses too (they had drifted: the f16 copy took bias with bias_grad).
    use taskgrad::kernels::matmul::{matmul, MatmulOptions};
    use taskgrad::kernels::matmul_f16::matmul_mixed;
    let gpu = gpu_or_skip!();
    let a = Tensor::zeros(gpu, &[2, 3], "a").unwrap();
    let b = Tensor::zeros(gpu, &[3, 2], "b").unwrap();
    let c = Tensor::zeros(gpu, &[2, 2], "c").unwrap();
    let bias = Tensor::zeros(gpu, &[2], "bias").unwrap();
    let db = Tensor::zeros(gpu, &[2], "db").unwrap();
    let both = MatmulOptions {
        bias: Some(&bias),
        bias_grad: Some(&db),
        ..Default::default()
    };
    assert!(matches!(
        matmul(gpu, &a, &b, &c, both),
        Err(Error::InvalidConfig(_))
    ));
    if gpu.has_f16() {
        let b16 = Tensor::from_f16(gpu, &[3, 2], &[0.0; 6], "b16").unwrap();
        assert!(matches!(
            matmul_mixed(gpu, &a, &b16, &c, both, (8, 8)),
            Err(Error::InvalidConfig(_))
        ));
        // The f32 kernel never takes f16 operands; it names the kernel that does.
        let got = matmul(gpu, &a, &b16, &c, MatmulOptions::default());
        assert!(
            matches!(&got, Err(Error::ShapeMismatch { .. })),
            "{:?}",
            got.err()
        );
    }
}

#[test]
fn cooperative_matrix_matmul_against_the_reference_where_the_adapter_has_it() {
    // C = op(A)·op(B) [+ bias] [ReLU] or C += op(A)·op(B) with A, B in f16 on
    // the tensor cores, against the f64 reference of the f16-rounded inputs.
    use taskgrad::kernels::matmul::MatmulOptions;
    use taskgrad::kernels::{matmul_coop, product};
    let gpu = gpu_or_skip!();
    if !gpu.has_coop_f16() {
        println!(
            "SKIPPED: {} offers no 16x16x16 f16 x f16 -> f32 cooperative matrices \
             (EXPERIMENTAL_COOPERATIVE_MATRIX); the tensor-core matmul was not run",
            gpu.report
        );
        return;
    }
    let mut r = rng(77);
    for &(m, k, n) in &[(64, 16, 64), (128, 48, 192), (192, 272, 64), (256, 96, 128)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = round16(&random(&mut r, m * k));
            let b = round16(&random(&mut r, k * n));
            let bias = random(&mut r, n);
            let c0 = random(&mut r, m * n);
            let a_shape = if ta { [k, m] } else { [m, k] };
            let b_shape = if tb { [n, k] } else { [k, n] };
            let ga = Tensor::from_f16(gpu, &a_shape, &a, "a").unwrap();
            let gb = Tensor::from_f16(gpu, &b_shape, &b, "b").unwrap();
            let gbias = Tensor::from_slice(gpu, &[n], &bias, "bias").unwrap();
            let tol = 1e-4 * k as f32;
            for (use_bias, relu, acc) in [
                (false, false, false),
                (true, true, false),
                (false, false, true),
            ] {
                let c = Tensor::from_slice(gpu, &[m, n], &c0, "c").unwrap();
                let opts = MatmulOptions {
                    trans_a: ta,
                    trans_b: tb,
                    bias: use_bias.then_some(&gbias),
                    relu,
                    accumulate: acc,
                    ..Default::default()
                };
                assert!(matmul_coop::supports(gpu, &ga, &gb, &c, &opts));
                let mut variants = vec![matmul_coop::CoopVariant::Direct];
                if matmul_coop::staged_fits(gpu, m, n, k) {
                    variants.push(matmul_coop::CoopVariant::Staged);
                }
                for variant in variants {
                    let c = Tensor::from_slice(gpu, &[m, n], &c0, "c").unwrap();
                    let d = matmul_coop::matmul_coop_variant(gpu, &ga, &gb, &c, opts, variant);
                    gpu.run(&[&d.unwrap()]).unwrap();
                    let mut want =
                        cpu::matmul(&a, &b, m, k, n, ta, tb, use_bias.then_some(&bias[..]), relu);
                    if acc {
                        want = cpu::add(&c0, &want);
                    }
                    let what = format!("coop {variant:?} m={m} k={k} n={n} ta={ta} tb={tb} bias={use_bias} relu={relu} acc={acc}");
                    assert_close(&what, &gpu.read_one(&c).unwrap(), &want, tol, 1e-3);
                }
                gpu.run(&[&matmul_coop::matmul_coop(gpu, &ga, &gb, &c, opts).unwrap()])
                    .unwrap();
                let mut want =
                    cpu::matmul(&a, &b, m, k, n, ta, tb, use_bias.then_some(&bias[..]), relu);
                if acc {
                    want = cpu::add(&c0, &want);
                }
                let what = format!(
                    "coop m={m} k={k} n={n} ta={ta} tb={tb} bias={use_bias} relu={relu} acc={acc}"
                );
                assert_close(&what, &gpu.read_one(&c).unwrap(), &want, tol, 1e-3);
            }
        }
    }
    // A shape the tensor cores do not take goes to the mixed-precision kernel, still right.
    let (m, k, n) = (65, 17, 63);
    let (a, b) = (
        round16(&random(&mut r, m * k)),
        round16(&random(&mut r, k * n)),
    );
    let ga = Tensor::from_f16(gpu, &[m, k], &a, "a").unwrap();
    let gb = Tensor::from_f16(gpu, &[k, n], &b, "b").unwrap();
    let c = Tensor::zeros(gpu, &[m, n], "c").unwrap();
    assert!(!matmul_coop::supports(
        gpu,
        &ga,
        &gb,
        &c,
        &MatmulOptions::default()
    ));
    let ds = product(gpu, &ga, &gb, &c, MatmulOptions::default()).unwrap();
    gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
    let want = cpu::matmul(&a, &b, m, k, n, false, false, None, false);
    assert_close(
        "fallback 65x17x63",
        &gpu.read_one(&c).unwrap(),
        &want,
        1e-4 * k as f32,
        1e-3,
    );
}

// ---- training in half precision ----------------------------------------------------

use taskgrad::mtl::{self, GradSpace};
use taskgrad::nn::{MultiTaskNet, NetSpec, ParamBuilder};
use taskgrad::optim::OptimizerConfig;
use taskgrad::train::step::{Program, StepOptions};
use taskgrad::train::{fit, TrainConfig};

/// Gradients of one step (no optimizer) on 32 Iris rows, f32 or half precision,
/// same initial weights.
fn iris_grads(gpu: &taskgrad::Gpu, half: bool, space: Option<GradSpace>) -> Vec<f32> {
    let (data, split) = common::iris(0);
    let spec = NetSpec {
        inputs: 2,
        image: None,
        trunk: vec![32, 32],
        tower: vec![16],
        trunk_layers: vec![],
        embeddings: vec![],
        tower_layers: vec![],
        expert_layers: vec![],
        outputs: vec![3, 1, 1],
        head_names: vec!["s".into(), "l".into(), "w".into()],
        activation: Default::default(),
        arch: Default::default(),
    };
    let mut b = if half {
        ParamBuilder::new_half(gpu)
    } else {
        ParamBuilder::new(gpu)
    };
    let net = MultiTaskNet::new(&mut b, spec, 7).unwrap();
    let params = b.build(gpu).unwrap();
    let mut method = mtl::Equal;
    let opts = StepOptions {
        fused: true,
        half,
        ..Default::default()
    };
    let prog = Program::build_with(
        gpu,
        &net,
        &params,
        &data.tasks,
        2,
        32,
        &mut method,
        space,
        OptimizerConfig::default(),
        opts,
    )
    .unwrap();
    prog.write_batch(gpu, &data, &split.train[..32], &[0, 1, 2])
        .unwrap();
    let mut ds = prog.train_dispatches();
    ds.pop();
    gpu.run(&ds).unwrap();
    // Compare per parameter, in the f32 layout's order (the layouts' paddings differ).
    let grads = params.grads().unwrap().read(gpu).unwrap();
    params
        .grads()
        .unwrap()
        .layout
        .entries()
        .iter()
        .flat_map(|(_, s, shape)| grads[*s..*s + shape.iter().product::<usize>()].to_vec())
        .collect()
}

#[test]
fn half_precision_step_gradients_match_f32() {
    // Tolerance: hidden activations and weights are rounded to f16 (relative 2⁻¹¹
    // each, through three layers and a tower), the products accumulate in f32:
    // |g16 − g32| ≤ 4e-3·max|g32| + 1e-2·|g32| (measured: 4.8e-4·max).
    let gpu = gpu_or_skip!();
    if !gpu.has_f16() {
        let (data, split) = common::iris(0);
        let cfg = TrainConfig {
            epochs: 1,
            half: true,
            ..Default::default()
        };
        let err = fit(
            gpu,
            &data,
            &split,
            &[0, 1, 2],
            mtl::by_name("equal").unwrap(),
            &cfg,
            &mut |_| {},
        )
        .err();
        assert!(
            matches!(
                err,
                Some(Error::MissingFeature {
                    feature: "SHADER_F16",
                    ..
                })
            ),
            "{err:?}"
        );
        return;
    }
    for space in [None, Some(GradSpace::Parameters)] {
        let g32 = iris_grads(gpu, false, space);
        let g16 = iris_grads(gpu, true, space);
        let scale = g32.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0);
        assert_close(
            &format!("half-precision gradients, space {space:?}"),
            &g16,
            &g32,
            4e-3 * scale,
            1e-2,
        );
        assert!(
            g16.iter().zip(&g32).any(|(a, b)| a != b),
            "f16 path must actually differ from f32"
        );
        let worst = g16
            .iter()
            .zip(&g32)
            .map(|(a, b)| (a - b).abs() / scale)
            .fold(0.0f32, f32::max);
        println!("space {space:?}: largest |g16 - g32| / max|g32| = {worst:.2e}");
    }
}

#[test]
fn half_precision_training_learns_iris() {
    let gpu = gpu_or_skip!();
    if !gpu.has_f16() {
        return; // covered by half_precision_step_gradients_match_f32's MissingFeature branch
    }
    let (data, split) = common::iris(1);
    let cfg = TrainConfig {
        epochs: 60,
        half: true,
        trunk: vec![32, 32],
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
    let accuracy = run.test[0].get("accuracy").unwrap();
    assert!(accuracy > 0.55, "accuracy {accuracy}");
    for m in &run.test[1..] {
        let r2 = m.get("r2").unwrap();
        assert!(r2 > 0.0, "R² {r2}");
    }
}

#[test]
fn a_residual_block_runs_in_f32_inside_a_half_precision_trunk() {
    // In half precision a block reading f32 (first in the trunk) runs in f32
    // and trains; one reading a linear+relu's f16 output is refused, with the reason.
    let gpu = gpu_or_skip!();
    if !gpu.has_f16() {
        return; // the half-precision step itself is refused: the test above
    }
    let (data, split) = common::iris(0);
    let run = |trunk: &str| {
        let cfg = TrainConfig {
            epochs: 2,
            half: true,
            trunk: vec![],
            trunk_layers: taskgrad::nn::LayerSpec::parse_list(trunk).unwrap(),
            ..Default::default()
        };
        fit(
            gpu,
            &data,
            &split,
            &[0, 1, 2],
            mtl::by_name("equal").unwrap(),
            &cfg,
            &mut |_| {},
        )
    };
    let ok = run("res(linear:8,relu,linear:2),linear:16,relu").unwrap();
    assert!(ok
        .history
        .iter()
        .all(|e| e.train_loss.iter().all(|l| l.is_finite())));
    let e = run("linear:16,relu,res(linear:16,relu,linear:16)")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("res reads f16 activations"), "{e}");
}
