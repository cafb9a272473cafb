//! Every tape op's backward rule (a task kind's or a layer's own op is
//! checked beside its unit's other tests: tests/tasks.rs, tests/nn_layers.rs)
//! against central finite differences of the
//! same computation done in f64 with the CPU reference, and the same check for
//! a whole three-task network (trunk, towers, one classification head, two
//! regression heads, per-task loss weights).
//!
//! Finite differences: dL/dθ_i ≈ (L(θ + h e_i) - L(θ - h e_i)) / 2h with h = 1e-5 in f64;
//! the GPU gradient (f32) must match within atol 2e-4 + rtol 2e-3.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::fd::{check, check_where, f32s, fixture, loss_buffers, ones, upload, Fixture, P};
use common::{random, rng};
use taskgrad::nn::{Activation, Arch, MultiTaskNet, NetSpec, ParamBuilder};
use taskgrad::reference as cpu;
use taskgrad::{Gpu, Tape, Tensor};

#[test]
fn linear_without_and_with_relu() {
    let gpu = gpu_or_skip!();
    // L = mse(x·W + b [relu], t), x (5×3) is a parameter too so dx is checked;
    // with the ReLU mask and bias gradient fused into the matmuls, and unfused.
    // The third form writes dz out but keeps the bias gradient in the dW product
    // (what large layers do).
    for (relu, fuse, mask_limit) in [
        (false, true, usize::MAX),
        (true, true, usize::MAX),
        (true, true, 0),
        (false, false, usize::MAX),
        (true, false, usize::MAX),
    ] {
        let (b, d, h) = (5, 3, 4);
        let (fx, ids) = fixture(
            gpu,
            &[("x", vec![b, d]), ("w", vec![d, h]), ("b", vec![h])],
            1 + relu as u64,
        );
        let t = random(&mut rng(9), b * h);
        let (seeds, losses) = loss_buffers(gpu, 1.0);
        let mut tape = Tape::new(gpu);
        tape.fuse = fuse;
        tape.fuse_mask_max_macs = mask_limit;
        let (x, w, bb) = (
            fx.params.var(&mut tape, ids[0]).unwrap(),
            fx.params.var(&mut tape, ids[1]).unwrap(),
            fx.params.var(&mut tape, ids[2]).unwrap(),
        );
        let y = tape.linear(x, w, bb, relu).unwrap();
        let (tt, mask) = (upload(gpu, &[b, h], &t), upload(gpu, &[b], &[1.0; 5]));
        let l = tape.mse(y, &tt, &mask, &seeds, &losses, 0).unwrap();
        tape.backward(&[l]).unwrap();
        let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
        check(
            gpu,
            &tape,
            &fx,
            &format!("linear relu={relu} fuse={fuse} mask limit {mask_limit}"),
            |p| {
                let y = cpu::matmul(&p[0], &p[1], b, d, h, false, false, Some(&p[2]), relu);
                cpu::mse(&y, &t64, &ones(b), b, h, 1.0).0
            },
        );
    }
}

#[test]
fn matmul_all_transposes() {
    let gpu = gpu_or_skip!();
    let (m, k, n) = (3, 4, 2);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a_shape = if ta { vec![k, m] } else { vec![m, k] };
        let b_shape = if tb { vec![n, k] } else { vec![k, n] };
        let (fx, ids) = fixture(
            gpu,
            &[("a", a_shape), ("b", b_shape)],
            20 + ta as u64 * 2 + tb as u64,
        );
        let t = random(&mut rng(21), m * n);
        let (seeds, losses) = loss_buffers(gpu, 1.0);
        let mut tape = Tape::new(gpu);
        let (a, bv) = (
            fx.params.var(&mut tape, ids[0]).unwrap(),
            fx.params.var(&mut tape, ids[1]).unwrap(),
        );
        let y = tape.matmul(a, bv, ta, tb).unwrap();
        let l = tape
            .mse(
                y,
                &upload(gpu, &[m, n], &t),
                &upload(gpu, &[m], &[1.0; 3]),
                &seeds,
                &losses,
                0,
            )
            .unwrap();
        tape.backward(&[l]).unwrap();
        let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
        check(gpu, &tape, &fx, &format!("matmul ta={ta} tb={tb}"), |p| {
            let y = cpu::matmul(&p[0], &p[1], m, k, n, ta, tb, None, false);
            cpu::mse(&y, &t64, &ones(m), m, n, 1.0).0
        });
    }
}

#[test]
fn relu_scale_add_with_reuse_and_sum() {
    let gpu = gpu_or_skip!();
    // y = relu(x) + 0.5·x + x  (x used three times: gradients must accumulate)
    // L = mse(sum(y), t) + mse(y, u)   (two losses on one graph)
    let n = 7;
    let (fx, ids) = fixture(gpu, &[("x", vec![1, n])], 30);
    let u = random(&mut rng(31), n);
    let seeds = upload(gpu, &[2], &[1.0, 1.0]);
    let losses = Tensor::zeros(gpu, &[2], "losses").unwrap();
    let mut tape = Tape::new(gpu);
    let x = fx.params.var(&mut tape, ids[0]).unwrap();
    let r = tape.relu(x).unwrap();
    let s = tape.scale(x, 0.5).unwrap();
    let a = tape.add(r, s).unwrap();
    let y = tape.add(a, x).unwrap();
    let total = tape.sum(y).unwrap();
    let one = upload(gpu, &[1], &[1.0]);
    let l0 = tape
        .mse(
            total,
            &upload(gpu, &[1, 1], &[0.3]),
            &one,
            &seeds,
            &losses,
            0,
        )
        .unwrap();
    let l1 = tape
        .mse(y, &upload(gpu, &[1, n], &u), &one, &seeds, &losses, 1)
        .unwrap();
    tape.backward(&[l0, l1]).unwrap();
    let u64v: Vec<f64> = u.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "relu/scale/add/sum", |p| {
        let y: Vec<f64> = cpu::add(&cpu::add(&cpu::relu(&p[0]), &cpu::scale(&p[0], 0.5)), &p[0]);
        let s = cpu::sum_all(&y);
        cpu::mse(&[s], &[0.3], &[1.0], 1, 1, 1.0).0 + cpu::mse(&y, &u64v, &[1.0], 1, n, 1.0).0
    });
}

#[test]
fn softmax_ce_through_a_linear_layer_with_masked_rows_and_a_seed() {
    let gpu = gpu_or_skip!();
    // L = 0.7 · CE(x·W + b, y) over the rows with mask 1 (rows 1 and 4 unlabelled).
    let (b, d, c) = (6, 3, 4);
    let (fx, ids) = fixture(
        gpu,
        &[("x", vec![b, d]), ("w", vec![d, c]), ("b", vec![c])],
        40,
    );
    let labels: Vec<u32> = vec![0, 3, 1, 2, 3, 1];
    let mask = vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
    let (seeds, losses) = loss_buffers(gpu, 0.7);
    let mut tape = Tape::new(gpu);
    let (x, w, bb) = (
        fx.params.var(&mut tape, ids[0]).unwrap(),
        fx.params.var(&mut tape, ids[1]).unwrap(),
        fx.params.var(&mut tape, ids[2]).unwrap(),
    );
    let z = tape.linear(x, w, bb, false).unwrap();
    let gl = Tensor::from_u32(gpu, &[b], &labels, "labels").unwrap();
    let l = tape
        .softmax_ce(z, &gl, &upload(gpu, &[b], &f32s(&mask)), &seeds, &losses, 0)
        .unwrap();
    tape.backward(&[l]).unwrap();
    check(gpu, &tape, &fx, "softmax_ce", |p| {
        let z = cpu::matmul(&p[0], &p[1], b, d, c, false, false, Some(&p[2]), false);
        0.7 * cpu::softmax_ce(&z, &labels, &mask, b, c, 1.0).loss
    });
}

