//! The subgroup matmul: each SIMD lane owns rows of C, and the block of op(B)
//! they all need is loaded once, spread over the lanes, and handed to every
//! lane by `subgroupBroadcast`.
//!
//! ```text
//! C = op(A) · op(B)  [+ bias]  [ReLU]    or, with accumulate,   C += op(A) · op(B)
//! ```
//!
//! with the masks and the bias gradient of the other f32 kernels: the
//! parameters and bindings of shaders/matmul_prelude.wgsl (C seen as vec4s,
//! `prelude_vec4_c`) and the vec4 views of shaders/matmul.wgsl at
//! bindings 7-9; the epilogue is written for the product's options.
//!
//! Why: on Mesa's llvmpipe (lavapipe) a workgroup of S invocations is one
//! SIMD instruction stream S lanes wide, and every storage load inside a
//! loop becomes a loop over the lanes (a bounds check and an insert per lane
//! and component), even where every lane reads the same address. The rows
//! kernels (shaders/matmul.wgsl) make all their loads that way, a quarter of
//! a load per multiply-add. Here one workgroup is one subgroup: lane l owns
//! rows r0 + l + S·i of C (i < RI) and reads its own row of op(A) (one vec4
//! along k per row and four values of k), while the 4 × CB block of op(B)
//! that every lane multiplies it with is loaded as CB vec4s spread over the
//! S lanes (CB/S loads each) and broadcast, lane by lane, with
//! `subgroupBroadcast`: on llvmpipe an extract and a splat of a register,
//! no memory. Per four values of k a lane makes RI + CB/S loads for
//! 4·RI·CB multiply-adds: W-iris's 120×64·64×64 product (RI = 8, CB = 32)
//! makes 12 where the rows kernel makes 64 for the same work. BENCHMARKS.md,
//! "Subgroup broadcasts", has the measurements.
//!
//! The sums are the other kernels' (each output's products in ascending k,
//! from zero; the bias gradient's four values of k at a time, left to
//! right), so the numbers are the same bit for bit (tests/kernels.rs checks
//! it against the register kernel on every layout). It needs subgroups of
//! one fixed size (lavapipe's are its SIMD width, 8 lanes at 256 bits), k
//! and n multiples of 4, and the tensors it reads or writes as vec4s
//! starting where vec4s may ([`fits`]); replicas along workgroup layer z
//! (replica r's tensors `p.rep_*`·r elements on, in whole vec4s), no
//! split-K. WGSL is generated per shape, like `super::matmul_unrolled`'s, so
//! that the block sizes and the layout's index arithmetic are constants.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use super::matmul::{plan, product_shape, MatmulOptions, Operand};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Tensor};

/// Most row groups one lane owns (RI). In a throwaway harness W-iris's
/// hidden forward product took 59–80 µs with 5 or 8 row groups (32
/// columns) against 185–197 µs by the rows kernel; the generated kernel
/// with at most 4 took 85–94 µs against 71–83 with 8, and compiled in
/// 0.4–0.6 s against 1.0–1.3 s (llvmpipe, shader cache off).
const MAX_ROW_GROUPS: usize = 8;
/// Columns of C per workgroup (CB), a multiple of 4.
const MAX_COLS: usize = 32;

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
    /// Lanes per subgroup (= invocations per workgroup).
    s: usize,
    /// Row groups per lane: a workgroup covers s·ri rows.
    ri: usize,
    /// Columns per workgroup.
    cb: usize,
    epilogue: Epilogue,
    /// Several replicas, replica z = workgroup layer z (offsets from
    /// `p.rep_*`); without, the source has no replica arithmetic at all.
    replicated: bool,
}

/// The options that shape the stores, written into the source (here and by
/// the written-out kernel's vec4 stores).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Epilogue {
    pub bias: bool,
    pub relu: bool,
    pub accumulate: bool,
}

