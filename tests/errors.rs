//! Every error path of the engine core returns its typed error, never a panic.

mod common;

use taskgrad::kernels::matmul::{self, MatmulOptions};
use taskgrad::kernels::{elementwise, mse, reduce, softmax_ce};
use taskgrad::optim;
use taskgrad::{Error, Tensor};

#[test]
fn matmul_inner_dimension_mismatch() {
    let gpu = gpu_or_skip!();
    let a = Tensor::zeros(gpu, &[2, 3], "a").unwrap();
    let b = Tensor::zeros(gpu, &[4, 5], "b").unwrap();
    let c = Tensor::zeros(gpu, &[2, 5], "c").unwrap();
    let err = matmul::matmul(gpu, &a, &b, &c, MatmulOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { op: "matmul", .. }),
        "{err}"
    );
    // The same pair is fine once B is transposed the right way round: 2×3 · (5×3)ᵀ.
    let bt = Tensor::zeros(gpu, &[5, 3], "bt").unwrap();
    assert!(matmul::matmul(
        gpu,
        &a,
        &bt,
        &c,
        MatmulOptions {
            trans_b: true,
            ..Default::default()
        }
    )
    .is_ok());
}

#[test]
fn matmul_wrong_output_shape_and_bias_length() {
    let gpu = gpu_or_skip!();
    let a = Tensor::zeros(gpu, &[2, 3], "a").unwrap();
    let b = Tensor::zeros(gpu, &[3, 4], "b").unwrap();
    let c_bad = Tensor::zeros(gpu, &[4, 2], "c").unwrap();
    let err = matmul::matmul(gpu, &a, &b, &c_bad, MatmulOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                op: "matmul output",
                ..
            }
        ),
        "{err}"
    );
    let c = Tensor::zeros(gpu, &[2, 4], "c").unwrap();
    let bias = Tensor::zeros(gpu, &[3], "bias").unwrap();
    let err = matmul::matmul(
        gpu,
        &a,
        &b,
        &c,
        MatmulOptions {
            bias: Some(&bias),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                op: "matmul bias",
                ..
            }
        ),
        "{err}"
    );
    let v = Tensor::zeros(gpu, &[6], "vector").unwrap();
    assert!(matches!(
        matmul::matmul(gpu, &v, &b, &c, MatmulOptions::default()),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn elementwise_reduce_loss_and_optimizer_shape_mismatches() {
    let gpu = gpu_or_skip!();
    let x3 = Tensor::zeros(gpu, &[3], "x3").unwrap();
    let x4 = Tensor::zeros(gpu, &[4], "x4").unwrap();
    assert!(matches!(
        elementwise::add(gpu, &x3, &x4, &x3.clone()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        elementwise::axpy(gpu, 1.0, &x3, &x4),
        Err(Error::ShapeMismatch { .. })
    ));
    let m = Tensor::zeros(gpu, &[2, 3], "m").unwrap();
    assert!(matches!(
        reduce::sum_rows(gpu, &m, &x4, false),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        reduce::sum_all(gpu, &m, &x3, false),
        Err(Error::ShapeMismatch { .. })
    ));
    let scale = Tensor::from_slice(gpu, &[1], &[1.0], "scale").unwrap();
    let (dm, l) = (
        Tensor::zeros(gpu, &[2, 3], "d").unwrap(),
        Tensor::zeros(gpu, &[1], "l").unwrap(),
    );
    // Float labels are refused: class indices are u32.
    let float_labels = Tensor::zeros(gpu, &[2], "labels").unwrap();
    let mask = Tensor::zeros(gpu, &[2], "mask").unwrap();
    let rows = Tensor::zeros(gpu, &[2], "rows").unwrap();
    let out = softmax_ce::SoftmaxCeOutputs {
        dlogits: &dm,
        loss_rows: &rows,
        loss: &l,
    };
    assert!(matches!(
        softmax_ce::softmax_ce(gpu, &m, &float_labels, &mask, &scale, 0, out),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        mse::mse(gpu, &m, &x3, &mask, &scale, 0, &dm, &l),
        Err(Error::ShapeMismatch { .. })
    ));
    let cfg = optim::AdamConfig::default();
    assert!(matches!(
        taskgrad::optim::Adam::new(gpu, cfg, &x3, &x3.clone(), &x4, &x3.clone()),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn output_aliasing_an_input_is_refused() {
    let gpu = gpu_or_skip!();
    let x = Tensor::zeros(gpu, &[8], "x").unwrap();
    let err = elementwise::relu(gpu, &x, &x).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
}

#[test]
fn tensor_larger_than_max_storage_binding_is_a_typed_error() {
    let gpu = gpu_or_skip!();
    let limit = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size);
    let elements = (limit / 4 + 1) as usize;
    // Checked before any allocation, so this costs no memory.
    let err = Tensor::zeros(gpu, &[elements], "too big").unwrap_err();
    match err {
        Error::BufferTooLarge { bytes, limit: l } => {
            assert_eq!(bytes, 4 * elements as u64);
            assert_eq!(l, limit);
        }
        other => panic!("expected BufferTooLarge, got {other}"),
    }
    let msg = Tensor::zeros(gpu, &[elements], "too big")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&limit.to_string()) && msg.contains(&(4 * elements as u64).to_string()),
        "{msg}"
    );
}

#[test]
fn upload_with_wrong_length_is_a_shape_error() {
    let gpu = gpu_or_skip!();
    assert!(matches!(
        Tensor::from_slice(gpu, &[2, 2], &[1.0; 3], "x"),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Tensor::zeros(gpu, &[0, 4], "empty"),
        Err(Error::ShapeMismatch { .. })
    ));
    let t = Tensor::zeros(gpu, &[4], "t").unwrap();
    assert!(matches!(
        t.write(gpu, &[1.0; 5]),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn wgpu_validation_error_becomes_a_typed_error() {
    let gpu = gpu_or_skip!();
    // MAP_READ may only be combined with COPY_DST: wgpu raises a validation error,
    // which `scoped` must return rather than panic.
    let err = gpu
        .scoped("making an invalid buffer", || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("invalid"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
        .unwrap_err();
    assert!(matches!(err, Error::Gpu { .. }), "{err}");
    assert!(
        err.to_string().contains("making an invalid buffer"),
        "{err}"
    );
}

#[test]
fn unknown_backend_name_is_a_typed_error() {
    let err = taskgrad::gpu::parse_backend("cuda").unwrap_err();
    assert!(
        matches!(err, Error::UnknownBackend { ref name } if name == "cuda"),
        "{err}"
    );
    for ok in ["vulkan", "GL", "metal", "dx12"] {
        assert!(taskgrad::gpu::parse_backend(ok).is_ok(), "{ok}");
    }
}

#[test]
fn no_adapter_names_backends_and_how_to_get_a_software_one() {
    // No adapter's name contains this, so the search must come back empty.
    let err = match taskgrad::Gpu::with_options(
        wgpu::Backends::VULKAN | wgpu::Backends::GL,
        Some("no-such-adapter-xyz"),
    ) {
        Err(e) => e,
        Ok(g) => panic!("unexpected adapter {}", g.report),
    };
    let msg = err.to_string();
    assert!(matches!(err, Error::NoAdapter { .. }), "{msg}");
    assert!(msg.contains("vulkan, gl"), "{msg}");
    assert!(msg.contains("apt-get install mesa-vulkan-drivers"), "{msg}");
    assert!(msg.contains("no-such-adapter-xyz"), "{msg}");
}

#[test]
fn a_matmul_kernel_needing_more_workgroup_memory_than_offered_is_refused_by_name() {
    // tiled32 stages 32 KiB; an adapter offering WebGPU's default 16 KiB must
    // get a message, not a pipeline error (a device of its own, its limit lowered).
    gpu_or_skip!();
    let mut gpu = taskgrad::Gpu::new().unwrap();
    gpu.limits.max_compute_workgroup_storage_size = 16384;
    let (a, b, c) = (
        Tensor::zeros(&gpu, &[4, 4], "a").unwrap(),
        Tensor::zeros(&gpu, &[4, 4], "b").unwrap(),
        Tensor::zeros(&gpu, &[4, 4], "c").unwrap(),
    );
    use taskgrad::kernels::matmul::MatmulKernel;
    assert!(!MatmulKernel::Tiled32.fits(&gpu) && MatmulKernel::Tiled.fits(&gpu));
    let opts = MatmulOptions::default();
    match matmul::matmul_kernel(&gpu, &a, &b, &c, opts, MatmulKernel::Tiled32, (16, 16)) {
        Err(Error::InvalidConfig(m)) => {
            assert!(
                m.contains("tiled32") && m.contains("32768") && m.contains("16384"),
                "{m}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matmul::matmul_kernel(&gpu, &a, &b, &c, opts, MatmulKernel::Tiled, (16, 16)).is_ok());
}

#[test]
fn kernel_settings_from_the_environment_are_checked_once_naming_the_variable() {
    // Issue 20: TASKGRAD_SPLITK was re-read at every product and a bad value
    // silently ignored, while a bad TASKGRAD_MATMUL was an error: now all are
    // read and checked when the Gpu is made.
    use taskgrad::gpu::env::{KernelEnv, MATMUL_KERNELS};
    use taskgrad::kernels::matmul::MatmulKernel;
    let ok = KernelEnv::parse(Some(" Tiled32 "), Some("16x4"), Some("3")).unwrap();
    assert_eq!(ok.matmul, Some("tiled32"));
    assert_eq!(ok.matmul_wg, Some((16, 4)));
    assert_eq!(ok.splitk, Some(3));
    assert_eq!(
        KernelEnv::parse(None, None, None).unwrap(),
        KernelEnv::default()
    );
    for (m, wg, k, var) in [
        (Some("fast"), None, None, "TASKGRAD_MATMUL=\"fast\""),
        (None, Some("8"), None, "TASKGRAD_MATMUL_WG=\"8\""),
        (None, Some("32x32"), None, "TASKGRAD_MATMUL_WG=\"32x32\""),
        (None, None, Some("abc"), "TASKGRAD_SPLITK=\"abc\""),
        (None, None, Some("0"), "TASKGRAD_SPLITK=\"0\""),
    ] {
        let err = KernelEnv::parse(m, wg, k).unwrap_err().to_string();
        assert!(err.contains(var), "{err}");
    }
    // The names the variable takes are the kernels there are.
    let names: Vec<&str> = MatmulKernel::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names, MATMUL_KERNELS);
    for name in MATMUL_KERNELS {
        assert_eq!(MatmulKernel::parse(name).unwrap().name(), name);
    }
}
