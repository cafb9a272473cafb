//! The crate's layers with kernels of their own (`nn::layer::layer_norm`,
//! `nn::layer::dropout`), each as a unit: its kernels against its CPU twins
//! on awkward shapes (one column, sizes off the workgroup), its tape op
//! against central finite differences (tests/common/fd.rs), and dropout's
//! two behaviours (a fresh mask each training step; the identity at
//! evaluation). A trunk of these layers through the CLI is in tests/cli.rs.

mod common;

use common::fd::{check, fixture, loss_buffers, ones, upload};
use common::{assert_close, random, rng};
use taskgrad::nn::layer::{dropout, layer_norm};
use taskgrad::reference as cpu;
use taskgrad::Tape;

fn zeros(gpu: &taskgrad::Gpu, shape: &[usize]) -> taskgrad::Tensor {
    taskgrad::Tensor::zeros(gpu, shape, "test output").expect("alloc")
}

#[test]
fn layer_norm_hand_checked() {
    let gpu = gpu_or_skip!();
    // One row x = [1, 2, 3, 4]: μ = 2.5, σ² = 1.25, x̂ = (x − 2.5)/√(1.25 + 1e-5);
    // γ = [1, 1, 2, 2], β = [0, 0, 0, 1]: y = [x̂0, x̂1, 2x̂2, 2x̂3 + 1].
    let x = upload(gpu, &[1, 4], &[1., 2., 3., 4.]);
    let gamma = upload(gpu, &[4], &[1., 1., 2., 2.]);
    let beta = upload(gpu, &[4], &[0., 0., 0., 1.]);
    let (y, stats) = (zeros(gpu, &[1, 4]), zeros(gpu, &[1, 2]));
    gpu.run(&[&layer_norm::forward(gpu, &x, &gamma, &beta, &y, &stats).unwrap()])
        .unwrap();
    let got = gpu.read(&[&y, &stats]).unwrap();
    let r = 1.0 / (1.25f32 + 1e-5).sqrt();
    let want = [-1.5 * r, -0.5 * r, 2.0 * 0.5 * r, 2.0 * 1.5 * r + 1.0];
    assert_close("layer_norm y", &got[0], &want, 1e-6, 1e-5);
    assert_close("layer_norm stats", &got[1], &[2.5, r], 1e-6, 1e-5);
}

#[test]
fn layer_norm_forward_and_backward_against_reference() {
    let gpu = gpu_or_skip!();
    let mut r = rng(23);
    for &b in &[1usize, 3, 17, 65, 257] {
        for &h in &[1usize, 2, 17, 64, 129] {
            let xs: Vec<f32> = random(&mut r, b * h)
                .iter()
                .map(|v| 3.0 * v + 0.5)
                .collect();
            let (g, be, dy) = (random(&mut r, h), random(&mut r, h), random(&mut r, b * h));
            let (x, gamma, beta) = (
                upload(gpu, &[b, h], &xs),
                upload(gpu, &[h], &g),
                upload(gpu, &[h], &be),
            );
            let (y, stats) = (zeros(gpu, &[b, h]), zeros(gpu, &[b, 2]));
            let dyt = upload(gpu, &[b, h], &dy);
            let at = layer_norm::beta_at(gpu, h);
            let (dx, dparams) = (zeros(gpu, &[b, h]), zeros(gpu, &[at + h]));
            let ds = [
                layer_norm::forward(gpu, &x, &gamma, &beta, &y, &stats).unwrap(),
                layer_norm::backward_input(gpu, &dyt, &x, &gamma, &stats, &dx).unwrap(),
                layer_norm::backward_params(gpu, &dyt, &x, &stats, &dparams).unwrap(),
            ];
            gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
            let got = gpu.read(&[&y, &dx, &dparams]).unwrap();
            let eps = layer_norm::EPS;
            let (wy, _) = layer_norm::reference(&xs, &g, &be, b, h, eps);
            let (wdx, wdg, wdb) = layer_norm::reference_backward(&dy, &xs, &g, b, h, eps);
            let what = format!("layer_norm b={b} h={h}");
            assert_close(&format!("{what} y"), &got[0], &wy, 1e-5, 1e-4);
            // With one column every x̂ is 0: dx is 0 and the tolerance absolute.
            assert_close(&format!("{what} dx"), &got[1], &wdx, 1e-4, 1e-3);
            assert_close(&format!("{what} dgamma"), &got[2][..h], &wdg, 1e-4, 1e-4);
            assert_close(&format!("{what} dbeta"), &got[2][at..], &wdb, 1e-4, 1e-4);
        }
    }
}

