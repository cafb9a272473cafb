//! The tape's ops. Each op records its forward dispatch and, right below it,
//! the backward rule that differentiates it (STYLE: forward and backward
//! together). Shapes use the glossary of `kernels`: B rows, D in, H out.

use std::rc::Rc;

use super::tape::NodeKind;
use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::kernels;
use crate::kernels::matmul::{self, MatmulOptions, Operand};
use crate::kernels::{
    columns, conv_direct, elementwise, embedding, gate, im2col, mixture, mse, pool, reduce,
    softmax_ce,
};

/// Largest product (multiply-adds) into which the ReLU mask of the backward pass is fused.
pub const FUSE_MASK_MAX_MACS: usize = 1 << 22;

impl<'g> Tape<'g> {
    /// y = op(a)·op(b), a general product (see `kernels::matmul`).
    pub fn matmul(&mut self, a: Var, b: Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        let gpu = self.gpu;
        let (av, bv) = (self.value(a).clone(), self.value(b).clone());
        let (m, n) = matmul::output_shape(&av, &bv, trans_a, trans_b)?;
        let y = Tensor::zeros(gpu, &[m, n], "matmul")?;
        let opts = MatmulOptions {
            trans_a,
            trans_b,
            ..Default::default()
        };
        self.record_all_forward(kernels::product(gpu, &av, &bv, &y, opts)?);
        // C = op(A)·op(B). Each gradient is again a product with the right transposes:
        //   C = A B:     dA = dC Bᵀ,     dB = Aᵀ dC
        //   C = Aᵀ B:    dA = B dCᵀ,     dB = A dC
        //   C = A Bᵀ:    dA = dC B,      dB = dCᵀ A
        //   C = Aᵀ Bᵀ:   dA = Bᵀ dCᵀ,    dB = dCᵀ Aᵀ
        let rule = Rc::new(move |t: &mut Tape, dc: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            if t.requires_grad(a) {
                let (da, acc) = t.grad_slot(a)?;
                let (l, r, ta, tb) = match (trans_a, trans_b) {
                    (false, false) => (dc, &bv, false, true),
                    (true, false) => (&bv, dc, false, true),
                    (false, true) => (dc, &bv, false, false),
                    (true, true) => (&bv, dc, true, true),
                };
                let o = MatmulOptions {
                    trans_a: ta,
                    trans_b: tb,
                    accumulate: acc,
                    ..Default::default()
                };
                t.record_all_backward(kernels::product(gpu, l, r, &da, o)?);
            }
            if t.requires_grad(b) {
                let (db, acc) = t.grad_slot(b)?;
                let (l, r, ta, tb) = match (trans_a, trans_b) {
                    (false, false) => (&av, dc, true, false),
                    (true, false) => (&av, dc, false, false),
                    (false, true) => (dc, &av, true, false),
                    (true, true) => (dc, &av, true, true),
                };
                let o = MatmulOptions {
                    trans_a: ta,
                    trans_b: tb,
                    accumulate: acc,
                    ..Default::default()
                };
                t.record_all_backward(kernels::product(gpu, l, r, &db, o)?);
            }
            Ok(())
        });
        Ok(self.push_op(NodeKind::Op("matmul"), y, &[a, b], rule))
    }

    /// The inputs side by side: B×(c₁ + c₂ + …) from B×c₁, B×c₂, ….
    pub fn concat_columns(&mut self, xs: &[Var]) -> Result<Var> {
        let gpu = self.gpu;
        let vals: Vec<Tensor> = xs.iter().map(|&x| self.value(x).clone()).collect();
        let rows = vals.first().map_or(0, |v| v.shape()[0]);
        let widths: Vec<usize> = vals
            .iter()
            .map(|v| v.shape().get(1).copied().unwrap_or(0))
            .collect();
        let total: usize = widths.iter().sum();
        let y = Tensor::zeros(gpu, &[rows, total], "concat")?;
        let mut at = 0;
        for (v, &w) in vals.iter().zip(&widths) {
            self.record_forward(columns::copy_columns(gpu, v, 0, &y, at, w)?);
            at += w;
        }
        // y = [x₁ x₂ …]: each input's gradient is its block of columns of dy.
        let inputs = xs.to_vec();
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            let mut at = 0;
            for (&x, &w) in inputs.iter().zip(&widths) {
                t.contribute(x, |dx| columns::copy_columns(gpu, dy, at, dx, 0, w))?;
                at += w;
            }
            Ok(())
        });
        Ok(self.push_op(NodeKind::Op("concat"), y, xs, rule))
    }

    /// The network's input with its categorical columns embedded: x (B×D)
    /// holds `dense` feature columns first, then one level index per
    /// embedded column; `tables` gives each embedding's table (L×dim, a
    /// parameter) and the column of x holding its index. The result is
    /// [x[:, ..dense] | E₁\[i₁\] | E₂\[i₂\] | …] (B×(dense + Σ dim)); an index
    /// outside a table (an unseen level) reads zeros.
    pub fn embed_inputs(&mut self, x: Var, dense: usize, tables: &[(Var, usize)]) -> Result<Var> {
        let gpu = self.gpu;
        let xv = self.value(x).clone();
        if self.requires_grad(x) {
            return Err(Error::InvalidConfig(
                "embed_inputs reads level indices from x: x must be an input".into(),
            ));
        }
        let rows = xv.shape()[0];
        let mut placed = Vec::new();
        let mut width = dense;
        for &(t, col) in tables {
            placed.push((t, embedding::Placement { col, off: width }));
            width += self.value(t).shape()[1];
        }
        let y = Tensor::zeros(gpu, &[rows, width], "embedded inputs")?;
        if dense > 0 {
            self.record_forward(columns::copy_columns(gpu, &xv, 0, &y, 0, dense)?);
        }
        for &(t, at) in &placed {
            let table = self.value(t).clone();
            self.record_forward(embedding::gather(gpu, &xv, &table, &y, at)?);
        }
        // dE[l] = Σ over the rows whose index is l of their block of dy.
        let inputs: Vec<Var> = std::iter::once(x)
            .chain(tables.iter().map(|t| t.0))
            .collect();
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            for &(table, at) in &placed {
                t.contribute(table, |dt| embedding::scatter(gpu, &xv, dy, dt, at))?;
            }
            Ok(())
        });
        Ok(self.push_op(NodeKind::Op("embed"), y, &inputs, rule))
    }

    /// g = the softmax of each row of x (B×E): a mixture-of-experts gate.
    pub fn gate(&mut self, x: Var) -> Result<Var> {
        let gpu = self.gpu;
        let xv = self.value(x).clone();
        let g = Tensor::zeros(gpu, xv.shape(), "gate")?;
        self.record_forward(gate::gate(gpu, &xv, &g)?);
        // g = softmax(x) per row:  dx = (diag(g) - g gᵀ) dg = g ⊙ (dg - g·dg).
        let gv = g.clone();
        let rule = Rc::new(move |t: &mut Tape, dg: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(x, |dx| gate::gate_backward(gpu, &gv, dg, dx))
        });
        Ok(self.push_op(NodeKind::Op("gate"), g, &[x], rule))
    }

    /// DSelect-k's gate (B×E) from x (B×(k·m + k) logits): k selectors over
    /// the experts' binary codes, mixed by a softmax (shaders/gate.wgsl).
    pub fn dselect(&mut self, x: Var, d: gate::Dselect) -> Result<Var> {
        let gpu = self.gpu;
        let xv = self.value(x).clone();
        let b = xv.shape().first().copied().unwrap_or(0);
        let g = Tensor::zeros(gpu, &[b, d.experts], "dselect gate")?;
        self.record_forward(gate::dselect(gpu, d, &xv, &g)?);
        // Both the selectors' and the weights' logits from one pass per row.
        let rule = Rc::new(move |t: &mut Tape, dg: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(x, |dx| gate::dselect_backward(gpu, d, &xv, dg, dx))
        });
        Ok(self.push_op(NodeKind::Op("dselect"), g, &[x], rule))
    }

    /// out = Σ_e g[:, e] ⊙ z[:, e·H..(e+1)·H]: the gated mixture of E experts'
    /// outputs (g B×E, z B×(E·H), out B×H).
    pub fn mixture(&mut self, g: Var, z: Var) -> Result<Var> {
        let gpu = self.gpu;
        let (gv, zv) = (self.value(g).clone(), self.value(z).clone());
        let (b, e) = (gv.shape()[0], gv.shape().get(1).copied().unwrap_or(0));
        let h = zv.shape().get(1).copied().unwrap_or(0) / e.max(1);
        let out = Tensor::zeros(gpu, &[b, h], "mixture")?;
        self.record_forward(mixture::mixture(gpu, &gv, &zv, &out)?);
        // out[b,h] = Σ_e g[b,e] z[b,e,h]:
        //   dz[b,e,h] = g[b,e] dout[b,h],   dg[b,e] = Σ_h z[b,e,h] dout[b,h],
        // both from one pass over (b, e); each then joins its input's gradient.
        let rule = Rc::new(move |t: &mut Tape, dout: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            let dg = Tensor::zeros(gpu, gv.shape(), "mixture dg")?;
            let dz = Tensor::zeros(gpu, zv.shape(), "mixture dz")?;
            t.record_backward(mixture::mixture_backward(gpu, &gv, &zv, dout, &dg, &dz)?);
            if t.requires_grad(g) {
                t.contribute_owned(g, dg)?;
            }
            if t.requires_grad(z) {
                t.contribute_owned(z, dz)?;
            }
            Ok(())
        });
        Ok(self.push_op(NodeKind::Op("mixture"), out, &[g, z], rule))
    }

    // ANCHOR: linear
    /// y = x·W + b, then ReLU if `relu`: one fused dispatch.
    /// x is B×D, W is D×H, b is H, y is B×H.
    pub fn linear(&mut self, x: Var, w: Var, b: Var, relu: bool) -> Result<Var> {
        let gpu = self.gpu;
        let (xv, wv, bv) = (
            self.value(x).clone(),
            self.value(w).clone(),
            self.value(b).clone(),
        );
        let (rows, h) = matmul::output_shape(&xv, &wv, false, false)?;
        // In half precision, hidden activations (ReLU layers) are stored in f16;
        // outputs that feed a loss stay f32.
        let y = if self.half && relu {
            Tensor::zeros_f16(gpu, &[rows, h], "linear (f16)")?
        } else {
            Tensor::zeros(gpu, &[rows, h], "linear")?
        };
        let opts = MatmulOptions {
            bias: Some(&bv),
            relu,
            ..Default::default()
        };
        self.record_all_forward(kernels::product(gpu, &xv, &wv, &y, opts)?);
        // z = x W + b, y = relu(z) (or y = z):
        //   dz = dy · [y > 0]        (only with relu; applied as dy is loaded, never stored)
        //   dW = xᵀ dz and db = Σ_rows dz in one dispatch,  dx = dz Wᵀ in another.
        let yv = y.clone();
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            // The ReLU mask is applied inside the products only while they are small
            // (dispatch-bound): in a large product every masked load reads the mask too,
            // and one elementwise pass that writes dz out is cheaper (measured on
            // W-synth: 421 ms fused against 351 ms unfused per step). Unfused (for
            // comparison) always writes dz out.
            let macs = xv.shape()[0] * xv.shape()[1] * wv.shape()[1];
            // (f16 activations have no elementwise ReLU-backward: the mask is always fused then.)
            let fuse_mask = t.half || (t.fuse && macs <= t.fuse_mask_max_macs);
            let dz_out = if relu && !fuse_mask {
                let dz = Tensor::zeros(gpu, dy.shape(), "linear dz")?;
                t.record_backward(elementwise::relu_backward(gpu, dy, &yv, &dz)?);
                Some(dz)
            } else {
                None
            };
            let dy = dz_out.as_ref().unwrap_or(dy);
            let relu = relu && fuse_mask;
            let mask = |operand| relu.then_some((&yv, operand));
            t.linear_weight_grads(&xv, dy, &yv, (w, b), relu)?;
            if t.requires_grad(x) {
                let (dx, acc) = t.grad_slot(x)?;
                let o = MatmulOptions {
                    trans_b: true,
                    accumulate: acc,
                    mask: mask(Operand::A),
                    ..Default::default()
                };
                t.record_all_backward(kernels::product(gpu, dy, &wv, &dx, o)?);
            }
            Ok(())
        });
        Ok(self.push_op(NodeKind::Op("linear"), y, &[x, w, b], rule))
    }
    // ANCHOR_END: linear

    /// The Linear rule's dW = xᵀ dz and db = Σ_rows dz: one product with the
    /// bias gradient fused in, or apart (unfused, or when W and b are at
    /// different accumulation states because one is shared elsewhere). `relu`:
    /// dz = dy · [y > 0], the mask applied as dy is loaded.
    fn linear_weight_grads(
        &mut self,
        xv: &Tensor,
        dy: &Tensor,
        yv: &Tensor,
        (w, b): (Var, Var),
        relu: bool,
    ) -> Result<()> {
        let t = self;
        let gpu = t.gpu;
        let mask = |operand| relu.then_some((yv, operand));
        let dw = if t.requires_grad(w) {
            Some(t.grad_slot(w)?)
        } else {
            None
        };
        let db = if t.requires_grad(b) {
            Some(t.grad_slot(b)?)
        } else {
            None
        };
        match (dw, db) {
            (Some((dw, acc)), Some((db, acc_b))) if acc == acc_b && t.fuse => {
                let o = MatmulOptions {
                    trans_a: true,
                    accumulate: acc,
                    mask: mask(Operand::B),
                    bias_grad: Some(&db),
                    ..Default::default()
                };
                t.record_all_backward(kernels::product(gpu, xv, dy, &dw, o)?);
            }
            (dw, db) => {
                // Unfused, or W and b at different accumulation states (one shared elsewhere): apart.
                if let Some((dw, acc)) = dw {
                    let o = MatmulOptions {
                        trans_a: true,
                        accumulate: acc,
                        mask: mask(Operand::B),
                        ..Default::default()
                    };
                    t.record_all_backward(kernels::product(gpu, xv, dy, &dw, o)?);
                }
                if let Some((db, acc)) = db {
                    let dz = if relu {
                        let dz = Tensor::zeros(gpu, dy.shape(), "linear dz")?;
                        t.record_backward(elementwise::relu_backward(gpu, dy, yv, &dz)?);
                        dz
                    } else {
                        dy.clone()
                    };
                    for d in reduce::sum_rows(gpu, &dz, &db, acc)? {
                        t.record_backward(d);
                    }
                }
            }
        }
        Ok(())
    }

    /// y = max(x, 0)
    /// The K×K×C patch of every output pixel of a convolution over `x`
    /// (B·H·W·C, NHWC), as rows ((B·OH·OW) × (K·K·C)): a convolution is then
    /// [`Tape::linear`] of these rows. Its backward is col2im, the adjoint.
    pub fn im2col(&mut self, x: Var, g: &im2col::ConvGeometry) -> Result<Var> {
        let gpu = self.gpu;
        let g = *g;
        let xv = self.value(x).clone();
        let cols = Tensor::zeros(gpu, &[g.rows(), g.patch()], "im2col")?;
        self.record_forward(im2col::im2col(gpu, &g, &xv, &cols)?);
        // dx = col2im(dcols): each patch entry's gradient back to its pixel.
        let rule = Rc::new(move |t: &mut Tape, dcols: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(x, |dx| im2col::col2im(gpu, &g, dcols, dx))
        });
        Ok(self.push_op(NodeKind::Op("im2col"), cols, &[x], rule))
    }

    /// A convolution computed directly (the implicit GEMM, no patch matrix):
    /// y = act(conv(x, w) + b), x B·H·W·C (NHWC), w (K·K·C) × O, y
    /// (B·OH·OW) × O, ReLU when `relu`. The same function as
    /// [`Tape::im2col`] then [`Tape::linear`]; `TASKGRAD_CONV=direct` makes
    /// the `conv` layer use it.
    pub fn conv_direct(
        &mut self,
        x: Var,
        w: Var,
        b: Var,
        g: &im2col::ConvGeometry,
        relu: bool,
    ) -> Result<Var> {
        let (gpu, g) = (self.gpu, *g);
        let (xv, wv, bv) = (
            self.value(x).clone(),
            self.value(w).clone(),
            self.value(b).clone(),
        );
        let out = wv.shape().last().copied().unwrap_or(0);
        let y = Tensor::zeros(gpu, &[g.rows(), out], "conv")?;
        self.record_forward(conv_direct::forward(gpu, &g, &xv, &wv, &bv, &y, relu)?);
        // dz = dy ⊙ [y > 0] (with the ReLU), read inside each kernel:
        // dw = Σ_r x(r, ·)ᵀ dz[r], db = Σ_r dz[r], dx = the adjoint conv of dz.
        let yv = y.clone();
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(w, |dw| {
                conv_direct::weight_grad(gpu, &g, &xv, dy, &yv, dw, relu)
            })?;
            t.contribute(b, |db| conv_direct::bias_grad(gpu, &g, dy, &yv, db, relu))?;
            t.contribute(x, |dx| {
                conv_direct::input_grad(gpu, &g, dy, &yv, &wv, dx, relu)
            })
        });
        Ok(self.push_op(NodeKind::Op("conv_direct"), y, &[x, w, b], rule))
    }

    /// Max pooling of `x` (B·H·W·C, NHWC) over K×K windows moved by the
    /// stride (no padding): (B·OH·OW) × C. The argmax is kept for the backward.
    pub fn max_pool(&mut self, x: Var, g: &im2col::ConvGeometry) -> Result<Var> {
        let (gpu, g) = (self.gpu, *g);
        let xv = self.value(x).clone();
        let n = pool::pooled_len(&g);
        let y = Tensor::zeros(gpu, &[g.rows(), g.channels], "max pool")?;
        let arg = Tensor::from_u32(gpu, &[n], &vec![0; n], "max pool argmax")?;
        self.record_forward(pool::max_forward(gpu, &g, &xv, &y, &arg)?);
        // dx[i] = Σ dy[o] over the outputs whose maximum was x[i].
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(x, |dx| pool::max_backward(gpu, &g, dy, &arg, dx))
        });
        Ok(self.push_op(NodeKind::Op("max_pool"), y, &[x], rule))
    }

    /// Average pooling of `x` (B·H·W·C, NHWC) over K×K windows moved by the
    /// stride (no padding): (B·OH·OW) × C.
    pub fn avg_pool(&mut self, x: Var, g: &im2col::ConvGeometry) -> Result<Var> {
        let (gpu, g) = (self.gpu, *g);
        let xv = self.value(x).clone();
        let y = Tensor::zeros(gpu, &[g.rows(), g.channels], "average pool")?;
        self.record_forward(pool::avg_forward(gpu, &g, &xv, &y)?);
        // dx = each window's dy / K², summed over the windows that cover it.
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(x, |dx| pool::avg_backward(gpu, &g, dy, dx))
        });
        Ok(self.push_op(NodeKind::Op("avg_pool"), y, &[x], rule))
    }

    pub fn relu(&mut self, x: Var) -> Result<Var> {
        // dx = dy · [y > 0]: the rule reads the output y.
        self.activation_op(
            x,
            "relu",
            elementwise::relu,
            elementwise::relu_backward,
            Saved::Output,
        )
    }

    /// y = GELU(x) = ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))), elementwise.
    pub fn gelu(&mut self, x: Var) -> Result<Var> {
        // dx = dy · GELU'(x): the rule reads the input x.
        self.activation_op(
            x,
            "gelu",
            elementwise::gelu,
            elementwise::gelu_backward,
            Saved::Input,
        )
    }

    /// y = tanh(x), elementwise.
    pub fn tanh(&mut self, x: Var) -> Result<Var> {
        // dx = dy · (1 - y²): the rule reads the output y.
        self.activation_op(
            x,
            "tanh",
            elementwise::tanh,
            elementwise::tanh_backward,
            Saved::Output,
        )
    }

    /// y = σ(x) = 1/(1 + e^(−x)), elementwise.
    pub fn sigmoid(&mut self, x: Var) -> Result<Var> {
        // dx = dy · y (1 − y): the rule reads the output y.
        self.activation_op(
            x,
            "sigmoid",
            elementwise::sigmoid,
            elementwise::sigmoid_backward,
            Saved::Output,
        )
    }

    /// An elementwise activation: `forward(x) -> y` recorded now, and the rule
    /// dx = `backward(dy, saved)`, where `saved` is x or y as the derivative needs.
    fn activation_op(
        &mut self,
        x: Var,
        name: &'static str,
        forward: fn(&Gpu, &Tensor, &Tensor) -> Result<Dispatch>,
        backward: fn(&Gpu, &Tensor, &Tensor, &Tensor) -> Result<Dispatch>,
        saved: Saved,
    ) -> Result<Var> {
        let gpu = self.gpu;
        let xv = self.value(x).clone();
        let y = Tensor::zeros(gpu, xv.shape(), name)?;
        self.record_forward(forward(gpu, &xv, &y)?);
        let keep = match saved {
            Saved::Input => xv,
            Saved::Output => y.clone(),
        };
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(x, |dx| backward(gpu, dy, &keep, dx))
        });
        Ok(self.push_op(NodeKind::Op(name), y, &[x], rule))
    }

    /// The same values seen with another shape of equal size: a view (no copy,
    /// no dispatch). Its gradient is the output's gradient seen with the
    /// input's shape, again without a copy when nothing else has written it.
    /// `flatten` is this: (B·H·W)×C images to B×(H·W·C) rows.
    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Result<Var> {
        let xv = self.value(x).clone();
        let y = xv.reshape(shape)?;
        let in_shape = xv.shape().to_vec();
        // dx = dy, viewed with x's shape.
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            t.contribute_owned(x, dy.reshape(&in_shape)?)
        });
        Ok(self.push_op(NodeKind::Op("reshape"), y, &[x], rule))
    }

    /// y = a + b (same shapes)
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        let gpu = self.gpu;
        let (av, bv) = (self.value(a).clone(), self.value(b).clone());
        if av.shape() != bv.shape() {
            return Err(Error::shape(
                "add",
                format!("{:?}", av.shape()),
                format!("{:?}", bv.shape()),
            ));
        }
        let y = Tensor::zeros(gpu, av.shape(), "add")?;
        self.record_forward(elementwise::add(gpu, &av, &bv, &y)?);
        // da = dy, db = dy
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(a, |da| elementwise::scale(gpu, dy, 1.0, da))?;
            t.contribute(b, |db| elementwise::scale(gpu, dy, 1.0, db))
        });
        Ok(self.push_op(NodeKind::Op("add"), y, &[a, b], rule))
    }

    /// y = a ⊙ b (the same shape).
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        let gpu = self.gpu;
        let (av, bv) = (self.value(a).clone(), self.value(b).clone());
        if av.shape() != bv.shape() {
            return Err(Error::shape(
                "mul",
                format!("{:?}", av.shape()),
                format!("{:?}", bv.shape()),
            ));
        }
        let y = Tensor::zeros(gpu, av.shape(), "mul")?;
        self.record_forward(elementwise::mul(gpu, &av, &bv, &y)?);
        // da = dy ⊙ b, db = dy ⊙ a
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(a, |da| elementwise::mul(gpu, dy, &bv, da))?;
            t.contribute(b, |db| elementwise::mul(gpu, dy, &av, db))
        });
        Ok(self.push_op(NodeKind::Op("mul"), y, &[a, b], rule))
    }

    /// y = alpha · x
    pub fn scale(&mut self, x: Var, alpha: f32) -> Result<Var> {
        let gpu = self.gpu;
        let xv = self.value(x).clone();
        let y = Tensor::zeros(gpu, xv.shape(), "scale")?;
        self.record_forward(elementwise::scale(gpu, &xv, alpha, &y)?);
        // dx = alpha · dy
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(x, |dx| elementwise::scale(gpu, dy, alpha, dx))
        });
        Ok(self.push_op(NodeKind::Op("scale"), y, &[x], rule))
    }

    /// y = Σ_i x\[i\], a 1×1 result.
    pub fn sum(&mut self, x: Var) -> Result<Var> {
        let gpu = self.gpu;
        let xv = self.value(x).clone();
        let y = Tensor::zeros(gpu, &[1, 1], "sum")?;
        for d in reduce::sum_all(gpu, &xv, &y, false)? {
            self.record_forward(d);
        }
        // dx[i] = dy for every i
        let rule = Rc::new(move |t: &mut Tape, dy: &Tensor| -> Result<()> {
            let gpu = t.gpu;
            t.contribute(x, |dx| elementwise::broadcast(gpu, dy, 1.0, dx))
        });
        Ok(self.push_op(NodeKind::Op("sum"), y, &[x], rule))
    }

    /// A fused loss of `pred`: `kernel(pred, dpred)` records one dispatch
    /// that writes the loss to its task's slot of `losses` and, in the same
    /// pass, the gradient of the weighted loss with respect to `pred` into
    /// `dpred` (a buffer of `pred`'s shape made here), already multiplied by
    /// the loss's seed (its weight in the total, which the kernel reads from
    /// the seeds buffer). The node is terminal: [`Tape::backward`] starts
    /// here and hands `dpred` to `pred`.
    ///
    /// Every task kind's loss is one of these (softmax cross-entropy, MSE,
    /// binary cross-entropy), and so can be a loss of your own with its own
    /// WGSL kernel (`examples/custom_loss.rs`).
    pub fn fused_loss(
        &mut self,
        name: &'static str,
        pred: Var,
        losses: &Tensor,
        kernel: impl FnOnce(&Tensor, &Tensor) -> Result<Dispatch>,
    ) -> Result<Var> {
        let p = self.value(pred).clone();
        let dpred = Tensor::zeros(self.gpu, p.shape(), name)?;
        self.record_forward(kernel(&p, &dpred)?);
        // The gradient was computed by the forward kernel.
        let rule = Rc::new(move |t: &mut Tape, _seed: &Tensor| -> Result<()> {
            t.contribute_owned(pred, dpred.clone())
        });
        Ok(self.push_op(NodeKind::Loss(name), losses.clone(), &[pred], rule))
    }

    /// Softmax cross-entropy of `logits` (B×C) against u32 `labels` (B) with row
    /// `mask` (B). The mean over labelled rows goes to `losses[slot]`; the
    /// gradient is scaled by `seeds[slot]`, the loss's weight in the total.
    pub fn softmax_ce(
        &mut self,
        logits: Var,
        labels: &Tensor,
        mask: &Tensor,
        seeds: &Tensor,
        losses: &Tensor,
        slot: usize,
    ) -> Result<Var> {
        let gpu = self.gpu;
        let rows = Tensor::zeros(gpu, &[self.value(logits).shape()[0]], "ce loss rows")?;
        // dlogits = (softmax(z) - onehot(y)) · seed / n_valid
        self.fused_loss("softmax_ce", logits, losses, |z, dlogits| {
            let out = softmax_ce::SoftmaxCeOutputs {
                dlogits,
                loss_rows: &rows,
                loss: losses,
            };
            softmax_ce::softmax_ce(gpu, z, labels, mask, seeds, slot, out)
        })
    }

    /// Mean squared error of `pred` (B×T) against `target` (B×T) with row `mask`
    /// (B); loss to `losses[slot]`, gradient scaled by `seeds[slot]`.
    pub fn mse(
        &mut self,
        pred: Var,
        target: &Tensor,
        mask: &Tensor,
        seeds: &Tensor,
        losses: &Tensor,
        slot: usize,
    ) -> Result<Var> {
        let gpu = self.gpu;
        // dpred = 2 (pred - target) · seed / (n_valid · T)
        self.fused_loss("mse", pred, losses, |p, dpred| {
            mse::mse(gpu, p, target, mask, seeds, slot, dpred, losses)
        })
    }
}

/// Which value an elementwise activation's backward rule reads.
#[derive(Clone, Copy)]
enum Saved {
    Input,
    Output,
}
