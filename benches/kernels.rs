//! Kernel benchmarks: matmul GFLOP/s beside the CPU reference, convolution
//! GFLOP/s (LeNet's two layers, im2col + matmul against the implicit GEMM),
//! W-iris's products by the register kernel, the rows kernels and, where
//! each fits, the written-out and the subgroup kernels (`matmul_small`), the throughput of the fused softmax cross-entropy and
//! of Adam over an arena, and R runs' products and losses in one dispatch over the replica
//! axis against R dispatches (`matmul_replicas`, `loss_replicas`).
//!
//!     cargo bench --bench kernels
//!
//! Each GPU iteration is one submit followed by a wait, so the time includes
//! the fixed cost of a submit; criterion's "elem/s" for matmul counts
//! floating-point operations (2·n³ per product; 2·B·OH·OW·K²·C·O per
//! convolution), so Gelem/s reads as GFLOP/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use taskgrad::kernels::im2col::{im2col, ConvGeometry};
use taskgrad::kernels::matmul::{
    fit_to_output, matmul, matmul_kernel, rows_for, MatmulKernel, MatmulOptions, Operand, Replicas,
};
use taskgrad::kernels::{
    conv_direct, matmul_lanes, matmul_unrolled, mse, softmax_ce, LossReplicas,
};
use taskgrad::optim;
use taskgrad::optim::Optimizer as _;
use taskgrad::{reference, Gpu, Tensor};

fn pattern(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 31 + seed * 17) % 97) as f32 - 48.0) / 48.0)
        .collect()
}

fn bench_matmul(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for n in [128usize, 256, 512] {
        let a = pattern(n * n, 1);
        let b = pattern(n * n, 2);
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        let ga = Tensor::from_slice(gpu, &[n, n], &a, "A").unwrap();
        let gb = Tensor::from_slice(gpu, &[n, n], &b, "B").unwrap();
        let gc = Tensor::zeros(gpu, &[n, n], "C").unwrap();
        let d = matmul(gpu, &ga, &gb, &gc, MatmulOptions::default()).unwrap();
        group.bench_with_input(BenchmarkId::new("gpu", n), &n, |bench, _| {
            bench.iter(|| {
                gpu.run(&[&d]).unwrap();
                gpu.wait().unwrap();
            })
        });
        if gpu.has_f16() {
            let a16 = Tensor::from_f16(gpu, &[n, n], &a, "A16").unwrap();
            let b16 = Tensor::from_f16(gpu, &[n, n], &b, "B16").unwrap();
            let d16 = taskgrad::kernels::matmul_f16::matmul_f16(
                gpu, &a16, &b16, &gc, false, false, None, false,
            )
            .unwrap();
            group.bench_with_input(BenchmarkId::new("gpu_f16_inputs", n), &n, |bench, _| {
                bench.iter(|| {
                    gpu.run(&[&d16]).unwrap();
                    gpu.wait().unwrap();
                })
            });
        }
        group.bench_with_input(BenchmarkId::new("cpu_reference", n), &n, |bench, &n| {
            bench.iter(|| reference::matmul(&a, &b, n, n, n, false, false, None, false))
        });
    }
    group.finish();
}

/// A small network's products, one kernel against another: W-iris's
/// (WORKLOADS.md: 120 rows, 2 inputs, a 64-64 trunk, heads of 3, 1 and 1),
/// forward (X·W), weight gradient (Xᵀ·dZ) and input gradient (dZ·Wᵀ), by
/// the register kernel (workgroup (8, 8) fitted to the output) and by the
/// rows kernels ([`rows_for`]). Each iteration one dispatch, submitted and
/// waited for.
fn bench_matmul_small(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("matmul_small");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    // (name, m, k, n, trans_a, trans_b)
    let products = [
        ("hidden_fwd_120x64x64", 120, 64, 64, false, false),
        ("hidden_dw_64x120x64", 64, 120, 64, true, false),
        ("hidden_dx_120x64x64", 120, 64, 64, false, true),
        ("head_fwd_120x64x3", 120, 64, 3, false, false),
        ("head_dw_64x120x3", 64, 120, 3, true, false),
        ("head_dx_120x3x64", 120, 3, 64, false, true),
        ("first_fwd_120x2x64", 120, 2, 64, false, false),
        ("first_dw_2x120x64", 2, 120, 64, true, false),
    ];
    for (name, m, k, n, ta, tb) in products {
        let a_shape = if ta { [k, m] } else { [m, k] };
        let b_shape = if tb { [n, k] } else { [k, n] };
        let a = Tensor::from_slice(gpu, &a_shape, &pattern(m * k, 1), "A").unwrap();
        let b = Tensor::from_slice(gpu, &b_shape, &pattern(k * n, 2), "B").unwrap();
        let out = Tensor::zeros(gpu, &[m, n], "C").unwrap();
        let opts = MatmulOptions {
            trans_a: ta,
            trans_b: tb,
            ..Default::default()
        };
        let (rows, rows_wg) = rows_for(n);
        let register = (MatmulKernel::Register, fit_to_output((8, 8), (m, n)));
        let mut ways = vec![("register", register), ("rows", (rows, rows_wg))];
        if matmul_unrolled::lanes_for((m, n, k)).is_some() {
            ways.push(("unrolled", (MatmulKernel::Unrolled, (8, 1))));
        }
        if matmul_lanes::fits(gpu, &a, &b, &out, &opts) {
            ways.push(("lanes", (MatmulKernel::Lanes, (8, 1))));
        }
        for (way, (kernel, wg)) in ways {
            let d = matmul_kernel(gpu, &a, &b, &out, opts, kernel, wg).unwrap();
            group.bench_function(BenchmarkId::new(way, name), |bench| {
                bench.iter(|| {
                    gpu.run(&[&d]).unwrap();
                    gpu.wait().unwrap();
                })
            });
        }
    }
    group.finish();
}