#[test]
fn dropout_masks_match_the_reference_and_change_with_the_step() {
    let gpu = gpu_or_skip!();
    let mut r = rng(29);
    for &n in &[1usize, 3, 257, 10_000] {
        let xs = random(&mut r, n);
        let x = upload(gpu, &[n], &xs);
        let step = taskgrad::Tensor::from_u32(gpu, &[1], &[0], "step").unwrap();
        let (y0, y1) = (zeros(gpu, &[n]), zeros(gpu, &[n]));
        let (seed, rate) = (1234u32, 0.3f32);
        // Step 0's mask, the counter advanced, step 1's mask: one submit, in order.
        let ds = [
            dropout::masked(gpu, &x, &y0, &step, seed, rate).unwrap(),
            taskgrad::kernels::step_counter::advance(gpu, &step).unwrap(),
            dropout::masked(gpu, &x, &y1, &step, seed, rate).unwrap(),
        ];
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        let got = gpu.read(&[&y0, &y1]).unwrap();
        assert_eq!(gpu.read_u32(&[&step]).unwrap()[0], vec![1]);
        for (t, y) in got.iter().enumerate() {
            let want = dropout::reference(&xs, seed, t as u32, rate);
            assert_close(&format!("dropout n={n} step {t}"), y, &want, 1e-7, 1e-6);
        }
        if n == 10_000 {
            let kept = |y: &[f32]| y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
            for y in &got {
                assert!((kept(y) - 0.7).abs() < 0.02, "kept {}", kept(y));
            }
            let same = got[0]
                .iter()
                .zip(&got[1])
                .filter(|(a, b)| (**a != 0.0) == (**b != 0.0))
                .count();
            assert!(
                same < 9_000,
                "the mask did not change with the step ({same} of {n} alike)"
            );
        }
    }
    // A rate outside [0, 1) is refused.
    let x = upload(gpu, &[2], &[1., 2.]);
    let step = taskgrad::Tensor::from_u32(gpu, &[1], &[0], "step").unwrap();
    assert!(dropout::masked(gpu, &x, &zeros(gpu, &[2]), &step, 0, 1.0).is_err());
}

#[test]
fn layer_norm_of_a_parameter_with_scale_and_shift() {
    let gpu = gpu_or_skip!();
    // L = mse(layer_norm(x; γ, β), t), x (4×5), γ, β (5) all parameters.
    let (b, h) = (4, 5);
    let (fx, ids) = fixture(
        gpu,
        &[("x", vec![b, h]), ("gamma", vec![h]), ("beta", vec![h])],
        53,
    );
    let target = random(&mut rng(54), b * h);
    let (seeds, losses) = loss_buffers(gpu, 1.0);
    let mut tape = Tape::new(gpu);
    let vars: Vec<_> = ids
        .iter()
        .map(|&id| fx.params.var(&mut tape, id).unwrap())
        .collect();
    let y = layer_norm::op(&mut tape, vars[0], vars[1], vars[2]).unwrap();
    let mask = upload(gpu, &[b], &[1.0; 4]);
    let l = tape
        .mse(y, &upload(gpu, &[b, h], &target), &mask, &seeds, &losses, 0)
        .unwrap();
    tape.backward(&[l]).unwrap();
    let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "layer_norm", |p| {
        let (y, _) = layer_norm::reference(&p[0], &p[1], &p[2], b, h, 1e-5);
        cpu::mse(&y, &t64, &ones(b), b, h, 1.0).0
    });
}

