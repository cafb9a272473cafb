//! hello_matmul: the smallest complete taskgrad program.
//!
//! It opens a GPU, uploads two matrices, runs our WGSL matmul kernel once and
//! checks the product against the plain CPU reference.
//!
//!     cargo run --release --example hello_matmul

use taskgrad::kernels::matmul::{matmul, MatmulOptions};
use taskgrad::{reference, Gpu, Tensor};

fn main() -> taskgrad::Result<()> {
    // 0. Keep the graphics stack's start-up messages off stderr (see the function).
    taskgrad::gpu::quiet_graphics_stack();
    // 1. Pick an adapter: a hardware GPU if there is one, else a software one
    //    (lavapipe through Vulkan, llvmpipe through GL). TASKGRAD_BACKEND and
    //    TASKGRAD_ADAPTER override the choice.
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.report);

    // 2. Inputs on the host: A is M×K, B is K×N, filled with a simple pattern.
    let (m, k, n) = (67, 45, 33);
    let a: Vec<f32> = (0..m * k).map(|i| ((i % 7) as f32 - 3.0) / 3.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i % 5) as f32 - 2.0) / 2.0).collect();

    // 3. Upload them into GPU storage buffers, and make room for C (M×N).
    let ga = Tensor::from_slice(&gpu, &[m, k], &a, "A")?;
    let gb = Tensor::from_slice(&gpu, &[k, n], &b, "B")?;
    let gc = Tensor::zeros(&gpu, &[m, n], "C")?;

    // 4. Record the dispatch (this compiles shaders/matmul.wgsl once and binds
    //    the three buffers), then encode it into one compute pass and submit.
    let product = matmul(&gpu, &ga, &gb, &gc, MatmulOptions::default())?;
    gpu.run(&[&product])?;

    // 5. Copy C back to the host (one staging buffer, one wait).
    let c = gpu.read_one(&gc)?;

    // 6. Compare with the CPU reference: the same sum of products, in plain loops.
    let want = reference::matmul(&a, &b, m, k, n, false, false, None, false);
    let max_err = c
        .iter()
        .zip(&want)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    println!(
        "C = A·B, {m}x{k} · {k}x{n}: C[0][0] = {}, max |GPU - CPU| = {max_err:e}",
        c[0]
    );
    if max_err > 1e-4 {
        eprintln!("mismatch against the CPU reference");
        std::process::exit(1);
    }
    println!("ok: the GPU product matches the CPU reference");
    Ok(())
}