/// Time `reps` runs' dispatches as `separate` lists against `one` over the
/// replica axis, each iteration one submit and a wait.
fn separate_or_one(
    group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    gpu: &Gpu,
    reps: usize,
    separate: &[taskgrad::gpu::Dispatch],
    one: &[taskgrad::gpu::Dispatch],
) {
    for (name, list) in [("separate", separate), ("one_dispatch", one)] {
        let list: Vec<_> = list.iter().collect();
        group.bench_with_input(BenchmarkId::new(name, reps), &reps, |bench, _| {
            bench.iter(|| {
                gpu.run(&list).unwrap();
                gpu.wait().unwrap();
            })
        });
    }
}

/// A small network's products for R runs at once (DESIGN.md, "many runs in
/// one program"): the forward product of a 64-wide hidden layer over a batch
/// of 32 rows (X·W + b, ReLU) and its weight gradient (Xᵀ·dZ with the ReLU
/// mask and the bias gradient), each replica with its own weights in its own
/// block of one arena: R dispatches in one pass (`separate`) against one
/// dispatch over the replica axis (`one_dispatch`).
fn bench_matmul_replicas(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("matmul_replicas");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let (b, h) = (32usize, 64usize);
    let al = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    let up = |v: usize| v.div_ceil(al) * al;
    // One replica's block of the arena: W (h×h) then its bias.
    let (boff, sp, sx) = (up(h * h), up(h * h) + up(h), up(b * h));
    for reps in [1usize, 5] {
        let arena = Tensor::from_slice(gpu, &[reps * sp], &pattern(reps * sp, 3), "arena").unwrap();
        let grads = Tensor::zeros(gpu, &[reps * sp], "gradients").unwrap();
        let x = Tensor::from_slice(gpu, &[reps * sx], &pattern(reps * sx, 4), "X").unwrap();
        let y = Tensor::zeros(gpu, &[reps * sx], "Y").unwrap();
        let dy = Tensor::from_slice(gpu, &[reps * sx], &pattern(reps * sx, 5), "dY").unwrap();
        let view = |t: &Tensor, r: usize, stride: usize, shape: &[usize]| {
            t.slice(r * stride, shape).unwrap()
        };
        // Replica r's two products; with `count`, those of replicas r.. r + count.
        let products = |r: usize, count: Option<usize>| {
            let (xr, yr, dyr) = (
                view(&x, r, sx, &[b, h]),
                view(&y, r, sx, &[b, h]),
                view(&dy, r, sx, &[b, h]),
            );
            let (w, bias) = (
                view(&arena, r, sp, &[h, h]),
                view(&arena, r, sp, &[boff + h]).slice(boff, &[h]).unwrap(),
            );
            let (dw, db) = (
                view(&grads, r, sp, &[h, h]),
                view(&grads, r, sp, &[boff + h]).slice(boff, &[h]).unwrap(),
            );
            let fwd = MatmulOptions {
                bias: Some(&bias),
                relu: true,
                replicas: count.map(|count| Replicas {
                    count,
                    a: sx,
                    b: sp,
                    c: sx,
                    bias: sp,
                }),
                ..Default::default()
            };
            let bwd = MatmulOptions {
                trans_a: true,
                mask: Some((&yr, Operand::B)),
                bias_grad: Some(&db),
                replicas: count.map(|count| Replicas {
                    count,
                    a: sx,
                    b: sx,
                    c: sp,
                    bias: sp,
                }),
                ..Default::default()
            };
            vec![
                matmul(gpu, &xr, &w, &yr, fwd).unwrap(),
                matmul(gpu, &xr, &dyr, &dw, bwd).unwrap(),
            ]
        };
        let separate: Vec<_> = (0..reps).flat_map(|r| products(r, None)).collect();
        let one = products(0, Some(reps));
        separate_or_one(&mut group, gpu, reps, &separate, &one);
    }
    group.finish();
}

