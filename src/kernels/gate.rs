//! The mixture-of-experts gate: a softmax over each row's E experts, and its
//! backward through the softmax Jacobian. See shaders/gate.wgsl.

use crate::error::{Error, Result};
use crate::gpu::{Binding, Dispatch, Gpu, Tensor};
use crate::kernels::{grid_1d, record};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    experts: u32,
    selected: u32,
    bits: u32,
}

/// (B, E) of a B×E matrix.
fn rows_experts(what: &'static str, t: &Tensor) -> Result<(usize, usize)> {
    match *t.shape() {
        [b, e] if e > 0 => Ok((b, e)),
        _ => Err(Error::shape(what, "B×E, E ≥ 1", format!("{:?}", t.shape()))),
    }
}

/// g = softmax of each row of x (B×E).
pub fn gate(gpu: &Gpu, x: &Tensor, g: &Tensor) -> Result<Dispatch> {
    let (b, e) = rows_experts("gate input", x)?;
    g.expect_shape("gate output", &[b, e])?;
    use Binding::*;
    record(
        gpu,
        "gate.wgsl",
        "gate",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &Params {
            rows: b as u32,
            experts: e as u32,
            selected: 0,
            bits: 0,
        },
        &[g, x],
        grid_1d(gpu, b)?,
    )
}

/// dx = g ⊙ (dg - rowsum(g ⊙ dg)), all B×E.
pub fn gate_backward(gpu: &Gpu, g: &Tensor, dg: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    let (b, e) = rows_experts("gate_backward g", g)?;
    dg.expect_shape("gate_backward dg", &[b, e])?;
    dx.expect_shape("gate_backward dx", &[b, e])?;
    use Binding::*;
    record(
        gpu,
        "gate.wgsl",
        "gate_backward",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &Params {
            rows: b as u32,
            experts: e as u32,
            selected: 0,
            bits: 0,
        },
        &[dx, g, dg],
        grid_1d(gpu, b)?,
    )
}

/// DSelect-k's sizes: E = 2^m experts, k selectors; a row of logits has k·m + k values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dselect {
    pub experts: usize,
    pub selected: usize,
}

impl Dselect {
    /// m = log2 E (E a power of two, 2 to 16; k 1 to 16).
    pub fn new(experts: usize, selected: usize) -> Result<Dselect> {
        if !(2..=16).contains(&experts) || !experts.is_power_of_two() {
            return Err(Error::InvalidConfig(format!(
                "DSelect-k needs a power of two from 2 to 16 experts, got {experts} \
                 (its selectors pick binary codes; LibMTL penalises codes beyond E, \
                 taskgrad does not, so E must fill them)"
            )));
        }
        if !(1..=16).contains(&selected) {
            return Err(Error::InvalidConfig(format!(
                "DSelect-k selects 1 to 16 experts, got {selected}"
            )));
        }
        Ok(Dselect { experts, selected })
    }
    /// m, the bits of an expert's code.
    pub fn bits(&self) -> usize {
        self.experts.trailing_zeros() as usize
    }
    /// The logits per row: k·m selector logits, then k weight logits.
    pub fn logits(&self) -> usize {
        self.selected * self.bits() + self.selected
    }
    fn params(&self, rows: usize) -> Params {
        Params {
            rows: rows as u32,
            experts: self.experts as u32,
            selected: self.selected as u32,
            bits: self.bits() as u32,
        }
    }
}

/// g (B×E) = DSelect-k's gate from the logits x (B×(k·m + k)).
pub fn dselect(gpu: &Gpu, d: Dselect, x: &Tensor, g: &Tensor) -> Result<Dispatch> {
    let b = x.shape().first().copied().unwrap_or(0);
    x.expect_shape("dselect logits", &[b, d.logits()])?;
    g.expect_shape("dselect gate", &[b, d.experts])?;
    use Binding::*;
    record(
        gpu,
        "gate.wgsl",
        "dselect",
        &[Uniform, ReadWrite, ReadOnly],
        &[],
        &d.params(b),
        &[g, x],
        grid_1d(gpu, b)?,
    )
}

/// dx (B×(k·m + k)) from the logits x and dg (B×E).
pub fn dselect_backward(
    gpu: &Gpu,
    d: Dselect,
    x: &Tensor,
    dg: &Tensor,
    dx: &Tensor,
) -> Result<Dispatch> {
    let b = x.shape().first().copied().unwrap_or(0);
    x.expect_shape("dselect_backward logits", &[b, d.logits()])?;
    dg.expect_shape("dselect_backward dg", &[b, d.experts])?;
    dx.expect_shape("dselect_backward dx", &[b, d.logits()])?;
    use Binding::*;
    record(
        gpu,
        "gate.wgsl",
        "dselect_backward",
        &[Uniform, ReadWrite, ReadOnly, ReadOnly],
        &[],
        &d.params(b),
        &[dx, x, dg],
        grid_1d(gpu, b)?,
    )
}
