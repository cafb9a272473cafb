//! fill, scale, rescale, add, mul, axpy, broadcast, and the activations with
//! their backwards (relu, gelu, tanh, sigmoid). See shaders/elementwise.wgsl.

use crate::error::Result;
use crate::gpu::Dispatch;
use crate::gpu::Tensor;
use crate::gpu::{Binding, Gpu};
use crate::kernels::{grid_1d, record};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    alpha: f32,
    value: f32,
    _pad: u32,
}

fn launch(
    gpu: &Gpu,
    entry: &'static str,
    alpha: f32,
    value: f32,
    y: &Tensor,
    inputs: &[&Tensor],
) -> Result<Dispatch> {
    let n = y.numel();
    for t in inputs.iter().chain(std::iter::once(&y)) {
        t.expect_numel(entry, n)?;
        if t.dtype() != crate::gpu::DType::F32 {
            return Err(crate::error::Error::shape(
                entry,
                "f32 elements",
                format!("{:?}", t.dtype()),
            ));
        }
    }
    let mut bindings = vec![Binding::Uniform, Binding::ReadWrite];
    bindings.extend(inputs.iter().map(|_| Binding::ReadOnly));
    let mut tensors = vec![y];
    tensors.extend_from_slice(inputs);
    let params = Params {
        n: n as u32,
        alpha,
        value,
        _pad: 0,
    };
    record(
        gpu,
        "elementwise.wgsl",
        entry,
        &bindings,
        &[],
        &params,
        &tensors,
        grid_1d(gpu, n)?,
    )
}

/// y = value
pub fn fill(gpu: &Gpu, y: &Tensor, value: f32) -> Result<Dispatch> {
    launch(gpu, "fill", 0.0, value, y, &[])
}

/// y = alpha · x
pub fn scale(gpu: &Gpu, x: &Tensor, alpha: f32, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, "scale", alpha, 0.0, y, &[x])
}

/// y = alpha · y, in place
pub fn rescale(gpu: &Gpu, y: &Tensor, alpha: f32) -> Result<Dispatch> {
    launch(gpu, "rescale", alpha, 0.0, y, &[])
}

/// y = a + b
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, "add", 0.0, 0.0, y, &[a, b])
}

/// y += alpha · x
pub fn axpy(gpu: &Gpu, alpha: f32, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, "axpy", alpha, 0.0, y, &[x])
}

/// y = max(x, 0)
pub fn relu(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, "relu", 0.0, 0.0, y, &[x])
}

/// dx = dy where the forward output y > 0, else 0.
pub fn relu_backward(gpu: &Gpu, dy: &Tensor, y: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    launch(gpu, "relu_backward", 0.0, 0.0, dx, &[dy, y])
}

/// y = GELU(x) = ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))
pub fn gelu(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, "gelu", 0.0, 0.0, y, &[x])
}

/// dx = dy · GELU'(x), x the forward input.
pub fn gelu_backward(gpu: &Gpu, dy: &Tensor, x: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    launch(gpu, "gelu_backward", 0.0, 0.0, dx, &[dy, x])
}

/// y = tanh(x)
pub fn tanh(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, "tanh_fwd", 0.0, 0.0, y, &[x])
}

/// dx = dy · (1 - y²), y the forward output.
pub fn tanh_backward(gpu: &Gpu, dy: &Tensor, y: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    launch(gpu, "tanh_backward", 0.0, 0.0, dx, &[dy, y])
}

/// y = 1/(1 + e^(−x)), elementwise.
pub fn sigmoid(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, "sigmoid", 0.0, 0.0, y, &[x])
}

/// dx = dy · y (1 − y), y the forward output.
pub fn sigmoid_backward(gpu: &Gpu, dy: &Tensor, y: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    launch(gpu, "sigmoid_backward", 0.0, 0.0, dx, &[dy, y])
}

/// y = a ⊙ b
pub fn mul(gpu: &Gpu, a: &Tensor, b: &Tensor, y: &Tensor) -> Result<Dispatch> {
    launch(gpu, "mul", 0.0, 0.0, y, &[a, b])
}

/// y\[i\] = alpha · x\[0\] for every i (x has one element).
pub fn broadcast(gpu: &Gpu, x: &Tensor, alpha: f32, y: &Tensor) -> Result<Dispatch> {
    x.expect_numel("broadcast input", 1)?;
    let n = y.numel();
    let params = Params {
        n: n as u32,
        alpha,
        value: 0.0,
        _pad: 0,
    };
    use Binding::*;
    record(
        gpu,
        "elementwise.wgsl",
        "broadcast",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &params,
        &[y, x],
        grid_1d(gpu, n)?,
    )
}