impl Epilogue {
    /// The prelude's `store` on four outputs at once, as a WGSL expression:
    /// `acc` + C's vec4 at `c4[idx]` with accumulate, else `acc` + `bias`
    /// (a vec4 expression) with a bias, then max(·, 0) with ReLU.
    pub(crate) fn apply(&self, acc: &str, idx: &str, bias: &str) -> String {
        if self.accumulate {
            return format!("{acc} + c4[{idx}]");
        }
        let mut v = acc.to_string();
        if self.bias {
            v = format!("{v} + {bias}");
        }
        if self.relu {
            v = format!("max({v}, vec4<f32>(0.0))");
        }
        v
    }

    /// The prelude's `store_bias_grad` at `dbias[idx]`: `sum`, added to
    /// dbias with accumulate.
    pub(crate) fn bias_grad(&self, sum: &str, idx: &str) -> String {
        match self.accumulate {
            true => format!("{sum} + dbias[{idx}]"),
            false => sum.to_string(),
        }
    }
}

/// The adapter's subgroup size, if it has subgroups of one fixed size the
/// kernel can use (4 to 64 lanes), with the feature enabled on the device.
pub fn subgroup_size(gpu: &Gpu) -> Option<usize> {
    if !gpu.features.contains(wgpu::Features::SUBGROUP) {
        return None;
    }
    let info = gpu.adapter.get_info();
    let s = info.subgroup_min_size as usize;
    (s == info.subgroup_max_size as usize && (4..=64).contains(&s) && s.is_power_of_two())
        .then_some(s)
}

/// Whether this kernel can run the product on `gpu`: fixed-size subgroups,
/// f32 tensors, K and N multiples of 4, and each tensor it reads or writes
/// as vec4s starting on 16 bytes (op(A) is read along k when A is
/// row-major, Aᵀ as scalars; op(B) along n, Bᵀ along k; C four columns at a
/// time), replica after replica (strides of whole vec4s).
pub fn fits(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, opts: &MatmulOptions) -> bool {
    let Ok((m, n, k)) = product_shape(a, b, opts.trans_a, opts.trans_b) else {
        return false;
    };
    let r = opts.replicas.unwrap_or_default();
    let strides_whole =
        opts.replica_count() <= 1 || [r.a, r.b, r.c].iter().all(|s| s.is_multiple_of(4));
    let whole = |t: &Tensor| t.offset().is_multiple_of(16);
    let mask_ok = |on: Operand| opts.mask.is_none_or(|(t, o)| o != on || whole(t));
    let f32s = [Some(a), Some(b), Some(c), opts.mask.map(|(t, _)| t)]
        .into_iter()
        .flatten()
        .all(|t| t.dtype() == DType::F32);
    subgroup_size(gpu).is_some()
        && strides_whole
        && f32s
        && m > 0
        && n > 0
        && k > 0
        && k.is_multiple_of(4)
        && (opts.trans_a || (whole(a) && mask_ok(Operand::A)))
        && whole(b)
        && mask_ok(Operand::B)
        && whole(c)
        && n.is_multiple_of(4)
}

/// The block sizes for an m×n output with subgroups of `s`: row groups per
/// lane as even as at most [`MAX_ROW_GROUPS`] allows, and up to
/// [`MAX_COLS`] columns.
fn blocks(m: usize, n: usize, s: usize) -> (usize, usize) {
    let groups = m.div_ceil(s);
    let ri = groups.div_ceil(groups.div_ceil(MAX_ROW_GROUPS));
    let cb = n.div_ceil(4).min(MAX_COLS / 4) * 4;
    (ri, cb)
}

