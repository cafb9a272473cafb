//! Parameters in flat arenas, Linear layers with seeded initialisation, and
//! the multi-task network: a shared MLP trunk and one head per task, each head
//! optionally with its own tower of hidden layers.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::device::Gpu;
use crate::error::{Error, Result};
use crate::tape::{Tape, Var};
use crate::tensor::{Arena, ArenaLayout, Tensor};

/// A parameter by value: (name, shape, row-major values).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Index of a parameter in a [`ParamSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// Names, shapes and initial values, before anything is on the GPU.
pub struct ParamBuilder {
    layout: ArenaLayout,
    names: Vec<String>,
    init: Vec<Vec<f32>>,
    half: bool,
}

impl ParamBuilder {
    pub fn new(gpu: &Gpu) -> Self {
        ParamBuilder {
            layout: ArenaLayout::new(gpu),
            names: Vec::new(),
            init: Vec::new(),
            half: false,
        }
    }

    /// A builder whose set also keeps an f16 copy of the values, for training
    /// with f16 matmuls and activations (f32 master weights and gradients).
    pub fn new_half(gpu: &Gpu) -> Self {
        ParamBuilder {
            layout: ArenaLayout::with_element_bytes(gpu, 2),
            names: Vec::new(),
            init: Vec::new(),
            half: true,
        }
    }

    /// Add a parameter with its initial values (row-major, `shape` elements).
    pub fn add(&mut self, name: &str, shape: &[usize], init: Vec<f32>) -> Result<ParamId> {
        let n: usize = shape.iter().product();
        if init.len() != n {
            return Err(Error::shape(
                "parameter init",
                format!("{n} values for {shape:?}"),
                format!("{}", init.len()),
            ));
        }
        if self.names.iter().any(|x| x == name) {
            return Err(Error::InvalidConfig(format!(
                "duplicate parameter name {name:?}"
            )));
        }
        self.layout.add(name, shape);
        self.names.push(name.to_string());
        self.init.push(init);
        Ok(ParamId(self.names.len() - 1))
    }

    /// Allocate the value and gradient arenas and upload the initial values.
    pub fn build(self, gpu: &Gpu) -> Result<ParamSet> {
        let values = Arena::new(gpu, &self.layout, "parameters")?;
        let grads = Arena::new(gpu, &self.layout, "gradients")?;
        let mut flat = vec![0.0f32; self.layout.len().max(1)];
        for (i, (_, start, _)) in self.layout.entries().iter().enumerate() {
            flat[*start..*start + self.init[i].len()].copy_from_slice(&self.init[i]);
        }
        values.whole.write(gpu, &flat)?;
        let values16 = if self.half {
            Some(Arena::new_f16(gpu, &self.layout, "parameters (f16 copy)")?)
        } else {
            None
        };
        Ok(ParamSet {
            names: self.names,
            values,
            grads,
            values16,
        })
    }
}

/// Every parameter of a model: one arena of values, one of gradients, same layout.
pub struct ParamSet {
    pub names: Vec<String>,
    pub values: Arena,
    pub grads: Arena,
    /// An f16 copy of `values` (same element offsets), refreshed once per step
    /// by the training step, when the set was built for half precision.
    pub values16: Option<Arena>,
}

impl ParamSet {
    pub fn value(&self, id: ParamId) -> Tensor {
        self.values.view(id.0)
    }
    pub fn grad(&self, id: ParamId) -> Tensor {
        self.grads.view(id.0)
    }
    /// Put a parameter on the tape: its f16 copy when the set has one (the
    /// matmuls read f16 weights), with its gradient in the f32 arena.
    pub fn var(&self, tape: &mut Tape, id: ParamId) -> Result<Var> {
        match &self.values16 {
            Some(v16) => tape.param(&v16.view(id.0), &self.grad(id)),
            None => tape.param(&self.value(id), &self.grad(id)),
        }
    }
    /// Put a parameter on the tape in f32 whatever the set's precision (biases:
    /// the matmul epilogue adds them in f32).
    pub fn var_f32(&self, tape: &mut Tape, id: ParamId) -> Result<Var> {
        tape.param(&self.value(id), &self.grad(id))
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn shape(&self, id: ParamId) -> &[usize] {
        &self.values.layout.entries()[id.0].2
    }
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.names.iter().position(|n| n == name).map(ParamId)
    }
    /// Number of trainable scalars (padding excluded).
    pub fn count(&self) -> usize {
        self.values
            .layout
            .entries()
            .iter()
            .map(|(_, _, s)| s.iter().product::<usize>())
            .sum()
    }
    /// Read every parameter back, by name, in one readback.
    pub fn read_all(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        let flat = self.values.read(gpu)?;
        Ok(self
            .values
            .layout
            .entries()
            .iter()
            .map(|(name, start, shape)| {
                let n: usize = shape.iter().product();
                (
                    name.clone(),
                    shape.clone(),
                    flat[*start..*start + n].to_vec(),
                )
            })
            .collect())
    }
}