#[test]
fn mse_with_mask_and_seed() {
    let gpu = gpu_or_skip!();
    // L = 2.5 · mse(p, t) over rows with mask 1; p (4×2) is the parameter.
    let (b, t) = (4, 2);
    let (fx, ids) = fixture(gpu, &[("p", vec![b, t])], 50);
    let target = random(&mut rng(51), b * t);
    let mask = vec![1.0, 1.0, 0.0, 1.0];
    let (seeds, losses) = loss_buffers(gpu, 2.5);
    let mut tape = Tape::new(gpu);
    let p = fx.params.var(&mut tape, ids[0]).unwrap();
    let l = tape
        .mse(
            p,
            &upload(gpu, &[b, t], &target),
            &upload(gpu, &[b], &f32s(&mask)),
            &seeds,
            &losses,
            0,
        )
        .unwrap();
    tape.backward(&[l]).unwrap();
    let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "mse", |p| {
        2.5 * cpu::mse(&p[0], &t64, &mask, b, t, 1.0).0
    });
}

#[test]
fn embedded_inputs_beside_dense_ones() {
    let gpu = gpu_or_skip!();
    // x (6×4) = [2 dense columns | index of table A (3×2) | index of table B (2×3)],
    // y = [x_dense | A[i] | B[j]] (6×7), L = mse(y·W, t) with W (7×2):
    // each table row gets the gradient of the rows that read it; an unseen
    // level (−1) reads zeros and sends nothing.
    let b = 6;
    let (fx, ids) = fixture(
        gpu,
        &[("A", vec![3, 2]), ("B", vec![2, 3]), ("W", vec![7, 2])],
        57,
    );
    let ia = [0i64, 2, 2, -1, 1, 0];
    let ib = [1i64, 1, 0, 0, -1, 1];
    let dense = random(&mut rng(58), b * 2);
    let mut xs = vec![0.0f32; b * 4];
    for r in 0..b {
        xs[r * 4] = dense[r * 2];
        xs[r * 4 + 1] = dense[r * 2 + 1];
        xs[r * 4 + 2] = ia[r] as f32;
        xs[r * 4 + 3] = ib[r] as f32;
    }
    let target = random(&mut rng(59), b * 2);
    let (seeds, losses) = loss_buffers(gpu, 1.0);
    let mut tape = Tape::new(gpu);
    let x = tape.input(&upload(gpu, &[b, 4], &xs));
    let vars: Vec<_> = ids
        .iter()
        .map(|&id| fx.params.var(&mut tape, id).unwrap())
        .collect();
    let y = tape
        .embed_inputs(x, 2, &[(vars[0], 2), (vars[1], 3)])
        .unwrap();
    let out = tape.matmul(y, vars[2], false, false).unwrap();
    let mask = upload(gpu, &[b], &[1.0; 6]);
    let l = tape
        .mse(
            out,
            &upload(gpu, &[b, 2], &target),
            &mask,
            &seeds,
            &losses,
            0,
        )
        .unwrap();
    tape.backward(&[l]).unwrap();
    let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
    let d64: Vec<f64> = dense.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "embed_inputs", |p| {
        let ea = cpu::embedding(&ia, &p[0], 3, 2);
        let eb = cpu::embedding(&ib, &p[1], 2, 3);
        let y = concat_cols(&[&d64, &ea, &eb], &[2, 2, 3], b);
        let out = cpu::matmul(&y, &p[2], b, 7, 2, false, false, None, false);
        cpu::mse(&out, &t64, &ones(b), b, 2, 1.0).0
    });
}

#[test]
fn three_task_network_with_towers() {
    let gpu = gpu_or_skip!();
    for act in [Activation::Relu, Activation::Gelu, Activation::Tanh] {
        three_task_network(gpu, act);
    }
}