#[test]
fn dropout_while_training_and_identity_at_evaluation() {
    let gpu = gpu_or_skip!();
    // L = mse(dropout(x), t) at rate 0.4 on step 0 of seed 77: the gradient
    // is the kept elements' dy / 0.6, zero elsewhere.
    let n = 12;
    let (fx, ids) = fixture(gpu, &[("x", vec![1, n])], 55);
    let target = random(&mut rng(56), n);
    let (seeds, losses) = loss_buffers(gpu, 1.0);
    let mut tape = Tape::new(gpu);
    tape.training = true;
    let x = fx.params.var(&mut tape, ids[0]).unwrap();
    let y = dropout::op(&mut tape, x, 0.4, 77).unwrap();
    let l = tape
        .mse(
            y,
            &upload(gpu, &[1, n], &target),
            &upload(gpu, &[1], &[1.0]),
            &seeds,
            &losses,
            0,
        )
        .unwrap();
    tape.backward(&[l]).unwrap();
    let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "dropout", |p| {
        cpu::mse(
            &dropout::reference(&p[0], 77, 0, 0.4),
            &t64,
            &[1.0],
            1,
            n,
            1.0,
        )
        .0
    });
    // At evaluation the layer is the identity: no node, no dispatch.
    let mut eval = Tape::new(gpu);
    let x = eval.input(&upload(gpu, &[1, n], &target));
    assert_eq!(dropout::op(&mut eval, x, 0.4, 77).unwrap(), x);
    assert!(eval.forward.is_empty());
}

#[test]
fn augmented_images_match_the_reference_change_with_the_step_and_the_backward_is_the_transpose() {
    use taskgrad::nn::layer::augment::{self, Augment};
    use taskgrad::nn::layer::Image;
    let gpu = gpu_or_skip!();
    let mut r = rng(31);
    // Awkward sizes: 3 images of 5×7 with 2 channels; one of 1×9×1.
    for (b, image, how) in [
        (
            3,
            Image::new(5, 7, 2).unwrap(),
            Augment {
                shift: 2,
                flip: true,
                seed: 9,
            },
        ),
        (
            4,
            Image::new(1, 9, 1).unwrap(),
            Augment {
                shift: 3,
                flip: false,
                seed: 10,
            },
        ),
        (
            8,
            Image::new(4, 3, 3).unwrap(),
            Augment {
                shift: 0,
                flip: true,
                seed: 11,
            },
        ),
    ] {
        let n = b * image.len();
        let xs = random(&mut r, n);
        let dys = random(&mut r, n);
        let (x, dy) = (upload(gpu, &[n], &xs), upload(gpu, &[n], &dys));
        let step = taskgrad::Tensor::from_u32(gpu, &[1], &[0], "step").unwrap();
        let ys = [zeros(gpu, &[n]), zeros(gpu, &[n])];
        let dxs = [zeros(gpu, &[n]), zeros(gpu, &[n])];
        let mut ds = Vec::new();
        for t in 0..2 {
            ds.push(augment::shift_flip(gpu, &x, &ys[t], &step, image, how, false).unwrap());
            ds.push(augment::shift_flip(gpu, &dy, &dxs[t], &step, image, how, true).unwrap());
            ds.push(taskgrad::kernels::step_counter::advance(gpu, &step).unwrap());
        }
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        let got = gpu.read(&[&ys[0], &ys[1], &dxs[0], &dxs[1]]).unwrap();
        for t in 0..2 {
            let what = format!("augment {image} {how:?} step {t}");
            let want = augment::reference(&xs, image, how, t as u32, false);
            assert_close(&what, &got[t], &want, 0.0, 0.0);
            let want = augment::reference(&dys, image, how, t as u32, true);
            assert_close(&format!("{what} backward"), &got[2 + t], &want, 0.0, 0.0);
            // The backward is the forward's transpose: <A x, dy> = <x, Aᵀ dy>.
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum::<f64>();
            let (lhs, rhs) = (dot(&got[t], &dys), dot(&xs, &got[2 + t]));
            assert!(
                (lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()),
                "{what}: {lhs} vs {rhs}"
            );
        }
        assert_ne!(got[0], got[1], "{image}: step 1 drew what step 0 drew");
        assert_ne!(got[0], xs, "{image}: nothing moved");
    }
    // The draws cover every offset and both flips, each image its own.
    let how = Augment {
        shift: 2,
        flip: true,
        seed: 5,
    };
    let mut seen = std::collections::HashSet::new();
    for b in 0..400 {
        seen.insert(augment::draws(b, how, 0));
    }
    assert_eq!(seen.len(), 5 * 5 * 2);
}