impl Spec {
    /// The flat vec4 index, at k = 0, of item `t` (a WGSL expression) of the
    /// op(B) block; at k = kk, [`Spec::b_step`] is added to it.
    fn b_item_offset(&self, t: &str) -> String {
        let Spec { n, k, cb, .. } = *self;
        let rb = self.rep("rb4");
        if self.trans_b {
            // Column c0 + t, its values of k as vec4s.
            format!("{rb}min(c0 + {t}, {}u) * {}u", n - 1, k / 4)
        } else {
            // Row q = t / (CB/4) of the block, its vec4 h = t % (CB/4) of columns.
            let h = cb / 4;
            format!(
                "{rb}({t} / {h}u) * {}u + min(c0 / 4u + {t} % {h}u, {}u)",
                n / 4,
                n / 4 - 1
            )
        }
    }

    /// `"{offset} + "` where replicated (the replica's offset, a WGSL
    /// variable of [`Spec::setup`]), else nothing.
    fn rep(&self, offset: &str) -> String {
        match self.replicated {
            true => format!("{offset} + "),
            false => String::new(),
        }
    }

    /// How far an item's vec4 index moves per value of k (kk is a multiple of 4).
    fn b_step(&self) -> String {
        if self.trans_b {
            "kk / 4u".into()
        } else {
            format!("kk * {}u", self.n / 4)
        }
    }

    /// A vec4 load of `view[index]`, times [mask > 0] when `operand` is masked.
    fn load4(&self, view: &str, operand: Operand, index: &str) -> String {
        if self.mask == Some(operand) {
            format!("select(vec4<f32>(0.0), {view}[{index}], mask4[{index}] > vec4<f32>(0.0))")
        } else {
            format!("{view}[{index}]")
        }
    }

    /// A scalar load of `array[index]`, times [mask > 0] when `operand` is masked.
    fn load1(&self, array: &str, operand: Operand, index: &str) -> String {
        if self.mask == Some(operand) {
            format!("select(0.0, {array}[{index}], mask[{index}] > 0.0)")
        } else {
            format!("{array}[{index}]")
        }
    }

    /// op(B)[kk + q, c0 + 4h .. c0 + 4h + 4] as a WGSL expression of the
    /// broadcast items `bv{t}`.
    fn b_value(&self, q: usize, h: usize) -> String {
        if self.trans_b {
            let c = ["x", "y", "z", "w"][q];
            format!(
                "vec4<f32>(bv{}.{c}, bv{}.{c}, bv{}.{c}, bv{}.{c})",
                4 * h,
                4 * h + 1,
                4 * h + 2,
                4 * h + 3
            )
        } else {
            format!("bv{}", q * (self.cb / 4) + h)
        }
    }

    /// op(A)[row{i}, kk .. kk + 4] as a WGSL expression.
    fn a_value(&self, i: usize) -> String {
        let Spec { m, k, .. } = *self;
        if self.trans_a {
            let at = |q: usize| {
                let idx = format!("{}(kk + {q}u) * {m}u + row{i}", self.rep("ra"));
                self.load1("a", Operand::A, &idx)
            };
            format!("vec4<f32>({}, {}, {}, {})", at(0), at(1), at(2), at(3))
        } else {
            let idx = format!("{}row{i} * {}u + kk / 4u", self.rep("ra4"), k / 4);
            self.load4("a4", Operand::A, &idx)
        }
    }

    /// The entry point `matmul_lanes`, to follow shaders/matmul_prelude.wgsl:
    /// its setup, the loop over k, then the stores.
    fn source(&self) -> String {
        let mut w = String::new();
        self.setup(&mut w);
        self.k_loop(&mut w);
        self.stores(&mut w);
        w.push_str("}\n");
        w
    }

