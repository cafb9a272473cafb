//! A reverse-mode tape over GPU tensors.
//!
//! Recording an op (see `ops.rs`) allocates its output, records its
//! forward [`Dispatch`] and keeps a closure, its backward rule, written right
//! beside the forward. [`Tape::backward`] walks the nodes in reverse and asks
//! each rule to record the dispatches that push its output's gradient to its
//! inputs. Nothing runs while recording: the result is two fixed dispatch lists
//! (`forward`, `backward`) made once per batch shape and replayed every step,
//! each step being one compute pass and one submit.
//!
//! Gradient accumulation: the first contribution to a node's gradient
//! overwrites it, later ones add (`accumulate` in matmul and the reductions,
//! else a temporary and an axpy). So gradients need no zeroing between steps,
//! and a value used twice gets the sum of both contributions.
//!
//! Several backward passes can be recorded on one tape (per-task gradients:
//! one pass per task from the shared representation, each writing its
//! parameter gradients to its own row through [`Tape::redirect_grad`]).
//!
//! Losses are terminal. The fused loss kernels produce the gradient in the same
//! dispatch as the loss, so a loss's upstream gradient (its seed, set by the
//! loss weighting) is bound when the loss is recorded; `backward` starts from
//! the losses it is given.

use std::rc::Rc;

use crate::error::{Error, Result};
use crate::gpu::Dispatch;
use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::kernels::elementwise;

/// A node of the tape: an op's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(pub(crate) usize);

/// What a node of the tape is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A constant (no gradient).
    Input,
    /// A trainable tensor with a gradient buffer.
    Param,
    /// The representation a head reads: gradient collected, not passed on.
    StopGradient,
    /// A fused loss (terminal: backward starts here).
    Loss(&'static str),
    /// Any other op, by name.
    Op(&'static str),
}

impl std::fmt::Display for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeKind::Input => write!(f, "input"),
            NodeKind::Param => write!(f, "param"),
            NodeKind::StopGradient => write!(f, "stop_gradient"),
            NodeKind::Loss(name) => write!(f, "{name} loss"),
            NodeKind::Op(name) => write!(f, "{name}"),
        }
    }
}

/// One node of a recorded graph ([`Tape::graph`]).
#[derive(Clone, Debug)]
pub struct GraphNode {
    pub kind: NodeKind,
    /// Indices of the nodes it read.
    pub inputs: Vec<usize>,
    pub value: Tensor,
    /// The gradient buffer, if backward made one (with per-task passes, the
    /// last pass's contribution for nodes inside the shared part).
    pub grad: Option<Tensor>,
}

/// An op's backward rule: given the gradient of its output, record the
/// dispatches that contribute to its inputs' gradients. A rule can be recorded
/// several times (one backward pass per task, for per-task gradients).
pub(crate) type Backward = Rc<dyn for<'g> Fn(&mut Tape<'g>, &Tensor) -> Result<()>>;

struct Node {
    kind: NodeKind,
    /// The nodes this op read (empty for inputs and parameters).
    inputs: Vec<Var>,
    value: Tensor,
    grad: Option<Tensor>,
    written: bool,
    requires_grad: bool,
    backward: Option<Backward>,
}

/// The recorded computation.
pub struct Tape<'g> {
    pub gpu: &'g Gpu,
    nodes: Vec<Node>,
    /// Forward dispatches, in order (losses included).
    pub forward: Vec<Dispatch>,
    /// Backward dispatches, in order, appended by each backward pass.
    pub backward: Vec<Dispatch>,
    /// Fuse the ReLU mask and the bias gradient into the backward matmuls
    /// (true by default; false records them as separate dispatches).
    pub fuse: bool,
    /// Largest product (multiply-adds) into which the ReLU mask is fused
    /// (default [`crate::autodiff::ops::FUSE_MASK_MAX_MACS`]); larger ones write dz out first.
    pub fuse_mask_max_macs: usize,
    /// Half precision: Linear layers with ReLU store their outputs in f16 and
    /// every matmul reads f16 operands where it has them (f32 accumulation;
    /// gradients stay f32). Needs `SHADER_F16`.
    pub half: bool,
    /// A training step (dropout draws masks) rather than evaluation (dropout
    /// is the identity). False unless the step builder sets it.
    pub training: bool,
    /// The training step counter on the GPU (one u32), made by the first op
    /// that draws a fresh random mask each step ([`Tape::step_counter`]);
    /// the step builder advances it once per step.
    pub step: Option<Tensor>,
}