fn three_task_network(gpu: &Gpu, act: Activation) {
    // Trunk 3→5→4, each head a tower 4→3 then its output (hidden layers ReLU, GELU or tanh):
    // species (3 classes, CE), two regressions (MSE). Loss = Σ_k w_k L_k, w = [1, 0.5, 2].
    let (b, d) = (7, 3);
    let spec = NetSpec {
        inputs: d,
        image: None,
        trunk: vec![5, 4],
        tower: vec![3],
        trunk_layers: vec![],
        embeddings: vec![],
        tower_layers: vec![],
        expert_layers: vec![],
        outputs: vec![3, 1, 1],
        head_names: vec!["species".into(), "len".into(), "wid".into()],
        activation: act,
        arch: Default::default(),
    };
    let mut builder = ParamBuilder::new(gpu);
    let net = MultiTaskNet::new(&mut builder, spec, 60).unwrap();
    let params = builder.build(gpu).unwrap();
    let host: P = params
        .read_all(gpu)
        .unwrap()
        .into_iter()
        .map(|(_, _, v)| v.iter().map(|&x| x as f64).collect())
        .collect();
    let fx = Fixture { params, host };

    let mut r = rng(61);
    let x = random(&mut r, b * d);
    let labels: Vec<u32> = (0..b).map(|i| (i % 3) as u32).collect();
    let (t1, t2) = (random(&mut r, b), random(&mut r, b));
    let m0 = vec![1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]; // one species label missing
    let m1 = vec![1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let m2 = vec![1.0; 7];
    let w = [1.0f32, 0.5, 2.0];
    let seeds = upload(gpu, &[3], &w);
    let losses = Tensor::zeros(gpu, &[3], "losses").unwrap();

    let mut tape = Tape::new(gpu);
    let xv = tape.input(&upload(gpu, &[b, d], &x));
    let outs = net.forward(&mut tape, &fx.params, xv).unwrap();
    let gl = Tensor::from_u32(gpu, &[b], &labels, "labels").unwrap();
    let l0 = tape
        .softmax_ce(
            outs[0],
            &gl,
            &upload(gpu, &[b], &f32s(&m0)),
            &seeds,
            &losses,
            0,
        )
        .unwrap();
    let l1 = tape
        .mse(
            outs[1],
            &upload(gpu, &[b, 1], &t1),
            &upload(gpu, &[b], &f32s(&m1)),
            &seeds,
            &losses,
            1,
        )
        .unwrap();
    let l2 = tape
        .mse(
            outs[2],
            &upload(gpu, &[b, 1], &t2),
            &upload(gpu, &[b], &f32s(&m2)),
            &seeds,
            &losses,
            2,
        )
        .unwrap();
    tape.backward(&[l0, l1, l2]).unwrap();

    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let (t1, t2): (Vec<f64>, Vec<f64>) = (
        t1.iter().map(|&v| v as f64).collect(),
        t2.iter().map(|&v| v as f64).collect(),
    );
    // Parameter order: trunk.0 w,b; trunk.1 w,b; then per head: tower w,b; out w,b.
    // ReLU is fused into the reference matmul; GELU and tanh follow it.
    let relu = act == Activation::Relu;
    let hidden = |v: Vec<f64>| match act {
        Activation::Gelu => cpu::gelu(&v),
        Activation::Tanh => cpu::tanh(&v),
        _ => v,
    };
    check(
        gpu,
        &tape,
        &fx,
        &format!("three-task network, {act:?}"),
        |p| {
            let h1 = hidden(cpu::matmul(
                &x64,
                &p[0],
                b,
                d,
                5,
                false,
                false,
                Some(&p[1]),
                relu,
            ));
            let z = hidden(cpu::matmul(
                &h1,
                &p[2],
                b,
                5,
                4,
                false,
                false,
                Some(&p[3]),
                relu,
            ));
            let head = |k: usize, out: usize| {
                let base = 4 + 4 * k;
                let t = hidden(cpu::matmul(
                    &z,
                    &p[base],
                    b,
                    4,
                    3,
                    false,
                    false,
                    Some(&p[base + 1]),
                    relu,
                ));
                cpu::matmul(
                    &t,
                    &p[base + 2],
                    b,
                    3,
                    out,
                    false,
                    false,
                    Some(&p[base + 3]),
                    false,
                )
            };
            let ce = cpu::softmax_ce(&head(0, 3), &labels, &m0, b, 3, 1.0).loss;
            let r1 = cpu::mse(&head(1, 1), &t1, &m1, b, 1, 1.0).0;
            let r2 = cpu::mse(&head(2, 1), &t2, &m2, b, 1, 1.0).0;
            w[0] as f64 * ce + w[1] as f64 * r1 + w[2] as f64 * r2
        },
    );
}

#[test]
fn gelu_and_tanh() {
    let gpu = gpu_or_skip!();
    // L = mse(act(x), t) with x spread over [-3, 3] (both tails of GELU and tanh):
    //   GELU: dx = dy · (½(1 + tanh u) + ½ x (1 - tanh² u) √(2/π)(1 + 3·0.044715 x²))
    //   tanh: dx = dy · (1 - tanh² x)
    for act in [Activation::Gelu, Activation::Tanh] {
        let n = 9;
        let (fx, ids) = fixture(gpu, &[("x", vec![1, n])], 40);
        let spread: Vec<f64> = fx.host[0].iter().map(|&v| 3.0 * v).collect();
        fx.params.value(ids[0]).write(gpu, &f32s(&spread)).unwrap();
        let fx = Fixture {
            params: fx.params,
            host: vec![f32s(&spread).iter().map(|&v| v as f64).collect()],
        };
        let t = random(&mut rng(41), n);
        let (seeds, losses) = loss_buffers(gpu, 1.0);
        let mut tape = Tape::new(gpu);
        let x = fx.params.var(&mut tape, ids[0]).unwrap();
        let y = act.apply(&mut tape, x).unwrap();
        let mask = upload(gpu, &[1], &[1.0]);
        let l = tape
            .mse(y, &upload(gpu, &[1, n], &t), &mask, &seeds, &losses, 0)
            .unwrap();
        tape.backward(&[l]).unwrap();
        let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
        check(gpu, &tape, &fx, &format!("{act:?}"), |p| {
            let y = match act {
                Activation::Gelu => cpu::gelu(&p[0]),
                _ => cpu::tanh(&p[0]),
            };
            cpu::mse(&y, &t64, &[1.0], 1, n, 1.0).0
        });
    }
}

#[test]
fn sigmoid_and_elementwise_product() {
    let gpu = gpu_or_skip!();
    // L = mse(σ(x) ⊙ y, t), x spread over [-6, 6] (both tails of σ), y a
    // second parameter: dx = dŷ · y · σ(1 − σ), dy = dŷ · σ(x).
    let n = 11;
    let (fx, ids) = fixture(gpu, &[("x", vec![1, n]), ("y", vec![1, n])], 42);
    let spread: Vec<f64> = fx.host[0].iter().map(|&v| 6.0 * v).collect();
    fx.params.value(ids[0]).write(gpu, &f32s(&spread)).unwrap();
    let fx = Fixture {
        params: fx.params,
        host: vec![
            f32s(&spread).iter().map(|&v| v as f64).collect(),
            fx.host[1].clone(),
        ],
    };
    let t = random(&mut rng(43), n);
    let (seeds, losses) = loss_buffers(gpu, 1.0);
    let mut tape = Tape::new(gpu);
    let x = fx.params.var(&mut tape, ids[0]).unwrap();
    let y = fx.params.var(&mut tape, ids[1]).unwrap();
    let s = tape.sigmoid(x).unwrap();
    let m = tape.mul(s, y).unwrap();
    let mask = upload(gpu, &[1], &[1.0]);
    let l = tape
        .mse(m, &upload(gpu, &[1, n], &t), &mask, &seeds, &losses, 0)
        .unwrap();
    tape.backward(&[l]).unwrap();
    let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "sigmoid ⊙ y", |p| {
        let s = cpu::sigmoid(&p[0]);
        let m: Vec<f64> = s.iter().zip(&p[1]).map(|(a, b)| a * b).collect();
        cpu::mse(&m, &t64, &[1.0], 1, n, 1.0).0
    });
    // σ of large magnitudes: exactly 0 or 1 where f32 rounds, never NaN.
    let big = upload(gpu, &[4], &[-200.0, -30.0, 30.0, 200.0]);
    let out = Tensor::zeros(gpu, &[4], "sigmoid").unwrap();
    gpu.run(&[&taskgrad::kernels::elementwise::sigmoid(gpu, &big, &out).unwrap()])
        .unwrap();
    let got = gpu.read_one(&out).unwrap();
    assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
    assert!(
        got[0] < 1e-12 && got[3] == 1.0 && got[1] < 1e-12 && got[2] == 1.0,
        "{got:?}"
    );
}

#[test]
fn backward_must_start_from_losses() {
    let gpu = gpu_or_skip!();
    let (fx, ids) = fixture(gpu, &[("x", vec![2, 2])], 70);
    let mut tape = Tape::new(gpu);
    let x = fx.params.var(&mut tape, ids[0]).unwrap();
    let y = tape.relu(x).unwrap();
    assert!(matches!(
        tape.backward(&[y]),
        Err(taskgrad::Error::InvalidConfig(_))
    ));
}