    /// The vec4 views, the entry point's head, this lane's rows and
    /// accumulators, and the offsets of the op(B) items it loads.
    fn setup(&self, w: &mut String) {
        let Spec {
            m, n, k, s, ri, cb, ..
        } = *self;
        let _ = writeln!(
            w,
            "\n// Generated by kernels::matmul_lanes for op(A) {m}×{k} · op(B) {k}×{n} \
             (trans_a {}, trans_b {}, mask {:?}, bias gradient {}): subgroups of {s}, \
             {ri} row groups per lane, {cb} columns per workgroup.",
            self.trans_a, self.trans_b, self.mask, self.bias_grad
        );
        w.push_str("@group(0) @binding(7) var<storage, read> b4: array<vec4<f32>>;\n");
        w.push_str("@group(0) @binding(8) var<storage, read> a4: array<vec4<f32>>;\n");
        w.push_str("@group(0) @binding(9) var<storage, read> mask4: array<vec4<f32>>;\n\n");
        let _ = writeln!(w, "@compute @workgroup_size({s})");
        w.push_str(
            "fn matmul_lanes(@builtin(workgroup_id) wid: vec3<u32>, \
             @builtin(subgroup_invocation_id) l: u32) {\n",
        );
        // The sums start from a zero the compiler cannot see (p.m < 2^31):
        // from a literal 0.0 it may fold 0.0 + x·y into x·y, which is -0.0
        // where the loop kernels' 0.0 + (-0.0) gives +0.0.
        w.push_str("    let zero = bitcast<f32>(p.m & 0x80000000u);\n");
        if self.replicated {
            // Replica wid.z's offsets: A's in elements and vec4s, B's and
            // C's in vec4s (whole vec4s, `fits`), the bias's in elements.
            w.push_str("    let ra = wid.z * p.rep_a;\n");
            w.push_str("    let ra4 = wid.z * (p.rep_a / 4u);\n");
            w.push_str("    let rb4 = wid.z * (p.rep_b / 4u);\n");
            w.push_str("    let rc4 = wid.z * (p.rep_c / 4u);\n");
            w.push_str("    let rbias = wid.z * p.rep_bias;\n");
        }
        let _ = writeln!(w, "    let r0 = wid.x * {}u;", s * ri);
        let _ = writeln!(w, "    let c0 = wid.y * {cb}u;");
        // This lane's rows (clamped into C: every load in bounds without a
        // branch; the stores are guarded) and their accumulators.
        for i in 0..ri {
            let _ = writeln!(w, "    let row{i} = min(r0 + l + {}u, {}u);", s * i, m - 1);
            for h in 0..cb / 4 {
                let _ = writeln!(w, "    var acc{i}_{h} = vec4<f32>(zero);");
            }
        }
        if self.bias_grad {
            for h in 0..cb / 4 {
                let _ = writeln!(w, "    var bs{h} = vec4<f32>(zero);");
            }
        }
        // The op(B) block is CB vec4s per four values of k (CB/4 per k along
        // n, or one per column along k for Bᵀ); this lane loads items
        // t = l + s·u (clamped to the last).
        for u in 0..cb.div_ceil(s) {
            let t = format!("min(l + {}u, {}u)", s * u, cb - 1);
            let _ = writeln!(
                w,
                "    let bo{u} = {};",
                self.b_item_offset(&format!("({t})"))
            );
        }
    }

    /// Four values of k per turn: this lane's share of the op(B) block,
    /// broadcast to every lane, and its rows' multiply-adds.
    fn k_loop(&self, w: &mut String) {
        let Spec { s, ri, cb, .. } = *self;
        let h4 = cb / 4;
        let _ = writeln!(w, "    for (var kk = 0u; kk < p.k; kk = kk + 4u) {{");
        for u in 0..cb.div_ceil(s) {
            let idx = format!("bo{u} + {}", self.b_step());
            let _ = writeln!(
                w,
                "        let bl{u} = {};",
                self.load4("b4", Operand::B, &idx)
            );
        }
        // Every item to every lane: a register extract and splat on llvmpipe.
        for t in 0..cb {
            let _ = writeln!(
                w,
                "        let bv{t} = subgroupBroadcast(bl{}, {}u);",
                t / s,
                t % s
            );
        }
        for q in 0..4 {
            for h in 0..h4 {
                let _ = writeln!(w, "        let b{q}_{h} = {};", self.b_value(q, h));
            }
        }
        for i in 0..ri {
            let _ = writeln!(w, "        let ar{i} = {};", self.a_value(i));
            for h in 0..h4 {
                let _ = writeln!(
                    w,
                    "        acc{i}_{h} = acc{i}_{h} + ar{i}.x * b0_{h} + ar{i}.y * b1_{h} \
                     + ar{i}.z * b2_{h} + ar{i}.w * b3_{h};"
                );
            }
        }
        if self.bias_grad {
            for h in 0..h4 {
                let _ = writeln!(
                    w,
                    "        bs{h} = bs{h} + b0_{h} + b1_{h} + b2_{h} + b3_{h};"
                );
            }
        }
        w.push_str("    }\n");
    }