impl<'g> Tape<'g> {
    pub fn new(gpu: &'g Gpu) -> Self {
        Tape {
            gpu,
            nodes: Vec::new(),
            forward: Vec::new(),
            backward: Vec::new(),
            fuse: true,
            fuse_mask_max_macs: crate::autodiff::ops::FUSE_MASK_MAX_MACS,
            half: false,
            training: false,
            step: None,
        }
    }

    /// A constant input (no gradient).
    pub fn input(&mut self, value: &Tensor) -> Var {
        self.push_node(NodeKind::Input, value.clone(), false, None)
    }

    /// A trainable tensor whose gradient is written to `grad` (for parameters, a
    /// view of the gradient arena). A tensor already on the tape as a
    /// parameter is the same node: every use of it (a layer traced once per
    /// minibatch, tied weights) adds to one gradient, where separate nodes
    /// over one gradient buffer would each overwrite it.
    pub fn param(&mut self, value: &Tensor, grad: &Tensor) -> Result<Var> {
        if value.shape() != grad.shape() {
            return Err(Error::shape(
                "param gradient",
                format!("{:?}", value.shape()),
                format!("{:?}", grad.shape()),
            ));
        }
        if let Some(i) = (0..self.nodes.len()).find(|&i| {
            self.nodes[i].kind == NodeKind::Param && self.nodes[i].value.same_view(value)
        }) {
            return Ok(Var(i));
        }
        let v = self.push_node(NodeKind::Param, value.clone(), true, None);
        self.nodes[v.0].grad = Some(grad.clone());
        Ok(v)
    }

    /// The GPU step counter (made, zero, on first use).
    pub fn step_counter(&mut self) -> Result<Tensor> {
        match &self.step {
            Some(step) => Ok(step.clone()),
            None => {
                let step = Tensor::from_u32(self.gpu, &[1], &[0], "step counter")?;
                self.step = Some(step.clone());
                Ok(step)
            }
        }
    }

    /// The value of a node.
    pub fn value(&self, v: Var) -> &Tensor {
        &self.nodes[v.0].value
    }

    /// The gradient of a node, if backward reached it.
    pub fn grad(&self, v: Var) -> Option<&Tensor> {
        let n = &self.nodes[v.0];
        if n.written {
            n.grad.as_ref()
        } else {
            None
        }
    }