/// The three losses of a penguins step for R runs at once (DESIGN.md, "many
/// runs in one program"): softmax-CE over 32 rows × 3 species, softmax-CE
/// over 2 sexes and MSE over the body mass, each replica's tensors in its
/// own block: R dispatches per loss (`separate`) against one dispatch per
/// loss over the replica axis (`one_dispatch`).
fn bench_loss_replicas(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("loss_replicas");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let (b, k) = (32usize, 3usize);
    let al = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    let up = |v: usize| v.div_ceil(al) * al;
    let reps_of = |count| LossReplicas {
        count,
        values: up(b * 3),
        rows: up(b),
        tasks: up(k),
    };
    for reps in [1usize, 5] {
        let l = reps_of(reps);
        let f32s = |n: usize, seed: usize, name: &str| {
            Tensor::from_slice(gpu, &[reps * n], &pattern(reps * n, seed), name).unwrap()
        };
        let (z, dz) = (f32s(l.values, 1, "logits"), f32s(l.values, 0, "dlogits"));
        let target = f32s(l.values, 2, "targets");
        let labels: Vec<u32> = (0..reps * l.rows).map(|i| (i % 2) as u32).collect();
        let labels = Tensor::from_u32(gpu, &[reps * l.rows], &labels, "labels").unwrap();
        let mask =
            Tensor::from_slice(gpu, &[reps * l.rows], &vec![1.0; reps * l.rows], "mask").unwrap();
        let (rows, scale, loss) = (
            f32s(l.rows, 0, "rows"),
            f32s(l.tasks, 3, "scale"),
            f32s(l.tasks, 0, "loss"),
        );
        let v = |t: &Tensor, r: usize, stride: usize, shape: &[usize]| {
            t.slice(r * stride, shape).unwrap()
        };
        // Replica r's three losses; with `count`, those of replicas r.. r + count.
        let losses = |r: usize, count: usize| {
            let lr = LossReplicas { count, ..l };
            let (s, lo) = (v(&scale, r, l.tasks, &[k]), v(&loss, r, l.tasks, &[k]));
            let ce = |classes: usize, slot: usize| {
                let out = softmax_ce::SoftmaxCeOutputs {
                    dlogits: &v(&dz, r, l.values, &[b, classes]),
                    loss_rows: &v(&rows, r, l.rows, &[b]),
                    loss: &lo,
                };
                let z = v(&z, r, l.values, &[b, classes]);
                let (y, m) = (v(&labels, r, l.rows, &[b]), v(&mask, r, l.rows, &[b]));
                softmax_ce::softmax_ce_replicated(gpu, &z, &y, &m, &s, slot, out, lr).unwrap()
            };
            let (p, t, d) = (
                v(&z, r, l.values, &[b, 1]),
                v(&target, r, l.values, &[b, 1]),
                v(&dz, r, l.values, &[b, 1]),
            );
            let m = v(&mask, r, l.rows, &[b]);
            vec![
                ce(3, 0),
                ce(2, 1),
                mse::mse_replicated(gpu, &p, &t, &m, &s, 2, &d, &lo, lr).unwrap(),
            ]
        };
        let separate: Vec<_> = (0..reps).flat_map(|r| losses(r, 1)).collect();
        let one = losses(0, reps);
        separate_or_one(&mut group, gpu, reps, &separate, &one);
    }
    group.finish();
}

/// The forward convolutions of W-lenet's step (batch 256, NHWC): 28×28×1 →
/// 10 channels and 12×12×10 → 20, 5×5 kernels, bias and ReLU fused. The
/// default algorithm is two dispatches (im2col, then the matmul the product's
/// shape selects); the implicit GEMM (`TASKGRAD_CONV=direct`) is one.
fn bench_conv(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("conv");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, side, ch, out) in [("lenet1", 28, 1, 10), ("lenet2", 12, 10, 20)] {
        let g = ConvGeometry::new((256, side, side, ch), 5, 1, 0).unwrap();
        let flops = 2 * g.rows() * g.patch() * out;
        group.throughput(Throughput::Elements(flops as u64));
        let x = Tensor::from_slice(gpu, &[g.image_len()], &pattern(g.image_len(), 1), "x").unwrap();
        let w =
            Tensor::from_slice(gpu, &[g.patch(), out], &pattern(g.patch() * out, 2), "w").unwrap();
        let b = Tensor::from_slice(gpu, &[out], &pattern(out, 3), "b").unwrap();
        let y = Tensor::zeros(gpu, &[g.rows(), out], "y").unwrap();
        let cols = Tensor::zeros(gpu, &[g.rows(), g.patch()], "cols").unwrap();
        let unfold = im2col(gpu, &g, &x, &cols).unwrap();
        let product = MatmulOptions {
            bias: Some(&b),
            relu: true,
            ..Default::default()
        };
        let mm = matmul(gpu, &cols, &w, &y, product).unwrap();
        group.bench_with_input(
            BenchmarkId::new("im2col_matmul", name),
            &name,
            |bench, _| {
                bench.iter(|| {
                    gpu.run(&[&unfold, &mm]).unwrap();
                    gpu.wait().unwrap();
                })
            },
        );
        let direct = conv_direct::forward(gpu, &g, &x, &w, &b, &y, true).unwrap();
        group.bench_with_input(BenchmarkId::new("direct", name), &name, |bench, _| {
            bench.iter(|| {
                gpu.run(&[&direct]).unwrap();
                gpu.wait().unwrap();
            })
        });
    }
    group.finish();
}