    /// The epilogue, written for this product's options (the other kernels
    /// test p.flags at run time in `store`; inlined for each of a lane's
    /// outputs that took llvmpipe seconds to compile): the same operations
    /// in the same order, four columns at a time; then the bias gradient.
    fn stores(&self, w: &mut String) {
        let Spec {
            m, n, s, ri, cb, ..
        } = *self;
        let full_blocks = n.is_multiple_of(cb);
        if self.epilogue.bias && !self.epilogue.accumulate {
            // The block's bias, the same for every row (clamped; unused past N).
            for h in 0..cb / 4 {
                let at = |j: usize| {
                    let col = format!("min(c0 + {}u, {}u)", 4 * h + j, n - 1);
                    format!("bias[{}{col}]", self.rep("rbias"))
                };
                let _ = writeln!(
                    w,
                    "    let bb{h} = vec4<f32>({}, {}, {}, {});",
                    at(0),
                    at(1),
                    at(2),
                    at(3)
                );
            }
        }
        for i in 0..ri {
            let _ = writeln!(w, "    if (r0 + l + {}u < {m}u) {{", s * i);
            let _ = writeln!(
                w,
                "        let base{i} = {}row{i} * {}u + c0 / 4u;",
                self.rep("rc4"),
                n / 4
            );
            for h in 0..cb / 4 {
                let idx = format!("base{i} + {h}u");
                let v = self
                    .epilogue
                    .apply(&format!("acc{i}_{h}"), &idx, &format!("bb{h}"));
                if full_blocks {
                    let _ = writeln!(w, "        c4[{idx}] = {v};");
                } else {
                    let _ = writeln!(
                        w,
                        "        if (c0 + {}u < {n}u) {{ c4[{idx}] = {v}; }}",
                        4 * h
                    );
                }
            }
            w.push_str("    }\n");
        }
        if self.bias_grad {
            // Every lane holds the same sums; lane 0 of the first row block stores them.
            w.push_str("    if (wid.x == 0u && l == 0u) {\n");
            for h in 0..cb / 4 {
                for (j, c) in ["x", "y", "z", "w"].iter().enumerate() {
                    let col = format!("c0 + {}u", 4 * h + j);
                    let idx = format!("{}{col}", self.rep("rbias"));
                    let sum = self.epilogue.bias_grad(&format!("bs{h}.{c}"), &idx);
                    let _ = writeln!(w, "        if ({col} < {n}u) {{ dbias[{idx}] = {sum}; }}");
                }
            }
            w.push_str("    }\n");
        }
    }
}

/// shaders/matmul_prelude.wgsl for a generated kernel that stores C four
/// columns at a time: its parameters, options and bindings with binding 1
/// (C) seen as vec4s (`c4`), without the scalar epilogue (`store`,
/// `store_bias_grad`), which such a kernel writes for its own options. (A
/// second, scalar view of C would be a second writable binding of one
/// buffer, which a dispatch may not have.)
pub(crate) fn prelude_vec4_c() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let full = include_str!("../../shaders/matmul_prelude.wgsl");
        let head = full.split("// ---- the epilogue").next().unwrap_or(full);
        head.replace(
            "@group(0) @binding(1) var<storage, read_write> c: array<f32>;",
            "@group(0) @binding(1) var<storage, read_write> c4: array<vec4<f32>>;",
        )
    })
}