#[test]
fn gate_and_gated_mixture() {
    // A mixture of E = 4 experts, each H = 5 wide, over B = 3 rows:
    //   g = softmax(xg) per row,   out[b,h] = Σ_e g[b,e] z[b, e·H + h],
    //   L = mse(out, t).
    // dz = g ⊗ dout, dg = Σ_h z dout, then dxg = g ⊙ (dg - g·dg).
    let gpu = gpu_or_skip!();
    let (b, e, h) = (3, 4, 5);
    let (fx, ids) = fixture(gpu, &[("xg", vec![b, e]), ("z", vec![b, e * h])], 50);
    let t = random(&mut rng(51), b * h);
    let (seeds, losses) = loss_buffers(gpu, 1.0);
    let mut tape = Tape::new(gpu);
    let xg = fx.params.var(&mut tape, ids[0]).unwrap();
    let z = fx.params.var(&mut tape, ids[1]).unwrap();
    let g = tape.gate(xg).unwrap();
    let out = tape.mixture(g, z).unwrap();
    let mask = upload(gpu, &[b], &vec![1.0; b]);
    let l = tape
        .mse(out, &upload(gpu, &[b, h], &t), &mask, &seeds, &losses, 0)
        .unwrap();
    tape.backward(&[l]).unwrap();
    let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "gate + mixture", |p| {
        let g = cpu::gate(&p[0], b, e);
        let out = cpu::mixture(&g, &p[1], b, e, h);
        cpu::mse(&out, &t64, &ones(b), b, h, 1.0).0
    });
}

#[test]
fn dselect_gate_and_gated_mixture() {
    // DSelect-k's gate over E = 4 and 8 experts (m = 2, 3 bits), k = 2 and 3
    // selectors, B = 3 rows, feeding a mixture: L = mse(Σ_e g_e z_e, t). The
    // selector logits are drawn in [−1, 1], so some sit on the smooth step's
    // flat parts (gradient 0) and some on its cubic.
    let gpu = gpu_or_skip!();
    for (e, k, seed) in [(4, 2, 54), (8, 3, 56)] {
        let d = taskgrad::kernels::gate::Dselect::new(e, k).unwrap();
        let (b, h) = (3, 2);
        let (fx, ids) = fixture(
            gpu,
            &[("x", vec![b, d.logits()]), ("z", vec![b, e * h])],
            seed,
        );
        let t = random(&mut rng(seed + 1), b * h);
        let (seeds, losses) = loss_buffers(gpu, 1.0);
        let mut tape = Tape::new(gpu);
        let x = fx.params.var(&mut tape, ids[0]).unwrap();
        let z = fx.params.var(&mut tape, ids[1]).unwrap();
        let g = tape.dselect(x, d).unwrap();
        let out = tape.mixture(g, z).unwrap();
        let mask = upload(gpu, &[b], &vec![1.0; b]);
        let l = tape
            .mse(out, &upload(gpu, &[b, h], &t), &mask, &seeds, &losses, 0)
            .unwrap();
        tape.backward(&[l]).unwrap();
        let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
        check(gpu, &tape, &fx, &format!("dselect E {e} k {k}"), |p| {
            let g = cpu::dselect(&p[0], b, e, k);
            let out = cpu::mixture(&g, &p[1], b, e, h);
            cpu::mse(&out, &t64, &ones(b), b, h, 1.0).0
        });
        // Each row of the gate sums to 1 (every selector's codes do).
        let gv = gpu.read_one(tape.value(g)).unwrap();
        for r in 0..b {
            let s: f32 = gv[r * e..(r + 1) * e].iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "row {r} sums to {s}");
        }
    }
}

#[test]
fn concat_columns_with_an_input_used_twice() {
    // y = [a b a] (3×2, 3×4, 3×2 → 3×8), L = mse(y, t): each input's gradient
    // is its block of dy, a's the sum of its two blocks.
    let gpu = gpu_or_skip!();
    let (fx, ids) = fixture(gpu, &[("a", vec![3, 2]), ("b", vec![3, 4])], 52);
    let t = random(&mut rng(53), 3 * 8);
    let (seeds, losses) = loss_buffers(gpu, 1.0);
    let mut tape = Tape::new(gpu);
    let a = fx.params.var(&mut tape, ids[0]).unwrap();
    let b = fx.params.var(&mut tape, ids[1]).unwrap();
    let y = tape.concat_columns(&[a, b, a]).unwrap();
    let mask = upload(gpu, &[3], &[1.0; 3]);
    let l = tape
        .mse(y, &upload(gpu, &[3, 8], &t), &mask, &seeds, &losses, 0)
        .unwrap();
    tape.backward(&[l]).unwrap();
    let t64: Vec<f64> = t.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "concat", |p| {
        let mut y = Vec::new();
        for r in 0..3 {
            y.extend_from_slice(&p[0][r * 2..r * 2 + 2]);
            y.extend_from_slice(&p[1][r * 4..r * 4 + 4]);
            y.extend_from_slice(&p[0][r * 2..r * 2 + 2]);
        }
        cpu::mse(&y, &t64, &ones(3), 3, 8, 1.0).0
    });
}

/// Columns side by side (row-major blocks of `widths`).
fn concat_cols(parts: &[&[f64]], widths: &[usize], rows: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for r in 0..rows {
        for (p, &w) in parts.iter().zip(widths) {
            out.extend_from_slice(&p[r * w..(r + 1) * w]);
        }
    }
    out
}