#[test]
fn augmentation_trains_on_moved_images_and_evaluation_sees_the_originals() {
    use taskgrad::nn::layer::Image;
    use taskgrad::nn::{LayerSpec, MultiTaskNet, NetSpec, ParamBuilder};
    let gpu = gpu_or_skip!();
    let image = Image::new(6, 6, 1).unwrap();
    let (b, d) = (4, image.len());
    let spec = NetSpec {
        inputs: d,
        image: Some(image),
        embeddings: vec![],
        trunk: vec![],
        tower: vec![],
        trunk_layers: LayerSpec::parse_list("shift:2,flip,flatten").unwrap(),
        tower_layers: vec![],
        expert_layers: vec![],
        outputs: vec![2],
        head_names: vec!["t".into()],
        activation: Default::default(),
        arch: Default::default(),
    };
    let xs = random(&mut rng(3), b * d);
    // The trunk's output (the images as the head reads them) for a net of `seed`.
    let trunk_out = |seed: u64, training: bool| {
        let mut builder = ParamBuilder::new(gpu);
        let net = MultiTaskNet::new(&mut builder, spec.clone(), seed).unwrap();
        let params = builder.build(gpu).unwrap();
        let mut tape = Tape::new(gpu);
        tape.training = training;
        let x = tape.input(&upload(gpu, &[b, d], &xs));
        let z = net.trunk_forward(&mut tape, &params, x).unwrap();
        let ds: Vec<_> = tape.forward.iter().collect();
        gpu.run(&ds).unwrap();
        gpu.read(&[tape.value(z)]).unwrap().remove(0)
    };
    let (a, again, other) = (trunk_out(1, true), trunk_out(1, true), trunk_out(2, true));
    assert_eq!(a, again, "the same seed must give the same images");
    assert_ne!(a, other, "another seed draws other images");
    assert_ne!(a, xs, "training saw the original images");
    assert_eq!(
        trunk_out(1, false),
        xs,
        "evaluation must see the original images"
    );
}

#[test]
fn augmentation_gradient_against_finite_differences() {
    use taskgrad::nn::layer::augment::{self, Augment};
    use taskgrad::nn::layer::Image;
    let gpu = gpu_or_skip!();
    // L = mse(augment(x), t) on step 0: 3 images of 4×5×2, shift 1, flips.
    let image = Image::new(4, 5, 2).unwrap();
    let how = Augment {
        shift: 1,
        flip: true,
        seed: 21,
    };
    let n = 3 * image.len();
    let (fx, ids) = fixture(gpu, &[("x", vec![1, n])], 57);
    let target = random(&mut rng(58), n);
    let (seeds, losses) = loss_buffers(gpu, 1.0);
    let mut tape = Tape::new(gpu);
    tape.training = true;
    let x = fx.params.var(&mut tape, ids[0]).unwrap();
    let y = augment::op(&mut tape, x, image, how).unwrap();
    let t = upload(gpu, &[1, n], &target);
    let l = tape
        .mse(y, &t, &upload(gpu, &[1], &[1.0]), &seeds, &losses, 0)
        .unwrap();
    tape.backward(&[l]).unwrap();
    let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "augment", |p| {
        let y = augment::reference(&p[0], image, how, 0, false);
        cpu::mse(&y, &t64, &[1.0], 1, n, 1.0).0
    });
}