    /// Every parameter node, in recording order.
    pub fn param_vars(&self) -> Vec<Var> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].kind == NodeKind::Param)
            .map(Var)
            .collect()
    }

    /// Where the next pass writes `v`'s gradient, if it has a buffer yet.
    pub fn grad_target(&self, v: Var) -> Option<&Tensor> {
        self.nodes[v.0].grad.as_ref()
    }

    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }

    /// What node `v` is.
    pub fn kind(&self, v: Var) -> NodeKind {
        self.nodes[v.0].kind
    }

    /// The recorded graph, node by node in recording order: what each node
    /// is, which nodes it read, its value and (where backward reached it)
    /// its gradient buffer. For drawing (`--dump-graph`) and for teaching.
    pub fn graph(&self) -> Vec<GraphNode> {
        self.nodes
            .iter()
            .map(|n| GraphNode {
                kind: n.kind,
                inputs: n.inputs.iter().map(|v| v.0).collect(),
                value: n.value.clone(),
                grad: n.grad.clone(),
            })
            .collect()
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Record an op's output node. `backward` is dropped when no input needs a gradient.
    pub(crate) fn push_op(
        &mut self,
        kind: NodeKind,
        value: Tensor,
        inputs: &[Var],
        backward: Backward,
    ) -> Var {
        let requires_grad = inputs.iter().any(|v| self.nodes[v.0].requires_grad);
        let v = self.push_node(
            kind,
            value,
            requires_grad,
            requires_grad.then_some(backward),
        );
        self.nodes[v.0].inputs = inputs.to_vec();
        v
    }

    fn push_node(
        &mut self,
        kind: NodeKind,
        value: Tensor,
        requires_grad: bool,
        backward: Option<Backward>,
    ) -> Var {
        self.nodes.push(Node {
            kind,
            inputs: Vec::new(),
            value,
            grad: None,
            written: false,
            requires_grad,
            backward,
        });
        Var(self.nodes.len() - 1)
    }

    /// Record an op of your own: `forward` (its dispatches, already made,
    /// writing `value`) goes on the forward list now, and `backward` is its
    /// rule: given the gradient of `value` it records, with
    /// [`Tape::contribute`] for each input, the dispatches that push it on.
    /// The crate's own ops are this too (`ops.rs`); `examples/custom_layer.rs`
    /// uses it for a layer with its own WGSL kernels.
    pub fn op(
        &mut self,
        name: &'static str,
        inputs: &[Var],
        value: Tensor,
        forward: Vec<Dispatch>,
        backward: impl for<'t> Fn(&mut Tape<'t>, &Tensor) -> Result<()> + 'static,
    ) -> Var {
        self.forward.extend(forward);
        self.push_op(NodeKind::Op(name), value, inputs, Rc::new(backward))
    }

    pub(crate) fn record_forward(&mut self, d: Dispatch) {
        self.forward.push(d);
    }

    /// Append a dispatch to the backward list (inside a backward rule: a
    /// step whose result is not an input's gradient, e.g. a temporary).
    pub fn record_backward(&mut self, d: Dispatch) {
        self.backward.push(d);
    }

    pub(crate) fn record_all_forward(&mut self, ds: Vec<Dispatch>) {
        self.forward.extend(ds);
    }

    pub(crate) fn record_all_backward(&mut self, ds: Vec<Dispatch>) {
        self.backward.extend(ds);
    }

    /// The gradient buffer of `v` for a kernel that can overwrite or accumulate:
    /// returns it and whether to accumulate (true after the first contribution).
    pub(crate) fn grad_slot(&mut self, v: Var) -> Result<(Tensor, bool)> {
        let gpu = self.gpu;
        let node = &mut self.nodes[v.0];
        let grad = match &node.grad {
            Some(g) => g.clone(),
            None => {
                let g = Tensor::zeros(gpu, node.value.shape(), "grad")?;
                node.grad = Some(g.clone());
                g
            }
        };
        let accumulate = node.written;
        node.written = true;
        Ok((grad, accumulate))
    }

    /// Contribute to `v`'s gradient with a kernel that only overwrites its
    /// output: the first time straight into the gradient, later through a
    /// temporary and an axpy. Nothing when `v` needs no gradient. This is
    /// what a backward rule calls for each input.
    pub fn contribute(
        &mut self,
        v: Var,
        kernel: impl FnOnce(&Tensor) -> Result<Dispatch>,
    ) -> Result<()> {
        if !self.nodes[v.0].requires_grad {
            return Ok(());
        }
        let (grad, accumulate) = self.grad_slot(v)?;
        if !accumulate {
            let d = kernel(&grad)?;
            self.record_backward(d);
        } else {
            let tmp = Tensor::zeros(self.gpu, grad.shape(), "grad contribution")?;
            let d = kernel(&tmp)?;
            self.record_backward(d);
            let d = elementwise::axpy(self.gpu, 1.0, &tmp, &grad)?;
            self.record_backward(d);
        }
        Ok(())
    }

    /// Contribute a gradient held in a buffer that belongs to this contribution
    /// alone (a fused loss's dlogits): it becomes `v`'s gradient without a copy
    /// when `v` has no gradient buffer yet, else it is added.
    pub(crate) fn contribute_owned(&mut self, v: Var, owned: Tensor) -> Result<()> {
        let node = &mut self.nodes[v.0];
        if !node.requires_grad {
            return Ok(());
        }
        // First contribution: the owned buffer becomes the gradient (on a later
        // pass it already is, and is simply marked as written again).
        if !node.written
            && (node.grad.is_none() || node.grad.as_ref().is_some_and(|g| g.overlaps(&owned)))
        {
            node.grad = Some(owned);
            node.written = true;
            return Ok(());
        }
        let gpu = self.gpu;
        self.contribute(v, |out| elementwise::scale(gpu, &owned, 1.0, out))
    }

    /// Record the backward pass from `losses` (terminal loss nodes).
    pub fn backward(&mut self, losses: &[Var]) -> Result<()> {
        for &l in losses {
            if !matches!(self.nodes[l.0].kind, NodeKind::Loss(_)) {
                return Err(Error::InvalidConfig(format!(
                    "backward starts from loss nodes; node {} is a {}",
                    l.0, self.nodes[l.0].kind
                )));
            }
        }
        self.pass(losses.iter().map(|&l| (l, None)).collect())
    }

    /// Record a backward pass that starts at `from` with gradient `seed` (same
    /// shape as `from`), e.g. one task's gradient at the shared representation.
    pub fn backward_from(&mut self, from: Var, seed: &Tensor) -> Result<()> {
        let shape = self.nodes[from.0].value.shape().to_vec();
        if seed.shape() != shape {
            return Err(Error::shape(
                "backward_from seed",
                format!("{shape:?}"),
                format!("{:?}", seed.shape()),
            ));
        }
        self.pass(vec![(from, Some(seed.clone()))])
    }

    /// One backward pass from several nodes at once, each with its own seed:
    /// what they share accumulates the contributions of all of them (where K
    /// separate passes would each overwrite it).
    pub fn backward_from_many(&mut self, starts: &[(Var, Tensor)]) -> Result<()> {
        for (v, seed) in starts {
            let shape = self.nodes[v.0].value.shape();
            if seed.shape() != shape {
                return Err(Error::shape(
                    "backward_from_many seed",
                    format!("{shape:?}"),
                    format!("{:?}", seed.shape()),
                ));
            }
        }
        self.pass(starts.iter().map(|(v, s)| (*v, Some(s.clone()))).collect())
    }

    /// Send the gradient of `v` to `grad` in later passes (a parameter's
    /// gradient into row k of a K×P buffer, say). Takes effect for the next pass.
    pub fn redirect_grad(&mut self, v: Var, grad: &Tensor) -> Result<()> {
        let shape = self.nodes[v.0].value.shape();
        if grad.shape() != shape {
            return Err(Error::shape(
                "redirect_grad",
                format!("{shape:?}"),
                format!("{:?}", grad.shape()),
            ));
        }
        self.nodes[v.0].grad = Some(grad.clone());
        Ok(())
    }

    /// y = x in the forward pass; in the backward pass y's gradient is collected
    /// (in `grad`) but not passed on to x. Each head reads the shared
    /// representation through one of these, so a pass over the heads stops at
    /// the trunk and leaves each task's gradient at the representation apart.
    pub fn stop_gradient(&mut self, x: Var, grad: &Tensor) -> Result<Var> {
        let value = self.nodes[x.0].value.clone();
        if grad.shape() != value.shape() {
            return Err(Error::shape(
                "stop_gradient",
                format!("{:?}", value.shape()),
                format!("{:?}", grad.shape()),
            ));
        }
        let v = self.push_node(NodeKind::StopGradient, value, true, None);
        self.nodes[v.0].grad = Some(grad.clone());
        Ok(v)
    }

    // ANCHOR: backward_walk
    fn pass(&mut self, starts: Vec<(Var, Option<Tensor>)>) -> Result<()> {
        for node in &mut self.nodes {
            node.written = false;
        }
        for (v, seed) in starts {
            let node = &mut self.nodes[v.0];
            if let Some(seed) = seed {
                node.grad = Some(seed);
            }
            node.written = true;
        }
        for i in (0..self.nodes.len()).rev() {
            let node = &self.nodes[i];
            if !node.written {
                continue;
            }
            let Some(rule) = node.backward.clone() else {
                continue;
            };
            // Loss nodes carry their gradient inside the rule (the fused kernel's output).
            let dy = node.grad.clone().unwrap_or_else(|| node.value.clone());
            rule(self, &dy)?;
        }
        Ok(())
    }
    // ANCHOR_END: backward_walk
}
