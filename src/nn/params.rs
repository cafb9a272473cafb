//! Parameters by name in flat arenas: one arena of values, one of gradients
//! (same layout), and an optional f16 copy of the values for half precision.

use std::ops::Range;

use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::gpu::{Arena, ArenaLayout, Tensor};

/// A parameter by value: (name, shape, row-major values).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Index of a parameter in a [`ParamSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// Where a multi-task method's own parameters are named
/// (`weighting.<method>.<name>`): a checkpoint carries them, and a model built
/// without that method skips them on load.
pub const METHOD_PARAM_PREFIX: &str = "weighting.";

/// Names, shapes and initial values, before anything is on the GPU.
pub struct ParamBuilder {
    layout: ArenaLayout,
    names: Vec<String>,
    /// Whether each parameter belongs to a multi-task method (not the network).
    method: Vec<bool>,
    init: Vec<Vec<f32>>,
    half: bool,
    /// Names and shapes only: no initial value is drawn or kept.
    layout_only: bool,
}

impl ParamBuilder {
    pub fn new(gpu: &Gpu) -> Self {
        ParamBuilder {
            layout: ArenaLayout::new(gpu),
            names: Vec::new(),
            method: Vec::new(),
            init: Vec::new(),
            half: false,
            layout_only: false,
        }
    }

    /// A builder that records names and shapes and draws no initial value
    /// ([`ParamBuilder::add_drawn`] skips its draw): a network built into it
    /// says how large it would be ([`ParamBuilder::layout`]) before minutes
    /// go into drawing weights that the adapter cannot hold. It cannot build.
    pub fn layout_only(gpu: &Gpu) -> Self {
        ParamBuilder {
            layout_only: true,
            ..ParamBuilder::new(gpu)
        }
    }

    /// A layout-only builder with no GPU behind it, to learn the widths of
    /// a layer list before building it for real.
    pub(crate) fn scratch() -> Self {
        ParamBuilder {
            layout: ArenaLayout::unaligned(),
            names: Vec::new(),
            method: Vec::new(),
            init: Vec::new(),
            half: false,
            layout_only: true,
        }
    }

    /// The arena's layout so far: every parameter's name, offset and shape.
    pub fn layout(&self) -> &ArenaLayout {
        &self.layout
    }

    /// A builder whose set also keeps an f16 copy of the values, for training
    /// with f16 matmuls and activations (f32 master weights and gradients).
    pub fn new_half(gpu: &Gpu) -> Self {
        ParamBuilder {
            layout: ArenaLayout::with_element_bytes(gpu, 2),
            names: Vec::new(),
            method: Vec::new(),
            init: Vec::new(),
            half: true,
            layout_only: false,
        }
    }

    /// Add a parameter whose initial values (row-major, `shape` elements)
    /// `draw` makes, unless the builder is [`ParamBuilder::layout_only`]:
    /// large parameters (weights, embedding tables) are added this way.
    pub fn add_drawn(
        &mut self,
        name: &str,
        shape: &[usize],
        draw: impl FnOnce() -> Vec<f32>,
    ) -> Result<ParamId> {
        let init = if self.layout_only { Vec::new() } else { draw() };
        self.add(name, shape, init)
    }

    /// Add a parameter with its initial values (row-major, `shape` elements).
    pub fn add(&mut self, name: &str, shape: &[usize], mut init: Vec<f32>) -> Result<ParamId> {
        let n = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| {
                Error::InvalidConfig(format!("parameter {name} of shape {shape:?} is too large"))
            })?;
        if self.layout_only {
            init = Vec::new();
        } else if init.len() != n {
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
        self.method.push(false);
        self.init.push(init);
        Ok(ParamId(self.names.len() - 1))
    }

