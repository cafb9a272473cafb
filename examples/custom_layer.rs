//! custom_layer: a layer the crate does not have, defined in one file
//! outside it: RMSNorm (Zhang & Sennrich, 2019) with its own WGSL kernels,
//! its backward beside its forward, registered by name and trained with `fit`
//! in a trunk written as a layer list.
//!
//!     cargo run --release --example custom_layer
//!
//!   r_b = 1 / √(mean_j x[b,j]² + ε),   y[b,j] = g[j] · x[b,j] · r_b
//!   dx[b,j] = r_b · (g[j] dy[b,j] − x[b,j] · r_b² · mean_k g[k] dy[b,k] x[b,k])
//!   dg[j]   = Σ_b dy[b,j] · x[b,j] · r_b
//!
//! The example checks the kernels against central finite differences of the
//! same formula in f64, then trains Iris with `--trunk`'s list
//! `linear:32,relu,rmsnorm,linear:32,relu`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use taskgrad::autodiff::{Tape, Var};
use taskgrad::data::{Dataset, Split, Table, TaskType};
use taskgrad::gpu::{Binding, Dispatch, Gpu, Tensor};
use taskgrad::kernels::Shader;
use taskgrad::nn::layer::{self, Layer, LayerContext, LayerInfo, LayerSpec};
use taskgrad::nn::{ParamId, ParamSet};
use taskgrad::train::{fit, TrainConfig};

const EPS: f32 = 1e-6;

const RMSNORM_SHADER: Shader = Shader {
    file: "rmsnorm.wgsl",
    source: RMSNORM_WGSL,
};

/// Three entry points over one binding list (each uses a prefix of it).
const RMSNORM_WGSL: &str = r#"
// RMSNorm over rows of x (B×H) with a learned gain g (H), and its backward.
//   forward (a row each):          r[b] = 1/√(mean_j x² + ε); y = g ⊙ x · r[b]
//   backward_input (a row each):   dx = r (g ⊙ dy − x r² mean_k(g dy x))
//   backward_gain (a column each): dg[j] = Σ_b dy[b,j] x[b,j] r[b]
// Bindings: 0 params, 1 out (rw: y | dx | dg), 2 r (rw: written by forward),
//           3 a (x | dy | dy), 4 b (g | x | x), 5 c (— | g | —).
struct Params { rows: u32, cols: u32, eps: f32, _pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> r: array<f32>;
@group(0) @binding(3) var<storage, read> a: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read> c: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let row = id.x;
    if (row >= p.rows) { return; }
    var sq = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) { let v = a[row * p.cols + j]; sq = sq + v * v; }
    let rr = inverseSqrt(sq / f32(p.cols) + p.eps);
    for (var j = 0u; j < p.cols; j = j + 1u) { out[row * p.cols + j] = b[j] * a[row * p.cols + j] * rr; }
    r[row] = rr;
}

@compute @workgroup_size(64)
fn backward_input(@builtin(global_invocation_id) id: vec3<u32>) {
    let row = id.x;
    if (row >= p.rows) { return; }
    let rr = r[row];
    var m = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) { let i = row * p.cols + j; m = m + c[j] * a[i] * b[i]; }
    m = m / f32(p.cols);
    for (var j = 0u; j < p.cols; j = j + 1u) {
        let i = row * p.cols + j;
        out[i] = rr * (c[j] * a[i] - b[i] * rr * rr * m);
    }
}

@compute @workgroup_size(64)
fn backward_gain(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    if (j >= p.cols) { return; }
    var s = 0.0;
    for (var row = 0u; row < p.rows; row = row + 1u) { let i = row * p.cols + j; s = s + a[i] * b[i] * r[row]; }
    out[j] = s;
}
"#;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