#[test]
fn branch_choice_matches_its_twin_and_its_gradient_is_the_soft_choices() {
    // Learning to Branch's parent choice (`nn::branch`) on 5 rows of K = 7
    // logits (off the workgroup size): the one-hot choice and the soft
    // choice against the CPU twin while training (noise), at evaluation (the
    // argmax) and in warm-up (all ones); the backward against its twin and
    // against central differences of Σ_j dy_j s_j(l), the soft function the
    // straight-through estimator differentiates.
    use taskgrad::nn::branch::{self, Schedule};
    let gpu = gpu_or_skip!();
    let (r, k) = (5, 7);
    let mut g = rng(81);
    let logits = random(&mut g, r * k);
    let dy = random(&mut g, r * k);
    let l64: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    let dy64: Vec<f64> = dy.iter().map(|&v| v as f64).collect();
    let step = taskgrad::Tensor::from_u32(gpu, &[1], &[3], "step").unwrap();
    let (lv, dyv) = (upload(gpu, &[r, k], &logits), upload(gpu, &[r, k], &dy));
    for (schedule, training) in [
        (Schedule::at(4, 60), true),
        (Schedule::at(4, 60), false),
        (Schedule::at(0, 200), true),
    ] {
        let sched = upload(gpu, &[2], &schedule.values());
        let (y, s, dl) = (
            zeros(gpu, &[r, k]),
            zeros(gpu, &[r, k]),
            zeros(gpu, &[r, k]),
        );
        let fwd = branch::forward(gpu, &lv, &y, &s, &sched, &step, 9, training).unwrap();
        let bwd = branch::backward(gpu, &s, &dyv, &sched, &dl).unwrap();
        gpu.run(&[&fwd, &bwd]).unwrap();
        let got = gpu.read(&[&y, &s, &dl]).unwrap();
        let (want_y, want_s) = branch::reference(&l64, k, schedule, 9, 3, training);
        let what = format!("{schedule:?} training {training}");
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        assert_eq!(got[0], f32s(&want_y), "{what}: choices");
        assert_close(
            &format!("{what}: soft"),
            &got[1],
            &f32s(&want_s),
            1e-6,
            1e-5,
        );
        let want_dl = branch::reference_backward(&want_s, &dy64, k, schedule);
        assert_close(&format!("{what}: dl"), &got[2], &f32s(&want_dl), 1e-6, 1e-5);
        if schedule.warm {
            assert!(got[0].iter().all(|&v| v == 1.0) && got[2].iter().all(|&v| v == 0.0));
            continue;
        }
        assert!(got[0].chunks(k).all(|row| row.iter().sum::<f32>() == 1.0));
        if training {
            // dl is the derivative of Σ dy·s, s = softmax((l + g)/τ) with the noise held.
            let soft_dot = |l: &[f64]| -> f64 {
                let s = branch::reference(l, k, schedule, 9, 3, true).1;
                s.iter().zip(&dy64).map(|(a, b)| a * b).sum()
            };
            let h = 1e-6;
            for i in 0..r * k {
                let (mut plus, mut minus) = (l64.clone(), l64.clone());
                plus[i] += h;
                minus[i] -= h;
                let fd = (soft_dot(&plus) - soft_dot(&minus)) / (2.0 * h);
                assert!(
                    (got[2][i] as f64 - fd).abs() <= 1e-5 + 1e-3 * fd.abs(),
                    "{what}: dl[{i}] {} vs finite differences {fd}",
                    got[2][i]
                );
            }
        }
    }
}