    /// Add a multi-task method's own parameter, named
    /// `weighting.<method>.<name>` ([`METHOD_PARAM_PREFIX`]).
    pub fn add_method_param(
        &mut self,
        method: &str,
        name: &str,
        shape: &[usize],
        init: Vec<f32>,
    ) -> Result<ParamId> {
        let id = self.add(
            &format!("{METHOD_PARAM_PREFIX}{method}.{name}"),
            shape,
            init,
        )?;
        self.method[id.0] = true;
        Ok(id)
    }

    /// Allocate the value and gradient arenas and upload the initial values.
    pub fn build(self, gpu: &Gpu) -> Result<ParamSet> {
        let grads = Some(Arena::new(gpu, &self.layout, "gradients")?);
        self.allocate(gpu, grads)
    }

    /// Allocate the values alone, for inference: parameters go on the tape as
    /// constants, and nothing can train them.
    pub fn build_frozen(self, gpu: &Gpu) -> Result<ParamSet> {
        self.allocate(gpu, None)
    }

    fn allocate(self, gpu: &Gpu, grads: Option<Arena>) -> Result<ParamSet> {
        if self.layout_only {
            return Err(Error::internal(
                "allocating parameters",
                "a layout-only builder has no values",
            ));
        }
        let values = Arena::new(gpu, &self.layout, "parameters")?;
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
            frozen: vec![false; self.names.len()],
            names: self.names,
            method: self.method,
            values,
            grads,
            values16,
        })
    }
}

/// Every parameter of a model: one arena of values and, unless the set is
/// frozen (inference), one of gradients with the same layout.
pub struct ParamSet {
    pub names: Vec<String>,
    method: Vec<bool>,
    /// Parameters held fixed while the rest train ([`ParamSet::freeze`]):
    /// they go on the tape as constants, so no backward dispatch computes
    /// their gradient, and the optimizer's spans leave them out.
    frozen: Vec<bool>,
    pub values: Arena,
    grads: Option<Arena>,
    /// An f16 copy of `values` (same element offsets), refreshed once per step
    /// by the training step, when the set was built for half precision.
    pub values16: Option<Arena>,
}

