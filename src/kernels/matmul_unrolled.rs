//! The written-out matmul: small products as WGSL generated per shape, with
//! every value of k and every output of an invocation spelt out, and no loop.
//!
//! ```text
//! C = op(A) · op(B)  [+ bias]  [ReLU]    or, with accumulate,   C += op(A) · op(B)
//! ```
//!
//! with the masks and the bias gradient of the other f32 kernels
//! (shaders/matmul_prelude.wgsl, whose bindings and epilogue it shares;
//! with one invocation per row, N a multiple of 4 and C on a 16-byte start,
//! it stores C four columns at a time through a vec4 view instead, with the
//! same epilogue written for the product's options: a store loops over the
//! SIMD lanes on llvmpipe too, and this makes a quarter of them).
//!
//! Why: Mesa's llvmpipe (lavapipe) compiles every storage-buffer load inside
//! a loop or a branch into a loop over the SIMD lanes, even where all lanes
//! read the same address; only a load outside all control flow, at an
//! address the compiler knows is the same for every lane, becomes one load
//! and a broadcast. A skinny product (a head's 120×64·64×3, its weight
//! gradient 64×120·120×3, its input gradient 120×3·3×64) is all loop and
//! little arithmetic, and the loop kernels pay the lane loops on every load:
//! 100–230 µs each on lavapipe for at most 23 thousand multiply-adds. Written
//! out, one operand's every load has a constant address (a broadcast) and
//! only the other's depends on the invocation: one invocation per row of C
//! (`Lanes::Rows`: op(B) at constant addresses) or per column
//! (`Lanes::Cols`: op(A) constant), whichever writes out fewer terms.
//! BENCHMARKS.md, "The written-out kernel", has the measurements.
//!
//! The sums are the other kernels' (each output's products in ascending k,
//! from zero; the bias gradient likewise), so the numbers are the same bit
//! for bit (tests/kernels.rs checks it against the register kernel). The
//! source grows with k × outputs per invocation, so only products up to
//! [`MAX_TERMS`] are written out; larger ones keep the loop kernels. One
//! replica only: the replica axis would make the constant addresses
//! per-workgroup values, which llvmpipe loads lane by lane again. So runs
//! stepped together (`train::fit_lockstep`) keep each run's own written-out
//! dispatch for such a product ([`runs`] tells them apart) rather than one
//! dispatch of the rows kernels over all runs: on lavapipe five of them
//! cost less than that one (BENCHMARKS.md, "Each seed's own written-out
//! products").

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use super::matmul::{plan, MatmulOptions, Operand};
use super::matmul_lanes::Epilogue;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Tensor};

/// Most multiply-adds one invocation may write out (k × its outputs): a
/// head's 192–360 compile in tens of milliseconds on lavapipe; 4096 (a 64×64
/// layer) took 2 s and ran no faster than the rows kernel.
pub const MAX_TERMS: usize = 512;

/// Invocations per workgroup: one SIMD vector of lavapipe's 256-bit lanes.
const WG: u32 = 8;

/// The name the generated sources go by (in kernel labels and messages).
const FILE: &str = "generated/matmul_unrolled.wgsl";

/// Whether `d` runs a kernel this module wrote out.
pub fn runs(d: &Dispatch) -> bool {
    d.kernel.label.starts_with(FILE)
}

/// What one invocation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lanes {
    /// One row of C: op(A)[row, ·] per invocation, op(B) at constant addresses.
    Rows,
    /// One column of C: op(B)[·, col] per invocation, op(A) at constant addresses.
    Cols,
}

/// How an m×k·k×n product would be written out (None: too large, see [`MAX_TERMS`]).
pub fn lanes_for((m, n, k): (usize, usize, usize)) -> Option<Lanes> {
    let (rows, cols) = (k * n, k * m);
    if rows <= MAX_TERMS && rows <= cols {
        Some(Lanes::Rows)
    } else if cols <= MAX_TERMS {
        Some(Lanes::Cols)
    } else {
        None
    }
}

/// Everything the generated source depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Spec {
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    mask: Option<Operand>,
    bias_grad: bool,
    /// Whether the loop kernels would take four values of k per turn
    /// (`matmul::four_k_per_turn`), whose bias-gradient sums this copies.
    fours: bool,
    lanes: Lanes,
    /// With lanes along rows, C stored four columns at a time through a vec4
    /// view, with the epilogue written for these options (bias, relu,
    /// accumulate); None: through the prelude's scalar `store`.
    c4: Option<Epilogue>,
}