/// How a layer's weights are drawn.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// He (Kaiming) normal, std = sqrt(2 / fan_in): for layers followed by ReLU.
    He,
    /// Xavier (Glorot) uniform, ±sqrt(6 / (fan_in + fan_out)): for output layers.
    Xavier,
}

fn draw(rng: &mut StdRng, init: Init, fan_in: usize, fan_out: usize) -> Vec<f32> {
    let n = fan_in * fan_out;
    match init {
        Init::He => {
            let std = (2.0 / fan_in as f64).sqrt();
            // Box-Muller: two uniforms to one standard normal.
            (0..n)
                .map(|_| {
                    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                    let u2: f64 = rng.random();
                    (std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
                })
                .collect()
        }
        Init::Xavier => {
            let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
            (0..n).map(|_| rng.random_range(-a..a) as f32).collect()
        }
    }
}

/// y = x·W + b (then ReLU when asked); W is fan_in×fan_out, b is fan_out (zeros).
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
        let w = p.add(
            &format!("{name}.weight"),
            &[fan_in, fan_out],
            draw(rng, init, fan_in, fan_out),
        )?;
        let b = p.add(&format!("{name}.bias"), &[fan_out], vec![0.0; fan_out])?;
        Ok(Linear {
            w,
            b,
            fan_in,
            fan_out,
        })
    }

    pub fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var, relu: bool) -> Result<Var> {
        let w = params.var(tape, self.w)?;
        let b = params.var_f32(tape, self.b)?;
        tape.linear(x, w, b, relu)
    }
}

/// Widths of a multi-task network.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    /// Input features D.
    pub inputs: usize,
    /// Hidden widths of the shared trunk (each Linear + ReLU).
    pub trunk: Vec<usize>,
    /// Hidden widths of each task's own tower (empty: the head reads the trunk directly).
    pub tower: Vec<usize>,
    /// Output width of each head (classes, or 1 for a regression).
    pub outputs: Vec<usize>,
    /// Names of the heads (parameter names are `head.<name>...`).
    pub head_names: Vec<String>,
}

/// Shared trunk and one head (tower + output layer) per task.
pub struct MultiTaskNet {
    pub spec: NetSpec,
    pub trunk: Vec<Linear>,
    pub heads: Vec<(Vec<Linear>, Linear)>,
}

impl MultiTaskNet {
    /// Add the network's parameters to `p`, drawn from `seed`.
    pub fn new(p: &mut ParamBuilder, spec: NetSpec, seed: u64) -> Result<Self> {
        if spec.outputs.len() != spec.head_names.len() || spec.outputs.is_empty() {
            return Err(Error::InvalidConfig(
                "a network needs one name per head and at least one head".into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut trunk = Vec::new();
        let mut width = spec.inputs;
        for (i, &h) in spec.trunk.iter().enumerate() {
            trunk.push(Linear::new(
                p,
                &format!("trunk.{i}"),
                width,
                h,
                Init::He,
                &mut rng,
            )?);
            width = h;
        }
        let mut heads = Vec::new();
        for (name, &out) in spec.head_names.iter().zip(&spec.outputs) {
            let mut tower = Vec::new();
            let mut w = width;
            for (i, &h) in spec.tower.iter().enumerate() {
                tower.push(Linear::new(
                    p,
                    &format!("head.{name}.tower.{i}"),
                    w,
                    h,
                    Init::He,
                    &mut rng,
                )?);
                w = h;
            }
            let output = Linear::new(
                p,
                &format!("head.{name}.out"),
                w,
                out,
                Init::Xavier,
                &mut rng,
            )?;
            heads.push((tower, output));
        }
        Ok(MultiTaskNet { spec, trunk, heads })
    }

    /// Record the trunk: its output is the shared representation z (B×H).
    pub fn trunk_forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Var> {
        let mut h = x;
        for layer in &self.trunk {
            h = layer.forward(tape, params, h, true)?;
        }
        Ok(h)
    }

    /// Record head `k` on the shared representation `z`: logits or predictions.
    pub fn head_forward(
        &self,
        tape: &mut Tape,
        params: &ParamSet,
        z: Var,
        k: usize,
    ) -> Result<Var> {
        let (tower, out) = &self.heads[k];
        let mut h = z;
        for layer in tower {
            h = layer.forward(tape, params, h, true)?;
        }
        out.forward(tape, params, h, false)
    }

    /// Record the whole network: one output per head.
    pub fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> Result<Vec<Var>> {
        let z = self.trunk_forward(tape, params, x)?;
        (0..self.heads.len())
            .map(|k| self.head_forward(tape, params, z, k))
            .collect()
    }
}