fn bench_softmax_ce(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("softmax_ce");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for (b, cl) in [(120usize, 3usize), (1024, 10)] {
        let z = pattern(b * cl, 3);
        let y: Vec<u32> = (0..b).map(|i| (i % cl) as u32).collect();
        let mask = vec![1.0f32; b];
        group.throughput(Throughput::Elements((b * cl) as u64));
        let logits = Tensor::from_slice(gpu, &[b, cl], &z, "logits").unwrap();
        let labels = Tensor::from_u32(gpu, &[b], &y, "labels").unwrap();
        let gmask = Tensor::from_slice(gpu, &[b], &mask, "mask").unwrap();
        let scale = Tensor::from_slice(gpu, &[1], &[1.0], "scale").unwrap();
        let dl = Tensor::zeros(gpu, &[b, cl], "dlogits").unwrap();
        let rows = Tensor::zeros(gpu, &[b], "rows").unwrap();
        let l = Tensor::zeros(gpu, &[1], "loss").unwrap();
        let out = softmax_ce::SoftmaxCeOutputs {
            dlogits: &dl,
            loss_rows: &rows,
            loss: &l,
        };
        let d = softmax_ce::softmax_ce(gpu, &logits, &labels, &gmask, &scale, 0, out).unwrap();
        let id = format!("{b}x{cl}");
        group.bench_function(BenchmarkId::new("gpu", &id), |bench| {
            bench.iter(|| {
                gpu.run(&[&d]).unwrap();
                gpu.wait().unwrap();
            })
        });
        group.bench_function(BenchmarkId::new("cpu_reference", &id), |bench| {
            bench.iter(|| reference::softmax_ce(&z, &y, &mask, b, cl, 1.0f32))
        });
    }
    group.finish();
}

fn bench_adam(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("adam");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for n in [4_675usize, 1_000_000] {
        group.throughput(Throughput::Elements(n as u64));
        let theta = Tensor::from_slice(gpu, &[n], &pattern(n, 4), "theta").unwrap();
        let grad = Tensor::from_slice(gpu, &[n], &pattern(n, 5), "grad").unwrap();
        let m = Tensor::zeros(gpu, &[n], "m").unwrap();
        let v = Tensor::zeros(gpu, &[n], "v").unwrap();
        let mut adam =
            taskgrad::optim::Adam::new(gpu, optim::AdamConfig::default(), &theta, &m, &v, &grad)
                .unwrap();
        group.bench_function(BenchmarkId::new("gpu", n), |bench| {
            bench.iter(|| {
                adam.prepare_step(gpu);
                gpu.run(&[&adam.dispatch]).unwrap();
                gpu.wait().unwrap();
            })
        });
        let (mut t, mut mm, mut vv, g) = (
            pattern(n, 4),
            vec![0.0f32; n],
            vec![0.0f32; n],
            pattern(n, 5),
        );
        let mut step = 0;
        group.bench_function(BenchmarkId::new("cpu_reference", n), |bench| {
            bench.iter(|| {
                step += 1;
                taskgrad::optim::adam::reference(
                    &mut t, &mut mm, &mut vv, &g, step, 1e-3, 0.9, 0.999, 1e-8, 0.0, false,
                )
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let gpu =
        Gpu::new().expect("a GPU adapter (see README: mesa-vulkan-drivers gives a software one)");
    eprintln!("adapter: {}", gpu.report);
    bench_matmul(c, &gpu);
    bench_matmul_small(c, &gpu);
    bench_matmul_replicas(c, &gpu);
    bench_loss_replicas(c, &gpu);
    bench_conv(c, &gpu);
    bench_softmax_ce(c, &gpu);
    bench_adam(c, &gpu);
}

criterion_group!(kernel_benches, benches);
criterion_main!(kernel_benches);
