//! Training-step benchmarks on the reference workloads (WORKLOADS.md):
//! W-iris and W-synth steps with equal weights, PCGrad and MGDA, fused,
//! unfused and in f16 (where the adapter has it), W-lenet steps, and
//! W-matmul products.
//!
//!     cargo bench --bench workloads
//!
//! One iteration is one training step: write the batch (W-synth), one submit,
//! then a wait, so the time is what a user pays per step.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use taskgrad::kernels::matmul::{matmul, MatmulOptions};
use taskgrad::train::step::StepOptions;
#[path = "../examples/common/workloads.rs"]
mod workloads;
use taskgrad::{Gpu, Tensor};
use workloads::{w_iris, w_lenet, w_synth, Workload};

/// One benchmark per (method, fused) on the workload that `build` makes.
fn bench_steps(
    c: &mut Criterion,
    gpu: &Gpu,
    name: &str,
    build: fn(&Gpu, &str, StepOptions) -> taskgrad::Result<Workload>,
    samples: usize,
    secs: u64,
) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(samples)
        .measurement_time(Duration::from_secs(secs))
        .warm_up_time(Duration::from_millis(500));
    let plain = StepOptions::default();
    let mut cases = vec![
        ("equal", plain),
        (
            "equal unfused",
            StepOptions {
                fused: false,
                ..plain
            },
        ),
        ("pcgrad", plain),
        ("mgda", plain),
    ];
    if gpu.has_f16() {
        cases.push((
            "equal f16",
            StepOptions {
                half: true,
                ..plain
            },
        ));
    }
    for (id, opts) in cases {
        let method = id.split(' ').next().unwrap_or("equal");
        let mut w = build(gpu, method, opts).expect("the workload builds");
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| {
                w.step(gpu).unwrap();
                gpu.wait().unwrap();
            })
        });
    }
    group.finish();
}

/// W-lenet steps with equal weights (images per second as the throughput).
fn bench_lenet(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("W-lenet step");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(256));
    let mut w = w_lenet(gpu, "equal", StepOptions::default()).expect("the workload builds");
    group.bench_function("equal", |b| {
        b.iter(|| {
            w.step(gpu).unwrap();
            gpu.wait().unwrap();
        })
    });
    group.finish();
}

fn bench_matmul(c: &mut Criterion, gpu: &Gpu) {
    let mut group = c.benchmark_group("W-matmul");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for n in [256usize, 512, 1024] {
        group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
        let a = Tensor::from_slice(gpu, &[n, n], &vec![0.5; n * n], "A").unwrap();
        let b = Tensor::from_slice(gpu, &[n, n], &vec![0.25; n * n], "B").unwrap();
        let cc = Tensor::zeros(gpu, &[n, n], "C").unwrap();
        let d = matmul(gpu, &a, &b, &cc, MatmulOptions::default()).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| {
                gpu.run(&[&d]).unwrap();
                gpu.wait().unwrap();
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let gpu =
        Gpu::new().expect("a GPU adapter (see README: mesa-vulkan-drivers gives a software one)");
    eprintln!(
        "adapter: {}, matmul workgroup {:?}",
        gpu.report,
        taskgrad::kernels::matmul::workgroup(&gpu)
    );
    bench_steps(c, &gpu, "W-iris step", w_iris, 30, 3);
    bench_steps(c, &gpu, "W-synth step", w_synth, 10, 8);
    bench_lenet(c, &gpu);
    bench_matmul(c, &gpu);
}

criterion_group!(workload_benches, benches);
criterion_main!(workload_benches);
