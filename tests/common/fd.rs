//! The finite-difference check every gradient test uses: parameters with
//! host copies, one forward and backward on the GPU, and each parameter's
//! gradient against central differences of the same loss computed in f64:
//! dL/dθ_i ≈ (L(θ + h e_i) − L(θ − h e_i)) / 2h, h = 1e-5, within atol 2e-4 +
//! rtol 2e-3.

use taskgrad::nn::{ParamBuilder, ParamId, ParamSet};
use taskgrad::{Gpu, Tape, Tensor};

use super::{random, rng};

pub type P = Vec<Vec<f64>>;

/// Parameters with host copies of their initial values.
pub struct Fixture {
    pub params: ParamSet,
    pub host: P,
}

/// Parameters of these shapes, seeded random values, with host copies.
pub fn fixture(gpu: &Gpu, shapes: &[(&str, Vec<usize>)], seed: u64) -> (Fixture, Vec<ParamId>) {
    let mut r = rng(seed);
    let mut b = ParamBuilder::new(gpu);
    let mut host = Vec::new();
    let mut ids = Vec::new();
    for (name, shape) in shapes {
        let v = random(&mut r, shape.iter().product());
        host.push(v.iter().map(|&x| x as f64).collect());
        ids.push(b.add(name, shape, v).unwrap());
    }
    (
        Fixture {
            params: b.build(gpu).unwrap(),
            host,
        },
        ids,
    )
}

/// A constant input.
pub fn upload(gpu: &Gpu, shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_slice(gpu, shape, v, "gradcheck input").unwrap()
}

/// Run the recorded forward + backward once and compare every parameter's
/// gradient with central differences of `loss`.
#[track_caller]
pub fn check(gpu: &Gpu, tape: &Tape, fx: &Fixture, what: &str, loss: impl Fn(&P) -> f64) {
    check_where(gpu, tape, fx, what, |_| true, loss)
}

/// [`check`] over the parameters whose names `which` accepts (a gradient
/// that is not the loss's derivative by design, a straight-through
/// estimator's, is checked on its own).
pub fn check_where(
    gpu: &Gpu,
    tape: &Tape,
    fx: &Fixture,
    what: &str,
    which: impl Fn(&str) -> bool,
    loss: impl Fn(&P) -> f64,
) {
    let all: Vec<_> = tape.forward.iter().chain(&tape.backward).collect();
    gpu.run(&all).unwrap();
    let grads = fx.params.grads().unwrap().read(gpu).unwrap();
    let h = 1e-5;
    let mut bad = Vec::new();
    for (pi, (_, start, shape)) in fx
        .params
        .grads()
        .unwrap()
        .layout
        .entries()
        .iter()
        .enumerate()
    {
        if !which(&fx.params.names[pi]) {
            continue;
        }
        let n: usize = shape.iter().product();
        for i in 0..n {
            let mut plus = fx.host.clone();
            plus[pi][i] += h;
            let mut minus = fx.host.clone();
            minus[pi][i] -= h;
            let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
            let got = grads[start + i] as f64;
            if (got - fd).abs() > 2e-4 + 2e-3 * fd.abs() {
                bad.push(format!(
                    "{}[{i}]: gpu {got:.6} fd {fd:.6}",
                    fx.params.names[pi]
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} gradients differ; first: {:?}",
        bad.len(),
        &bad[..bad.len().min(6)]
    );
}

/// f64 → f32.
pub fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// n ones (a mask with every row labelled).
pub fn ones(n: usize) -> Vec<f64> {
    vec![1.0; n]
}

/// Seeds and losses buffers for a single loss with weight `seed`.
pub fn loss_buffers(gpu: &Gpu, seed: f32) -> (Tensor, Tensor) {
    (
        upload(gpu, &[1], &[seed]),
        Tensor::zeros(gpu, &[1], "losses").unwrap(),
    )
}
