//! Every kernel, forward and backward, against the CPU reference in
//! `taskgrad::reference`: 1×1, a hand-checkable case with the math in a
//! comment, and sizes that are not multiples of the tile or workgroup.
//! Inputs are fresh seeded random values; tolerance is atol + rtol·|ref|.

mod common;

use common::{assert_close, random, rng};
use taskgrad::kernels::matmul::{MatmulKernel, MatmulOptions};
use taskgrad::kernels::{elementwise, embedding, matmul, mse, reduce, softmax_ce};
use taskgrad::optim;
use taskgrad::optim::Optimizer as _;
use taskgrad::reference as cpu;
use taskgrad::Tensor;

const SIZES: [usize; 8] = [1, 3, 17, 63, 65, 129, 257, 1000];

fn upload(gpu: &taskgrad::Gpu, shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_slice(gpu, shape, data, "test input").expect("upload")
}

fn zeros(gpu: &taskgrad::Gpu, shape: &[usize]) -> Tensor {
    Tensor::zeros(gpu, shape, "test output").expect("alloc")
}

// ---- matmul ---------------------------------------------------------------

/// op(A)·op(B) by one kernel of the ladder with its default workgroup shape.
fn mm(
    gpu: &taskgrad::Gpu,
    kernel: MatmulKernel,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> taskgrad::gpu::Dispatch {
    let wg = kernel.default_wg();
    matmul::matmul_kernel(gpu, a, b, c, opts, kernel, wg).expect("matmul")
}

/// Run op(A)·op(B) with every epilogue on the GPU, by every kernel of the
/// ladder and by the chosen one, and compare with the reference.
fn check_matmul(gpu: &taskgrad::Gpu, m: usize, k: usize, n: usize, seed: u64) {
    for kernel in MatmulKernel::ALL {
        if !kernel.fits(gpu) {
            println!(
                "{kernel:?}: not enough workgroup memory on {}: skipped",
                gpu.report
            );
            continue;
        }
        check_matmul_with(gpu, m, k, n, seed, |a, b, c, o| mm(gpu, kernel, a, b, c, o));
    }
    check_matmul_with(gpu, m, k, n, seed, |a, b, c, o| {
        matmul::matmul(gpu, a, b, c, o).expect("matmul")
    });
}

fn check_matmul_with(
    gpu: &taskgrad::Gpu,
    m: usize,
    k: usize,
    n: usize,
    seed: u64,
    product: impl Fn(&Tensor, &Tensor, &Tensor, MatmulOptions) -> taskgrad::gpu::Dispatch,
) {
    let mut r = rng(seed);
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
        let a_shape = if trans_a { [k, m] } else { [m, k] };
        let b_shape = if trans_b { [n, k] } else { [k, n] };
        let a = random(&mut r, m * k);
        let b = random(&mut r, k * n);
        let bias = random(&mut r, n);
        let (ga, gb, gbias) = (
            upload(gpu, &a_shape, &a),
            upload(gpu, &b_shape, &b),
            upload(gpu, &[n], &bias),
        );
        let tol = 1e-5 * k as f32 + 1e-5;
        for (use_bias, relu) in [(false, false), (true, false), (true, true)] {
            let c = zeros(gpu, &[m, n]);
            let opts = MatmulOptions {
                trans_a,
                trans_b,
                bias: use_bias.then_some(&gbias),
                relu,
                ..Default::default()
            };
            let d = product(&ga, &gb, &c, opts);
            gpu.run(&[&d]).expect("run");
            let want = cpu::matmul(
                &a,
                &b,
                m,
                k,
                n,
                trans_a,
                trans_b,
                use_bias.then_some(&bias[..]),
                relu,
            );
            let what = format!(
                "matmul m={m} k={k} n={n} ta={trans_a} tb={trans_b} bias={use_bias} relu={relu}"
            );
            assert_close(&what, &gpu.read_one(&c).unwrap(), &want, tol, 1e-4);
        }
        // Accumulate: C starts at c0 and receives op(A)·op(B) on top.
        let c0 = random(&mut r, m * n);
        let c = upload(gpu, &[m, n], &c0);
        let opts = MatmulOptions {
            trans_a,
            trans_b,
            accumulate: true,
            ..Default::default()
        };
        gpu.run(&[&product(&ga, &gb, &c, opts)]).unwrap();
        let want = cpu::add(
            &c0,
            &cpu::matmul(&a, &b, m, k, n, trans_a, trans_b, None, false),
        );
        assert_close(
            "matmul accumulate",
            &gpu.read_one(&c).unwrap(),
            &want,
            tol,
            1e-4,
        );
    }
}

#[test]
fn split_k_matmul_matches_the_reference_with_every_option() {
    // Split-K: `splits` slices of k summed into partials, then reduced with the
    // epilogue; every transpose, bias + ReLU, accumulate, and the fused backward
    // (mask and bias gradient), on shapes whose k does not divide evenly.
    use taskgrad::kernels::matmul::Operand;
    let gpu = gpu_or_skip!();
    let mut r = rng(91);
    for (kernel, wg) in [
        (MatmulKernel::Register, (8, 8)),
        (MatmulKernel::Tiled, (16, 16)),
        (MatmulKernel::Tiled32, (16, 16)),
    ] {
        for &(m, k, n, splits) in &[
            (3, 17, 5, 3),
            (33, 130, 10, 7),
            (64, 257, 1, 16),
            (5, 2, 9, 4),
        ] {
            check_matmul_with(gpu, m, k, n, 91 + splits as u64, |a, b, c, o| {
                let ds = matmul::matmul_split(gpu, a, b, c, o, kernel, wg, splits).expect("split");
                assert_eq!(ds.len(), 2);
                // One dispatch is what check_matmul_with runs: a pass that records both.
                gpu.run(&[&ds[0]]).unwrap();
                ds.into_iter().nth(1).unwrap()
            });
            // The fused backward of Y = relu(X·W + b): dW and db in one split product.
            let (b_rows, d, h) = (k, m, n);
            let (x, dy, y) = (
                random(&mut r, b_rows * d),
                random(&mut r, b_rows * h),
                random(&mut r, b_rows * h),
            );
            let dz = cpu::relu_backward(&dy, &y);
            let (gx, gdy, gy) = (
                upload(gpu, &[b_rows, d], &x),
                upload(gpu, &[b_rows, h], &dy),
                upload(gpu, &[b_rows, h], &y),
            );
            let (dw, db) = (zeros(gpu, &[d, h]), zeros(gpu, &[h]));
            let o = MatmulOptions {
                trans_a: true,
                mask: Some((&gy, Operand::B)),
                bias_grad: Some(&db),
                ..Default::default()
            };
            let ds = matmul::matmul_split(gpu, &gx, &gdy, &dw, o, kernel, wg, splits).unwrap();
            gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
            let got = gpu.read(&[&dw, &db]).unwrap();
            let tol = 1e-5 * b_rows as f32 + 1e-5;
            let what =
                format!("split-K {kernel:?} backward k={b_rows} d={d} h={h} splits={splits}");
            assert_close(
                &format!("dW {what}"),
                &got[0],
                &cpu::matmul(&x, &dz, d, b_rows, h, true, false, None, false),
                tol,
                1e-4,
            );
            assert_close(
                &format!("db {what}"),
                &got[1],
                &cpu::sum_rows(&dz, b_rows, h),
                tol,
                1e-4,
            );
        }
    }
}

#[test]
fn matmul_hand_checked_2x2() {
    let gpu = gpu_or_skip!();
    // [1 2] [5 6]   [1·5+2·7 1·6+2·8]   [19 22]
    // [3 4]·[7 8] = [3·5+4·7 3·6+4·8] = [43 50];  + bias [1, -100] then ReLU: [20 0; 44 0]
    let a = upload(gpu, &[2, 2], &[1., 2., 3., 4.]);
    let b = upload(gpu, &[2, 2], &[5., 6., 7., 8.]);
    let bias = upload(gpu, &[2], &[1., -100.]);
    let c = zeros(gpu, &[2, 2]);
    gpu.run(&[&matmul::matmul(gpu, &a, &b, &c, MatmulOptions::default()).unwrap()])
        .unwrap();
    assert_eq!(gpu.read_one(&c).unwrap(), vec![19., 22., 43., 50.]);
    let opts = MatmulOptions {
        bias: Some(&bias),
        relu: true,
        ..Default::default()
    };
    gpu.run(&[&matmul::matmul(gpu, &a, &b, &c, opts).unwrap()])
        .unwrap();
    assert_eq!(gpu.read_one(&c).unwrap(), vec![20., 0., 44., 0.]);
}

#[test]
fn matmul_1x1() {
    let gpu = gpu_or_skip!();
    check_matmul(gpu, 1, 1, 1, 1);
}

#[test]
fn matmul_shapes_not_multiple_of_tile() {
    let gpu = gpu_or_skip!();
    for (i, &(m, k, n)) in [
        (3, 17, 5),
        (3, 5, 4),
        (65, 33, 128),
        (17, 3, 63),
        (63, 65, 17),
        (65, 129, 3),
        (129, 33, 257),
        (257, 257, 65),
        // Multiples of 4: the register kernel's vec4 loads (W-iris's shapes).
        (120, 64, 64),
        (64, 120, 4),
    ]
    .iter()
    .enumerate()
    {
        check_matmul(gpu, m, k, n, 10 + i as u64);
    }
}

#[test]
fn matmul_fused_relu_mask_and_bias_gradient() {
    // Backward of Y = relu(X·W + b) with X B×D, W D×H:
    //   dZ = dY ⊙ [Y > 0];  dW = Xᵀ·dZ and db = Σ_rows dZ in one dispatch (mask on B);
    //   dX = dZ·Wᵀ in another (mask on A). Checked against relu_backward + products + sum_rows.
    let gpu = gpu_or_skip!();
    use taskgrad::kernels::matmul::Operand;
    for kernel in MatmulKernel::ALL.into_iter().filter(|k| k.fits(gpu)) {
        for &(b, d, h) in &[
            (1, 1, 1),
            (17, 3, 65),
            (63, 65, 17),
            (129, 33, 5),
            (130, 70, 140),
            // Every vec4 mode of the register kernel, the masks' views among them.
            (132, 64, 120),
        ] {
            let mut r = rng(31 + b as u64);
            let (x, w, dy) = (
                random(&mut r, b * d),
                random(&mut r, d * h),
                random(&mut r, b * h),
            );
            let y = random(&mut r, b * h); // only its sign matters: about half the mask is off
            let dz = cpu::relu_backward(&dy, &y);
            let (gx, gw, gdy, gy) = (
                upload(gpu, &[b, d], &x),
                upload(gpu, &[d, h], &w),
                upload(gpu, &[b, h], &dy),
                upload(gpu, &[b, h], &y),
            );
            let (dw, db, dx) = (zeros(gpu, &[d, h]), zeros(gpu, &[h]), zeros(gpu, &[b, d]));
            let o1 = MatmulOptions {
                trans_a: true,
                mask: Some((&gy, Operand::B)),
                bias_grad: Some(&db),
                ..Default::default()
            };
            let o2 = MatmulOptions {
                trans_b: true,
                mask: Some((&gy, Operand::A)),
                ..Default::default()
            };
            let d1 = mm(gpu, kernel, &gx, &gdy, &dw, o1);
            let d2 = mm(gpu, kernel, &gdy, &gw, &dx, o2);
            gpu.run(&[&d1, &d2]).unwrap();
            let got = gpu.read(&[&dw, &db, &dx]).unwrap();
            let tol = 1e-5 * b.max(h) as f32 + 1e-5;
            let what = format!("{kernel:?} b={b} d={d} h={h}");
            assert_close(
                &format!("dW {what}"),
                &got[0],
                &cpu::matmul(&x, &dz, d, b, h, true, false, None, false),
                tol,
                1e-4,
            );
            assert_close(
                &format!("db {what}"),
                &got[1],
                &cpu::sum_rows(&dz, b, h),
                tol,
                1e-4,
            );
            assert_close(
                &format!("dX {what}"),
                &got[2],
                &cpu::matmul(&dz, &w, b, h, d, false, true, None, false),
                tol,
                1e-4,
            );
            // Accumulating doubles dW and db.
            let o3 = MatmulOptions {
                accumulate: true,
                ..o1
            };
            gpu.run(&[&mm(gpu, kernel, &gx, &gdy, &dw, o3)]).unwrap();
            let again = gpu.read(&[&dw, &db]).unwrap();
            assert_close(
                &format!("2dW {what}"),
                &again[0],
                &cpu::scale(&got[0], 2.0),
                tol,
                1e-4,
            );
            assert_close(
                &format!("2db {what}"),
                &again[1],
                &cpu::scale(&got[1], 2.0),
                tol,
                1e-4,
            );
        }
    }
}