impl ParamSet {
    pub fn value(&self, id: ParamId) -> Tensor {
        self.values.view(id.0)
    }
    /// The gradient arena; a frozen set (built for inference) has none.
    pub fn grads(&self) -> Result<&Arena> {
        self.grads.as_ref().ok_or_else(|| {
            Error::InvalidConfig(
                "these parameters were loaded for inference and have no gradients".into(),
            )
        })
    }
    pub fn grad(&self, id: ParamId) -> Result<Tensor> {
        Ok(self.grads()?.view(id.0))
    }
    /// Put a parameter on the tape: its f16 copy when the set has one (the
    /// matmuls read f16 weights), with its gradient in the f32 arena; a
    /// constant when the set is frozen.
    pub fn var(&self, tape: &mut Tape, id: ParamId) -> Result<Var> {
        let value = match &self.values16 {
            Some(v16) => v16.view(id.0),
            None => self.value(id),
        };
        self.on_tape(tape, &value, id)
    }
    /// Put a parameter on the tape in f32 whatever the set's precision (biases:
    /// the matmul epilogue adds them in f32).
    pub fn var_f32(&self, tape: &mut Tape, id: ParamId) -> Result<Var> {
        self.on_tape(tape, &self.value(id), id)
    }
    fn on_tape(&self, tape: &mut Tape, value: &Tensor, id: ParamId) -> Result<Var> {
        match &self.grads {
            Some(g) if !self.frozen[id.0] => tape.param(value, &g.view(id.0)),
            _ => Ok(tape.input(value)),
        }
    }
    /// Hold `ids` fixed in training: call before the step is built. Their
    /// values stay byte for byte as they are (no gradient, no update, no
    /// weight decay).
    pub fn freeze(&mut self, ids: &[ParamId]) {
        for id in ids {
            self.frozen[id.0] = true;
        }
    }
    pub fn is_frozen(&self, id: ParamId) -> bool {
        self.frozen[id.0]
    }
    /// The parts of the arena the optimizer updates: each a run of
    /// consecutive parameters none of which is frozen, from the first one's
    /// start (an aligned offset) to the last one's end. Without frozen
    /// parameters, the whole arena in one span.
    pub fn trainable_spans(&self) -> Vec<Range<usize>> {
        if !self.frozen.contains(&true) {
            return std::iter::once(0..self.values.layout.len()).collect();
        }
        let mut spans: Vec<Range<usize>> = Vec::new();
        let mut open = false;
        for (i, (_, start, shape)) in self.values.layout.entries().iter().enumerate() {
            let end = start + shape.iter().product::<usize>();
            match (self.frozen[i], open, spans.last_mut()) {
                (true, _, _) => open = false,
                (false, true, Some(last)) => last.end = end,
                (false, _, _) => {
                    spans.push(*start..end);
                    open = true;
                }
            }
        }
        spans.retain(|s| !s.is_empty());
        spans
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    /// Whether parameter `id` belongs to a multi-task method rather than the network.
    pub fn is_method_param(&self, id: ParamId) -> bool {
        self.method[id.0]
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

/// Parameters named in `values` overwrite those of `params` (same names and
/// shapes required). A method's parameter ([`METHOD_PARAM_PREFIX`]) that
/// `params` lacks is skipped (a model used without its training method), and
/// one of `params` that `values` lacks keeps its initial value.
pub fn load_values(
    gpu: &Gpu,
    params: &ParamSet,
    values: &[(String, Vec<usize>, Vec<f32>)],
    source: &std::path::Path,
) -> Result<()> {
    let bad = |reason: String| Error::Checkpoint {
        path: source.to_path_buf(),
        reason,
    };
    let mut seen = vec![false; params.len()];
    for (name, shape, v) in values {
        match params.id(name) {
            Some(id) => {
                if params.shape(id) != shape.as_slice() {
                    return Err(bad(format!(
                        "tensor {name} has shape {shape:?}, the model needs {:?}",
                        params.shape(id)
                    )));
                }
                params.value(id).write(gpu, v)?;
                seen[id.0] = true;
            }
            None if name.starts_with(METHOD_PARAM_PREFIX) => {}
            None => return Err(bad(format!("tensor {name} does not belong to this model"))),
        }
    }
    if let Some(i) = (0..params.len()).find(|&i| !seen[i] && !params.method[i]) {
        return Err(bad(format!(
            "tensor {} is missing from the checkpoint",
            params.names[i]
        )));
    }
    Ok(())
}

/// A warm start: each parameter of `params` that `values` has by name
/// starts from it (the shapes must agree: a task's head over a different
/// number of classes is refused, named); the others keep their initial
/// values (a new task's head), and the tensors of `values` that `params`
/// lacks (the heads of tasks left out, a method's parameters) are skipped.
/// Returns how many parameters were loaded; none at all is refused (the
/// two networks share nothing).
pub fn load_shared_values(
    gpu: &Gpu,
    params: &ParamSet,
    values: &[(String, Vec<usize>, Vec<f32>)],
    source: &std::path::Path,
) -> Result<usize> {
    let bad = |reason: String| Error::Checkpoint {
        path: source.to_path_buf(),
        reason,
    };
    let mut loaded = 0;
    for (name, shape, v) in values {
        let Some(id) = params.id(name) else { continue };
        if params.shape(id) != shape.as_slice() {
            return Err(bad(format!(
                "tensor {name} has shape {shape:?}, where the new network's has {:?}; \
                 a task kept from the model must keep its classes",
                params.shape(id)
            )));
        }
        params.value(id).write(gpu, v)?;
        loaded += 1;
    }
    if loaded == 0 {
        return Err(bad(
            "the model shares no parameter with the new network: nothing to start from".into(),
        ));
    }
    Ok(loaded)
}