/// The generated source of `spec`, made once per process and kept for the
/// pipeline cache, which keys kernels by their source's address.
fn source_for(spec: Spec) -> &'static str {
    static SOURCES: OnceLock<Mutex<HashMap<Spec, &'static str>>> = OnceLock::new();
    let mut map = SOURCES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(spec).or_insert_with(|| {
        let text = format!("{}{}", prelude_vec4_c(), spec.source());
        Box::leak(text.into_boxed_str())
    })
}

/// The WGSL generated for an m×k·k×n product with subgroups of `s` lanes
/// (what [`matmul_lanes`] compiles for it: the transposes, the masked
/// operand, the bias gradient, the epilogue's (bias, relu, accumulate) and
/// whether it runs for several replicas given apart), for the naga
/// validation test and for reading.
pub fn source(
    shape: (usize, usize, usize),
    trans: (bool, bool),
    mask: Option<Operand>,
    bias_grad: bool,
    (bias, relu, accumulate): (bool, bool, bool),
    replicated: bool,
    s: usize,
) -> Result<&'static str> {
    let epilogue = Epilogue {
        bias,
        relu,
        accumulate,
    };
    Ok(source_for(spec(
        shape, trans, mask, bias_grad, epilogue, replicated, s,
    )?))
}

fn spec(
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    mask: Option<Operand>,
    bias_grad: bool,
    epilogue: Epilogue,
    replicated: bool,
    s: usize,
) -> Result<Spec> {
    if m == 0 || n == 0 || k == 0 || !k.is_multiple_of(4) || !n.is_multiple_of(4) {
        return Err(Error::InvalidConfig(format!(
            "the subgroup matmul takes k and n multiples of 4; got {m}×{k}·{k}×{n}"
        )));
    }
    let (ri, cb) = blocks(m, n, s);
    Ok(Spec {
        m,
        n,
        k,
        trans_a,
        trans_b,
        mask,
        bias_grad,
        s,
        ri,
        cb,
        epilogue,
        replicated,
    })
}

/// Record C = op(A)·op(B) with the epilogue in `opts` by the subgroup
/// kernel; refuses what [`fits`] refuses.
pub fn matmul_lanes(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    opts: MatmulOptions,
) -> Result<Dispatch> {
    let (m, n, k) = product_shape(a, b, opts.trans_a, opts.trans_b)?;
    let Some(s) = subgroup_size(gpu).filter(|_| fits(gpu, a, b, c, &opts)) else {
        return Err(Error::InvalidConfig(format!(
            "the subgroup matmul cannot run {m}×{k}·{k}×{n} here: it needs subgroups of one \
             fixed size, f32 tensors, k and n multiples of 4 and tensors it reads and writes \
             as vec4s on 16-byte offsets (and replica strides of whole vec4s)"
        )));
    };
    let epilogue = Epilogue {
        bias: opts.bias.is_some(),
        relu: opts.relu,
        accumulate: opts.accumulate,
    };
    let spec = spec(
        (m, n, k),
        (opts.trans_a, opts.trans_b),
        opts.mask.map(|(_, o)| o),
        opts.bias_grad.is_some(),
        epilogue,
        opts.replica_count() > 1,
        s,
    )?;
    // The plan checks the shapes and options and makes the parameters; the
    // grid is this kernel's: row blocks of s·ri along x, column blocks along
    // y, replicas along z.
    let p = plan(
        gpu,
        a,
        b,
        c,
        &opts,
        (1, 1),
        (spec.cb as u32, (s * spec.ri) as u32),
    )?;
    let shader = super::Shader {
        file: "generated/matmul_lanes.wgsl",
        source: source_for(spec),
    };
    let grid = [p.grid[1], p.grid[0], p.grid[2]];
    super::matmul::record_generated(
        gpu,
        shader,
        "matmul_lanes",
        &p,
        (a, b, c),
        &opts,
        true,
        grid,
    )
}