impl Spec {
    /// Flat index of op(A)[r, kk] (r a WGSL expression).
    fn a_index(&self, r: &str, kk: usize) -> String {
        if self.trans_a {
            format!("{}u + {r}", kk * self.m)
        } else {
            format!("{r} * {}u + {kk}u", self.k)
        }
    }

    /// Flat index of op(B)[kk, c] (c a WGSL expression).
    fn b_index(&self, kk: usize, c: &str) -> String {
        if self.trans_b {
            format!("{c} * {}u + {kk}u", self.k)
        } else {
            format!("{}u + {c}", kk * self.n)
        }
    }

    /// A load of `array[index]`, times [mask > 0] when `operand` is masked.
    fn load(&self, array: &str, operand: Operand, index: &str) -> String {
        if self.mask == Some(operand) {
            format!("select(0.0, {array}[{index}], mask[{index}] > 0.0)")
        } else {
            format!("{array}[{index}]")
        }
    }

    /// After term `kk`, the values of k whose op(B) the bias gradient adds
    /// now, in one expression: each one as it comes, or with `fours` each
    /// four at the fourth, `bs + y0 + y1 + y2 + y3`, the loop kernels' own
    /// expression when they take four values of k per turn. The same
    /// expression matters on the GL backend, whose compiler may regroup
    /// such a sum (the two groupings differed in the last bit there).
    fn bias_terms(&self, kk: usize) -> Option<std::ops::Range<usize>> {
        match (self.bias_grad, self.fours) {
            (false, _) => None,
            (true, false) => Some(kk..kk + 1),
            (true, true) if kk % 4 == 3 => Some(kk - 3..kk + 1),
            (true, true) => None,
        }
    }