/// The CPU forward of a mixture-of-experts block, by parameter name, mirroring
/// `nn::moe` (experts one layer each with ReLU, gates linear then softmax).
#[allow(clippy::too_many_arguments)]
fn cpu_moe(
    p: &P,
    names: &[String],
    x: &[f64],
    b: usize,
    d: usize,
    arch: &Arch,
    tasks: usize,
) -> Vec<Vec<f64>> {
    let at = |n: &str| {
        names
            .iter()
            .position(|m| m == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let lin = |name: &str, x: &[f64], fan_in: usize, fan_out: usize, relu: bool| {
        let (w, bias) = (at(&format!("{name}.weight")), at(&format!("{name}.bias")));
        cpu::matmul(
            x,
            &p[w],
            b,
            fan_in,
            fan_out,
            false,
            false,
            Some(&p[bias]),
            relu,
        )
    };
    let z = arch.sizes().expect("a mixture of experts");
    let (sn, tn, h, levels, omoe) = (z.shared, z.per_task, z.hidden, z.levels, z.one_gate);
    let mut shared_in = x.to_vec();
    let mut task_in = vec![x.to_vec(); tasks];
    for l in 0..levels {
        let fan_in = if l == 0 { d } else { h };
        let last = l + 1 == levels;
        let zs =
            (sn > 0).then(|| lin(&format!("moe.{l}.shared"), &shared_in, fan_in, sn * h, true));
        let zt: Vec<Option<Vec<f64>>> = (0..tasks)
            .map(|k| {
                (tn > 0).then(|| {
                    lin(
                        &format!("moe.{l}.task{k}"),
                        &task_in[k],
                        fan_in,
                        tn * h,
                        true,
                    )
                })
            })
            .collect();
        if omoe {
            let g = cpu::gate(
                &lin(&format!("moe.{l}.gate"), &shared_in, fan_in, sn, false),
                b,
                sn,
            );
            let m = cpu::mixture(&g, zs.as_ref().unwrap(), b, sn, h);
            return vec![m; tasks];
        }
        let mut next = Vec::new();
        for k in 0..tasks {
            let mut parts: Vec<&[f64]> = Vec::new();
            let mut widths = Vec::new();
            if let Some(z) = &zs {
                parts.push(z);
                widths.push(sn * h);
            }
            if let Some(z) = &zt[k] {
                parts.push(z);
                widths.push(tn * h);
            }
            let pool = concat_cols(&parts, &widths, b);
            let n = sn + tn;
            let g = match z.select {
                // DSelect-k: k·m + k logits per row.
                Some(sel) => {
                    let width = sel * sn.trailing_zeros() as usize + sel;
                    let logits = lin(
                        &format!("moe.{l}.gate{k}"),
                        &task_in[k],
                        fan_in,
                        width,
                        false,
                    );
                    cpu::dselect(&logits, b, sn, sel)
                }
                None => cpu::gate(
                    &lin(&format!("moe.{l}.gate{k}"), &task_in[k], fan_in, n, false),
                    b,
                    n,
                ),
            };
            next.push(cpu::mixture(&g, &pool, b, n, h));
        }
        if !last {
            let mut parts: Vec<&[f64]> = Vec::new();
            let mut widths = Vec::new();
            if let Some(z) = &zs {
                parts.push(z);
                widths.push(sn * h);
            }
            for z in zt.iter().flatten() {
                parts.push(z);
                widths.push(tn * h);
            }
            let pool = concat_cols(&parts, &widths, b);
            let n = sn + tasks * tn;
            let g = cpu::gate(
                &lin(
                    &format!("moe.{l}.shared_gate"),
                    &shared_in,
                    fan_in,
                    n,
                    false,
                ),
                b,
                n,
            );
            shared_in = cpu::mixture(&g, &pool, b, n, h);
        }
        task_in = next;
    }
    task_in
}

#[test]
fn mixture_of_experts_networks_mmoe_cgc_ple_and_dselect_k() {
    // Whole networks: three tasks (3-class CE, two MSE) on a mixture of
    // experts, every parameter's gradient against finite differences of the
    // CPU forward (experts, gates, concatenations, mixtures, heads).
    let gpu = gpu_or_skip!();
    for arch in [
        Arch::Mmoe {
            experts: 3,
            expert_hidden: 4,
        },
        Arch::Omoe {
            experts: 2,
            expert_hidden: 3,
        },
        Arch::Cgc {
            shared: 2,
            per_task: 1,
            expert_hidden: 3,
        },
        Arch::Ple {
            shared: 2,
            per_task: 1,
            expert_hidden: 3,
            levels: 2,
        },
        Arch::DselectK {
            experts: 4,
            expert_hidden: 3,
            selected: 2,
        },
    ] {
        let (b, d) = (5, 3);
        let spec = NetSpec {
            inputs: d,
            image: None,
            trunk: vec![],
            tower: vec![],
            trunk_layers: vec![],
            embeddings: vec![],
            tower_layers: vec![],
            expert_layers: vec![],
            outputs: vec![3, 1, 1],
            head_names: vec!["species".into(), "len".into(), "wid".into()],
            activation: Activation::Relu,
            arch: arch.clone(),
        };
        let size = MultiTaskNet::size(gpu, spec.clone()).unwrap();
        let mut builder = ParamBuilder::new(gpu);
        let net = MultiTaskNet::new(&mut builder, spec, 70).unwrap();
        // The size check before training reads the same layout, drawing nothing.
        assert_eq!(size.params, builder.layout().len(), "{arch:?}");
        let experts = arch.sizes().unwrap();
        let widest_group = (experts.shared.max(experts.per_task) * experts.hidden).max(3);
        assert_eq!(size.widest, widest_group, "{arch:?}");
        let params = builder.build(gpu).unwrap();
        let names = params.names.clone();
        let host: P = params
            .read_all(gpu)
            .unwrap()
            .into_iter()
            .map(|(_, _, v)| v.iter().map(|&x| x as f64).collect())
            .collect();
        let fx = Fixture { params, host };
        let mut r = rng(71);
        let x = random(&mut r, b * d);
        let labels: Vec<u32> = (0..b).map(|i| (i % 3) as u32).collect();
        let (t1, t2) = (random(&mut r, b), random(&mut r, b));
        let w = [1.0f32, 0.5, 2.0];
        let seeds = upload(gpu, &[3], &w);
        let losses = Tensor::zeros(gpu, &[3], "losses").unwrap();
        let mask = upload(gpu, &[b], &vec![1.0; b]);
        let mut tape = Tape::new(gpu);
        let xv = tape.input(&upload(gpu, &[b, d], &x));
        let outs = net.forward(&mut tape, &fx.params, xv).unwrap();
        let gl = Tensor::from_u32(gpu, &[b], &labels, "labels").unwrap();
        let l0 = tape
            .softmax_ce(outs[0], &gl, &mask, &seeds, &losses, 0)
            .unwrap();
        let l1 = tape
            .mse(
                outs[1],
                &upload(gpu, &[b, 1], &t1),
                &mask,
                &seeds,
                &losses,
                1,
            )
            .unwrap();
        let l2 = tape
            .mse(
                outs[2],
                &upload(gpu, &[b, 1], &t2),
                &mask,
                &seeds,
                &losses,
                2,
            )
            .unwrap();
        tape.backward(&[l0, l1, l2]).unwrap();
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let (t1, t2): (Vec<f64>, Vec<f64>) = (
            t1.iter().map(|&v| v as f64).collect(),
            t2.iter().map(|&v| v as f64).collect(),
        );
        let h = arch.width().unwrap();
        check(gpu, &tape, &fx, &format!("{arch:?}"), |p| {
            let zs = cpu_moe(p, &names, &x64, b, d, &arch, 3);
            let head = |k: usize, name: &str, out: usize| {
                let (wi, bi) = (
                    names
                        .iter()
                        .position(|n| *n == format!("head.{name}.out.weight"))
                        .unwrap(),
                    names
                        .iter()
                        .position(|n| *n == format!("head.{name}.out.bias"))
                        .unwrap(),
                );
                cpu::matmul(&zs[k], &p[wi], b, h, out, false, false, Some(&p[bi]), false)
            };
            let ce = cpu::softmax_ce(&head(0, "species", 3), &labels, &ones(b), b, 3, 1.0).loss;
            let r1 = cpu::mse(&head(1, "len", 1), &t1, &ones(b), b, 1, 1.0).0;
            let r2 = cpu::mse(&head(2, "wid", 1), &t2, &ones(b), b, 1, 1.0).0;
            w[0] as f64 * ce + w[1] as f64 * r1 + w[2] as f64 * r2
        });
    }
}

/// The fused group `name` (`<stem>.weight` D×(E·H) or `<stem>.bias` E·H)
/// made of experts `<stem>.e<i>.0.weight|bias` (D×H, H) of `named`.
fn side_by_side(
    named: &HashMap<String, Vec<f32>>,
    name: &str,
    shape: &[usize],
    h: usize,
) -> Vec<f32> {
    let (stem, what) = name.rsplit_once('.').unwrap();
    let part = |e: usize| &named[&format!("{stem}.e{e}.0.{what}")];
    let cols = shape[shape.len() - 1];
    let mut out = vec![0.0; shape.iter().product()];
    for e in 0..cols / h {
        for (i, v) in part(e).iter().enumerate() {
            out[(i / h) * cols + e * h + i % h] = *v;
        }
    }
    out
}

/// Outputs and every parameter's gradient (by name) of one forward and
/// backward of `net` on `x` (B×3), the loss Σ_k mse(out_k, t) with weight 1.
fn outputs_and_grads(
    gpu: &Gpu,
    net: &MultiTaskNet,
    params: &taskgrad::nn::ParamSet,
    x: &[f32],
    b: usize,
) -> (Vec<Vec<f32>>, HashMap<String, Vec<f32>>) {
    let k = net.heads.len();
    let seeds = upload(gpu, &[k], &vec![1.0; k]);
    let losses = Tensor::zeros(gpu, &[k], "losses").unwrap();
    let mask = upload(gpu, &[b], &vec![1.0; b]);
    let mut tape = Tape::new(gpu);
    let xv = tape.input(&upload(gpu, &[b, x.len() / b], x));
    let outs = net.forward(&mut tape, params, xv).unwrap();
    let target = upload(gpu, &[b, 1], &random(&mut rng(91), b));
    let ls: Vec<_> = outs
        .iter()
        .enumerate()
        .map(|(i, &o)| tape.mse(o, &target, &mask, &seeds, &losses, i).unwrap())
        .collect();
    tape.backward(&ls).unwrap();
    let all: Vec<_> = tape.forward.iter().chain(&tape.backward).collect();
    gpu.run(&all).unwrap();
    let values: Vec<&Tensor> = outs.iter().map(|&o| tape.value(o)).collect();
    let outs = gpu.read(&values).unwrap();
    let flat = params.grads().unwrap().read(gpu).unwrap();
    let grads = params
        .grads()
        .unwrap()
        .layout
        .entries()
        .iter()
        .map(|(name, start, shape)| {
            let n: usize = shape.iter().product();
            (name.clone(), flat[*start..*start + n].to_vec())
        })
        .collect();
    (outs, grads)
}

#[test]
fn experts_as_layer_lists_match_the_fused_experts_with_the_same_weights() {
    // An expert written as a layer list ("linear:3,relu") is a Stack of its
    // own per expert, the group's outputs set side by side; the default
    // expert is one fused matmul per group. With expert e's weights copied
    // into columns e·H..(e+1)·H of the fused weight, outputs and every
    // gradient must agree (the fused path is checked against finite
    // differences above). PLE covers the second level and the task experts.
    let gpu = gpu_or_skip!();
    let (b, d, h) = (4, 3, 3);
    for arch in [
        Arch::Mmoe {
            experts: 2,
            expert_hidden: h,
        },
        Arch::Ple {
            shared: 2,
            per_task: 1,
            expert_hidden: h,
            levels: 2,
        },
    ] {
        let spec = |activation, expert_layers| NetSpec {
            inputs: d,
            image: None,
            trunk: vec![],
            tower: vec![],
            trunk_layers: vec![],
            embeddings: vec![],
            tower_layers: vec![],
            expert_layers,
            outputs: vec![1, 1],
            head_names: vec!["a".into(), "b".into()],
            activation,
            arch: arch.clone(),
        };
        // tanh elsewhere, so "linear:3,relu" is not the fused default's list.
        let list = vec![
            taskgrad::nn::LayerSpec::parse("linear:3").unwrap(),
            taskgrad::nn::LayerSpec::parse("relu").unwrap(),
        ];
        let mut pb = ParamBuilder::new(gpu);
        let each = MultiTaskNet::new(&mut pb, spec(Activation::Tanh, list), 5).unwrap();
        let each_params = pb.build(gpu).unwrap();
        let mut pb = ParamBuilder::new(gpu);
        let fused = MultiTaskNet::new(&mut pb, spec(Activation::Relu, vec![]), 6).unwrap();
        let fused_params = pb.build(gpu).unwrap();
        assert!(each_params.names.iter().any(|n| n.contains(".e1.0.weight")));
        assert_eq!(
            MultiTaskNet::size(gpu, each.spec.clone()).unwrap().params,
            each_params.values.layout.len()
        );
        // The fused net's values from the experts': columns side by side.
        let from: HashMap<String, Vec<f32>> = each_params
            .read_all(gpu)
            .unwrap()
            .into_iter()
            .map(|(n, _, v)| (n, v))
            .collect();
        let fused_like =
            |named: &HashMap<String, Vec<f32>>| -> Vec<(String, Vec<usize>, Vec<f32>)> {
                let layout = fused_params.values.layout.entries();
                layout
                    .iter()
                    .map(|(name, _, shape)| {
                        // Gates and heads have the same names; expert groups do not.
                        let v = named
                            .get(name)
                            .cloned()
                            .unwrap_or_else(|| side_by_side(named, name, shape, h));
                        (name.clone(), shape.clone(), v)
                    })
                    .collect()
            };
        taskgrad::nn::load_values(gpu, &fused_params, &fused_like(&from), Path::new("test"))
            .unwrap();
        let x = random(&mut rng(90), b * d);
        let (out_e, g_e) = outputs_and_grads(gpu, &each, &each_params, &x, b);
        let (out_f, g_f) = outputs_and_grads(gpu, &fused, &fused_params, &x, b);
        for (k, (e, f)) in out_e.iter().zip(&out_f).enumerate() {
            common::assert_close(&format!("{arch:?} output {k}"), e, f, 1e-5, 1e-4);
        }
        for (name, _, want) in fused_like(&g_e) {
            common::assert_close(&format!("{arch:?} d{name}"), &g_f[&name], &want, 1e-5, 1e-4);
        }
    }
}

#[test]
fn a_convolution_through_im2col_and_linear() {
    // L = mse(im2col(x)·W + b, t): x (2 images 5×6, 2 channels, NHWC), a 3×3
    // kernel with stride 2 and padding 1 to 3 outputs; x, W, b parameters,
    // so dx goes through col2im. The loss in f64 is the direct definition.
    let gpu = gpu_or_skip!();
    let g = taskgrad::kernels::im2col::ConvGeometry::new((2, 5, 6, 2), 3, 2, 1).unwrap();
    let out = 3;
    let (fx, ids) = fixture(
        gpu,
        &[
            ("x", vec![g.image_len()]),
            ("w", vec![g.patch(), out]),
            ("b", vec![out]),
        ],
        80,
    );
    let rows = g.rows();
    let target = random(&mut rng(81), rows * out);
    let (seeds, losses) = loss_buffers(gpu, 1.0);
    let mut tape = Tape::new(gpu);
    let vars: Vec<_> = ids
        .iter()
        .map(|&id| fx.params.var(&mut tape, id).unwrap())
        .collect();
    let cols = tape.im2col(vars[0], &g).unwrap();
    let y = tape.linear(cols, vars[1], vars[2], false).unwrap();
    let mask = upload(gpu, &[rows], &vec![1.0; rows]);
    let l = tape
        .mse(
            y,
            &upload(gpu, &[rows, out], &target),
            &mask,
            &seeds,
            &losses,
            0,
        )
        .unwrap();
    tape.backward(&[l]).unwrap();
    let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
    check(gpu, &tape, &fx, "conv", |p| {
        let y = cpu::conv2d(&p[0], &p[1], &p[2], &g, out);
        cpu::mse(&y, &t64, &ones(rows), rows, out, 1.0).0
    });
}

#[test]
fn the_direct_convolution_with_and_without_relu() {
    // L = mse(conv_direct(x, W, b), t) on 2 images 5×6 with 2 channels, a 3×3
    // kernel at stride 2 padded by 1 (and 2×2 at stride 1 unpadded); x, W, b
    // parameters. The loss in f64 is the seven-loop definition.
    let gpu = gpu_or_skip!();
    for (k, s, p) in [(3, 2, 1), (2, 1, 0)] {
        for relu in [false, true] {
            let g = taskgrad::kernels::im2col::ConvGeometry::new((2, 5, 6, 2), k, s, p).unwrap();
            let out = 3;
            let (fx, ids) = fixture(
                gpu,
                &[
                    ("x", vec![g.image_len()]),
                    ("w", vec![g.patch(), out]),
                    ("b", vec![out]),
                ],
                82 + k as u64,
            );
            let rows = g.rows();
            let target = random(&mut rng(83), rows * out);
            let (seeds, losses) = loss_buffers(gpu, 1.0);
            let mut tape = Tape::new(gpu);
            let v: Vec<_> = ids
                .iter()
                .map(|&id| fx.params.var(&mut tape, id).unwrap())
                .collect();
            let y = tape.conv_direct(v[0], v[1], v[2], &g, relu).unwrap();
            let mask = upload(gpu, &[rows], &vec![1.0; rows]);
            let t = upload(gpu, &[rows, out], &target);
            let l = tape.mse(y, &t, &mask, &seeds, &losses, 0).unwrap();
            tape.backward(&[l]).unwrap();
            let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
            check(
                gpu,
                &tape,
                &fx,
                &format!("direct conv k{k} s{s} p{p} relu {relu}"),
                |q| {
                    let mut y = cpu::conv2d(&q[0], &q[1], &q[2], &g, out);
                    if relu {
                        y = cpu::relu(&y);
                    }
                    cpu::mse(&y, &t64, &ones(rows), rows, out, 1.0).0
                },
            );
        }
    }
}

#[test]
fn max_and_average_pooling() {
    // L = mse(max_pool(x), t) and mse(avg_pool(x), t): x (2 images 5×6, 3
    // channels) with 2×2 windows at stride 2 and 3×3 at stride 1 (overlapping:
    // an input gathers from several windows). Random values have no ties,
    // so the max is differentiable at them.
    let gpu = gpu_or_skip!();
    for (k, s) in [(2, 2), (3, 1)] {
        let g = taskgrad::kernels::im2col::ConvGeometry::new((2, 5, 6, 3), k, s, 0).unwrap();
        let n = taskgrad::kernels::pool::pooled_len(&g);
        for max in [true, false] {
            let (fx, ids) = fixture(gpu, &[("x", vec![g.image_len()])], 90 + k as u64);
            let target = random(&mut rng(91), n);
            let (seeds, losses) = loss_buffers(gpu, 1.0);
            let mut tape = Tape::new(gpu);
            let x = fx.params.var(&mut tape, ids[0]).unwrap();
            let y = match max {
                true => tape.max_pool(x, &g).unwrap(),
                false => tape.avg_pool(x, &g).unwrap(),
            };
            let (rows, c) = (g.rows(), g.channels);
            let mask = upload(gpu, &[rows], &vec![1.0; rows]);
            let l = tape
                .mse(
                    y,
                    &upload(gpu, &[rows, c], &target),
                    &mask,
                    &seeds,
                    &losses,
                    0,
                )
                .unwrap();
            tape.backward(&[l]).unwrap();
            let t64: Vec<f64> = target.iter().map(|&v| v as f64).collect();
            check(
                gpu,
                &tape,
                &fx,
                &format!("pool k={k} s={s} max={max}"),
                |p| {
                    let y = match max {
                        true => cpu::max_pool(&p[0], &g).0,
                        false => cpu::avg_pool(&p[0], &g),
                    };
                    cpu::mse(&y, &t64, &ones(g.rows()), g.rows(), g.channels, 1.0).0
                },
            );
        }
    }
}

#[test]
fn cross_stitch_network() {
    // Three tasks (3-class CE, two MSE), each with its own column of the
    // trunk's layers (linear 4 + ReLU, linear 3 + ReLU), mixed after each
    // stage by a learned unit x̃_k = Σ_j α_kj y_j; every parameter (columns,
    // units, heads) against finite differences of the CPU forward.
    let gpu = gpu_or_skip!();
    let (b, d, tasks) = (4, 3, 3);
    let spec = NetSpec {
        inputs: d,
        image: None,
        trunk: vec![4, 3],
        tower: vec![],
        trunk_layers: vec![],
        embeddings: vec![],
        tower_layers: vec![],
        expert_layers: vec![],
        outputs: vec![3, 1, 1],
        head_names: vec!["species".into(), "len".into(), "wid".into()],
        activation: Activation::Relu,
        arch: Arch::CrossStitch,
    };
    let mut builder = ParamBuilder::new(gpu);
    let net = MultiTaskNet::new(&mut builder, spec, 72).unwrap();
    let params = builder.build(gpu).unwrap();
    let names = params.names.clone();
    // The units start at 0.9 on the task itself and 0.05 on each other.
    let all = params.read_all(gpu).unwrap();
    let alpha = all.iter().find(|(n, _, _)| n == "cross.1.alpha2").unwrap();
    assert_eq!(alpha.2, vec![0.05, 0.05, 0.9]);
    let host: P = all
        .into_iter()
        .map(|(_, _, v)| v.iter().map(|&x| x as f64).collect())
        .collect();
    let fx = Fixture { params, host };
    let mut r = rng(73);
    let x = random(&mut r, b * d);
    let labels: Vec<u32> = (0..b).map(|i| (i % 3) as u32).collect();
    let (t1, t2) = (random(&mut r, b), random(&mut r, b));
    let (seeds, losses) = (
        upload(gpu, &[3], &[1.0, 0.5, 2.0]),
        Tensor::zeros(gpu, &[3], "losses").unwrap(),
    );
    let mask = upload(gpu, &[b], &vec![1.0; b]);
    let mut tape = Tape::new(gpu);
    let xv = tape.input(&upload(gpu, &[b, d], &x));
    let outs = net.forward(&mut tape, &fx.params, xv).unwrap();
    let gl = Tensor::from_u32(gpu, &[b], &labels, "labels").unwrap();
    let l0 = tape
        .softmax_ce(outs[0], &gl, &mask, &seeds, &losses, 0)
        .unwrap();
    let l1 = tape
        .mse(
            outs[1],
            &upload(gpu, &[b, 1], &t1),
            &mask,
            &seeds,
            &losses,
            1,
        )
        .unwrap();
    let l2 = tape
        .mse(
            outs[2],
            &upload(gpu, &[b, 1], &t2),
            &mask,
            &seeds,
            &losses,
            2,
        )
        .unwrap();
    tape.backward(&[l0, l1, l2]).unwrap();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let t64 = |t: &[f32]| t.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let (t1, t2) = (t64(&t1), t64(&t2));
    check(gpu, &tape, &fx, "cross-stitch", |p| {
        let at = |n: &str| {
            names
                .iter()
                .position(|m| m == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        let mut xs = vec![x64.clone(); tasks];
        for (s, (fan_in, fan_out)) in [(d, 4), (4, 3)].into_iter().enumerate() {
            let ys: Vec<Vec<f64>> = (0..tasks)
                .map(|k| {
                    let (w, bias) = (
                        at(&format!("cross.{s}.t{k}.0.weight")),
                        at(&format!("cross.{s}.t{k}.0.bias")),
                    );
                    cpu::matmul(
                        &xs[k],
                        &p[w],
                        b,
                        fan_in,
                        fan_out,
                        false,
                        false,
                        Some(&p[bias]),
                        true,
                    )
                })
                .collect();
            xs = (0..tasks)
                .map(|k| {
                    let a = &p[at(&format!("cross.{s}.alpha{k}"))];
                    (0..b * fan_out)
                        .map(|i| (0..tasks).map(|j| a[j] * ys[j][i]).sum())
                        .collect()
                })
                .collect();
        }
        let head = |k: usize, name: &str, out: usize| {
            let (w, bias) = (
                at(&format!("head.{name}.out.weight")),
                at(&format!("head.{name}.out.bias")),
            );
            cpu::matmul(
                &xs[k],
                &p[w],
                b,
                3,
                out,
                false,
                false,
                Some(&p[bias]),
                false,
            )
        };
        let ce = cpu::softmax_ce(&head(0, "species", 3), &labels, &ones(b), b, 3, 1.0).loss;
        let r1 = cpu::mse(&head(1, "len", 1), &t1, &ones(b), b, 1, 1.0).0;
        let r2 = cpu::mse(&head(2, "wid", 1), &t2, &ones(b), b, 1, 1.0).0;
        ce + 0.5 * r1 + 2.0 * r2
    });
}

#[test]
fn ltb_network_in_warm_up_and_after() {
    // Learning to Branch: three tasks, each a column of (linear 4 + ReLU),
    // (linear 3 + ReLU); before the second stage task k's column reads the
    // parent its hard Gumbel-softmax picks (every parent summed in warm-up).
    // Every column and head parameter against finite differences of the CPU
    // forward with the same choices; the logits' straight-through gradient
    // (not the derivative of the hard choice, which is 0) is checked
    // against its formula in tests/nn_layers.rs, and is 0 in warm-up.
    let gpu = gpu_or_skip!();
    let (b, d, tasks) = (4, 3, 3);
    for (epoch, epochs) in [(0, 200), (5, 40)] {
        let schedule = taskgrad::nn::branch::Schedule::at(epoch, epochs);
        let spec = NetSpec {
            inputs: d,
            image: None,
            trunk: vec![4, 3],
            tower: vec![],
            trunk_layers: vec![],
            embeddings: vec![],
            tower_layers: vec![],
            expert_layers: vec![],
            outputs: vec![3, 1, 1],
            head_names: vec!["species".into(), "len".into(), "wid".into()],
            activation: Activation::Relu,
            arch: Arch::Ltb,
        };
        let mut builder = ParamBuilder::new(gpu);
        let net = MultiTaskNet::new(&mut builder, spec, 74).unwrap();
        let params = builder.build(gpu).unwrap();
        let names = params.names.clone();
        assert!(names.contains(&"ltb.0.logits2".to_string()), "{names:?}");
        assert!(
            !names.iter().any(|n| n.starts_with("ltb.1.logits")),
            "{names:?}"
        );
        let seeds = net.cross.as_ref().unwrap().branch_seeds().to_vec();
        let all = params.read_all(gpu).unwrap();
        let host: P = all
            .into_iter()
            .map(|(_, _, v)| v.iter().map(|&x| x as f64).collect())
            .collect();
        let fx = Fixture { params, host };
        let mut r = rng(75);
        let x = random(&mut r, b * d);
        let labels: Vec<u32> = (0..b).map(|i| (i % 3) as u32).collect();
        let (t1, t2) = (random(&mut r, b), random(&mut r, b));
        let (seeds_buf, losses) = (
            upload(gpu, &[3], &[1.0, 0.5, 2.0]),
            Tensor::zeros(gpu, &[3], "losses").unwrap(),
        );
        let mask = upload(gpu, &[b], &vec![1.0; b]);
        let mut tape = Tape::new(gpu);
        tape.training = true;
        let xv = tape.input(&upload(gpu, &[b, d], &x));
        let outs = net.forward(&mut tape, &fx.params, xv).unwrap();
        net.set_epoch(gpu, epoch, epochs).unwrap();
        let gl = Tensor::from_u32(gpu, &[b], &labels, "labels").unwrap();
        let l0 = (tape.softmax_ce(outs[0], &gl, &mask, &seeds_buf, &losses, 0)).unwrap();
        let t1u = upload(gpu, &[b, 1], &t1);
        let l1 = tape
            .mse(outs[1], &t1u, &mask, &seeds_buf, &losses, 1)
            .unwrap();
        let t2u = upload(gpu, &[b, 1], &t2);
        let l2 = tape
            .mse(outs[2], &t2u, &mask, &seeds_buf, &losses, 2)
            .unwrap();
        tape.backward(&[l0, l1, l2]).unwrap();
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let t64 = |t: &[f32]| t.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let (t1, t2) = (t64(&t1), t64(&t2));
        let what = format!("ltb at epoch {epoch} of {epochs}");
        let loss = |p: &P| {
            let at = |n: &str| names.iter().position(|m| m == n).unwrap();
            let stage = |s: usize, k: usize, x: &[f64], fan_in: usize, fan_out: usize| {
                let w = at(&format!("ltb.{s}.t{k}.0.weight"));
                let bias = at(&format!("ltb.{s}.t{k}.0.bias"));
                cpu::matmul(
                    x,
                    &p[w],
                    b,
                    fan_in,
                    fan_out,
                    false,
                    false,
                    Some(&p[bias]),
                    true,
                )
            };
            let ys: Vec<Vec<f64>> = (0..tasks).map(|k| stage(0, k, &x64, d, 4)).collect();
            let xs: Vec<Vec<f64>> = (0..tasks)
                .map(|k| {
                    let logits = &p[at(&format!("ltb.0.logits{k}"))];
                    let (y, _) = taskgrad::nn::branch::reference(
                        logits,
                        tasks,
                        schedule,
                        seeds[0][k],
                        0,
                        true,
                    );
                    let mixed: Vec<f64> = (0..b * 4)
                        .map(|i| (0..tasks).map(|j| y[j] * ys[j][i]).sum())
                        .collect();
                    stage(1, k, &mixed, 4, 3)
                })
                .collect();
            let head = |k: usize, name: &str, out: usize| {
                let w = at(&format!("head.{name}.out.weight"));
                let bias = at(&format!("head.{name}.out.bias"));
                cpu::matmul(
                    &xs[k],
                    &p[w],
                    b,
                    3,
                    out,
                    false,
                    false,
                    Some(&p[bias]),
                    false,
                )
            };
            let ce = cpu::softmax_ce(&head(0, "species", 3), &labels, &ones(b), b, 3, 1.0).loss;
            let r1 = cpu::mse(&head(1, "len", 1), &t1, &ones(b), b, 1, 1.0).0;
            let r2 = cpu::mse(&head(2, "wid", 1), &t2, &ones(b), b, 1, 1.0).0;
            ce + 0.5 * r1 + 2.0 * r2
        };
        // In warm-up the logits do not reach the loss: their gradient is 0,
        // as finite differences say; after it, they are left to nn_layers.rs.
        let warm = schedule.warm;
        check_where(
            gpu,
            &tape,
            &fx,
            &what,
            |n| warm || !n.contains("logits"),
            loss,
        );
    }
}