/// One of the three kernels over `n` rows or columns.
fn kernel(
    gpu: &Gpu,
    entry: &'static str,
    (rows, cols): (usize, usize),
    tensors: &[&Tensor],
    n: usize,
) -> taskgrad::Result<Dispatch> {
    use Binding::*;
    let bindings = [Uniform, ReadWrite, ReadWrite, ReadOnly, ReadOnly, ReadOnly];
    let params = Params {
        rows: rows as u32,
        cols: cols as u32,
        eps: EPS,
        _pad: 0,
    };
    let grid = [n.div_ceil(64) as u32, 1, 1];
    RMSNORM_SHADER.record(
        gpu,
        entry,
        &bindings[..tensors.len() + 1],
        &[],
        &params,
        tensors,
        grid,
    )
}

// ANCHOR: rmsnorm_op
/// The op: forward now, its backward rule beside it.
fn rms_norm(tape: &mut Tape, x: Var, g: Var) -> taskgrad::Result<Var> {
    let gpu = tape.gpu;
    let (xv, gv) = (tape.value(x).clone(), tape.value(g).clone());
    let (rows, cols) = (xv.shape()[0], xv.shape()[1]);
    let y = Tensor::zeros(gpu, &[rows, cols], "rmsnorm")?;
    let r = Tensor::zeros(gpu, &[rows], "rmsnorm r")?;
    let fwd = kernel(gpu, "forward", (rows, cols), &[&y, &r, &xv, &gv], rows)?;
    let rule = move |t: &mut Tape, dy: &Tensor| -> taskgrad::Result<()> {
        let gpu = t.gpu;
        let shape = (rows, cols);
        t.contribute(x, |dx| {
            kernel(gpu, "backward_input", shape, &[dx, &r, dy, &xv, &gv], rows)
        })?;
        t.contribute(g, |dg| {
            kernel(gpu, "backward_gain", shape, &[dg, &r, dy, &xv], cols)
        })
    };
    Ok(tape.op("rmsnorm", &[x, g], y, vec![fwd], rule))
}
// ANCHOR_END: rmsnorm_op

/// The layer: a gain per column (ones at the start).
#[derive(Debug)]
struct RmsNorm {
    gain: ParamId,
    width: usize,
}

impl Layer for RmsNorm {
    fn forward(&self, tape: &mut Tape, params: &ParamSet, x: Var) -> taskgrad::Result<Var> {
        let g = params.var_f32(tape, self.gain)?;
        rms_norm(tape, x, g)
    }
    fn output(&self) -> usize {
        self.width
    }
    fn params(&self) -> Vec<ParamId> {
        vec![self.gain]
    }
}

static RMSNORM: LayerInfo = LayerInfo {
    name: "rmsnorm",
    summary: "rmsnorm — each row divided by its root mean square, times a learned gain",
    shader: Some(RMSNORM_SHADER),
    build: |arg, c: &mut LayerContext<'_>| {
        if let Some(a) = arg {
            return Err(taskgrad::Error::InvalidConfig(format!(
                "rmsnorm takes no argument, got rmsnorm:{a}"
            )));
        }
        let gain = c
            .params
            .add(&format!("{}.gain", c.name), &[c.input], vec![1.0; c.input])?;
        Ok(Box::new(RmsNorm {
            gain,
            width: c.input,
        }))
    },
};

/// The formula in f64: y, and L = Σ w ⊙ y for fixed weights w.
fn loss64(x: &[f64], g: &[f64], w: &[f64], rows: usize, cols: usize) -> f64 {
    let mut total = 0.0;
    for b in 0..rows {
        let row = &x[b * cols..(b + 1) * cols];
        let r = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / cols as f64 + EPS as f64).sqrt();
        for j in 0..cols {
            total += w[b * cols + j] * g[j] * row[j] * r;
        }
    }
    total
}