    /// The entry point `matmul_unrolled`, to follow shaders/matmul_prelude.wgsl.
    fn source(&self) -> String {
        let Spec { m, n, k, .. } = *self;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n// Written out by kernels::matmul_unrolled for op(A) {m}×{k} · op(B) {k}×{n} \
             (trans_a {}, trans_b {}, mask {:?}, bias gradient {}, lanes {:?}).",
            self.trans_a, self.trans_b, self.mask, self.bias_grad, self.lanes
        );
        let _ = writeln!(s, "@compute @workgroup_size({WG})");
        s.push_str("fn matmul_unrolled(@builtin(global_invocation_id) gid: vec3<u32>) {\n");
        // The invocation's row (or column), clamped so that every load is in
        // bounds without a branch; the stores below are guarded.
        let (outs, own) = match self.lanes {
            Lanes::Rows => (n, m),
            Lanes::Cols => (m, n),
        };
        let _ = writeln!(s, "    let i = min(gid.x, {}u);", own - 1);
        // The sums start from a zero the compiler cannot see (p.m < 2^31, so
        // its top bit is 0): from a literal 0.0 it folds 0.0 + x·y into x·y,
        // which is -0.0 where the loop kernels' 0.0 + (-0.0) gives +0.0.
        s.push_str("    let zero = bitcast<f32>(p.m & 0x80000000u);\n");
        for o in 0..outs {
            let _ = writeln!(s, "    var acc{o} = zero;");
        }
        match self.lanes {
            Lanes::Rows => self.rows_body(&mut s),
            Lanes::Cols => self.cols_body(&mut s),
        }
        s.push_str("}\n");
        s
    }

    /// One invocation per row i of C: op(A)[i, k] per invocation, op(B) at
    /// constant addresses; the bias gradient's sums are then the same in
    /// every invocation, and invocation 0 stores them.
    fn rows_body(&self, s: &mut String) {
        let Spec { m, n, k, .. } = *self;
        let grad = self.bias_grad;
        if grad {
            for c in 0..n {
                let _ = writeln!(s, "    var bs{c} = zero;");
            }
        }
        for kk in 0..k {
            let x = self.load("a", Operand::A, &self.a_index("i", kk));
            let _ = writeln!(s, "    let x{kk} = {x};");
            for c in 0..n {
                let y = self.load("b", Operand::B, &self.b_index(kk, &format!("{c}u")));
                let _ = writeln!(s, "    let y{kk}_{c} = {y};");
                let _ = writeln!(s, "    acc{c} = acc{c} + x{kk} * y{kk}_{c};");
            }
            if let Some(ks) = self.bias_terms(kk) {
                for c in 0..n {
                    let terms: Vec<String> = ks.clone().map(|j| format!(" + y{j}_{c}")).collect();
                    let _ = writeln!(s, "    bs{c} = bs{c}{};", terms.concat());
                }
            }
        }
        if let Some(epilogue) = self.c4 {
            self.rows_store4(s, epilogue);
            return;
        }
        let _ = writeln!(s, "    if (gid.x < {m}u) {{");
        for c in 0..n {
            let _ = writeln!(s, "        store(i, {c}u, acc{c});");
        }
        s.push_str("    }\n");
        if grad {
            s.push_str("    if (gid.x == 0u) {\n");
            for c in 0..n {
                let _ = writeln!(s, "        store_bias_grad({c}u, bs{c});");
            }
            s.push_str("    }\n");
        }
    }

    /// Row i of C four columns at a time through the vec4 view `c4`, with
    /// the epilogue written for (bias, relu, accumulate): the operations of
    /// the prelude's `store`, in its order, on four outputs at once (one
    /// lane loop per vec4 on llvmpipe where `store` makes one per output);
    /// the bias gradient likewise.
    fn rows_store4(&self, s: &mut String, epilogue: Epilogue) {
        let Spec { m, n, .. } = *self;
        if epilogue.bias && !epilogue.accumulate {
            // Constant addresses outside any branch: one load and a splat each.
            for q in 0..n / 4 {
                let _ = writeln!(
                    s,
                    "    let bb{q} = vec4<f32>(bias[{}u], bias[{}u], bias[{}u], bias[{}u]);",
                    4 * q,
                    4 * q + 1,
                    4 * q + 2,
                    4 * q + 3
                );
            }
        }
        let _ = writeln!(s, "    if (gid.x < {m}u) {{");
        for q in 0..n / 4 {
            let idx = format!("i * {}u + {q}u", n / 4);
            let acc = format!(
                "vec4<f32>(acc{}, acc{}, acc{}, acc{})",
                4 * q,
                4 * q + 1,
                4 * q + 2,
                4 * q + 3
            );
            let v = epilogue.apply(&acc, &idx, &format!("bb{q}"));
            let _ = writeln!(s, "        c4[{idx}] = {v};");
        }
        s.push_str("    }\n");
        if self.bias_grad {
            s.push_str("    if (gid.x == 0u) {\n");
            for c in 0..n {
                let sum = epilogue.bias_grad(&format!("bs{c}"), &format!("{c}u"));
                let _ = writeln!(s, "        dbias[{c}u] = {sum};");
            }
            s.push_str("    }\n");
        }
    }

    /// One invocation per column i of C: op(B)[k, i] per invocation, op(A)
    /// at constant addresses; each invocation stores its column's bias gradient.
    fn cols_body(&self, s: &mut String) {
        let Spec { m, n, k, .. } = *self;
        let grad = self.bias_grad;
        if grad {
            s.push_str("    var bs = zero;\n");
        }
        for kk in 0..k {
            let y = self.load("b", Operand::B, &self.b_index(kk, "i"));
            let _ = writeln!(s, "    let y{kk} = {y};");
            for r in 0..m {
                let x = self.load("a", Operand::A, &self.a_index(&format!("{r}u"), kk));
                let _ = writeln!(s, "    acc{r} = acc{r} + {x} * y{kk};");
            }
            if let Some(ks) = self.bias_terms(kk) {
                let terms: Vec<String> = ks.map(|j| format!(" + y{j}")).collect();
                let _ = writeln!(s, "    bs = bs{};", terms.concat());
            }
        }
        let _ = writeln!(s, "    if (gid.x < {n}u) {{");
        for r in 0..m {
            let _ = writeln!(s, "        store({r}u, i, acc{r});");
        }
        if grad {
            s.push_str("        store_bias_grad(i, bs);\n");
        }
        s.push_str("    }\n");
    }
}

/// The generated source of `spec`, made once per process and kept for the
/// pipeline cache, which keys kernels by their source's address (a few
/// kilobytes per product shape a program uses).
fn source_for(spec: Spec) -> &'static str {
    static SOURCES: OnceLock<Mutex<HashMap<Spec, &'static str>>> = OnceLock::new();
    let mut map = SOURCES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(spec).or_insert_with(|| {
        let prelude = match spec.c4 {
            Some(_) => super::matmul_lanes::prelude_vec4_c(),
            None => include_str!("../../shaders/matmul_prelude.wgsl"),
        };
        let text = format!("{prelude}{}", spec.source());
        Box::leak(text.into_boxed_str())
    })
}

