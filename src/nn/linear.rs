//! Linear layers with seeded initialisation (He for hidden layers, Xavier for outputs).

use rand::rngs::StdRng;
use rand::Rng;

use super::{Activation, ParamBuilder, ParamId, ParamSet};
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};

/// How a layer's weights are drawn.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// He (Kaiming) normal, std = sqrt(2 / fan_in): for layers followed by ReLU.
    He,
    /// Xavier (Glorot) uniform, ±sqrt(6 / (fan_in + fan_out)): for output layers.
    Xavier,
    /// Uniform in ±a, whatever the sizes (DSelect-k's gates start near 0).
    Uniform(f32),
}

/// `n` draws from N(0, std²) (Box-Muller: two uniforms to one standard normal).
pub(crate) fn normal(rng: &mut StdRng, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f64 = rng.random_range(f64::EPSILON..1.0);
            let u2: f64 = rng.random();
            (std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

fn draw(rng: &mut StdRng, init: Init, fan_in: usize, fan_out: usize) -> Vec<f32> {
    let n = fan_in * fan_out;
    match init {
        Init::He => normal(rng, n, (2.0 / fan_in as f64).sqrt()),
        Init::Xavier => {
            let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
            (0..n).map(|_| rng.random_range(-a..a) as f32).collect()
        }
        Init::Uniform(a) => (0..n).map(|_| rng.random_range(-a..a)).collect(),
    }
}

/// y = act(x·W + b); W is fan_in×fan_out, b is fan_out (zeros).
#[derive(Clone, Debug)]
pub struct Linear {
    pub w: ParamId,
    pub b: ParamId,
    pub fan_in: usize,
    pub fan_out: usize,
}

impl Linear {
    pub fn new(
        p: &mut ParamBuilder,
        name: &str,
        fan_in: usize,
        fan_out: usize,
        init: Init,
        rng: &mut StdRng,
    ) -> Result<Self> {
        if fan_in == 0 || fan_out == 0 {
            return Err(Error::InvalidConfig(format!(
                "layer {name} has a zero dimension ({fan_in}x{fan_out})"
            )));
        }
        let w = p.add_drawn(&format!("{name}.weight"), &[fan_in, fan_out], || {
            draw(rng, init, fan_in, fan_out)
        })?;
        let b = p.add_drawn(&format!("{name}.bias"), &[fan_out], || vec![0.0; fan_out])?;
        Ok(Linear {
            w,
            b,
            fan_in,
            fan_out,
        })
    }

    /// y = act(x·W + b): ReLU fused into the matmul, other activations as a pass of their own.
    pub fn forward(
        &self,
        tape: &mut Tape,
        params: &ParamSet,
        x: Var,
        act: Activation,
    ) -> Result<Var> {
        let w = params.var(tape, self.w)?;
        let b = params.var_f32(tape, self.b)?;
        let y = tape.linear(x, w, b, act == Activation::Relu)?;
        match act {
            Activation::Relu | Activation::Identity => Ok(y),
            _ => act.apply(tape, y),
        }
    }
}