/// The kernels' gradients of L = Σ w ⊙ rmsnorm(x; g) against central differences.
fn check_gradients(gpu: &Gpu) -> taskgrad::Result<()> {
    let (rows, cols) = (5, 7);
    let mut rng = StdRng::seed_from_u64(3);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (x, g, w) = (draw(rows * cols), draw(cols), draw(rows * cols));
    let up = |v: &[f32], shape: &[usize]| Tensor::from_slice(gpu, shape, v, "check");
    let (xt, gt) = (up(&x, &[rows, cols])?, up(&g, &[cols])?);
    let (dxt, dgt) = (
        up(&vec![0.0; rows * cols], &[rows, cols])?,
        up(&vec![0.0; cols], &[cols])?,
    );
    let mut tape = Tape::new(gpu);
    let (xv, gv) = (tape.param(&xt, &dxt)?, tape.param(&gt, &dgt)?);
    let y = rms_norm(&mut tape, xv, gv)?;
    // dL/dy = w: start the backward pass at y with that seed.
    tape.backward_from(y, &up(&w, &[rows, cols])?)?;
    let all: Vec<&Dispatch> = tape.forward.iter().chain(&tape.backward).collect();
    gpu.run(&all)?;
    let got = gpu.read(&[&dxt, &dgt])?;
    let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
    let (x64, g64, w64) = (f64s(&x), f64s(&g), f64s(&w));
    let h = 1e-6;
    let mut worst = 0.0f64;
    for (which, base) in [(0usize, &x64), (1, &g64)] {
        for i in 0..base.len() {
            let (mut plus, mut minus) = (base.clone(), base.clone());
            plus[i] += h;
            minus[i] -= h;
            let l = |v: &[f64]| match which {
                0 => loss64(v, &g64, &w64, rows, cols),
                _ => loss64(&x64, v, &w64, rows, cols),
            };
            let fd = (l(&plus) - l(&minus)) / (2.0 * h);
            let err = (got[which][i] as f64 - fd).abs() / (1e-3 + fd.abs());
            worst = worst.max(err);
        }
    }
    println!("rmsnorm gradients against finite differences: worst relative error {worst:.2e}");
    assert!(
        worst < 2e-3,
        "the backward kernels disagree with the formula"
    );
    Ok(())
}

fn main() -> taskgrad::Result<()> {
    taskgrad::gpu::quiet_graphics_stack();
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.report);
    check_gradients(&gpu)?;

    // The one registration line: now "rmsnorm" works in `--trunk`, `--tower`,
    // configs and saved models.
    layer::register(&RMSNORM)?;

    let table = Table::from_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv"))?;
    let split = Split::new(table.n_rows(), 0.2, 0.2, 0)?;
    let tasks = [
        ("species", TaskType::CLASS),
        ("petal_length", TaskType::REG),
        ("petal_width", TaskType::REG),
    ];
    let data = Dataset::from_table(
        &table,
        &["sepal_length", "sepal_width"],
        &tasks,
        &split.train,
    )?;
    let cfg = TrainConfig {
        epochs: 60,
        trunk_layers: LayerSpec::parse_list("linear:32,relu,rmsnorm,linear:32,relu")?,
        ..Default::default()
    };
    let method = taskgrad::mtl::by_name("equal")?;
    let report = fit(&gpu, &data, &split, &[0, 1, 2], method, &cfg, &mut |_| {})?;
    let gains: Vec<&String> = report
        .params
        .names
        .iter()
        .filter(|n| n.ends_with(".gain"))
        .collect();
    println!(
        "trunk {:?}: parameters {gains:?}",
        report
            .net
            .spec
            .trunk_layers
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
    );
    let (first, last) = (
        &report.history[0].train_loss,
        &report.history.last().unwrap().train_loss,
    );
    println!("training losses: {first:.3?} in the first epoch, {last:.3?} in the last");
    for (t, m) in data.tasks.iter().zip(&report.test) {
        println!(
            "test {:<13} {} {:.3}",
            t.name,
            m.primary_metric().name,
            m.primary().0
        );
    }
    assert_eq!(gains.len(), 1, "the trunk has one RMSNorm");
    assert!(
        last.iter().zip(first).all(|(l, f)| l < f),
        "the losses did not fall"
    );
    Ok(())
}