#[test]
fn every_matmul_workgroup_shape_gives_the_same_product() {
    // The timed search may pick any candidate; all must compute the same C.
    let gpu = gpu_or_skip!();
    let (m, k, n) = (67, 45, 33);
    let mut r = rng(37);
    let (a, b) = (random(&mut r, m * k), random(&mut r, k * n));
    let (ga, gb) = (upload(gpu, &[m, k], &a), upload(gpu, &[k, n], &b));
    let want = cpu::matmul(&a, &b, m, k, n, false, false, None, false);
    for wg in matmul::CANDIDATES {
        let c = zeros(gpu, &[m, n]);
        gpu.run(&[&matmul::matmul_with(gpu, &ga, &gb, &c, MatmulOptions::default(), wg).unwrap()])
            .unwrap();
        assert_close(
            &format!("matmul wg {wg:?}"),
            &gpu.read_one(&c).unwrap(),
            &want,
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn rows_matmul_equals_the_register_kernel_bit_for_bit() {
    // `matmul_rows` adds each output's products in the register kernel's
    // order, so the two agree bit for bit in every mode: both transposes,
    // bias + ReLU, accumulate, the mask on either operand with the bias
    // gradient, the vec4 views (shapes with K, M or N multiples of 4) and
    // split-K, at workgroup widths down to one invocation.
    let gpu = gpu_or_skip!();
    let shapes = [
        (1, 1, 1),
        (5, 7, 3),
        (9, 12, 13),
        (13, 8, 4),
        (16, 8, 12),
        (120, 64, 64),
        (36, 20, 24),
    ];
    let ways = [
        (MatmulKernel::Rows, (1, 1)),
        (MatmulKernel::Rows, (8, 1)),
        (MatmulKernel::Rows4, (2, 1)),
    ];
    assert_same_bits_as_register(gpu, &shapes, &ways, 900);
}

#[test]
fn unrolled_matmul_matches_the_reference_and_the_register_kernel_bit_for_bit() {
    // The written-out kernel (`kernels::matmul_unrolled`) on products small
    // enough for it, with lanes along rows and along columns: against the CPU
    // reference with every epilogue, then bit for bit against the register
    // kernel in every mode (it adds the same products in the same order).
    let gpu = gpu_or_skip!();
    // (m, k, n): W-iris's head products and first layer's, and awkward sizes.
    let shapes = [
        (1, 1, 1),
        (5, 7, 3),
        (13, 8, 4),
        (9, 12, 13),
        (3, 30, 20),
        (120, 64, 3),
        (64, 120, 3),
        (120, 3, 64),
        (2, 120, 64),
        (17, 2, 64),
    ];
    // (The reference on a few; the register kernel, itself checked against
    // it, bit for bit on all.)
    for (i, &(m, k, n)) in [(5, 7, 3), (9, 12, 13), (3, 30, 20), (120, 3, 64)]
        .iter()
        .enumerate()
    {
        check_matmul_with(gpu, m, k, n, 70 + i as u64, |a, b, c, o| {
            matmul::matmul_kernel(gpu, a, b, c, o, MatmulKernel::Unrolled, (8, 1)).expect("fits")
        });
    }
    assert_same_bits_as_register(gpu, &shapes, &[(MatmulKernel::Unrolled, (8, 1))], 950);
    // A product too large to write out is refused, not truncated.
    let (a, b, c) = (
        zeros(gpu, &[120, 64]),
        zeros(gpu, &[64, 64]),
        zeros(gpu, &[120, 64]),
    );
    let e = matmul::matmul_kernel(
        gpu,
        &a,
        &b,
        &c,
        MatmulOptions::default(),
        MatmulKernel::Unrolled,
        (8, 1),
    )
    .unwrap_err();
    assert!(e.to_string().contains("at most 512 terms"), "{e}");
}

#[test]
fn subgroup_matmul_matches_the_reference_and_the_register_kernel_bit_for_bit() {
    // The subgroup kernel (`kernels::matmul_lanes`): lanes own rows, the
    // op(B) block broadcast. Against the CPU reference with every epilogue,
    // then bit for bit against the register kernel in every mode, on shapes
    // it takes in all four layouts (k and n multiples of 4): W-iris's hidden
    // products, rows and columns that leave the last blocks partial, and
    // one lane's rows spread over several row groups.
    use taskgrad::kernels::matmul_lanes;
    let gpu = gpu_or_skip!();
    if !has_fixed_subgroups(gpu) {
        return;
    }
    let shapes = [
        (120, 64, 64),
        (64, 120, 64),
        (9, 12, 16),
        (17, 8, 20),
        (130, 8, 40),
        (5, 4, 4),
    ];
    for &(m, k, n) in &shapes {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = zeros(gpu, &if trans_a { [k, m] } else { [m, k] });
            let b = zeros(gpu, &if trans_b { [n, k] } else { [k, n] });
            let c = zeros(gpu, &[m, n]);
            let o = MatmulOptions {
                trans_a,
                trans_b,
                ..Default::default()
            };
            assert!(
                matmul_lanes::fits(gpu, &a, &b, &c, &o),
                "{m}x{k}x{n} ta={trans_a} tb={trans_b} should fit the subgroup kernel"
            );
        }
    }
    for (i, &(m, k, n)) in [(9, 12, 16), (130, 8, 40), (64, 120, 64)]
        .iter()
        .enumerate()
    {
        check_matmul_with(gpu, m, k, n, 80 + i as u64, |a, b, c, o| {
            matmul_lanes::matmul_lanes(gpu, a, b, c, o).expect("fits")
        });
    }
    assert_same_bits_as_register(gpu, &shapes, &[(MatmulKernel::Lanes, (8, 1))], 990);
    // What it cannot take is refused with the reason, not computed wrongly.
    let (a, b, c) = (
        zeros(gpu, &[8, 6]),
        zeros(gpu, &[6, 16]),
        zeros(gpu, &[8, 16]),
    );
    let e = matmul_lanes::matmul_lanes(gpu, &a, &b, &c, MatmulOptions::default()).unwrap_err();
    assert!(e.to_string().contains("k and n multiples of 4"), "{e}");
}

/// Whether the adapter has subgroups of one fixed size (the subgroup
/// kernel's need). Lavapipe (llvmpipe through Vulkan) must have them; on
/// another adapter without them (wgpu's GL backend offers none) the caller
/// skips, saying so.
fn has_fixed_subgroups(gpu: &taskgrad::Gpu) -> bool {
    if taskgrad::kernels::matmul_lanes::subgroup_size(gpu).is_some() {
        return true;
    }
    let lavapipe = gpu.report.name.contains("llvmpipe")
        && gpu.report.backend == taskgrad::wgpu::Backend::Vulkan;
    assert!(
        !lavapipe,
        "lavapipe has subgroups of one fixed size (its SIMD width); {} reports none",
        gpu.report
    );
    eprintln!("skipped: {} has no fixed-size subgroups", gpu.report);
    false
}

#[test]
fn subgroup_matmul_runs_replicas_each_as_alone_bit_for_bit() {
    // The subgroup kernel over the replica axis (workgroup layer z): three
    // replicas in one dispatch, every transpose and mode, equal bit for bit
    // to each replica's product alone and to the reference; the shapes
    // leave partial row and column blocks. Recorded by the kernel itself,
    // which refuses what it cannot take, so no fallback is what is tested.
    use taskgrad::kernels::matmul_lanes;
    let gpu = gpu_or_skip!();
    if !has_fixed_subgroups(gpu) {
        return;
    }
    let product = |a: &Tensor, b: &Tensor, c: &Tensor, o: MatmulOptions| {
        vec![matmul_lanes::matmul_lanes(gpu, a, b, c, o).expect("fits, replicated")]
    };
    let mut seed = 700;
    for (m, k, n) in [(20, 8, 16), (33, 12, 36)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            seed += 1;
            let what = format!("lanes m={m} k={k} n={n} ta={ta} tb={tb}");
            check_replicated_cases(gpu, &what, (m, k, n), (ta, tb), seed, &product);
        }
    }
}

/// Each of `ways` (kernel, workgroup) computes every mode of each (m, k, n)
/// in `shapes` bit for bit as the register kernel does: both transposes,
/// bias + ReLU, accumulate with the mask on A, the mask on B with the bias
/// gradient, and split-K (for the kernels that split, where k ≥ 8).
fn assert_same_bits_as_register(
    gpu: &taskgrad::Gpu,
    shapes: &[(usize, usize, usize)],
    ways_in: &[(MatmulKernel, (u32, u32))],
    seed0: u64,
) {
    use taskgrad::kernels::matmul::Operand;
    let mut seed = seed0;
    for &(m, k, n) in shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            seed += 1;
            let mut r = rng(seed);
            let a_shape = if ta { [k, m] } else { [m, k] };
            let b_shape = if tb { [n, k] } else { [k, n] };
            let (a, b, bias) = (
                random(&mut r, m * k),
                random(&mut r, k * n),
                random(&mut r, n),
            );
            let (ma, mb, c0) = (
                random(&mut r, m * k),
                random(&mut r, k * n),
                random(&mut r, m * n),
            );
            let (ga, gb, gbias) = (
                upload(gpu, &a_shape, &a),
                upload(gpu, &b_shape, &b),
                upload(gpu, &[n], &bias),
            );
            let (gma, gmb) = (upload(gpu, &a_shape, &ma), upload(gpu, &b_shape, &mb));
            // (name, options, whether the bias gradient is asked for too)
            let modes: Vec<(&str, MatmulOptions, bool)> = vec![
                ("plain", MatmulOptions::default(), false),
                (
                    "bias+relu",
                    MatmulOptions {
                        bias: Some(&gbias),
                        relu: true,
                        ..Default::default()
                    },
                    false,
                ),
                (
                    "accumulate, mask A",
                    MatmulOptions {
                        accumulate: true,
                        mask: Some((&gma, Operand::A)),
                        ..Default::default()
                    },
                    false,
                ),
                (
                    "mask B, bias gradient",
                    MatmulOptions {
                        mask: Some((&gmb, Operand::B)),
                        ..Default::default()
                    },
                    true,
                ),
            ];
            for (name, mode, bias_grad) in modes {
                // (C, db) from one way of computing the product.
                let run =
                    |product: &dyn Fn(&Tensor, MatmulOptions) -> Vec<taskgrad::gpu::Dispatch>| {
                        let c = upload(gpu, &[m, n], &c0);
                        let db = upload(gpu, &[n], &bias);
                        let mut o = MatmulOptions {
                            trans_a: ta,
                            trans_b: tb,
                            ..mode
                        };
                        if bias_grad {
                            o.bias_grad = Some(&db);
                        }
                        let ds = product(&c, o);
                        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
                        gpu.read(&[&c, &db]).unwrap()
                    };
                let want = run(&|c, o| {
                    vec![
                        matmul::matmul_kernel(gpu, &ga, &gb, c, o, MatmulKernel::Register, (8, 8))
                            .unwrap(),
                    ]
                });
                let mut ways: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
                for &(kernel, wg) in ways_in {
                    ways.push((
                        format!("{kernel:?} wg {wg:?}"),
                        run(&|c, o| {
                            vec![matmul::matmul_kernel(gpu, &ga, &gb, c, o, kernel, wg).unwrap()]
                        }),
                    ));
                }
                let splits = ways_in.iter().any(|(kernel, _)| {
                    !matches!(kernel, MatmulKernel::Unrolled | MatmulKernel::Lanes)
                });
                if k >= 8 && splits {
                    // Split-K: each kernel's partial sums over the same slices.
                    let split = |kernel, wg| {
                        run(&|c, o| {
                            matmul::matmul_split(gpu, &ga, &gb, c, o, kernel, wg, 2).unwrap()
                        })
                    };
                    let want_split = split(MatmulKernel::Register, (8, 8));
                    for &(kernel, wg) in ways_in {
                        let got = split(kernel, wg);
                        let same = (want_split.iter().flatten())
                            .zip(got.iter().flatten())
                            .all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(
                            same,
                            "split-K {kernel:?} differs from split-K register: \
                             {m}x{k}x{n} ta={ta} tb={tb} {name}"
                        );
                    }
                }
                for (way, got) in ways {
                    for (which, (w, g)) in ["C", "db"].iter().zip(want.iter().zip(&got)) {
                        if let Some(i) = (0..w.len()).find(|&i| w[i].to_bits() != g[i].to_bits()) {
                            panic!(
                                "{way}, {m}x{k}x{n} ta={ta} tb={tb} {name}: {which}[{i}] = {} against the register kernel's {}",
                                g[i], w[i]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_backward_products_match_reference() {
    // Y = X·W (X B×D, W D×H): dX = dY·Wᵀ and dW = Xᵀ·dY, as the tape will run them.
    let gpu = gpu_or_skip!();
    let (b, d, h) = (17, 65, 63);
    let mut r = rng(7);
    let (x, w, dy) = (
        random(&mut r, b * d),
        random(&mut r, d * h),
        random(&mut r, b * h),
    );
    let (gx, gw, gdy) = (
        upload(gpu, &[b, d], &x),
        upload(gpu, &[d, h], &w),
        upload(gpu, &[b, h], &dy),
    );
    let (dx, dw) = (zeros(gpu, &[b, d]), zeros(gpu, &[d, h]));
    let d1 = matmul::matmul(
        gpu,
        &gdy,
        &gw,
        &dx,
        MatmulOptions {
            trans_b: true,
            ..Default::default()
        },
    )
    .unwrap();
    let d2 = matmul::matmul(
        gpu,
        &gx,
        &gdy,
        &dw,
        MatmulOptions {
            trans_a: true,
            ..Default::default()
        },
    )
    .unwrap();
    gpu.run(&[&d1, &d2]).unwrap();
    assert_close(
        "dX",
        &gpu.read_one(&dx).unwrap(),
        &cpu::matmul(&dy, &w, b, h, d, false, true, None, false),
        1e-3,
        1e-4,
    );
    assert_close(
        "dW",
        &gpu.read_one(&dw).unwrap(),
        &cpu::matmul(&x, &dy, d, b, h, true, false, None, false),
        1e-3,
        1e-4,
    );
}

// ---- elementwise --------------------------------------------------------------

#[test]
fn elementwise_hand_checked() {
    let gpu = gpu_or_skip!();
    // x = [-2, 0, 3], b = [1, 1, -1]
    let x = upload(gpu, &[3], &[-2., 0., 3.]);
    let b = upload(gpu, &[3], &[1., 1., -1.]);
    let y = zeros(gpu, &[3]);
    gpu.run(&[&elementwise::relu(gpu, &x, &y).unwrap()])
        .unwrap();
    assert_eq!(gpu.read_one(&y).unwrap(), vec![0., 0., 3.]); // max(x, 0)
    gpu.run(&[&elementwise::add(gpu, &x, &b, &y).unwrap()])
        .unwrap();
    assert_eq!(gpu.read_one(&y).unwrap(), vec![-1., 1., 2.]); // x + b
    gpu.run(&[&elementwise::scale(gpu, &x, 0.5, &y).unwrap()])
        .unwrap();
    assert_eq!(gpu.read_one(&y).unwrap(), vec![-1., 0., 1.5]); // x / 2
    gpu.run(&[&elementwise::axpy(gpu, 2.0, &b, &y).unwrap()])
        .unwrap();
    assert_eq!(gpu.read_one(&y).unwrap(), vec![1., 2., -0.5]); // y + 2b
    let (s, m) = (zeros(gpu, &[3]), zeros(gpu, &[3]));
    gpu.run(&[
        &elementwise::sigmoid(gpu, &x, &s).unwrap(),
        &elementwise::mul(gpu, &x, &b, &m).unwrap(),
    ])
    .unwrap();
    let want: Vec<f32> = [-2.0f64, 0.0, 3.0]
        .iter()
        .map(|v| (1.0 / (1.0 + (-v).exp())) as f32)
        .collect();
    assert_close("sigmoid", &gpu.read_one(&s).unwrap(), &want, 1e-7, 1e-6);
    assert_eq!(gpu.read_one(&m).unwrap(), vec![-2., 0., -3.]); // x ⊙ b
    gpu.run(&[&elementwise::rescale(gpu, &y, -4.0).unwrap()])
        .unwrap();
    assert_eq!(gpu.read_one(&y).unwrap(), vec![-4., -8., 2.]); // -4y in place
    gpu.run(&[&elementwise::rescale(gpu, &y, -0.25).unwrap()])
        .unwrap();
    gpu.run(&[&elementwise::relu_backward(gpu, &b, &x, &y).unwrap()])
        .unwrap();
    assert_eq!(gpu.read_one(&y).unwrap(), vec![0., 0., -1.]); // dy where x > 0
    gpu.run(&[&elementwise::fill(gpu, &y, 7.5).unwrap()])
        .unwrap();
    assert_eq!(gpu.read_one(&y).unwrap(), vec![7.5; 3]);
}

#[test]
fn elementwise_against_reference_all_sizes() {
    let gpu = gpu_or_skip!();
    let mut r = rng(3);
    for &n in &SIZES {
        let (xv, bv, yv) = (random(&mut r, n), random(&mut r, n), random(&mut r, n));
        let (x, b) = (upload(gpu, &[n], &xv), upload(gpu, &[n], &bv));
        let y = upload(gpu, &[n], &yv);
        let out = zeros(gpu, &[n]);
        gpu.run(&[&elementwise::axpy(gpu, -0.75, &x, &y).unwrap()])
            .unwrap();
        assert_close(
            &format!("axpy n={n}"),
            &gpu.read_one(&y).unwrap(),
            &cpu::axpy(-0.75, &xv, &yv),
            1e-6,
            1e-6,
        );
        gpu.run(&[&elementwise::add(gpu, &x, &b, &out).unwrap()])
            .unwrap();
        assert_close(
            &format!("add n={n}"),
            &gpu.read_one(&out).unwrap(),
            &cpu::add(&xv, &bv),
            1e-6,
            1e-6,
        );
        gpu.run(&[&elementwise::scale(gpu, &x, 3.25, &out).unwrap()])
            .unwrap();
        assert_close(
            &format!("scale n={n}"),
            &gpu.read_one(&out).unwrap(),
            &cpu::scale(&xv, 3.25),
            1e-6,
            1e-6,
        );
        gpu.run(&[&elementwise::relu(gpu, &x, &out).unwrap()])
            .unwrap();
        let y_relu = cpu::relu(&xv);
        assert_close(
            &format!("relu n={n}"),
            &gpu.read_one(&out).unwrap(),
            &y_relu,
            0.0,
            0.0,
        );
        let yr = upload(gpu, &[n], &y_relu);
        gpu.run(&[&elementwise::relu_backward(gpu, &b, &yr, &out).unwrap()])
            .unwrap();
        assert_close(
            &format!("relu_backward n={n}"),
            &gpu.read_one(&out).unwrap(),
            &cpu::relu_backward(&bv, &y_relu),
            0.0,
            0.0,
        );
        // GELU and tanh on x spread over [-4, 4], and their backwards.
        let wide: Vec<f32> = xv.iter().map(|&v| 4.0 * v).collect();
        let xw = upload(gpu, &[n], &wide);
        gpu.run(&[&elementwise::gelu(gpu, &xw, &out).unwrap()])
            .unwrap();
        assert_close(
            &format!("gelu n={n}"),
            &gpu.read_one(&out).unwrap(),
            &cpu::gelu(&wide),
            1e-6,
            1e-5,
        );
        gpu.run(&[&elementwise::gelu_backward(gpu, &b, &xw, &out).unwrap()])
            .unwrap();
        assert_close(
            &format!("gelu_backward n={n}"),
            &gpu.read_one(&out).unwrap(),
            &cpu::gelu_backward(&bv, &wide),
            1e-6,
            1e-5,
        );
        let y_tanh = cpu::tanh(&wide);
        gpu.run(&[&elementwise::tanh(gpu, &xw, &out).unwrap()])
            .unwrap();
        assert_close(
            &format!("tanh n={n}"),
            &gpu.read_one(&out).unwrap(),
            &y_tanh,
            1e-6,
            1e-5,
        );
        let yt = upload(gpu, &[n], &y_tanh);
        gpu.run(&[&elementwise::tanh_backward(gpu, &b, &yt, &out).unwrap()])
            .unwrap();
        assert_close(
            &format!("tanh_backward n={n}"),
            &gpu.read_one(&out).unwrap(),
            &cpu::tanh_backward(&bv, &y_tanh),
            1e-6,
            1e-5,
        );
        gpu.run(&[&elementwise::fill(gpu, &out, -1.25).unwrap()])
            .unwrap();
        assert_close(
            &format!("fill n={n}"),
            &gpu.read_one(&out).unwrap(),
            &vec![-1.25; n],
            0.0,
            0.0,
        );
    }
}

#[test]
fn dispatch_beyond_65535_workgroups_is_folded_into_two_dimensions() {
    let gpu = gpu_or_skip!();
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    // One more workgroup than fits in x, plus a ragged tail.
    let n = max * taskgrad::kernels::WG as usize + 3;
    let grid = taskgrad::kernels::grid_1d(gpu, n).unwrap();
    assert!(grid[1] > 1, "expected a 2-D grid, got {grid:?}");
    let xv: Vec<f32> = (0..n).map(|i| (i % 1013) as f32).collect();
    let x = upload(gpu, &[n], &xv);
    let y = zeros(gpu, &[n]);
    gpu.run(&[&elementwise::axpy(gpu, 2.0, &x, &y).unwrap()])
        .unwrap();
    let got = gpu.read_one(&y).unwrap();
    assert_close("folded axpy", &got, &cpu::scale(&xv, 2.0), 0.0, 0.0);
}

// ---- reductions -----------------------------------------------------------------

#[test]
fn reductions_hand_checked() {
    let gpu = gpu_or_skip!();
    // x = [[1 2] [3 4] [5 6]]: column sums [9 12], total 21.
    let x = upload(gpu, &[3, 2], &[1., 2., 3., 4., 5., 6.]);
    let cols = zeros(gpu, &[2]);
    let total = zeros(gpu, &[1]);
    gpu.run(&[
        &reduce::sum_rows(gpu, &x, &cols, false).unwrap()[0],
        &reduce::sum_all(gpu, &x, &total, false).unwrap()[0],
    ])
    .unwrap();
    assert_eq!(
        gpu.read(&[&cols, &total]).unwrap(),
        vec![vec![9., 12.], vec![21.]]
    );
    // Accumulating a second time doubles both.
    gpu.run(&[
        &reduce::sum_rows(gpu, &x, &cols, true).unwrap()[0],
        &reduce::sum_all(gpu, &x, &total, true).unwrap()[0],
    ])
    .unwrap();
    assert_eq!(
        gpu.read(&[&cols, &total]).unwrap(),
        vec![vec![18., 24.], vec![42.]]
    );
}

#[test]
fn reductions_against_reference() {
    let gpu = gpu_or_skip!();
    let mut r = rng(5);
    for &(rows, cols) in &[(1, 1), (3, 17), (63, 65), (129, 3), (1000, 257), (1, 1000)] {
        let xv = random(&mut r, rows * cols);
        let x = upload(gpu, &[rows, cols], &xv);
        let (s, t) = (zeros(gpu, &[cols]), zeros(gpu, &[1]));
        gpu.run(&[
            &reduce::sum_rows(gpu, &x, &s, false).unwrap()[0],
            &reduce::sum_all(gpu, &x, &t, false).unwrap()[0],
        ])
        .unwrap();
        let got = gpu.read(&[&s, &t]).unwrap();
        let tol = 1e-6 * (rows * cols) as f32 + 1e-6;
        assert_close(
            &format!("sum_rows {rows}x{cols}"),
            &got[0],
            &cpu::sum_rows(&xv, rows, cols),
            tol,
            1e-5,
        );
        assert_close(
            &format!("sum_all {rows}x{cols}"),
            &got[1],
            &[cpu::sum_all(&xv)],
            tol,
            1e-5,
        );
    }
}

// ---- losses ------------------------------------------------------------------------

struct CeRun {
    loss: f32,
    loss_rows: Vec<f32>,
    dlogits: Vec<f32>,
}

fn run_softmax_ce(
    gpu: &taskgrad::Gpu,
    z: &[f32],
    y: &[u32],
    mask: &[f32],
    b: usize,
    c: usize,
    scale: f32,
) -> CeRun {
    let logits = upload(gpu, &[b, c], z);
    let labels = Tensor::from_u32(gpu, &[b], y, "labels").unwrap();
    let mask = upload(gpu, &[b], mask);
    let scale = upload(gpu, &[1], &[scale]);
    let (dlogits, loss_rows, loss) = (zeros(gpu, &[b, c]), zeros(gpu, &[b]), zeros(gpu, &[1]));
    let out = softmax_ce::SoftmaxCeOutputs {
        dlogits: &dlogits,
        loss_rows: &loss_rows,
        loss: &loss,
    };
    gpu.run(&[&softmax_ce::softmax_ce(gpu, &logits, &labels, &mask, &scale, 0, out).unwrap()])
        .unwrap();
    let mut got = gpu.read(&[&loss, &loss_rows, &dlogits]).unwrap();
    CeRun {
        loss: got[0][0],
        dlogits: got.remove(2),
        loss_rows: got.remove(1),
    }
}

#[test]
fn softmax_ce_sized_to_the_batch_equals_256_invocations_bit_for_bit() {
    // The loss kernels' workgroup is the smallest power of two ≥ B (32 to
    // 256; kernels::LossParams::workgroup): the same source recorded at 256
    // invocations gives the same bits, loss, per-row losses and gradient.
    let gpu = gpu_or_skip!();
    let mut r = rng(12);
    for &(b, c) in &[
        (1usize, 3usize),
        (17, 1),
        (32, 3),
        (33, 10),
        (100, 3),
        (255, 2),
    ] {
        let z: Vec<f32> = random(&mut r, b * c).iter().map(|v| v * 5.0).collect();
        let y: Vec<u32> = (0..b).map(|i| ((i * 5 + 1) % c) as u32).collect();
        let mask: Vec<f32> = (0..b).map(|i| if i % 3 == 1 { 0.0 } else { 1.0 }).collect();
        let sized = run_softmax_ce(gpu, &z, &y, &mask, b, c, 0.7);
        let logits = upload(gpu, &[b, c], &z);
        let labels = Tensor::from_u32(gpu, &[b], &y, "labels").unwrap();
        let (mask, scale) = (upload(gpu, &[b], &mask), upload(gpu, &[1], &[0.7]));
        let (dlogits, loss_rows, loss) = (zeros(gpu, &[b, c]), zeros(gpu, &[b]), zeros(gpu, &[1]));
        use taskgrad::gpu::Binding::*;
        // softmax_ce.wgsl's Params: rows, classes, slot, pad, then the replica strides.
        let params: [u32; 8] = [b as u32, c as u32, 0, 0, 0, 0, 0, 0];
        let wide = taskgrad::gpu::dispatch::record(
            gpu,
            "softmax_ce.wgsl",
            include_str!("../shaders/softmax_ce.wgsl"),
            "softmax_ce",
            &[
                Uniform, ReadWrite, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly, ReadOnly,
            ],
            &[("WG", 256.0)],
            &params,
            &[&dlogits, &loss_rows, &loss, &logits, &labels, &mask, &scale],
            [1, 1, 1],
        )
        .unwrap();
        gpu.run(&[&wide]).unwrap();
        let got = gpu.read(&[&loss, &loss_rows, &dlogits]).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            got[0][0].to_bits(),
            sized.loss.to_bits(),
            "loss, B={b} C={c}"
        );
        assert_eq!(
            bits(&got[1]),
            bits(&sized.loss_rows),
            "per-row losses, B={b} C={c}"
        );
        assert_eq!(bits(&got[2]), bits(&sized.dlogits), "gradient, B={b} C={c}");
    }
}

#[test]
fn softmax_ce_hand_checked() {
    let gpu = gpu_or_skip!();
    // Two rows, two classes, all logits 0: softmax = [1/2, 1/2], each row's loss = ln 2.
    // Row 1 is masked, so n_valid = 1: loss = ln 2; dlogits row 0 = ([1/2, 1/2] - [0, 1])·1/1,
    // row 1 = 0.
    let run = run_softmax_ce(gpu, &[0., 0., 0., 0.], &[1, 0], &[1., 0.], 2, 2, 1.0);
    assert!((run.loss - 2f32.ln()).abs() < 1e-6, "loss {}", run.loss);
    assert_close("loss_rows", &run.loss_rows, &[2f32.ln(), 0.], 1e-6, 0.0);
    assert_close("dlogits", &run.dlogits, &[0.5, -0.5, 0., 0.], 1e-6, 0.0);
}

#[test]
fn softmax_ce_against_reference_with_masks() {
    let gpu = gpu_or_skip!();
    let mut r = rng(11);
    for &b in &SIZES {
        for &c in &[1usize, 3, 10] {
            // Large logits check the max-subtraction; every 4th row is unlabelled.
            let z: Vec<f32> = random(&mut r, b * c).iter().map(|v| v * 30.0).collect();
            let y: Vec<u32> = (0..b).map(|i| ((i * 7 + 3) % c) as u32).collect();
            let mask: Vec<f32> = (0..b).map(|i| if i % 4 == 3 { 0.0 } else { 1.0 }).collect();
            let run = run_softmax_ce(gpu, &z, &y, &mask, b, c, 0.7);
            let want = cpu::softmax_ce(&z, &y, &mask, b, c, 0.7);
            let what = format!("softmax_ce b={b} c={c}");
            assert_close(
                &format!("{what} loss"),
                &[run.loss],
                &[want.loss],
                1e-4,
                1e-5,
            );
            assert_close(
                &format!("{what} loss_rows"),
                &run.loss_rows,
                &want.loss_rows,
                1e-4,
                1e-5,
            );
            assert_close(
                &format!("{what} dlogits"),
                &run.dlogits,
                &want.dlogits,
                1e-6,
                1e-4,
            );
        }
    }
}

#[test]
fn softmax_ce_with_every_row_masked_is_zero() {
    let gpu = gpu_or_skip!();
    let run = run_softmax_ce(
        gpu,
        &[1., 2., 3., 4., 5., 6.],
        &[0, 1, 2],
        &[0., 0., 0.],
        3,
        2,
        1.0,
    );
    assert_eq!(run.loss, 0.0);
    assert!(run.dlogits.iter().all(|&d| d == 0.0));
}

fn run_mse(
    gpu: &taskgrad::Gpu,
    p: &[f32],
    t: &[f32],
    mask: &[f32],
    b: usize,
    cols: usize,
    scale: f32,
) -> (f32, Vec<f32>) {
    let pred = upload(gpu, &[b, cols], p);
    let truth = upload(gpu, &[b, cols], t);
    let mask = upload(gpu, &[b], mask);
    let scale = upload(gpu, &[1], &[scale]);
    let (dpred, loss) = (zeros(gpu, &[b, cols]), zeros(gpu, &[1]));
    gpu.run(&[&mse::mse(gpu, &pred, &truth, &mask, &scale, 0, &dpred, &loss).unwrap()])
        .unwrap();
    let got = gpu.read(&[&loss, &dpred]).unwrap();
    (got[0][0], got[1].clone())
}

#[test]
fn embedding_gather_and_scatter_against_reference_with_unseen_levels() {
    let gpu = gpu_or_skip!();
    let mut r = rng(31);
    for &(b, levels, dim) in &[
        (1usize, 1usize, 1usize),
        (3, 2, 5),
        (17, 63, 3),
        (257, 5, 17),
        (1000, 129, 4),
    ] {
        // x: two dense columns, then the index column (every 7th row unseen: −1).
        let x_cols = 3;
        let index: Vec<i64> = (0..b)
            .map(|i| {
                if i % 7 == 3 {
                    -1
                } else {
                    ((i * 31 + 7) % levels) as i64
                }
            })
            .collect();
        let mut xs = random(&mut r, b * x_cols);
        for (i, &l) in index.iter().enumerate() {
            xs[i * x_cols + 2] = l as f32;
        }
        let table = random(&mut r, levels * dim);
        let out_cols = dim + 4;
        let dy = random(&mut r, b * out_cols);
        let (xt, tt, dyt) = (
            upload(gpu, &[b, x_cols], &xs),
            upload(gpu, &[levels, dim], &table),
            upload(gpu, &[b, out_cols], &dy),
        );
        let (out, dtable) = (zeros(gpu, &[b, out_cols]), zeros(gpu, &[levels, dim]));
        let at = embedding::Placement { col: 2, off: 3 };
        let ds = [
            embedding::gather(gpu, &xt, &tt, &out, at).unwrap(),
            embedding::scatter(gpu, &xt, &dyt, &dtable, at).unwrap(),
        ];
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        let got = gpu.read(&[&out, &dtable]).unwrap();
        let want = cpu::embedding(&index, &table, levels, dim);
        let block: Vec<f32> = (0..b)
            .flat_map(|i| got[0][i * out_cols + 3..i * out_cols + 3 + dim].to_vec())
            .collect();
        assert_close(
            &format!("embedding b={b} L={levels} dim={dim}"),
            &block,
            &want,
            0.0,
            0.0,
        );
        let dy_block: Vec<f32> = (0..b)
            .flat_map(|i| dy[i * out_cols + 3..i * out_cols + 3 + dim].to_vec())
            .collect();
        let want_d = cpu::embedding_backward(&index, &dy_block, levels, dim);
        assert_close(
            &format!("embedding backward b={b} L={levels} dim={dim}"),
            &got[1],
            &want_d,
            1e-5,
            1e-5,
        );
        // Columns outside the block are not written.
        assert!((0..b).all(|i| got[0][i * out_cols..i * out_cols + 3]
            .iter()
            .all(|&v| v == 0.0)));
    }
}

#[test]
fn mse_hand_checked() {
    let gpu = gpu_or_skip!();
    // pred [1, 2, 9], target [0, 0, NaN] with row 2 unlabelled: loss = (1² + 2²) / 2 = 2.5,
    // dpred = 2·(pred - target)/2 = [1, 2, 0].
    let (loss, dpred) = run_mse(
        gpu,
        &[1., 2., 9.],
        &[0., 0., f32::NAN],
        &[1., 1., 0.],
        3,
        1,
        1.0,
    );
    assert_eq!(loss, 2.5);
    assert_eq!(dpred, vec![1., 2., 0.]);
}

#[test]
fn mse_against_reference_with_masks() {
    let gpu = gpu_or_skip!();
    let mut r = rng(13);
    for &b in &SIZES {
        for &cols in &[1usize, 3] {
            let (p, t) = (random(&mut r, b * cols), random(&mut r, b * cols));
            let mask: Vec<f32> = (0..b).map(|i| if i % 5 == 2 { 0.0 } else { 1.0 }).collect();
            let (loss, dpred) = run_mse(gpu, &p, &t, &mask, b, cols, 1.5);
            let (wl, wd) = cpu::mse(&p, &t, &mask, b, cols, 1.5);
            assert_close(
                &format!("mse b={b} t={cols} loss"),
                &[loss],
                &[wl],
                1e-5,
                1e-5,
            );
            assert_close(
                &format!("mse b={b} t={cols} dpred"),
                &dpred,
                &wd,
                1e-6,
                1e-5,
            );
        }
    }
}

// ---- optimizers ----------------------------------------------------------------------

#[test]
fn sgd_momentum_matches_reference_over_steps() {
    let gpu = gpu_or_skip!();
    let mut r = rng(17);
    for &n in &[1usize, 17, 1000] {
        let mut theta = random(&mut r, n);
        let mut vel = vec![0.0f32; n];
        let (gt, gv) = (upload(gpu, &[n], &theta), zeros(gpu, &[n]));
        let gg = zeros(gpu, &[n]);
        let cfg = optim::SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.01,
        };
        let step = optim::sgd::kernel(gpu, cfg, &gt, &gv, &gg).unwrap();
        for _ in 0..5 {
            let g = random(&mut r, n);
            gg.write(gpu, &g).unwrap();
            gpu.run(&[&step]).unwrap();
            optim::sgd::reference(&mut theta, &mut vel, &g, 0.05, 0.9, 0.01);
        }
        assert_close(
            &format!("sgd n={n}"),
            &gpu.read_one(&gt).unwrap(),
            &theta,
            1e-6,
            1e-5,
        );
    }
}

fn check_adam(decoupled: bool) {
    let gpu = gpu_or_skip!();
    let mut r = rng(19 + decoupled as u64);
    for &n in &[1usize, 17, 1000] {
        let mut theta = random(&mut r, n);
        let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
        let (gt, gm, gv, gg) = (
            upload(gpu, &[n], &theta),
            zeros(gpu, &[n]),
            zeros(gpu, &[n]),
            zeros(gpu, &[n]),
        );
        let cfg = optim::AdamConfig {
            lr: 1e-2,
            weight_decay: 0.1,
            decoupled,
            ..Default::default()
        };
        let mut adam = taskgrad::optim::Adam::new(gpu, cfg, &gt, &gm, &gv, &gg).unwrap();
        for t in 1..=6 {
            let g = random(&mut r, n);
            gg.write(gpu, &g).unwrap();
            adam.prepare_step(gpu);
            gpu.run(&[&adam.dispatch]).unwrap();
            optim::adam::reference(
                &mut theta, &mut m, &mut v, &g, t, 1e-2, 0.9, 0.999, 1e-8, 0.1, decoupled,
            );
        }
        let got = gpu.read(&[&gt, &gm, &gv]).unwrap();
        let name = if decoupled { "adamw" } else { "adam" };
        assert_close(&format!("{name} theta n={n}"), &got[0], &theta, 1e-5, 1e-4);
        assert_close(&format!("{name} m n={n}"), &got[1], &m, 1e-6, 1e-4);
        assert_close(&format!("{name} v n={n}"), &got[2], &v, 1e-7, 1e-4);
    }
}

#[test]
fn adam_matches_reference_over_steps() {
    check_adam(false);
}

#[test]
fn adamw_matches_reference_over_steps() {
    check_adam(true);
}

#[test]
fn adam_first_step_moves_each_weight_by_lr() {
    let gpu = gpu_or_skip!();
    // At t = 1 with no weight decay, m̂ = g and v̂ = g², so θ moves by lr·g/(|g| + ε) ≈ lr·sign(g).
    let gt = upload(gpu, &[2], &[1.0, 1.0]);
    let (gm, gv) = (zeros(gpu, &[2]), zeros(gpu, &[2]));
    let gg = upload(gpu, &[2], &[3.0, -0.5]);
    let mut adam = taskgrad::optim::Adam::new(
        gpu,
        optim::AdamConfig {
            lr: 0.1,
            ..Default::default()
        },
        &gt,
        &gm,
        &gv,
        &gg,
    )
    .unwrap();
    adam.prepare_step(gpu);
    gpu.run(&[&adam.dispatch]).unwrap();
    assert_close(
        "adam t=1",
        &gpu.read_one(&gt).unwrap(),
        &[0.9, 1.1],
        1e-6,
        0.0,
    );
}

#[test]
fn arena_views_are_independent_and_optimizer_covers_the_arena() {
    let gpu = gpu_or_skip!();
    let mut layout = taskgrad::ArenaLayout::new(gpu);
    let w = layout.add("w", &[3, 5]);
    let b = layout.add("b", &[5]);
    let arena = taskgrad::Arena::new(gpu, &layout, "params").unwrap();
    arena.view(w).write(gpu, &[1.0; 15]).unwrap();
    arena.view(b).write(gpu, &[2.0; 5]).unwrap();
    let got = gpu.read(&[&arena.view(w), &arena.view(b)]).unwrap();
    assert_eq!(got, vec![vec![1.0; 15], vec![2.0; 5]]);
    // One scale over the whole arena touches both views.
    let out = taskgrad::Arena::new(gpu, &layout, "scaled").unwrap();
    gpu.run(&[&elementwise::scale(gpu, &arena.whole, 3.0, &out.whole).unwrap()])
        .unwrap();
    assert_eq!(
        gpu.read(&[&out.view(w), &out.view(b)]).unwrap(),
        vec![vec![3.0; 15], vec![6.0; 5]]
    );
}

#[test]
fn losses_of_several_tasks_share_scale_and_loss_arrays_by_slot() {
    // Task 0 is MSE, task 1 softmax-CE; each reads its own seed and writes its own loss.
    let gpu = gpu_or_skip!();
    let scale = upload(gpu, &[2], &[2.0, 0.5]);
    let losses = zeros(gpu, &[2]);
    // MSE: pred [1, 3] vs [0, 0] → loss (1 + 9)/2 = 5, dpred = 2·[1, 3]·2.0/2 = [2, 6].
    let (pred, truth, mask2) = (
        upload(gpu, &[2, 1], &[1., 3.]),
        upload(gpu, &[2, 1], &[0., 0.]),
        upload(gpu, &[2], &[1., 1.]),
    );
    let dpred = zeros(gpu, &[2, 1]);
    // CE on one row of zero logits over 2 classes: loss ln 2, dlogits = ([½, ½] - [1, 0])·0.5.
    let logits = upload(gpu, &[1, 2], &[0., 0.]);
    let labels = Tensor::from_u32(gpu, &[1], &[0], "labels").unwrap();
    let mask1 = upload(gpu, &[1], &[1.]);
    let (dl, rows) = (zeros(gpu, &[1, 2]), zeros(gpu, &[1]));
    let d0 = mse::mse(gpu, &pred, &truth, &mask2, &scale, 0, &dpred, &losses).unwrap();
    let out = softmax_ce::SoftmaxCeOutputs {
        dlogits: &dl,
        loss_rows: &rows,
        loss: &losses,
    };
    let d1 = softmax_ce::softmax_ce(gpu, &logits, &labels, &mask1, &scale, 1, out).unwrap();
    gpu.run(&[&d0, &d1]).unwrap();
    let got = gpu.read(&[&losses, &dpred, &dl]).unwrap();
    assert_close("losses", &got[0], &[5.0, 2f32.ln()], 1e-6, 1e-6);
    assert_close("dpred", &got[1], &[2.0, 6.0], 1e-6, 1e-6);
    assert_close("dlogits", &got[2], &[-0.25, 0.25], 1e-6, 1e-6);
    // A slot outside the arrays is a shape error.
    assert!(mse::mse(gpu, &pred, &truth, &mask2, &scale, 2, &dpred, &losses).is_err());
}

// ---- the fused per-task gradient reduction -------------------------------------------

#[test]
fn gram_and_combine_hand_checked() {
    let gpu = gpu_or_skip!();
    use taskgrad::kernels::gram::{combine, gram, GradRows};
    // g1 = [1, 2, 0], g2 = [0, 1, 3]: G = [[5, 2], [2, 10]]; 2·g1 - g2 = [2, 3, -3].
    let rows = upload(gpu, &[2, 3], &[1., 2., 0., 0., 1., 3.]);
    let g = GradRows::new(rows, 2, 3, 3).unwrap();
    let gm = zeros(gpu, &[2, 2]);
    let gd = gram(gpu, &g, &gm).unwrap();
    let w = upload(gpu, &[2], &[2.0, -1.0]);
    let out = zeros(gpu, &[3]);
    let cd = combine(gpu, &g, &w, &out).unwrap();
    gpu.run(&[&gd.partial, &gd.finish, &cd]).unwrap();
    assert_eq!(
        gpu.read(&[&gm, &out]).unwrap(),
        vec![vec![5., 2., 2., 10.], vec![2., 3., -3.]]
    );
}

#[test]
fn gram_and_combine_against_reference() {
    let gpu = gpu_or_skip!();
    use taskgrad::kernels::gram::{combine, gram, GradRows};
    let mut r = rng(23);
    for &k in &[1usize, 2, 3, 7, 16] {
        for &n in &[1usize, 17, 63, 65, 1000, 4099, 70_001] {
            let stride = n + 5; // rows need not be packed
            let gv = random(&mut r, k * stride);
            let wv = random(&mut r, k);
            let g = GradRows::new(upload(gpu, &[k * stride], &gv), k, n, stride).unwrap();
            let (gm, out) = (zeros(gpu, &[k, k]), zeros(gpu, &[n]));
            let gd = gram(gpu, &g, &gm).unwrap();
            let cd = combine(gpu, &g, &upload(gpu, &[k], &wv), &out).unwrap();
            gpu.run(&[&gd.partial, &gd.finish, &cd]).unwrap();
            let got = gpu.read(&[&gm, &out]).unwrap();
            let tol = 1e-6 * n as f32 + 1e-5;
            assert_close(
                &format!("gram k={k} n={n}"),
                &got[0],
                &cpu::gram(&gv, k, n, stride),
                tol,
                1e-4,
            );
            assert_close(
                &format!("combine k={k} n={n}"),
                &got[1],
                &cpu::combine(&gv, &wv, n, stride),
                1e-5,
                1e-5,
            );
        }
    }
    // Rows of three minibatches (MoDo, SDMGrad) fit a GradRows; the Gram
    // kernel takes at most 16 of them.
    // (Rows 64 values apart, so that each starts at a bindable offset.)
    let rows17 = GradRows::new(zeros(gpu, &[17 * 64]), 17, 64, 64).unwrap();
    assert!(
        gram(gpu, &rows17, &zeros(gpu, &[17 * 17])).is_err(),
        "a Gram matrix of more than 16 rows is refused"
    );
    assert!(gram(gpu, &rows17.range(1, 16).unwrap(), &zeros(gpu, &[256])).is_ok());
    assert!(
        rows17.range(2, 16).is_err(),
        "rows past the end are refused"
    );
    assert!(
        GradRows::new(zeros(gpu, &[49 * 4]), 49, 4, 4).is_err(),
        "more than three minibatches of 16 tasks is refused"
    );
}

// ---- mixture of experts: the gate and the gated mixture --------------------

#[test]
fn gate_and_mixture_hand_checked() {
    let gpu = gpu_or_skip!();
    // Gate: logits (0, ln 3) give softmax (¼, ¾); a row of equal logits gives ½, ½.
    let x = upload(gpu, &[2, 2], &[0.0, 3f32.ln(), 5.0, 5.0]);
    let g = zeros(gpu, &[2, 2]);
    gpu.run(&[&taskgrad::kernels::gate::gate(gpu, &x, &g).unwrap()])
        .unwrap();
    assert_close(
        "gate",
        &gpu.read_one(&g).unwrap(),
        &[0.25, 0.75, 0.5, 0.5],
        1e-6,
        1e-6,
    );
    // Mixture of E = 2 experts of width H = 2 for one row, g = (¼, ¾):
    // out = ¼ (1, 2) + ¾ (3, 4) = (2.5, 3.5). With dout = (1, 1):
    // dz = (¼, ¼, ¾, ¾), dg = (1 + 2, 3 + 4) = (3, 7).
    let g = upload(gpu, &[1, 2], &[0.25, 0.75]);
    let z = upload(gpu, &[1, 4], &[1.0, 2.0, 3.0, 4.0]);
    let out = zeros(gpu, &[1, 2]);
    let dout = upload(gpu, &[1, 2], &[1.0, 1.0]);
    let (dg, dz) = (zeros(gpu, &[1, 2]), zeros(gpu, &[1, 4]));
    use taskgrad::kernels::mixture;
    gpu.run(&[
        &mixture::mixture(gpu, &g, &z, &out).unwrap(),
        &mixture::mixture_backward(gpu, &g, &z, &dout, &dg, &dz).unwrap(),
    ])
    .unwrap();
    assert_close(
        "mixture",
        &gpu.read_one(&out).unwrap(),
        &[2.5, 3.5],
        1e-6,
        1e-6,
    );
    assert_close("dg", &gpu.read_one(&dg).unwrap(), &[3.0, 7.0], 1e-6, 1e-6);
    assert_close(
        "dz",
        &gpu.read_one(&dz).unwrap(),
        &[0.25, 0.25, 0.75, 0.75],
        1e-6,
        1e-6,
    );
}

#[test]
fn gate_and_mixture_against_reference_on_awkward_shapes() {
    use taskgrad::kernels::{gate, mixture};
    let gpu = gpu_or_skip!();
    // Rows across workgroup edges (1, 255, 257, 1000), one expert and odd counts, widths 1 and 33.
    for &(b, e, h) in &[
        (1, 1, 1),
        (3, 5, 7),
        (255, 2, 33),
        (257, 8, 16),
        (1000, 3, 1),
    ] {
        let mut r = rng((b * 31 + e * 7 + h) as u64);
        let xs: Vec<f32> = random(&mut r, b * e).iter().map(|v| 4.0 * v).collect();
        let zs = random(&mut r, b * e * h);
        let douts = random(&mut r, b * h);
        let dgs = random(&mut r, b * e);
        let (x, zt, dout, dg_in) = (
            upload(gpu, &[b, e], &xs),
            upload(gpu, &[b, e * h], &zs),
            upload(gpu, &[b, h], &douts),
            upload(gpu, &[b, e], &dgs),
        );
        let (g, dx, out, dg, dz) = (
            zeros(gpu, &[b, e]),
            zeros(gpu, &[b, e]),
            zeros(gpu, &[b, h]),
            zeros(gpu, &[b, e]),
            zeros(gpu, &[b, e * h]),
        );
        gpu.run(&[
            &gate::gate(gpu, &x, &g).unwrap(),
            &gate::gate_backward(gpu, &g, &dg_in, &dx).unwrap(),
            &mixture::mixture(gpu, &g, &zt, &out).unwrap(),
            &mixture::mixture_backward(gpu, &g, &zt, &dout, &dg, &dz).unwrap(),
        ])
        .unwrap();
        let what = format!("B={b} E={e} H={h}");
        let g_ref = cpu::gate(&xs, b, e);
        assert_close(
            &format!("gate {what}"),
            &gpu.read_one(&g).unwrap(),
            &g_ref,
            1e-6,
            1e-5,
        );
        let g_gpu = gpu.read_one(&g).unwrap();
        let dx_ref = cpu::gate_backward(&g_gpu, &dgs, b, e);
        assert_close(
            &format!("gate_backward {what}"),
            &gpu.read_one(&dx).unwrap(),
            &dx_ref,
            1e-6,
            1e-5,
        );
        let out_ref = cpu::mixture(&g_gpu, &zs, b, e, h);
        assert_close(
            &format!("mixture {what}"),
            &gpu.read_one(&out).unwrap(),
            &out_ref,
            1e-5,
            1e-5,
        );
        let (dg_ref, dz_ref) = cpu::mixture_backward(&g_gpu, &zs, &douts, b, e, h);
        assert_close(
            &format!("mixture dg {what}"),
            &gpu.read_one(&dg).unwrap(),
            &dg_ref,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("mixture dz {what}"),
            &gpu.read_one(&dz).unwrap(),
            &dz_ref,
            1e-6,
            1e-5,
        );
    }
    // Shapes that do not fit are errors, not panics.
    let g = zeros(gpu, &[4, 3]);
    assert!(mixture::mixture(gpu, &g, &zeros(gpu, &[4, 10]), &zeros(gpu, &[4, 3])).is_err());
    assert!(gate::gate(gpu, &zeros(gpu, &[4, 3]), &zeros(gpu, &[3, 4])).is_err());
}

#[test]
fn copy_columns_against_reference_on_awkward_shapes() {
    use taskgrad::kernels::columns::copy_columns;
    let gpu = gpu_or_skip!();
    for &(rows, src_cols, src_off, dst_cols, dst_off, width) in &[
        (1, 1, 0, 1, 0, 1),
        (3, 7, 2, 11, 5, 4),
        (257, 33, 0, 66, 33, 33),
        (1000, 5, 4, 3, 2, 1),
    ] {
        let src = random(&mut rng(rows as u64), rows * src_cols);
        let before = random(&mut rng(rows as u64 + 1), rows * dst_cols);
        let (s, d) = (
            upload(gpu, &[rows, src_cols], &src),
            upload(gpu, &[rows, dst_cols], &before),
        );
        gpu.run(&[&copy_columns(gpu, &s, src_off, &d, dst_off, width).unwrap()])
            .unwrap();
        let mut want = before.clone();
        cpu::copy_columns(
            &src, src_cols, src_off, &mut want, dst_cols, dst_off, rows, width,
        );
        assert_close(
            &format!("copy_columns {rows}×{src_cols}"),
            &gpu.read_one(&d).unwrap(),
            &want,
            0.0,
            0.0,
        );
    }
    // A block past either edge is an error.
    let (s, d) = (zeros(gpu, &[2, 3]), zeros(gpu, &[2, 3]));
    assert!(copy_columns(gpu, &s, 1, &d, 0, 3).is_err());
    assert!(copy_columns(gpu, &s, 0, &d, 2, 2).is_err());
}

#[test]
fn async_setup_and_readback_give_what_the_blocking_ones_give() {
    // The browser cannot block (issue 14): Gpu::new_async and read_async are
    // the non-blocking forms; natively they must agree with the blocking ones.
    let gpu = gpu_or_skip!();
    pollster::block_on(async {
        let g2 = taskgrad::Gpu::new_async().await.expect("async device");
        assert_eq!(g2.report.name, gpu.report.name);
        let x: Vec<f32> = random(&mut rng(90), 1000);
        let (a, b) = (
            upload(&g2, &[1000], &x),
            upload(&g2, &[3], &[1.0, 2.0, 3.0]),
        );
        let y = zeros(&g2, &[1000]);
        g2.run(&[&elementwise::scale(&g2, &a, 2.0, &y).unwrap()])
            .unwrap();
        let got = g2.read_async(&[&y, &b, &a]).await.unwrap();
        assert_eq!(got, g2.read(&[&y, &b, &a]).unwrap());
        assert_eq!(got[1], vec![1.0, 2.0, 3.0]);
        assert!(got[0].iter().zip(&x).all(|(g, x)| *g == 2.0 * x));
        // Nothing to read is an empty answer, not a zero-sized map.
        assert!(g2.read_async(&[]).await.unwrap().is_empty());
    });
}

// ---- im2col and col2im (a convolution as one matmul) -----------------------

use taskgrad::kernels::im2col::{self, ConvGeometry};

/// Awkward geometries: (B, H, W, C, K, stride, pad) — a 1×1 image, odd sizes,
/// 1×1 and 7×7 kernels, stride 2, padding, one channel and many, LeNet's first layer.
const CONV_SHAPES: [(usize, usize, usize, usize, usize, usize, usize); 8] = [
    (1, 1, 1, 1, 1, 1, 0),
    (2, 5, 7, 3, 3, 1, 1),
    (3, 9, 8, 2, 7, 1, 3),
    (2, 11, 13, 1, 5, 2, 2),
    (2, 7, 7, 3, 3, 2, 0),
    (4, 6, 6, 16, 1, 1, 0),
    (1, 4, 4, 2, 4, 3, 1),
    (2, 28, 28, 1, 5, 1, 0),
];

fn geometry(
    (b, h, w, c, k, s, p): (usize, usize, usize, usize, usize, usize, usize),
) -> ConvGeometry {
    ConvGeometry::new((b, h, w, c), k, s, p).unwrap()
}

#[test]
fn im2col_and_col2im_against_reference_and_each_other() {
    let gpu = gpu_or_skip!();
    let mut r = rng(41);
    for shape in CONV_SHAPES {
        let g = geometry(shape);
        let xs = random(&mut r, g.image_len());
        let dc = random(&mut r, g.rows() * g.patch());
        let (x, dcols) = (
            upload(gpu, &[g.image_len()], &xs),
            upload(gpu, &[g.rows(), g.patch()], &dc),
        );
        let (cols, dx) = (
            zeros(gpu, &[g.rows(), g.patch()]),
            zeros(gpu, &[g.image_len()]),
        );
        let ds = [
            im2col::im2col(gpu, &g, &x, &cols).unwrap(),
            im2col::col2im(gpu, &g, &dcols, &dx).unwrap(),
        ];
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        let got = gpu.read(&[&cols, &dx]).unwrap();
        let what = format!("{shape:?} (OH {}, OW {})", g.out_h(), g.out_w());
        // im2col copies: exact.
        assert_close(
            &format!("im2col {what}"),
            &got[0],
            &cpu::im2col(&xs, &g),
            0.0,
            0.0,
        );
        assert_close(
            &format!("col2im {what}"),
            &got[1],
            &cpu::col2im(&dc, &g),
            1e-6,
            1e-6,
        );
        // Adjoint: <im2col(x), d> = <x, col2im(d)>.
        let lhs: f64 = got[0]
            .iter()
            .zip(&dc)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum();
        let rhs: f64 = xs
            .iter()
            .zip(&got[1])
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum();
        assert!(
            (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
            "{what}: {lhs} vs {rhs}"
        );
    }
    // Geometries no convolution has are refused.
    assert!(ConvGeometry::new((1, 3, 3, 1), 6, 1, 1).is_err());
    assert!(ConvGeometry::new((1, 3, 3, 1), 3, 0, 0).is_err());
}

#[test]
fn a_convolution_as_im2col_then_linear_matches_the_direct_definition() {
    // y = im2col(x)·W + b by the tape's ops, against the seven-loop definition.
    let gpu = gpu_or_skip!();
    let mut r = rng(43);
    for (shape, out) in CONV_SHAPES.iter().zip([1usize, 4, 6, 3, 8, 5, 2, 6]) {
        let g = geometry(*shape);
        let (xs, ws, bs) = (
            random(&mut r, g.image_len()),
            random(&mut r, g.patch() * out),
            random(&mut r, out),
        );
        let mut tape = taskgrad::Tape::new(gpu);
        let x = tape.input(&upload(gpu, &[g.image_len()], &xs));
        let w = tape.input(&upload(gpu, &[g.patch(), out], &ws));
        let b = tape.input(&upload(gpu, &[out], &bs));
        let cols = tape.im2col(x, &g).unwrap();
        let y = tape.linear(cols, w, b, false).unwrap();
        gpu.run(&tape.forward.iter().collect::<Vec<_>>()).unwrap();
        let got = gpu.read(&[tape.value(y)]).unwrap();
        let want = cpu::conv2d(&xs, &ws, &bs, &g, out);
        assert_close(
            &format!("conv {shape:?} → {out}"),
            &got[0],
            &want,
            1e-5,
            1e-4,
        );
    }
}

#[test]
fn the_direct_convolution_and_its_gradients_against_reference() {
    // shaders/conv_direct.wgsl (the implicit GEMM) on every awkward geometry,
    // with and without the fused ReLU: y against the seven-loop definition;
    // dw = colsᵀ·dz, db = Σ_r dz and dx = col2im(dz·Wᵀ) through the CPU
    // reference's im2col, dz = dy ⊙ [y > 0] with the ReLU.
    use taskgrad::kernels::conv_direct;
    let gpu = gpu_or_skip!();
    let mut r = rng(44);
    for (shape, out) in CONV_SHAPES.iter().zip([1usize, 4, 6, 3, 8, 5, 2, 7]) {
        let g = geometry(*shape);
        for relu in [false, true] {
            let (xs, ws, bs) = (
                random(&mut r, g.image_len()),
                random(&mut r, g.patch() * out),
                random(&mut r, out),
            );
            let dys = random(&mut r, g.rows() * out);
            let x = upload(gpu, &[g.image_len()], &xs);
            let w = upload(gpu, &[g.patch(), out], &ws);
            let b = upload(gpu, &[out], &bs);
            let dy = upload(gpu, &[g.rows(), out], &dys);
            let y = zeros(gpu, &[g.rows(), out]);
            let (dw, db, dx) = (
                zeros(gpu, &[g.patch(), out]),
                zeros(gpu, &[out]),
                zeros(gpu, &[g.image_len()]),
            );
            let ds = [
                conv_direct::forward(gpu, &g, &x, &w, &b, &y, relu).unwrap(),
                conv_direct::weight_grad(gpu, &g, &x, &dy, &y, &dw, relu).unwrap(),
                conv_direct::bias_grad(gpu, &g, &dy, &y, &db, relu).unwrap(),
                conv_direct::input_grad(gpu, &g, &dy, &y, &w, &dx, relu).unwrap(),
            ];
            gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
            let got = gpu.read(&[&y, &dw, &db, &dx]).unwrap();
            let mut want_y = cpu::conv2d(&xs, &ws, &bs, &g, out);
            if relu {
                want_y = cpu::relu(&want_y);
            }
            let dz: Vec<f32> = (dys.iter().zip(&want_y))
                .map(|(&d, &v)| if relu && v <= 0.0 { 0.0 } else { d })
                .collect();
            let cols = cpu::im2col(&xs, &g);
            let (m, k) = (g.rows(), g.patch());
            let want_dw = cpu::matmul(&cols, &dz, k, m, out, true, false, None, false);
            let want_db = cpu::sum_rows(&dz, m, out);
            let dcols = cpu::matmul(&dz, &ws, m, out, k, false, true, None, false);
            let want_dx = cpu::col2im(&dcols, &g);
            let what = format!("direct conv {shape:?} → {out}, relu {relu}");
            assert_close(&format!("{what} y"), &got[0], &want_y, 1e-5, 1e-4);
            assert_close(&format!("{what} dw"), &got[1], &want_dw, 1e-4, 1e-4);
            assert_close(&format!("{what} db"), &got[2], &want_db, 1e-4, 1e-4);
            assert_close(&format!("{what} dx"), &got[3], &want_dx, 1e-5, 1e-4);
        }
    }
}

// ---- max and average pooling ------------------------------------------------

use taskgrad::kernels::pool;

/// (B, H, W, C, K, stride): a 1×1 image, windows that leave rows over, LeNet's
/// 2×2 pooling, overlapping windows (stride 1), one channel and many.
const POOL_SHAPES: [(usize, usize, usize, usize, usize, usize); 6] = [
    (1, 1, 1, 1, 1, 1),
    (2, 4, 4, 3, 2, 2),
    (3, 7, 9, 2, 3, 2),
    (2, 24, 24, 6, 2, 2),
    (1, 5, 5, 16, 3, 1),
    (2, 6, 5, 1, 2, 1),
];

#[test]
fn max_and_average_pooling_against_reference() {
    let gpu = gpu_or_skip!();
    let mut r = rng(47);
    for (b, h, w, c, k, s) in POOL_SHAPES {
        let g = ConvGeometry::new((b, h, w, c), k, s, 0).unwrap();
        let n = pool::pooled_len(&g);
        let (xs, dys) = (random(&mut r, g.image_len()), random(&mut r, n));
        let (x, dy) = (upload(gpu, &[g.image_len()], &xs), upload(gpu, &[n], &dys));
        let (ym, ya) = (zeros(gpu, &[n]), zeros(gpu, &[n]));
        let arg = Tensor::from_u32(gpu, &[n], &vec![0; n], "arg").unwrap();
        let (dxm, dxa) = (zeros(gpu, &[g.image_len()]), zeros(gpu, &[g.image_len()]));
        let ds = [
            pool::max_forward(gpu, &g, &x, &ym, &arg).unwrap(),
            pool::max_backward(gpu, &g, &dy, &arg, &dxm).unwrap(),
            pool::avg_forward(gpu, &g, &x, &ya).unwrap(),
            pool::avg_backward(gpu, &g, &dy, &dxa).unwrap(),
        ];
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        let got = gpu.read(&[&ym, &dxm, &ya, &dxa]).unwrap();
        let got_arg = gpu.read_u32(&[&arg]).unwrap().remove(0);
        let what = format!("pool {:?}", (b, h, w, c, k, s));
        let (want_y, want_arg) = cpu::max_pool(&xs, &g);
        assert_close(&format!("max {what}"), &got[0], &want_y, 0.0, 0.0);
        assert_eq!(got_arg, want_arg, "argmax {what}");
        let want_dx = cpu::max_pool_backward(&dys, &want_arg, g.image_len());
        assert_close(
            &format!("max backward {what}"),
            &got[1],
            &want_dx,
            1e-6,
            1e-6,
        );
        assert_close(
            &format!("avg {what}"),
            &got[2],
            &cpu::avg_pool(&xs, &g),
            1e-6,
            1e-5,
        );
        let want = cpu::avg_pool_backward(&dys, &g);
        assert_close(&format!("avg backward {what}"), &got[3], &want, 1e-6, 1e-5);
    }
    // Pooling takes no padding.
    let g = ConvGeometry::new((1, 4, 4, 1), 2, 2, 1).unwrap();
    let x = zeros(gpu, &[g.image_len()]);
    assert!(pool::avg_forward(gpu, &g, &x, &zeros(gpu, &[pool::pooled_len(&g)])).is_err());
}

// ---- loops longer than llvmpipe runs ------------------------------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CountParams {
    n: u32,
}

#[test]
fn llvmpipe_cuts_an_invocations_loops_after_65535_iterations() {
    // What `Gpu::loop_budget` stands for, measured: one invocation counting
    // to 100,000 in a loop. Mesa's llvmpipe (lavapipe, and its GL driver)
    // stops at 65,535, silently; other adapters count to the end. If a Mesa
    // release changes this, this test says so.
    let gpu = gpu_or_skip!();
    const SRC: &str = "
        struct P { n: u32 }
        @group(0) @binding(0) var<uniform> p: P;
        @group(0) @binding(1) var<storage, read_write> out: array<f32>;
        @compute @workgroup_size(1)
        fn count() {
            var c = 0.0;
            for (var i = 0u; i < p.n; i = i + 1u) { c += 1.0; }
            out[0] = c;
        }";
    let out = zeros(gpu, &[1]);
    let d = taskgrad::gpu::dispatch::record(
        gpu,
        "test loop_count.wgsl",
        SRC,
        "count",
        &[
            taskgrad::gpu::Binding::Uniform,
            taskgrad::gpu::Binding::ReadWrite,
        ],
        &[],
        &CountParams { n: 100_000 },
        &[&out],
        [1, 1, 1],
    )
    .unwrap();
    gpu.run(&[&d]).unwrap();
    let counted = gpu.read_one(&out).unwrap()[0] as u64;
    let want = gpu.loop_budget().map_or(100_000, |b| b.min(100_000));
    assert_eq!(
        counted,
        want,
        "{}: loop_budget {:?}",
        gpu.report,
        gpu.loop_budget()
    );
}

#[test]
fn two_sources_under_one_file_name_get_their_own_pipelines() {
    // The pipeline cache is keyed by the file name the caller gives and by
    // the source itself: two kernels both called "k.wgsl" (a learner's
    // exercise and its solution, two crates' kernels) must not share one
    // compiled pipeline. Before, the second ran the first's code.
    let gpu = gpu_or_skip!();
    const ONE: &str = "
        struct P { n: u32 }
        @group(0) @binding(0) var<uniform> p: P;
        @group(0) @binding(1) var<storage, read_write> out: array<f32>;
        @compute @workgroup_size(1)
        fn fill() { out[0] = 1.0; }";
    const TWO: &str = "
        struct P { n: u32 }
        @group(0) @binding(0) var<uniform> p: P;
        @group(0) @binding(1) var<storage, read_write> out: array<f32>;
        @compute @workgroup_size(1)
        fn fill() { out[0] = 2.0; }";
    let mut got = Vec::new();
    for source in [ONE, TWO, ONE] {
        let out = zeros(gpu, &[1]);
        let d = taskgrad::gpu::dispatch::record(
            gpu,
            "test same_name.wgsl",
            source,
            "fill",
            &[
                taskgrad::gpu::Binding::Uniform,
                taskgrad::gpu::Binding::ReadWrite,
            ],
            &[],
            &CountParams { n: 1 },
            &[&out],
            [1, 1, 1],
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        got.push(gpu.read_one(&out).unwrap()[0]);
    }
    assert_eq!(got, [1.0, 2.0, 1.0]);
}

#[test]
fn sums_longer_than_one_invocation_may_loop_are_split_not_cut() {
    // A matmul with k = 70,001, column sums over 70,001 rows, the sum of
    // 17 million values and a Gram matrix of 16 rows of 1.6 million values:
    // each takes more loop iterations in one invocation than llvmpipe runs
    // (`llvmpipe_cuts_an_invocations_loops_after_65535_iterations`), so on
    // such an adapter the kernels split the work (split-K, ranges of rows,
    // more invocations). Before, these came back short, with no error.
    let gpu = gpu_or_skip!();
    let mut r = rng(65535);
    // The product, through matmul_auto (the tape's path); 96×96 outputs make
    // enough workgroups that no split is chosen for speed alone.
    let (m, k, n) = (96, 70_001, 96);
    let (av, bv) = (random(&mut r, m * k), random(&mut r, k * n));
    let (a, b, c) = (
        upload(gpu, &[m, k], &av),
        upload(gpu, &[k, n], &bv),
        zeros(gpu, &[m, n]),
    );
    let ds = matmul::matmul_auto(gpu, &a, &b, &c, MatmulOptions::default()).unwrap();
    gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
    let want = cpu::matmul(&av, &bv, m, k, n, false, false, None, false);
    assert_close(
        "matmul k = 70,001",
        &gpu.read_one(&c).unwrap(),
        &want,
        2e-2,
        1e-4,
    );
    // One dispatch cannot split: it says so rather than sum part of k.
    let single = matmul::matmul(gpu, &a, &b, &c, MatmulOptions::default());
    assert_eq!(
        single.is_err(),
        gpu.loop_budget().is_some(),
        "{:?}",
        single.err()
    );
    // Column sums over many rows (a convolution's bias gradient: B·OH·OW rows).
    let (rows, cols) = (70_001, 3);
    let xv = random(&mut r, rows * cols);
    let (x, s) = (upload(gpu, &[rows, cols], &xv), zeros(gpu, &[cols]));
    let ds = reduce::sum_rows(gpu, &x, &s, false).unwrap();
    gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
    let want: Vec<f32> = (0..cols)
        .map(|j| (0..rows).map(|i| xv[i * cols + j] as f64).sum::<f64>() as f32)
        .collect();
    assert_close(
        "sum_rows over 70,001 rows",
        &gpu.read_one(&s).unwrap(),
        &want,
        1e-2,
        1e-4,
    );
    // The sum of 17 million halves: 8.5 million, exact in f32 whatever the order.
    let big = 17_000_000;
    let (x, t) = (upload(gpu, &[big], &vec![0.5; big]), zeros(gpu, &[1]));
    let ds = reduce::sum_all(gpu, &x, &t, false).unwrap();
    gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(
        gpu.read_one(&t).unwrap()[0],
        8_500_000.0,
        "sum_all of 17e6 halves"
    );
    drop(x);
    // A Gram matrix whose usual 4,096 invocations would each loop 66,000 times.
    let (kk, p) = (16, 1_600_000);
    let gv: Vec<f32> = random(&mut r, kk * p);
    let rows = upload(gpu, &[kk, p], &gv);
    let g = zeros(gpu, &[kk, kk]);
    let gr = taskgrad::kernels::gram::GradRows::new(rows, kk, p, p).unwrap();
    let gd = taskgrad::kernels::gram::gram(gpu, &gr, &g).unwrap();
    gpu.run(&[&gd.partial, &gd.finish]).unwrap();
    let want: Vec<f32> = cpu::gram(&gv.iter().map(|&v| v as f64).collect::<Vec<_>>(), kk, p, p)
        .iter()
        .map(|&v| v as f32)
        .collect();
    // Diagonal ≈ 533,000, off-diagonal ~±1,000 (random signs): a cut sum is far off.
    assert_close(
        "Gram of 16 rows of 1.6e6",
        &gpu.read_one(&g).unwrap(),
        &want,
        2.0,
        1e-4,
    );
}

// ---- matmul over a replica axis ---------------------------------------------

/// One replicated product's operands, laid out as R runs would hold them:
/// each replica's weights and bias in its own block of a parameter "arena"
/// (gradients likewise), activations one replica after another, every
/// block padded to the adapter's binding alignment so that each replica's
/// views can also be bound alone.
struct ReplicaCase {
    /// Elements per replica of A, of the arena, of C.
    sa: usize,
    sp: usize,
    sc: usize,
    /// Where the bias starts in a replica's arena block.
    boff: usize,
}

impl ReplicaCase {
    fn new(gpu: &taskgrad::Gpu, a: usize, b: usize, c: usize, n: usize) -> Self {
        let al = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
        let up = |v: usize| v.div_ceil(al) * al;
        // A gap after each block: a stride longer than the data, as in an arena.
        let boff = up(b + 1);
        ReplicaCase {
            sa: up(a + 3),
            sp: boff + up(n + 2),
            sc: up(c + 5),
            boff,
        }
    }
}

/// Run `product` once over the replica axis and once per replica on that
/// replica's own views (with no replicas), and require the outputs (C, and the
/// bias gradient when asked) to be equal bit for bit and to match the CPU
/// reference `want(r)`. `shared_a`: every replica reads the same A (stride 0).
#[allow(clippy::too_many_arguments)]
fn check_replicated(
    gpu: &taskgrad::Gpu,
    what: &str,
    (m, k, n): (usize, usize, usize),
    opts: MatmulOptions,
    use_mask: Option<taskgrad::kernels::matmul::Operand>,
    want_bias_grad: bool,
    shared_a: bool,
    seed: u64,
    product: &dyn Fn(&Tensor, &Tensor, &Tensor, MatmulOptions) -> Vec<taskgrad::gpu::Dispatch>,
) {
    use taskgrad::kernels::matmul::{Operand, Replicas};
    let reps = 3;
    let case = ReplicaCase::new(gpu, m * k, k * n, m * n, n);
    let mut r = rng(seed);
    let a_host = random(&mut r, reps * case.sa);
    let arena_host = random(&mut r, reps * case.sp);
    let c0_host = random(&mut r, reps * case.sc);
    let db0_host = random(&mut r, reps * case.sp);
    let mask_host = random(&mut r, reps * case.sa.max(case.sp));
    let a_shape = if opts.trans_a { [k, m] } else { [m, k] };
    let b_shape = if opts.trans_b { [n, k] } else { [k, n] };
    let ga = upload(gpu, &[a_host.len()], &a_host);
    let arena = upload(gpu, &[arena_host.len()], &arena_host);
    let gmask = upload(gpu, &[mask_host.len()], &mask_host);
    let sa = if shared_a { 0 } else { case.sa };
    let mask_stride = match use_mask {
        Some(Operand::B) => case.sp,
        _ => sa,
    };
    // Views of replica `i` (replica 0's are what the replicated product is given).
    let a_of = |i: usize| ga.slice(i * sa, &a_shape).unwrap();
    let b_of = |i: usize| arena.slice(i * case.sp, &b_shape).unwrap();
    let bias_of = |i: usize| arena.slice(i * case.sp + case.boff, &[n]).unwrap();
    let mask_of = |i: usize| {
        let shape = if use_mask == Some(Operand::B) {
            b_shape
        } else {
            a_shape
        };
        gmask.slice(i * mask_stride, &shape).unwrap()
    };
    fn with<'t>(
        mut o: MatmulOptions<'t>,
        bias: &'t Tensor,
        db: Option<&'t Tensor>,
        mask: Option<(&'t Tensor, taskgrad::kernels::matmul::Operand)>,
    ) -> MatmulOptions<'t> {
        if o.bias.is_some() {
            o.bias = Some(bias);
        }
        o.bias_grad = db;
        o.mask = mask;
        o
    }
    // Replicated: C (and db) with replica blocks one stride apart.
    let gc = upload(gpu, &[c0_host.len()], &c0_host);
    let gdb = upload(gpu, &[db0_host.len()], &db0_host);
    let (bias0, mask0) = (bias_of(0), mask_of(0));
    let db0 = gdb.slice(case.boff, &[n]).unwrap();
    let mut o = with(
        opts,
        &bias0,
        want_bias_grad.then_some(&db0),
        use_mask.map(|op| (&mask0, op)),
    );
    o.replicas = Some(Replicas {
        count: reps,
        a: sa,
        b: case.sp,
        c: case.sc,
        bias: case.sp,
    });
    let (a0, b0, c0) = (a_of(0), b_of(0), gc.slice(0, &[m, n]).unwrap());
    let ds = product(&a0, &b0, &c0, o);
    gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
    let got_c = gpu.read_one(&gc).unwrap();
    let got_db = gpu.read_one(&gdb).unwrap();
    let tol = 1e-5 * k as f32 + 1e-5;
    for i in 0..reps {
        // Alone, on this replica's views, into fresh copies of its outputs.
        let c_alone = upload(gpu, &[m, n], &c0_host[i * case.sc..i * case.sc + m * n]);
        let db_alone = upload(gpu, &[n], &db0_host[i * case.sp + case.boff..][..n]);
        let (ai, bi, biasi, maski) = (a_of(i), b_of(i), bias_of(i), mask_of(i));
        let oi = with(
            opts,
            &biasi,
            want_bias_grad.then_some(&db_alone),
            use_mask.map(|op| (&maski, op)),
        );
        let ds = product(&ai, &bi, &c_alone, oi);
        gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
        let alone = gpu.read(&[&c_alone, &db_alone]).unwrap();
        let rep_c = &got_c[i * case.sc..i * case.sc + m * n];
        assert!(
            rep_c
                .iter()
                .zip(&alone[0])
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{what}: replica {i}'s C differs from its product alone"
        );
        // ... and what lies between the blocks is untouched.
        assert_eq!(
            &got_c[i * case.sc + m * n..(i + 1) * case.sc],
            &c0_host[i * case.sc + m * n..(i + 1) * case.sc],
            "{what}: replica {i} wrote past its C"
        );
        // The CPU reference of this replica.
        let ah = &a_host[i * sa..][..m * k];
        let bh = &arena_host[i * case.sp..][..k * n];
        let biash = &arena_host[i * case.sp + case.boff..][..n];
        let mh = &mask_host[i * mask_stride..][..if use_mask == Some(Operand::B) {
            k * n
        } else {
            m * k
        }];
        let masked = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .zip(mh)
                .map(|(x, w)| if *w > 0.0 { *x } else { 0.0 })
                .collect()
        };
        let (ah, bh) = match use_mask {
            Some(Operand::A) => (masked(ah), bh.to_vec()),
            Some(Operand::B) => (ah.to_vec(), masked(bh)),
            None => (ah.to_vec(), bh.to_vec()),
        };
        let mut want = cpu::matmul(
            &ah,
            &bh,
            m,
            k,
            n,
            opts.trans_a,
            opts.trans_b,
            opts.bias.is_some().then_some(biash),
            opts.relu,
        );
        if opts.accumulate {
            want = cpu::add(&c0_host[i * case.sc..][..m * n], &want);
        }
        assert_close(&format!("{what} replica {i}"), rep_c, &want, tol, 1e-4);
        if want_bias_grad {
            let rep_db = &got_db[i * case.sp + case.boff..][..n];
            assert!(
                rep_db
                    .iter()
                    .zip(&alone[1])
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{what}: replica {i}'s bias gradient differs from its product alone"
            );
            // db = Σ_k op(B)[k, :] (+ what was there with accumulate).
            let mut want_db: Vec<f32> = (0..n)
                .map(|j| {
                    (0..k)
                        .map(|kk| {
                            if opts.trans_b {
                                bh[j * k + kk]
                            } else {
                                bh[kk * n + j]
                            }
                        })
                        .sum()
                })
                .collect();
            if opts.accumulate {
                want_db = cpu::add(&db0_host[i * case.sp + case.boff..][..n], &want_db);
            }
            assert_close(
                &format!("{what} replica {i} db"),
                rep_db,
                &want_db,
                tol,
                1e-4,
            );
        }
    }
    // The arena's other values (the weights around each db) are untouched.
    for i in 0..reps {
        assert_eq!(
            &got_db[i * case.sp..i * case.sp + case.boff],
            &db0_host[i * case.sp..i * case.sp + case.boff],
            "{what}: replica {i}'s bias gradient spilled"
        );
    }
}

#[test]
fn replicated_matmul_equals_each_replica_alone_bit_for_bit() {
    // Three products of one shape in one dispatch, by every kernel (and
    // split-K), with every transpose, bias + ReLU, accumulate, the ReLU mask on
    // either operand and the bias gradient: each replica's outputs equal its
    // product recorded alone on its own views, bit for bit, and the reference.
    let gpu = gpu_or_skip!();
    type Product<'g> =
        Box<dyn Fn(&Tensor, &Tensor, &Tensor, MatmulOptions) -> Vec<taskgrad::gpu::Dispatch> + 'g>;
    let mut products: Vec<(String, Product)> = Vec::new();
    for kernel in MatmulKernel::ALL.into_iter().filter(|k| k.fits(gpu)) {
        products.push((
            format!("{kernel:?}"),
            Box::new(move |a, b, c, o| vec![mm(gpu, kernel, a, b, c, o)]),
        ));
    }
    for (kernel, wg) in [
        (MatmulKernel::Register, (8, 8)),
        (MatmulKernel::Tiled, (16, 16)),
    ] {
        products.push((
            format!("{kernel:?} split-K"),
            Box::new(move |a, b, c, o| {
                matmul::matmul_split(gpu, a, b, c, o, kernel, wg, 3).expect("split")
            }),
        ));
    }
    products.push((
        "chosen".into(),
        Box::new(move |a, b, c, o| matmul::matmul_auto(gpu, a, b, c, o).expect("auto")),
    ));
    let mut seed = 500;
    let transposes = [(false, false), (true, false), (false, true), (true, true)];
    for (name, product) in &products {
        for &(m, k, n) in &[(5, 7, 3), (33, 17, 12), (4, 65, 9)] {
            // Each shape with two of the four transposes (all four over the shapes).
            for (ta, tb) in transposes
                .into_iter()
                .cycle()
                .skip(seed as usize % 4)
                .take(2)
            {
                seed += 1;
                let what = format!("{name} m={m} k={k} n={n} ta={ta} tb={tb}");
                check_replicated_cases(gpu, &what, (m, k, n), (ta, tb), seed, product.as_ref());
            }
        }
    }
}

/// [`check_replicated`] for one shape and transpose in each mode: bias +
/// ReLU, a shared A (stride 0) with a bias, accumulate, the mask on B with
/// the bias gradient, the mask on A with the bias gradient accumulated.
fn check_replicated_cases(
    gpu: &taskgrad::Gpu,
    what: &str,
    (m, k, n): (usize, usize, usize),
    (ta, tb): (bool, bool),
    seed: u64,
    product: &dyn Fn(&Tensor, &Tensor, &Tensor, MatmulOptions) -> Vec<taskgrad::gpu::Dispatch>,
) {
    use taskgrad::kernels::matmul::Operand;
    let base = MatmulOptions {
        trans_a: ta,
        trans_b: tb,
        ..Default::default()
    };
    let dummy = zeros(gpu, &[1]);
    let cases: [(&str, MatmulOptions, Option<Operand>, bool, bool); 5] = [
        (
            "bias relu",
            MatmulOptions {
                bias: Some(&dummy),
                relu: true,
                ..base
            },
            None,
            false,
            false,
        ),
        (
            "shared A",
            MatmulOptions {
                bias: Some(&dummy),
                ..base
            },
            None,
            false,
            true,
        ),
        (
            "accumulate",
            MatmulOptions {
                accumulate: true,
                ..base
            },
            None,
            false,
            false,
        ),
        ("mask B, db", base, Some(Operand::B), true, false),
        (
            "mask A, db accumulate",
            MatmulOptions {
                accumulate: true,
                ..base
            },
            Some(Operand::A),
            true,
            false,
        ),
    ];
    for (case, o, mask, db, shared) in cases {
        check_replicated(
            gpu,
            &format!("{what} {case}"),
            (m, k, n),
            o,
            mask,
            db,
            shared,
            seed,
            product,
        );
    }
}

#[test]
fn replicated_matmul_refuses_outputs_that_overlap() {
    // C's replicas one stride apart must not overlap: a stride shorter than
    // M·N (or 0 for a written operand) is an error, not a race.
    use taskgrad::kernels::matmul::Replicas;
    let gpu = gpu_or_skip!();
    let a = zeros(gpu, &[4, 3]);
    let b = zeros(gpu, &[3, 2]);
    let c = zeros(gpu, &[64]).slice(0, &[4, 2]).unwrap();
    for stride in [0, 7] {
        let o = MatmulOptions {
            replicas: Some(Replicas {
                count: 2,
                a: 0,
                b: 0,
                c: stride,
                bias: 0,
            }),
            ..Default::default()
        };
        let err = matmul::matmul_kernel(gpu, &a, &b, &c, o, MatmulKernel::Register, (8, 8))
            .err()
            .unwrap_or_else(|| panic!("C stride {stride} accepted"));
        assert!(err.to_string().contains("overlaps"), "{err}");
    }
    // A span past the buffer's end is refused too.
    let o = MatmulOptions {
        replicas: Some(Replicas {
            count: 9,
            a: 0,
            b: 0,
            c: 8,
            bias: 0,
        }),
        ..Default::default()
    };
    assert!(matmul::matmul_kernel(gpu, &a, &b, &c, o, MatmulKernel::Register, (8, 8)).is_err());
}

/// One of the fused losses, recorded on replica 0's tensors for `reps`:
/// (logits or predictions, labels or targets, mask, scale, slot, the
/// gradient, per-row losses where the loss has them, loss).
type LossRecord<'g> = Box<
    dyn Fn(
            &Tensor,
            &Tensor,
            &Tensor,
            &Tensor,
            usize,
            &Tensor,
            &Tensor,
            &Tensor,
            taskgrad::kernels::LossReplicas,
        ) -> taskgrad::gpu::Dispatch
        + 'g,
>;

#[test]
fn replicated_losses_equal_each_replica_alone_bit_for_bit() {
    // Three replicas of softmax-CE, MSE and BCE in one dispatch each, every
    // tensor kind at its own stride with a gap after each copy: each
    // replica's gradient, per-row losses and loss equal its loss recorded
    // alone on its own views, bit for bit, and nothing in the gaps or in
    // the other tasks' slots is written. Replica 1 has a different mask and
    // scale, replica 2 no labelled row at all; 300 rows take the kernels'
    // strided row loop past one workgroup's 256 invocations.
    use taskgrad::kernels::LossReplicas;
    use taskgrad::task::binary;
    let gpu = gpu_or_skip!();
    let al = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    let up = |v: usize| (v + 1).div_ceil(al) * al; // at least one element of gap
    let ce: LossRecord = Box::new(|z, y, m, s, slot, dz, rows, loss, reps| {
        let out = softmax_ce::SoftmaxCeOutputs {
            dlogits: dz,
            loss_rows: rows,
            loss,
        };
        softmax_ce::softmax_ce_replicated(gpu, z, y, m, s, slot, out, reps).unwrap()
    });
    let mse: LossRecord = Box::new(|z, y, m, s, slot, dz, _, loss, reps| {
        mse::mse_replicated(gpu, z, y, m, s, slot, dz, loss, reps).unwrap()
    });
    let bce: LossRecord = Box::new(|z, y, m, s, slot, dz, _, loss, reps| {
        binary::kernel_replicated(gpu, z, y, m, s, slot, dz, loss, reps).unwrap()
    });
    let (count, k, slot) = (3usize, 2usize, 1usize);
    for (name, record, labels_u32, cols) in [
        ("softmax_ce", &ce, true, 3),
        ("mse", &mse, false, 2),
        ("bce", &bce, false, 1),
    ] {
        for b in [5usize, 300] {
            let what = format!("{name} b={b}");
            let reps = LossReplicas {
                count,
                values: up(b * cols),
                rows: up(b),
                tasks: up(k),
            };
            let mut r = rng(40 + b as u64);
            let z = upload(
                gpu,
                &[count * reps.values],
                &random(&mut r, count * reps.values),
            );
            let y = if labels_u32 {
                // Labels 0..=3 with 3 out of range: such a row is not learned from.
                let v: Vec<u32> = (0..count * reps.rows).map(|i| (i * 7 % 4) as u32).collect();
                Tensor::from_u32(gpu, &[count * reps.rows], &v, "labels").unwrap()
            } else {
                let v: Vec<f32> = (0..count * reps.values)
                    .map(|i| ((i * 5) % 3 == 0) as u32 as f32)
                    .collect();
                upload(gpu, &[count * reps.values], &v)
            };
            let mask: Vec<f32> = (0..count * reps.rows)
                .map(|i| match i / reps.rows {
                    0 => (i % 5 != 2) as u32 as f32,
                    1 => (i % 3 == 0) as u32 as f32,
                    _ => 0.0,
                })
                .collect();
            let mask = upload(gpu, &[count * reps.rows], &mask);
            let scale: Vec<f32> = (0..count * reps.tasks)
                .map(|i| 0.5 + i as f32 * 0.25)
                .collect();
            let scale = upload(gpu, &[count * reps.tasks], &scale);
            let sentinel = |n| upload(gpu, &[n], &vec![-7.5; n]);
            let outputs = || {
                (
                    sentinel(count * reps.values),
                    sentinel(count * reps.rows),
                    sentinel(count * reps.tasks),
                )
            };
            // Replica r's view of a tensor laid out at `stride` per replica.
            let view = |t: &Tensor, r: usize, stride: usize, shape: &[usize]| {
                t.slice(r * stride, shape).unwrap()
            };
            let y_stride = if labels_u32 { reps.rows } else { reps.values };
            let y_shape: Vec<usize> = if labels_u32 { vec![b] } else { vec![b, cols] };
            let args = |r: usize, (dz, rows, loss): &(Tensor, Tensor, Tensor)| {
                (
                    view(&z, r, reps.values, &[b, cols]),
                    view(&y, r, y_stride, &y_shape),
                    view(&mask, r, reps.rows, &[b]),
                    view(&scale, r, reps.tasks, &[k]),
                    view(dz, r, reps.values, &[b, cols]),
                    view(rows, r, reps.rows, &[b]),
                    view(loss, r, reps.tasks, &[k]),
                )
            };
            let together = outputs();
            let (z0, y0, m0, s0, dz0, rows0, l0) = args(0, &together);
            let d = record(&z0, &y0, &m0, &s0, slot, &dz0, &rows0, &l0, reps);
            gpu.run(&[&d]).unwrap();
            let alone = outputs();
            let ds: Vec<_> = (0..count)
                .map(|r| {
                    let (zr, yr, mr, sr, dzr, rowsr, lr) = args(r, &alone);
                    record(
                        &zr,
                        &yr,
                        &mr,
                        &sr,
                        slot,
                        &dzr,
                        &rowsr,
                        &lr,
                        LossReplicas::ONE,
                    )
                })
                .collect();
            gpu.run(&ds.iter().collect::<Vec<_>>()).unwrap();
            let got = gpu.read(&[&together.0, &together.1, &together.2]).unwrap();
            let want = gpu.read(&[&alone.0, &alone.1, &alone.2]).unwrap();
            for (i, part) in ["gradient", "per-row losses", "losses"].iter().enumerate() {
                let (g, w) = (&got[i], &want[i]);
                for (j, (a, e)) in g.iter().zip(w).enumerate() {
                    assert!(
                        a.to_bits() == e.to_bits(),
                        "{what}: {part}[{j}] together {a}, alone {e}"
                    );
                }
            }
            // Each replica wrote its own loss slot and no other; replica 2
            // (nothing labelled) has loss 0 and a zero gradient.
            let losses = &got[2];
            for rep in 0..count {
                for i in 0..reps.tasks {
                    let v = losses[rep * reps.tasks + i];
                    assert_eq!(
                        v == -7.5,
                        i != slot,
                        "{what}: replica {rep} loss element {i} = {v}"
                    );
                }
            }
            assert_eq!(
                losses[2 * reps.tasks + slot],
                0.0,
                "{what}: empty replica's loss"
            );
            assert!(
                losses[slot] > 0.0 && losses[reps.tasks + slot] > 0.0,
                "{what}: {losses:?}"
            );
            let gaps = got[0]
                .iter()
                .enumerate()
                .filter(|(j, _)| j % reps.values >= b * cols);
            assert!(
                gaps.clone().count() > 0 && gaps.into_iter().all(|(_, &v)| v == -7.5),
                "{what}: a gap was written"
            );
        }
    }
}

#[test]
fn replicated_losses_refuse_copies_that_overlap() {
    // A loss slot shared by the replicas (stride 0) or gradients closer than
    // B·C apart would be a race: refused when recorded.
    use taskgrad::kernels::LossReplicas;
    let gpu = gpu_or_skip!();
    let (b, t) = (4, 2);
    let big = |n: usize| zeros(gpu, &[n]);
    let (pred, target, dpred) = (big(64), big(64), big(64));
    let (mask, scale, loss) = (big(64), big(64), big(64));
    let v = |x: &Tensor, shape: &[usize]| x.slice(0, shape).unwrap();
    let record = |reps| {
        mse::mse_replicated(
            gpu,
            &v(&pred, &[b, t]),
            &v(&target, &[b, t]),
            &v(&mask, &[b]),
            &v(&scale, &[2]),
            0,
            &v(&dpred, &[b, t]),
            &v(&loss, &[2]),
            reps,
        )
    };
    let fine = LossReplicas {
        count: 3,
        values: b * t,
        rows: b,
        tasks: 2,
    };
    assert!(record(fine).is_ok());
    assert!(
        record(LossReplicas { tasks: 0, ..fine }).is_err(),
        "a shared loss slot"
    );
    assert!(
        record(LossReplicas {
            values: b * t - 1,
            ..fine
        })
        .is_err(),
        "gradients overlapping"
    );
    assert!(
        record(LossReplicas { values: 32, ..fine }).is_err(),
        "past the buffer's end"
    );
}

// ---- the optimizers and the Gram reduction over a replica axis --------------

/// Build `count` runs with `make` in the regions of one slab (as runs
/// stepped together are built) and `count` twins alone; returns the slab,
/// the runs in it and the twins.
fn slab_and_twins<T>(
    gpu: &taskgrad::Gpu,
    count: usize,
    make: impl Fn(usize) -> T,
) -> (std::sync::Arc<taskgrad::gpu::Slab>, Vec<T>, Vec<T>) {
    let counting = gpu.count_tensor_bytes();
    drop(make(0));
    let sizes = counting.sizes();
    drop(counting);
    let slab = std::sync::Arc::new(gpu.slab(count, &sizes).expect("slab"));
    let together = (0..count)
        .map(|r| {
            let _region = gpu.slab_region(&slab, r);
            make(r)
        })
        .collect();
    (slab, together, (0..count).map(&make).collect())
}

/// `d` (run 0's) recorded again for `count` runs of `slab`.
fn over_replicas(
    gpu: &taskgrad::Gpu,
    d: &taskgrad::gpu::Dispatch,
    count: usize,
    slab: &taskgrad::gpu::Slab,
) -> taskgrad::gpu::Dispatch {
    let rep = d.replicable.as_ref().expect("a replica axis");
    let stride = |t: &Tensor| slab.stride_of(t).expect("in the slab");
    (rep.group)(gpu, count, &stride).unwrap().remove(rep.index)
}

fn assert_same_bits(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: tensor {i}");
        for (j, (a, e)) in g.iter().zip(w).enumerate() {
            assert!(
                a.to_bits() == e.to_bits(),
                "{what}: tensor {i}[{j}] together {a}, alone {e}"
            );
        }
    }
}

#[test]
fn replicated_optimizers_equal_each_replica_alone_bit_for_bit() {
    // Three runs' Adam, AdamW and SGD updates, each run built in its own
    // region of a slab, then recorded once over the replica axis and
    // stepped three times with each step's settings (learning rate, bias
    // corrections) copied in from run 0's own dispatch, as runs stepped
    // together take them: every replica's θ and state equal those of its
    // twin stepped by its own dispatch, bit for bit. 1000 elements take
    // four workgroups, 5 one.
    use optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
    let gpu = gpu_or_skip!();
    let count = 3;
    for n in [5usize, 1000] {
        for kind in ["adam", "adamw", "sgd"] {
            let what = format!("{kind} n={n}");
            let make = |r: usize| {
                // Each in a buffer of its own length, so that each has its
                // own replica stride.
                let mut g = rng(90 + r as u64 + n as u64);
                let mut slice_of = |extra: usize, abs: bool| {
                    let mut x = random(&mut g, n + extra);
                    if abs {
                        x.iter_mut().for_each(|x| *x = x.abs());
                    }
                    upload(gpu, &[n + extra], &x).slice(0, &[n]).unwrap()
                };
                let theta = slice_of(0, false);
                let grad = slice_of(300, false);
                let m = slice_of(100, false);
                let v = slice_of(200, true);
                let opt: Box<dyn Optimizer> = match kind {
                    "sgd" => {
                        Box::new(Sgd::new(gpu, SgdConfig::default(), &theta, &m, &grad).unwrap())
                    }
                    _ => {
                        let cfg = AdamConfig {
                            lr: 3e-2,
                            weight_decay: 0.1,
                            decoupled: kind == "adamw",
                            ..AdamConfig::default()
                        };
                        Box::new(Adam::new(gpu, cfg, &theta, &m, &v, &grad).unwrap())
                    }
                };
                (opt, [theta, m, v])
            };
            let (slab, mut together, mut alone) = slab_and_twins(gpu, count, make);
            let shared = over_replicas(gpu, together[0].0.dispatches()[0], count, &slab);
            let per_step = (together[0].0.dispatches()[0].replicable.as_ref())
                .and_then(|r| r.per_step.clone())
                .expect("an optimizer's settings change per step");
            for step in 0..3 {
                for (opt, _) in together.iter_mut().chain(alone.iter_mut()) {
                    if step == 2 {
                        opt.set_lr(1e-2);
                    }
                    opt.prepare_step(gpu);
                }
                let now = together[0].0.dispatches()[0]
                    .written_params(per_step.clone())
                    .unwrap();
                gpu.queue
                    .write_buffer(&shared.params, per_step.start as u64, &now);
                gpu.run(&[&shared]).unwrap();
                let own: Vec<_> = alone.iter().flat_map(|(o, _)| o.dispatches()).collect();
                gpu.run(&own).unwrap();
            }
            let read = |runs: &[(Box<dyn Optimizer>, [Tensor; 3])]| {
                let ts: Vec<&Tensor> = runs.iter().flat_map(|(_, t)| t.iter()).collect();
                gpu.read(&ts).unwrap()
            };
            let (got, want) = (read(&together), read(&alone));
            assert_same_bits(&what, &got, &want);
            // The updates happened: θ moved from where it started.
            let start = random(&mut rng(90 + n as u64), n);
            assert!(want[0] != start, "{what}: θ did not move");
        }
    }
}

#[test]
fn replicated_gram_reduction_equals_each_replica_alone_bit_for_bit() {
    // Three runs' Gram matrix (partial sums and their finish), combination
    // Σ w_k g_k and scaled rows w_k g_k over K = 3 gradient rows of N with
    // a row stride past N, each run built in its own region of a slab and
    // recorded once over the replica axis: every replica's outputs equal
    // those of its own dispatches on a twin set of buffers, bit for bit.
    use taskgrad::kernels::gram::{self, GradRows};
    let gpu = gpu_or_skip!();
    let (count, k) = (3, 3);
    for n in [7usize, 3000] {
        let stride = n + 5;
        let make = |r: usize| {
            let mut g = rng(120 + r as u64 + n as u64);
            let rows = upload(gpu, &[k * stride], &random(&mut g, k * stride));
            let w = upload(gpu, &[k], &random(&mut g, k));
            let gram_m = zeros(gpu, &[k * k]);
            let out = zeros(gpu, &[n]);
            let scaled = zeros(gpu, &[k * stride]);
            let rows_g = GradRows::new(rows.clone(), k, n, stride).unwrap();
            let gd = gram::gram(gpu, &rows_g, &gram_m).unwrap();
            let ds = vec![
                gd.partial,
                gd.finish,
                gram::combine(gpu, &rows_g, &w, &out).unwrap(),
                gram::scale_rows(gpu, &rows_g, &w, &scaled).unwrap(),
            ];
            (ds, [gram_m, out, scaled, gd.scratch])
        };
        let (slab, together, alone) = slab_and_twins(gpu, count, make);
        let shared: Vec<_> = (together[0].0.iter())
            .map(|d| over_replicas(gpu, d, count, &slab))
            .collect();
        gpu.run(&shared.iter().collect::<Vec<_>>()).unwrap();
        let own: Vec<_> = alone.iter().flat_map(|(ds, _)| ds.iter()).collect();
        gpu.run(&own).unwrap();
        let read = |runs: &[(Vec<taskgrad::gpu::Dispatch>, [Tensor; 4])]| {
            let ts: Vec<&Tensor> = runs.iter().flat_map(|(_, t)| t.iter()).collect();
            gpu.read(&ts).unwrap()
        };
        let (got, want) = (read(&together), read(&alone));
        assert_same_bits(&format!("gram n={n}"), &got, &want);
        assert!(
            want[0].iter().all(|&x| x != 0.0),
            "the Gram matrix was written"
        );
    }
}