/// The WGSL written out for an m×k·k×n product (what [`matmul_unrolled`]
/// compiles for it, its options' transposes, mask and bias gradient given
/// apart), for the naga validation test and for reading.
///
/// `fours`: whether the bias gradient adds op(B) four values of k at a time,
/// as the loop kernels do where their vec4 views read along k. `c4`: C
/// stored four columns at a time with the epilogue for (bias, relu,
/// accumulate), which the kernel does where lanes run along rows, N is a
/// multiple of 4 and C starts on 16 bytes (ignored otherwise).
pub fn source(
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    mask: Option<Operand>,
    bias_grad: bool,
    fours: bool,
    c4: Option<(bool, bool, bool)>,
) -> Result<&'static str> {
    let lanes = lanes_fitting((m, n, k))?;
    let c4 = c4
        .filter(|_| lanes == Lanes::Rows && n.is_multiple_of(4))
        .map(|(bias, relu, accumulate)| Epilogue {
            bias,
            relu,
            accumulate,
        });
    Ok(source_for(Spec {
        m,
        n,
        k,
        trans_a,
        trans_b,
        mask,
        bias_grad,
        fours: fours && k.is_multiple_of(4),
        lanes,
        c4,
    }))
}

fn lanes_fitting((m, n, k): (usize, usize, usize)) -> Result<Lanes> {
    lanes_for((m, n, k)).ok_or_else(|| {
        Error::InvalidConfig(format!(
            "the written-out matmul takes products of at most {MAX_TERMS} terms per \
             invocation (k·n or k·m); {m}×{k}·{k}×{n} has {}",
            (k * n).min(k * m)
        ))
    })
}

/// `c`'s layout decides whether C is stored four columns at a time.
fn spec(
    (m, n, k): (usize, usize, usize),
    opts: &MatmulOptions,
    fours: bool,
    c: &Tensor,
) -> Result<Spec> {
    let lanes = lanes_fitting((m, n, k))?;
    let c4 = (lanes == Lanes::Rows && n.is_multiple_of(4) && c.offset().is_multiple_of(16))
        .then_some(Epilogue {
            bias: opts.bias.is_some(),
            relu: opts.relu,
            accumulate: opts.accumulate,
        });
    if opts.replica_count() > 1 {
        return Err(Error::InvalidConfig(
            "the written-out matmul has no replica axis".into(),
        ));
    }
    Ok(Spec {
        m,
        n,
        k,
        trans_a: opts.trans_a,
        trans_b: opts.trans_b,
        mask: opts.mask.map(|(_, o)| o),
        bias_grad: opts.bias_grad.is_some(),
        fours,
        lanes,
        c4,
    })
}

/// Record C = op(A)·op(B) with the epilogue in `opts` by the written-out
/// kernel: f32, one replica, at most [`MAX_TERMS`] terms per invocation.
pub fn matmul_unrolled(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> Result<Dispatch> {
    let (m, n, k) = super::matmul::product_shape(a, b, opts.trans_a, opts.trans_b)?;
    if m == 0 || n == 0 {
        return Err(Error::InvalidConfig("matmul: an empty output".into()));
    }
    let fours = super::matmul::four_k_per_turn(a, b, &opts, k);
    let spec = spec((m, n, k), &opts, fours, c)?;
    // The grid: one invocation per row (or column) of C, WG to a workgroup.
    let tile = match spec.lanes {
        Lanes::Rows => (n as u32, WG),
        Lanes::Cols => (WG, m as u32),
    };
    let p = plan(gpu, a, b, c, &opts, (1, 1), tile)?;
    let mask = opts.mask.map(|(t, _)| t);
    for (what, t) in [
        ("matmul A", Some(a)),
        ("matmul B", Some(b)),
        ("matmul C", Some(c)),
        ("matmul mask", mask),
    ] {
        let Some(t) = t else { continue };
        if t.dtype() != crate::gpu::DType::F32 {
            return Err(Error::shape(
                what,
                "f32 elements (the written-out kernel)",
                format!("{:?}", t.dtype()),
            ));
        }
    }
    let shader = super::Shader {
        file: FILE,
        source: source_for(spec),
    };
    let grid = [p.grid[0] * p.grid[1], 1, 1];
    super::matmul::record_generated(
        gpu,
        shader,
        "matmul_unrolled",
        &p,
        (a, b, c),
        &opts,
        false,
        grid,
    )
}
