//! The book's exercises (docs/book/exercises/), each checked against a
//! reference the way taskgrad's own kernels are.
//!
//! Your versions are the `#[ignore]` tests; they fail until you solve them:
//!
//!     cargo test --release --test exercises -- --ignored
//!
//! The same checks run on the solutions (docs/book/exercises/solutions/) in
//! every test run, so the exercises and their checks cannot drift apart.

mod common;

use common::{random, rng};

/// The adapter for a learner's check (the `#[ignore]` tests): none is a
/// failure, never a silent pass, since a check that did not run proves nothing.
fn adapter_for_exercise() -> &'static Gpu {
    common::gpu().expect(
        "no GPU adapter was found, so this exercise's check did not run: install one \
         (for example lavapipe: apt-get install mesa-vulkan-drivers) and run it again",
    )
}
use taskgrad::gpu::{dispatch, Binding, Gpu, Tensor};

// ---- exercise 0 (chapter 0): reading a step's profile -----------------------------

#[path = "../docs/book/exercises/solutions/profile_table.rs"]
mod profile_solution;
#[path = "../docs/book/exercises/profile_table.rs"]
mod profile_stub;

/// (kernel, calls, total ms, share) per kernel, largest total first, equal
/// totals by name: computed here on its own, with a map.
fn profile_reference(step: &[(&str, f64)]) -> Vec<(String, usize, f64, f64)> {
    let mut table = std::collections::BTreeMap::<&str, (usize, f64)>::new();
    for &(k, ms) in step {
        let e = table.entry(k).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += ms;
    }
    let total: f64 = step.iter().map(|s| s.1).sum();
    let mut rows: Vec<_> = table
        .into_iter()
        .map(|(k, (c, t))| {
            (
                k.to_string(),
                c,
                t,
                if total > 0.0 { t / total } else { 0.0 },
            )
        })
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    rows
}

type ProfileTable<R> = fn(&[(&str, f64)]) -> Vec<R>;

/// Ok, or the first row that differs from the reference: on a W-iris step's
/// 19 dispatches in the order they run (the 14 products, the cross-entropy,
/// two MSEs, the loss tracking and Adam; times of the order `workloads --
/// W-iris --profile` shows on lavapipe), on two kernels of equal total, and
/// on an empty step.
fn check_profile<R>(
    file: &str,
    table: ProfileTable<R>,
    fields: fn(&R) -> (String, usize, f64, f64),
) -> Result<(), String> {
    let mm = "matmul.wgsl::matmul";
    let mut iris: Vec<(&str, f64)> = [0.31, 0.22, 0.05, 0.04, 0.05]
        .iter()
        .map(|&t| (mm, t))
        .collect();
    iris.extend([
        ("softmax_ce.wgsl::softmax_ce", 0.13),
        ("mse.wgsl::mse", 0.11),
        ("mse.wgsl::mse", 0.10),
    ]);
    iris.extend(
        [0.06, 0.05, 0.06, 0.05, 0.06, 0.05, 0.35, 0.41, 0.12]
            .iter()
            .map(|&t| (mm, t)),
    );
    iris.extend([
        ("loss_tracking.wgsl::track_losses", 0.08),
        ("optim.wgsl::adam", 0.16),
    ]);
    let tie = [("b.wgsl::b", 0.5), ("a.wgsl::a", 0.25), ("a.wgsl::a", 0.25)];
    for (what, step) in [
        ("a W-iris step", &iris[..]),
        ("a tie", &tie[..]),
        ("an empty step", &[][..]),
    ] {
        let want = profile_reference(step);
        let got: Vec<_> = table(step).iter().map(fields).collect();
        if got.len() != want.len() {
            return Err(format!(
                "{file}, {what}: {} rows, want {} (one per kernel)",
                got.len(),
                want.len()
            ));
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9;
            if g.0 != w.0 || g.1 != w.1 || !close(g.2, w.2) || !close(g.3, w.3) {
                return Err(format!("{file}, {what}: row {i} is {g:?}, want {w:?}"));
            }
        }
    }
    Ok(())
}

fn solution_fields(r: &profile_solution::KernelRow) -> (String, usize, f64, f64) {
    (r.kernel.clone(), r.calls, r.total_ms, r.share)
}

fn stub_fields(r: &profile_stub::KernelRow) -> (String, usize, f64, f64) {
    (r.kernel.clone(), r.calls, r.total_ms, r.share)
}

#[test]
#[ignore = "exercise 0 of the book: write by_kernel() in docs/book/exercises/profile_table.rs"]
fn exercise_0_profile_table() {
    check_profile(
        "exercise profile_table.rs",
        profile_stub::by_kernel,
        stub_fields,
    )
    .unwrap();
}

#[test]
fn exercise_0_solution_passes_the_check() {
    check_profile(
        "solution profile_table.rs",
        profile_solution::by_kernel,
        solution_fields,
    )
    .unwrap();
}

#[test]
fn exercise_0_stub_fails_the_check() {
    assert!(
        check_profile(
            "stub profile_table.rs",
            profile_stub::by_kernel,
            stub_fields
        )
        .is_err(),
        "the unsolved stub passes exercise 0's check"
    );
}

// ---- exercise 1 (chapter 1): leaky ReLU ---------------------------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LeakyParams {
    n: u32,
    alpha: f32,
}

/// Ok, or the first value that differs from the reference, or a write past n.
fn check_leaky_relu(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    let mut r = rng(1);
    // Awkward sizes: one value, a partial workgroup, several workgroups, and
    // more workgroups than one dimension of the grid holds (folded in two).
    let folded = gpu.limits.max_compute_workgroups_per_dimension as usize * 256 + 300;
    const SENTINEL: f32 = 7.0;
    for n in [1usize, 17, 255, 257, 1000, folded] {
        let xs = random(&mut r, n);
        let alpha = 0.1f32;
        let x = Tensor::from_slice(gpu, &[n], &xs, "x").unwrap();
        // y has room past n, filled with a value the kernel never writes
        // (|x| < 1): a missing guard or a skipped element shows.
        let y = Tensor::from_slice(gpu, &[n + 256], &vec![SENTINEL; n + 256], "y").unwrap();
        let d = dispatch::record(
            gpu,
            file,
            source,
            "leaky_relu",
            &[Binding::Uniform, Binding::ReadWrite, Binding::ReadOnly],
            &[],
            &LeakyParams { n: n as u32, alpha },
            &[&y, &x],
            dispatch::grid_1d(gpu, n).unwrap(),
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        let got = gpu.read_one(&y).unwrap();
        for (i, (&g, &v)) in got.iter().zip(&xs).enumerate() {
            let want = if v > 0.0 { v } else { alpha * v };
            if (g - want).abs() > 1e-7 {
                let what = if g == SENTINEL {
                    " (never written)"
                } else {
                    ""
                };
                return Err(format!(
                    "{file}, n = {n}: y[{i}] = {g}{what}, want {want} (x = {v})"
                ));
            }
        }
        if let Some(i) = got[n..].iter().position(|&g| g != SENTINEL) {
            return Err(format!(
                "{file}, n = {n}: y[{}] was written, past the end (n = {n}): a missing guard",
                n + i
            ));
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 1 of the book: write docs/book/exercises/leaky_relu.wgsl"]
fn exercise_1_leaky_relu() {
    let gpu = adapter_for_exercise();
    check_leaky_relu(
        gpu,
        "exercise leaky_relu.wgsl",
        include_str!("../docs/book/exercises/leaky_relu.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_1_solution_passes_the_check() {
    let gpu = gpu_or_skip!();
    check_leaky_relu(
        gpu,
        "solution leaky_relu.wgsl",
        include_str!("../docs/book/exercises/solutions/leaky_relu.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_1_stub_fails_the_check() {
    // The stub must fail until it is solved: a check that passes on it checks nothing.
    let gpu = gpu_or_skip!();
    let result = check_leaky_relu(
        gpu,
        "stub leaky_relu.wgsl",
        include_str!("../docs/book/exercises/leaky_relu.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 1's check"
    );
}

// ---- exercise 2 (chapter 2): a register-blocked matmul --------------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    k: u32,
    n: u32,
}

/// Ok, or the first element of C off the f64 product, or a write past C.
fn check_matmul2x2(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    let mut r = rng(2);
    const SENTINEL: f32 = 1e30;
    // Odd and even edges, a K of 1, sizes past one workgroup's 16×16 block.
    for (m, k, n) in [
        (1usize, 1usize, 1usize),
        (3, 5, 7),
        (2, 1, 2),
        (17, 33, 9),
        (16, 16, 16),
        (65, 3, 129),
    ] {
        let (av, bv) = (random(&mut r, m * k), random(&mut r, k * n));
        let a = Tensor::from_slice(gpu, &[m * k], &av, "A").unwrap();
        let b = Tensor::from_slice(gpu, &[k * n], &bv, "B").unwrap();
        // C has room past M×N, filled with a marker: a missing edge guard shows.
        let c = Tensor::from_slice(gpu, &[m * n + 64], &vec![SENTINEL; m * n + 64], "C").unwrap();
        let d = dispatch::record(
            gpu,
            file,
            source,
            "matmul2x2",
            &[
                Binding::Uniform,
                Binding::ReadWrite,
                Binding::ReadOnly,
                Binding::ReadOnly,
            ],
            &[],
            &MatmulParams {
                m: m as u32,
                k: k as u32,
                n: n as u32,
            },
            &[&c, &a, &b],
            [n.div_ceil(16) as u32, m.div_ceil(16) as u32, 1],
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        let got = gpu.read_one(&c).unwrap();
        for row in 0..m {
            for col in 0..n {
                let want: f64 = (0..k)
                    .map(|i| av[row * k + i] as f64 * bv[i * n + col] as f64)
                    .sum();
                let g = got[row * n + col];
                if (g as f64 - want).abs().is_nan()
                    || (g as f64 - want).abs() > 1e-5 * (k as f64).max(1.0)
                {
                    return Err(format!(
                        "{file}, {m}×{k} · {k}×{n}: C[{row}, {col}] = {g}, want {want}"
                    ));
                }
            }
        }
        if let Some(i) = got[m * n..].iter().position(|&g| g != SENTINEL) {
            return Err(format!(
                "{file}, {m}×{k} · {k}×{n}: C was written past its end (at {}): an edge guard is missing",
                m * n + i
            ));
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 2 of the book: write the 2x2 block in docs/book/exercises/matmul2x2.wgsl"]
fn exercise_2_matmul2x2() {
    let gpu = adapter_for_exercise();
    check_matmul2x2(
        gpu,
        "exercise matmul2x2.wgsl",
        include_str!("../docs/book/exercises/matmul2x2.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_2_solution_passes_the_check() {
    let gpu = gpu_or_skip!();
    check_matmul2x2(
        gpu,
        "solution matmul2x2.wgsl",
        include_str!("../docs/book/exercises/solutions/matmul2x2.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_2_stub_fails_the_check() {
    let gpu = gpu_or_skip!();
    let result = check_matmul2x2(
        gpu,
        "stub matmul2x2.wgsl",
        include_str!("../docs/book/exercises/matmul2x2.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 2's check"
    );
}

// ---- exercise 3 (chapter 3): a row sum by a tree in workgroup memory ----------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowSumParams {
    m: u32,
    n: u32,
}

/// Ok, or the first row whose sum is off (against f64), or a second run
/// whose bits differ from the first (a fixed order gives the same bits).
fn check_row_sum(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    let mut r = rng(3);
    // Awkward widths: one value, just under, at and over one workgroup's 64,
    // and many chunks per invocation.
    for (m, n) in [
        (1usize, 1usize),
        (3, 63),
        (2, 64),
        (5, 65),
        (4, 1000),
        (2, 4099),
    ] {
        let xs = random(&mut r, m * n);
        let x = Tensor::from_slice(gpu, &[m * n], &xs, "x").unwrap();
        let out = Tensor::zeros(gpu, &[m], "row sums").unwrap();
        let d = dispatch::record(
            gpu,
            file,
            source,
            "row_sum",
            &[Binding::Uniform, Binding::ReadWrite, Binding::ReadOnly],
            &[],
            &RowSumParams {
                m: m as u32,
                n: n as u32,
            },
            &[&out, &x],
            [m as u32, 1, 1],
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        let first = gpu.read_one(&out).unwrap();
        gpu.run(&[&d]).unwrap();
        let second = gpu.read_one(&out).unwrap();
        for (row, &g) in first.iter().enumerate() {
            let vals = &xs[row * n..(row + 1) * n];
            let want: f64 = vals.iter().map(|&v| v as f64).sum();
            // f32 rounding of n additions: far inside 1e-5 of the sum of |x|.
            let tol = 1e-5 * vals.iter().map(|v| v.abs() as f64).sum::<f64>();
            if !(g.is_finite() && (g as f64 - want).abs() <= tol) {
                return Err(format!(
                    "{file}, {m}×{n}: row {row} sums to {g}, want {want}"
                ));
            }
        }
        if first
            .iter()
            .map(|v| v.to_bits())
            .ne(second.iter().map(|v| v.to_bits()))
        {
            return Err(format!(
                "{file}, {m}×{n}: a second run gave other bits ({first:?} then {second:?})"
            ));
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 3 of the book: write the tree in docs/book/exercises/row_sum.wgsl"]
fn exercise_3_row_sum() {
    let gpu = adapter_for_exercise();
    check_row_sum(
        gpu,
        "exercise row_sum.wgsl",
        include_str!("../docs/book/exercises/row_sum.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_3_solution_passes_the_check() {
    let gpu = gpu_or_skip!();
    check_row_sum(
        gpu,
        "solution row_sum.wgsl",
        include_str!("../docs/book/exercises/solutions/row_sum.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_3_stub_fails_the_check() {
    let gpu = gpu_or_skip!();
    let result = check_row_sum(
        gpu,
        "stub row_sum.wgsl",
        include_str!("../docs/book/exercises/row_sum.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 3's check"
    );
}

// ---- exercise 4 (chapter 4): a fused masked MSE ------------------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MseParams {
    b: u32,
    seed: f32,
}

/// seed · (masked MSE) in f64: the function whose gradient the kernel writes.
fn weighted_mse(pred: &[f64], y: &[f32], mask: &[f32], seed: f64) -> f64 {
    let rows = (0..pred.len()).filter(|&r| mask[r] > 0.0);
    let n = rows.clone().count();
    if n == 0 {
        return 0.0;
    }
    seed * rows.map(|r| (pred[r] - y[r] as f64).powi(2)).sum::<f64>() / n as f64
}

/// Ok, or the loss off the f64 reference, or a gradient off central finite
/// differences of seed · loss, or a row left unwritten.
fn check_mse(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    let mut r = rng(4);
    const SENTINEL: f32 = 7.0;
    for (b, labelled) in [
        (1usize, 1.0f32),
        (7, 0.7),
        (64, 0.7),
        (65, 0.5),
        (300, 0.8),
        (5, 0.0),
    ] {
        let (pv, yv) = (random(&mut r, b), random(&mut r, b));
        // A row is labelled with probability `labelled` (never, in the last batch).
        let mv: Vec<f32> = random(&mut r, b)
            .iter()
            .map(|u| if (u + 1.0) / 2.0 < labelled { 1.0 } else { 0.0 })
            .collect();
        let seed = 0.75f32;
        let t = |v: &[f32], name| Tensor::from_slice(gpu, &[b], v, name).unwrap();
        let (pred, y, mask) = (t(&pv, "pred"), t(&yv, "y"), t(&mv, "mask"));
        let loss = Tensor::from_slice(gpu, &[1], &[SENTINEL], "loss").unwrap();
        let grad = t(&vec![SENTINEL; b], "grad");
        let d = dispatch::record(
            gpu,
            file,
            source,
            "mse",
            &[
                Binding::Uniform,
                Binding::ReadWrite,
                Binding::ReadWrite,
                Binding::ReadOnly,
                Binding::ReadOnly,
                Binding::ReadOnly,
            ],
            &[],
            &MseParams { b: b as u32, seed },
            &[&loss, &grad, &pred, &y, &mask],
            [1, 1, 1],
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        let got = gpu.read(&[&loss, &grad]).unwrap();
        let p64: Vec<f64> = pv.iter().map(|&v| v as f64).collect();
        let want = weighted_mse(&p64, &yv, &mv, 1.0);
        let l = got[0][0] as f64;
        if !l.is_finite() || (l - want).abs() > 1e-5 * want.max(1e-3) {
            return Err(format!("{file}, B = {b}: loss {l}, want {want}"));
        }
        let h = 1e-4;
        for (row, &g) in got[1].iter().enumerate() {
            let mut at = p64.clone();
            at[row] += h;
            let up = weighted_mse(&at, &yv, &mv, seed as f64);
            at[row] -= 2.0 * h;
            let down = weighted_mse(&at, &yv, &mv, seed as f64);
            let fd = (up - down) / (2.0 * h);
            if !(g.is_finite() && (g as f64 - fd).abs() <= 1e-5 + 1e-4 * fd.abs()) {
                let what = if g == SENTINEL {
                    " (never written)"
                } else {
                    ""
                };
                return Err(format!(
                    "{file}, B = {b}: grad[{row}] = {g}{what}, finite differences {fd} (mask {})",
                    mv[row]
                ));
            }
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 4 of the book: write the row loops of docs/book/exercises/mse.wgsl"]
fn exercise_4_mse() {
    let gpu = adapter_for_exercise();
    check_mse(
        gpu,
        "exercise mse.wgsl",
        include_str!("../docs/book/exercises/mse.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_4_solution_passes_the_gradient_check() {
    let gpu = gpu_or_skip!();
    check_mse(
        gpu,
        "solution mse.wgsl",
        include_str!("../docs/book/exercises/solutions/mse.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_4_stub_fails_the_gradient_check() {
    let gpu = gpu_or_skip!();
    let result = check_mse(
        gpu,
        "stub mse.wgsl",
        include_str!("../docs/book/exercises/mse.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 4's check"
    );
}

// ---- exercise 5 (chapter 5): softplus, forward and backward ---------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NParams {
    n: u32,
}

fn run(
    gpu: &Gpu,
    file: &'static str,
    source: &'static str,
    entry: &'static str,
    inputs: &[&[f32]],
) -> Vec<f32> {
    let n = inputs[0].len();
    let ins: Vec<Tensor> = inputs
        .iter()
        .map(|v| Tensor::from_slice(gpu, &[n], v, "input").unwrap())
        .collect();
    let out = Tensor::zeros(gpu, &[n], "output").unwrap();
    let mut tensors = vec![&out];
    tensors.extend(ins.iter());
    let mut bindings = vec![Binding::Uniform, Binding::ReadWrite];
    bindings.extend(ins.iter().map(|_| Binding::ReadOnly));
    let d = dispatch::record(
        gpu,
        file,
        source,
        entry,
        &bindings,
        &[],
        &NParams { n: n as u32 },
        &tensors,
        dispatch::grid_1d(gpu, n).unwrap(),
    )
    .unwrap();
    gpu.run(&[&d]).unwrap();
    gpu.read_one(&out).unwrap()
}

fn softplus64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Ok, or the first value that differs from the reference or from finite differences.
fn check_softplus(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    let mut r = rng(2);
    let mut xs: Vec<f32> = random(&mut r, 300).iter().map(|v| 8.0 * v).collect();
    xs.extend([-90.0, -30.0, -17.0, -16.0, -12.0, 0.0, 30.0, 90.0]);
    // Forward against the f64 reference, relatively: softplus(−16) is
    // 1.1e-7, which an absolute tolerance would let a formula that loses
    // every digit there pass (f32's normal range ends near 1e-38).
    let y = run(gpu, file, source, "softplus", &[&xs]);
    for (&g, &x) in y.iter().zip(&xs) {
        let want = softplus64(x as f64);
        let tol = 1e-5 * want.abs() + 1e-38;
        if !(g.is_finite() && (g as f64 - want).abs() <= tol) {
            return Err(format!("{file}: softplus({x}) = {g}, want {want}"));
        }
    }
    // Backward against central finite differences of the reference (f64):
    // dx = dy · (f(x + h) − f(x − h)) / 2h.
    let dy = random(&mut r, xs.len());
    let dx = run(gpu, file, source, "softplus_backward", &[&dy, &xs]);
    let h = 1e-5;
    for ((&g, &x), &d) in dx.iter().zip(&xs).zip(&dy) {
        let x = x as f64;
        let fd = d as f64 * (softplus64(x + h) - softplus64(x - h)) / (2.0 * h);
        if !(g.is_finite() && (g as f64 - fd).abs() <= 1e-5 + 1e-4 * fd.abs()) {
            return Err(format!(
                "{file}: backward at x = {x}, dy = {d}: {g}, finite differences {fd}"
            ));
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 5 of the book: write docs/book/exercises/softplus.wgsl"]
fn exercise_5_softplus() {
    let gpu = adapter_for_exercise();
    check_softplus(
        gpu,
        "exercise softplus.wgsl",
        include_str!("../docs/book/exercises/softplus.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_5_solution_passes_the_gradient_check() {
    let gpu = gpu_or_skip!();
    check_softplus(
        gpu,
        "solution softplus.wgsl",
        include_str!("../docs/book/exercises/solutions/softplus.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_5_stub_fails_the_gradient_check() {
    let gpu = gpu_or_skip!();
    let result = check_softplus(
        gpu,
        "stub softplus.wgsl",
        include_str!("../docs/book/exercises/softplus.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 5's check"
    );
}

// ---- exercise 6 (chapter 6): combining the per-task gradients ----------------

/// Ok, or the first column of d off the f64 combination.
fn check_combine(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    let mut r = rng(6);
    for (k, p) in [(1usize, 1usize), (2, 255), (3, 257), (5, 1000), (8, 3001)] {
        let js = random(&mut r, k * p);
        // Weights of mixed signs and sizes, as a method's can be.
        let ws: Vec<f32> = random(&mut r, k).iter().map(|v| 2.0 * v).collect();
        let jac = Tensor::from_slice(gpu, &[k * p], &js, "J").unwrap();
        let w = Tensor::from_slice(gpu, &[k], &ws, "w").unwrap();
        let d = Tensor::from_slice(gpu, &[p], &vec![f32::NAN; p], "d").unwrap();
        let dispatch = dispatch::record(
            gpu,
            file,
            source,
            "combine",
            &[
                Binding::Uniform,
                Binding::ReadWrite,
                Binding::ReadOnly,
                Binding::ReadOnly,
            ],
            &[],
            &GramParams {
                k: k as u32,
                p: p as u32,
            },
            &[&d, &jac, &w],
            dispatch::grid_1d(gpu, p).unwrap(),
        )
        .unwrap();
        gpu.run(&[&dispatch]).unwrap();
        let got = gpu.read_one(&d).unwrap();
        for (c, &g) in got.iter().enumerate() {
            let terms = (0..k).map(|i| ws[i] as f64 * js[i * p + c] as f64);
            let want: f64 = terms.clone().sum();
            let tol = 1e-6 * terms.map(f64::abs).sum::<f64>().max(1e-6);
            if !(g.is_finite() && (g as f64 - want).abs() <= tol) {
                return Err(format!(
                    "{file}, K = {k}, P = {p}: d[{c}] = {g}, want {want}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 6 of the book: write the sum in docs/book/exercises/combine.wgsl"]
fn exercise_6_combine() {
    let gpu = adapter_for_exercise();
    check_combine(
        gpu,
        "exercise combine.wgsl",
        include_str!("../docs/book/exercises/combine.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_6_solution_passes_the_check() {
    let gpu = gpu_or_skip!();
    check_combine(
        gpu,
        "solution combine.wgsl",
        include_str!("../docs/book/exercises/solutions/combine.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_6_stub_fails_the_check() {
    let gpu = gpu_or_skip!();
    let result = check_combine(
        gpu,
        "stub combine.wgsl",
        include_str!("../docs/book/exercises/combine.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 6's check"
    );
}

// ---- exercise 7 (chapter 7): the Gram matrix ------------------------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GramParams {
    k: u32,
    p: u32,
}

/// Ok, or the first entry off the f64 Gram matrix, or an entry whose mirror
/// differs in any bit.
fn check_gram(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    let mut r = rng(7);
    for (k, p) in [(1usize, 1usize), (2, 63), (3, 65), (5, 1000), (4, 4097)] {
        let js = random(&mut r, k * p);
        let jac = Tensor::from_slice(gpu, &[k * p], &js, "J").unwrap();
        let g = Tensor::zeros(gpu, &[k * k], "G").unwrap();
        let d = dispatch::record(
            gpu,
            file,
            source,
            "gram",
            &[Binding::Uniform, Binding::ReadWrite, Binding::ReadOnly],
            &[],
            &GramParams {
                k: k as u32,
                p: p as u32,
            },
            &[&g, &jac],
            [k as u32, k as u32, 1],
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        let got = gpu.read_one(&g).unwrap();
        let row = |i: usize| &js[i * p..(i + 1) * p];
        for i in 0..k {
            for j in 0..k {
                let pairs = row(i).iter().zip(row(j));
                let want: f64 = pairs.clone().map(|(&a, &b)| a as f64 * b as f64).sum();
                let tol = 1e-5 * pairs.map(|(a, b)| (a * b).abs() as f64).sum::<f64>();
                let v = got[i * k + j];
                if !(v.is_finite() && (v as f64 - want).abs() <= tol) {
                    return Err(format!(
                        "{file}, K = {k}, P = {p}: G[{i}, {j}] = {v}, want {want}"
                    ));
                }
                if v.to_bits() != got[j * k + i].to_bits() {
                    return Err(format!(
                        "{file}, K = {k}, P = {p}: G[{i}, {j}] = {v} but G[{j}, {i}] = {}",
                        got[j * k + i]
                    ));
                }
            }
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 7 of the book: write stage 1 of docs/book/exercises/gram.wgsl"]
fn exercise_7_gram() {
    let gpu = adapter_for_exercise();
    check_gram(
        gpu,
        "exercise gram.wgsl",
        include_str!("../docs/book/exercises/gram.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_7_solution_passes_the_check() {
    let gpu = gpu_or_skip!();
    check_gram(
        gpu,
        "solution gram.wgsl",
        include_str!("../docs/book/exercises/solutions/gram.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_7_stub_fails_the_check() {
    let gpu = gpu_or_skip!();
    let result = check_gram(
        gpu,
        "stub gram.wgsl",
        include_str!("../docs/book/exercises/gram.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 7's check"
    );
}

// ---- exercise 8 (chapter 8): MGDA for two tasks from the Gram matrix ----------

/// MGDA's α for two tasks, in f64: clip((G22 − G12) / (G11 + G22 − 2 G12)), ½ when g1 = g2.
fn mgda2_alpha(g11: f64, g12: f64, g22: f64) -> f64 {
    let denom = g11 + g22 - 2.0 * g12;
    if denom <= 1e-6 * (g11 + g22) {
        0.5
    } else {
        ((g22 - g12) / denom).clamp(0.0, 1.0)
    }
}

/// Ok, or the first matrix whose weights are off, or whose unclipped
/// direction does not improve both tasks alike (g1·d = g2·d).
fn check_mgda2(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    let mut r = rng(8);
    // Pairs of 3-vectors: random at scales 1e-3 to 1e3, and the edge cases.
    let mut pairs: Vec<([f64; 3], [f64; 3], &str)> = Vec::new();
    for i in 0..300 {
        let s = 10f64.powi(i % 7 - 3);
        let v = random(&mut r, 6);
        let a = [v[0] as f64 * s, v[1] as f64 * s, v[2] as f64 * s];
        let b = [v[3] as f64 * s, v[4] as f64 * s, v[5] as f64 * s];
        pairs.push((a, b, "random"));
    }
    let a = [0.5, -1.0, 2.0];
    pairs.extend([
        (a, a, "the same gradient twice (α = ½)"),
        ([0.0; 3], a, "g1 = 0 (α = 1: d = 0)"),
        (a, [0.0; 3], "g2 = 0 (α = 0: d = 0)"),
        (a, [-0.5, 1.0, -2.0], "opposite gradients (α = ½: d = 0)"),
        (a, [1.0, -2.0, 4.0], "g2 = 2 g1 (clipped to α = 1)"),
        (a, [2.0, 1.0, 0.0], "orthogonal gradients"),
    ]);
    let dot = |x: &[f64; 3], y: &[f64; 3]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    let grams: Vec<[f64; 3]> = pairs
        .iter()
        .map(|(a, b, _)| [dot(a, a), dot(a, b), dot(b, b)])
        .collect();
    let flat: Vec<f32> = grams
        .iter()
        .flat_map(|&[g11, g12, g22]| [g11 as f32, g12 as f32, g12 as f32, g22 as f32])
        .collect();
    let n = pairs.len();
    let g = Tensor::from_slice(gpu, &[4 * n], &flat, "Gram matrices").unwrap();
    let w = Tensor::zeros(gpu, &[2 * n], "weights").unwrap();
    let d = dispatch::record(
        gpu,
        file,
        source,
        "mgda2",
        &[Binding::Uniform, Binding::ReadWrite, Binding::ReadOnly],
        &[],
        &NParams { n: n as u32 },
        &[&w, &g],
        dispatch::grid_1d(gpu, n).unwrap(),
    )
    .unwrap();
    gpu.run(&[&d]).unwrap();
    let got = gpu.read_one(&w).unwrap();
    for (i, ((_, _, what), &[g11, g12, g22])) in pairs.iter().zip(&grams).enumerate() {
        // The reference from the f32 matrix the kernel saw.
        let [f11, f12, f22] = [g11, g12, g22].map(|v| v as f32 as f64);
        let alpha = mgda2_alpha(f11, f12, f22);
        let (w1, w2) = (got[2 * i] as f64, got[2 * i + 1] as f64);
        if !((w1 - alpha).abs() <= 1e-4 && (w2 - (1.0 - alpha)).abs() <= 1e-4) {
            return Err(format!(
                "{file}: {what} (G11 {g11:.3e}, G12 {g12:.3e}, G22 {g22:.3e}): weights ({w1}, {w2}), want ({alpha}, {})",
                1.0 - alpha
            ));
        }
        // Inside the segment, d = w1 g1 + w2 g2 is orthogonal to g1 − g2:
        // both tasks improve by the same first-order amount.
        if alpha > 1e-3 && alpha < 1.0 - 1e-3 {
            let (t1, t2) = (w1 * g11 + w2 * g12, w1 * g12 + w2 * g22);
            if (t1 - t2).abs() > 1e-3 * (g11 + g22) {
                return Err(format!("{file}: {what}: g1·d = {t1}, g2·d = {t2}"));
            }
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 8 of the book: write the solve in docs/book/exercises/mgda2.wgsl"]
fn exercise_8_mgda2() {
    let gpu = adapter_for_exercise();
    check_mgda2(
        gpu,
        "exercise mgda2.wgsl",
        include_str!("../docs/book/exercises/mgda2.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_8_solution_passes_the_check() {
    let gpu = gpu_or_skip!();
    check_mgda2(
        gpu,
        "solution mgda2.wgsl",
        include_str!("../docs/book/exercises/solutions/mgda2.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_8_stub_fails_the_check() {
    let gpu = gpu_or_skip!();
    let result = check_mgda2(
        gpu,
        "stub mgda2.wgsl",
        include_str!("../docs/book/exercises/mgda2.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 8's check"
    );
}

// ---- exercise 9 (chapter 9): MGDA for K tasks by Frank–Wolfe -------------------

/// Ok, or weights off the simplex, or a min-norm objective wᵀGw further from
/// the exact optimum (taskgrad's MGDA reference, an active-set QP in f64)
/// than 5e-3 of the largest squared norm. Frank–Wolfe closes the gap like
/// 1/t (worst case here 2.5e-3 of the scale after 250 iterations, 7e-4
/// after 1,000), which is why taskgrad's own solve is the exact active-set one.
fn check_mgda_fw(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    let mut r = rng(9);
    for k in [2usize, 3, 5, 8] {
        // Gram matrices of K random gradients in 2 to 20 dimensions (fewer
        // dimensions than tasks: 0 may lie in the hull), at several scales,
        // and one of the same gradient K times.
        let mut grams: Vec<Vec<f64>> = Vec::new();
        for i in 0..60 {
            let dims = [2usize, 5, 20][i % 3];
            let scale = 10f64.powi((i % 5) as i32 - 2);
            let jac: Vec<f64> = random(&mut r, k * dims)
                .iter()
                .map(|&v| v as f64 * scale)
                .collect();
            let row = |a: usize| &jac[a * dims..(a + 1) * dims];
            grams.push(
                (0..k * k)
                    .map(|ij| {
                        row(ij / k)
                            .iter()
                            .zip(row(ij % k))
                            .map(|(x, y)| x * y)
                            .sum()
                    })
                    .collect(),
            );
        }
        grams.push(vec![2.0; k * k]);
        let n = grams.len();
        let flat: Vec<f32> = grams.iter().flatten().map(|&v| v as f32).collect();
        let g = Tensor::from_slice(gpu, &[n * k * k], &flat, "Gram matrices").unwrap();
        let w = Tensor::zeros(gpu, &[n * k], "weights").unwrap();
        let d = dispatch::record(
            gpu,
            file,
            source,
            "mgda_fw",
            &[Binding::Uniform, Binding::ReadWrite, Binding::ReadOnly],
            &[],
            &GramParams {
                k: k as u32,
                p: n as u32,
            },
            &[&w, &g],
            [n.div_ceil(64) as u32, 1, 1],
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        let got = gpu.read_one(&w).unwrap();
        for (i, gm) in grams.iter().enumerate() {
            // The objective in f64 on the f32 matrix the kernel saw.
            let gm: Vec<f64> = gm.iter().map(|&v| v as f32 as f64).collect();
            let f =
                |w: &[f64]| -> f64 { (0..k * k).map(|ij| w[ij / k] * gm[ij] * w[ij % k]).sum() };
            let wv: Vec<f64> = got[i * k..(i + 1) * k].iter().map(|&v| v as f64).collect();
            if wv.iter().any(|&v| v.is_nan() || v < -1e-6)
                || (wv.iter().sum::<f64>() - 1.0).abs() > 1e-4
            {
                return Err(format!(
                    "{file}, K = {k}, matrix {i}: weights {wv:?} are off the simplex"
                ));
            }
            let best = f(&taskgrad::mtl::mgda::reference(&gm, k));
            let scale = (0..k).map(|j| gm[j * k + j]).fold(0.0, f64::max);
            if f(&wv) - best > 5e-3 * scale {
                return Err(format!(
                    "{file}, K = {k}, matrix {i}: wᵀGw = {:.6e} with weights {wv:?}, the minimum is {best:.6e}",
                    f(&wv)
                ));
            }
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 9 of the book: write the iterations in docs/book/exercises/mgda_fw.wgsl"]
fn exercise_9_mgda_fw() {
    let gpu = adapter_for_exercise();
    check_mgda_fw(
        gpu,
        "exercise mgda_fw.wgsl",
        include_str!("../docs/book/exercises/mgda_fw.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_9_solution_passes_the_check() {
    let gpu = gpu_or_skip!();
    check_mgda_fw(
        gpu,
        "solution mgda_fw.wgsl",
        include_str!("../docs/book/exercises/solutions/mgda_fw.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_9_stub_fails_the_check() {
    let gpu = gpu_or_skip!();
    let result = check_mgda_fw(
        gpu,
        "stub mgda_fw.wgsl",
        include_str!("../docs/book/exercises/mgda_fw.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 9's check"
    );
}

// ---- exercise 10 (chapter 10): paired differences over seeds ------------------

#[path = "../docs/book/exercises/solutions/paired.rs"]
mod paired_solution;
#[path = "../docs/book/exercises/paired.rs"]
mod paired_stub;

/// Ok, or an interval other than the paired t interval, computed here on
/// its own: on chapter 10's Iris numbers, and on seeds whose shared
/// difficulty swamps a constant difference (which pairing must see exactly).
type Interval = fn(&[f64], &[f64]) -> (f64, f64, f64);

fn check_paired(file: &str, paired: Interval) -> Result<(), String> {
    // Δm% per seed on Iris (chapter 10's table): equal weights and PCGrad.
    let equal = [-15.8, 6.7, 0.5, 2.7, -4.8];
    let pcgrad = [-8.2, 4.6, 1.0, 3.7, -3.6];
    // Seeds of very different difficulty, B better than A by 0.5 on each.
    let hard = [10.0, 40.0, 5.0, 80.0, 20.0, 60.0];
    let easier: Vec<f64> = hard.iter().map(|x| x - 0.5).collect();
    let cases: [(&str, &[f64], &[f64]); 3] = [
        ("equal − PCGrad on Iris", &equal, &pcgrad),
        ("a constant difference of 0.5", &hard, &easier),
        ("two seeds", &[1.0, 2.0], &[0.5, 2.5]),
    ];
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    for (what, a, b) in cases {
        let n = a.len();
        let d: Vec<f64> = a.iter().zip(b.iter()).map(|(x, y)| x - y).collect();
        let mean = d.iter().sum::<f64>() / n as f64;
        let sd = (d.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n as f64 - 1.0)).sqrt();
        let half = T[n - 2] * sd / (n as f64).sqrt();
        let (m, lo, hi) = paired(a, b);
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * (1.0 + y.abs());
        if !(close(m, mean) && close(lo, mean - half) && close(hi, mean + half)) {
            return Err(format!(
                "{file}, {what}: ({m:.4}, [{lo:.4}, {hi:.4}]), want ({mean:.4}, [{:.4}, {:.4}])",
                mean - half,
                mean + half
            ));
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 10 of the book: write paired() in docs/book/exercises/paired.rs"]
fn exercise_10_paired() {
    check_paired("exercise paired.rs", paired_stub::paired).unwrap();
}

#[test]
fn exercise_10_solution_passes_the_check() {
    check_paired("solution paired.rs", paired_solution::paired).unwrap();
}

#[test]
fn exercise_10_stub_fails_the_check() {
    assert!(
        check_paired("stub paired.rs", paired_stub::paired).is_err(),
        "the unsolved stub passes exercise 10's check"
    );
}

// ---- exercise 11 (chapter 11): a task kind of your own ---------------------------

#[path = "../docs/book/exercises/solutions/mae_kind.rs"]
mod mae_solution;
#[path = "../docs/book/exercises/mae_kind.rs"]
mod mae_stub;

type MaeDispatch = fn(
    &Gpu,
    &Tensor,
    &Tensor,
    taskgrad::task::LossInputs<'_>,
) -> taskgrad::Result<taskgrad::gpu::Dispatch>;

/// Ok, or where the kind goes wrong: its kernel against the formula in f64
/// (more rows than the workgroup, masked rows, errors of both signs), then
/// the kind trained on Iris beside the species, whose MAE must fall.
fn check_mae_kind(
    gpu: &Gpu,
    file: &str,
    kernel: MaeDispatch,
    info: &'static taskgrad::task::KindInfo,
) -> Result<(), String> {
    use taskgrad::data::{Dataset, Split, Table, TaskType};
    use taskgrad::task::LossInputs;
    let err = |e: taskgrad::Error| format!("{file}: {e}");
    let mut r = rng(11);
    let rows = 300;
    let pred = random(&mut r, rows);
    let target = random(&mut r, rows);
    let mask: Vec<f32> = (0..rows)
        .map(|i| if i % 7 == 3 { 0.0 } else { 1.0 })
        .collect();
    let seed = 0.75f32;
    let t = |v: &[f32], shape: &[usize]| Tensor::from_slice(gpu, shape, v, "check").map_err(err);
    let (p, y, m) = (
        t(&pred, &[rows, 1])?,
        t(&target, &[rows])?,
        t(&mask, &[rows])?,
    );
    let (seeds, losses) = (t(&[0.0, seed], &[2])?, t(&[0.0, 0.0], &[2])?);
    let dpred = t(&vec![9.0; rows], &[rows, 1])?;
    let batch = LossInputs {
        target: &y,
        mask: &m,
        seeds: &seeds,
        losses: &losses,
        slot: 1,
    };
    let d = kernel(gpu, &p, &dpred, batch).map_err(err)?;
    gpu.run(&[&d]).map_err(err)?;
    let got = gpu.read(&[&losses, &dpred]).map_err(err)?;
    let n = mask.iter().filter(|&&v| v > 0.5).count() as f64;
    let mut want_loss = 0.0;
    for i in 0..rows {
        let e = (pred[i] - target[i]) as f64;
        let valid = mask[i] > 0.5;
        if valid {
            want_loss += e.abs() / n;
        }
        let want = if valid {
            e.signum() * seed as f64 / n
        } else {
            0.0
        };
        if (got[1][i] as f64 - want).abs() > 1e-7 {
            return Err(format!(
                "{file}: dpred[{i}] = {}, want {want:.6e} (e = {e:.4}, {})",
                got[1][i],
                if valid { "valid" } else { "masked" }
            ));
        }
    }
    if (got[0][1] as f64 - want_loss).abs() > 1e-5 * (1.0 + want_loss) {
        return Err(format!("{file}: loss {}, want {want_loss:.6}", got[0][1]));
    }
    // Trained: petal length as this kind, beside the species.
    let table =
        Table::from_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv")).map_err(err)?;
    let split = Split::new(table.n_rows(), 0.2, 0.2, 0).map_err(err)?;
    let tasks = [
        ("species", TaskType::CLASS),
        ("petal_length", TaskType(info)),
    ];
    let data = Dataset::from_table(
        &table,
        &["sepal_length", "sepal_width"],
        &tasks,
        &split.train,
    )
    .map_err(err)?;
    let cfg = taskgrad::train::TrainConfig {
        epochs: 30,
        ..Default::default()
    };
    let method = taskgrad::mtl::by_name("equal").map_err(err)?;
    let report = taskgrad::train::fit(gpu, &data, &split, &[0, 1], method, &cfg, &mut |_| {})
        .map_err(err)?;
    let (first, last) = match (report.history.first(), report.history.last()) {
        (Some(a), Some(b)) => (a.train_loss[1], b.train_loss[1]),
        _ => return Err(format!("{file}: no epoch was trained")),
    };
    if last.is_nan() || last >= 0.8 * first {
        return Err(format!(
            "{file}: petal length's MAE went from {first:.4} to {last:.4} in {} epochs: it should fall",
            report.history.len()
        ));
    }
    Ok(())
}

#[test]
#[ignore = "exercise 11 of the book: write the MAE kind in docs/book/exercises/mae_kind.rs"]
fn exercise_11_mae_kind() {
    let gpu = adapter_for_exercise();
    check_mae_kind(
        gpu,
        "exercise mae_kind.rs",
        mae_stub::mae_dispatch,
        &mae_stub::MAE,
    )
    .unwrap();
}

#[test]
fn exercise_11_solution_passes_the_check() {
    let gpu = gpu_or_skip!();
    let kernel = mae_solution::mae_dispatch;
    check_mae_kind(gpu, "solution mae_kind.rs", kernel, &mae_solution::MAE).unwrap();
}

#[test]
fn exercise_11_stub_fails_the_check() {
    let gpu = gpu_or_skip!();
    let result = check_mae_kind(
        gpu,
        "stub mae_kind.rs",
        mae_stub::mae_dispatch,
        &mae_stub::MAE,
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 11's check"
    );
}

/// The stub's kernel right and its loss still off the tape: the training
/// half of the check must catch that alone.
#[test]
fn exercise_11_check_catches_a_kind_whose_loss_is_not_on_the_tape() {
    let gpu = gpu_or_skip!();
    let result = check_mae_kind(
        gpu,
        "half-solved",
        mae_solution::mae_dispatch,
        &mae_stub::MAE,
    );
    let message = result.expect_err("a kind without its loss passes exercise 11's check");
    assert!(message.contains("not on the tape"), "{message}");
}

// ---- exercise 12 (chapter 12): im2col --------------------------------------------

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Im2colParams {
    batch: u32,
    height: u32,
    width: u32,
    channels: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    out_h: u32,
    out_w: u32,
    n: u32,
}

/// Ok, or the first element of the patch matrix that differs from
/// `taskgrad::reference::im2col` (a copy: equal to the bit).
fn check_im2col(gpu: &Gpu, file: &'static str, source: &'static str) -> Result<(), String> {
    use taskgrad::kernels::im2col::ConvGeometry;
    let mut r = rng(12);
    // (B, H, W, C), K, S, P: the figure's case, padding, stride 2, LeNet's two layers.
    for ((b, h, w, c), k, s, p) in [
        ((1usize, 4usize, 4usize, 1usize), 2usize, 1usize, 0usize),
        ((2, 5, 7, 3), 3, 1, 1),
        ((1, 6, 6, 2), 3, 2, 1),
        ((3, 28, 28, 1), 5, 1, 0),
        ((2, 12, 12, 10), 5, 1, 2),
    ] {
        let g = ConvGeometry::new((b, h, w, c), k, s, p).unwrap();
        let xs = random(&mut r, b * h * w * c);
        let want = taskgrad::reference::im2col(&xs, &g);
        let n = want.len();
        let x = Tensor::from_slice(gpu, &[xs.len()], &xs, "x").unwrap();
        let cols = Tensor::from_slice(gpu, &[n], &vec![f32::NAN; n], "cols").unwrap();
        let params = Im2colParams {
            batch: b as u32,
            height: h as u32,
            width: w as u32,
            channels: c as u32,
            kernel: k as u32,
            stride: s as u32,
            pad: p as u32,
            out_h: g.out_h() as u32,
            out_w: g.out_w() as u32,
            n: n as u32,
        };
        let d = dispatch::record(
            gpu,
            file,
            source,
            "im2col",
            &[Binding::Uniform, Binding::ReadWrite, Binding::ReadOnly],
            &[],
            &params,
            &[&cols, &x],
            dispatch::grid_1d(gpu, n).unwrap(),
        )
        .unwrap();
        gpu.run(&[&d]).unwrap();
        let got = gpu.read_one(&cols).unwrap();
        if let Some(i) = (0..n).find(|&i| got[i].to_bits() != want[i].to_bits()) {
            let patch = k * k * c;
            return Err(format!(
                "{file}, {b}×{h}×{w}×{c}, K {k}, stride {s}, pad {p}: cols[{}, {}] = {}, want {}",
                i / patch,
                i % patch,
                got[i],
                want[i]
            ));
        }
    }
    Ok(())
}

#[test]
#[ignore = "exercise 12 of the book: write docs/book/exercises/im2col.wgsl"]
fn exercise_12_im2col() {
    let gpu = adapter_for_exercise();
    check_im2col(
        gpu,
        "exercise im2col.wgsl",
        include_str!("../docs/book/exercises/im2col.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_12_solution_passes_the_check() {
    let gpu = gpu_or_skip!();
    check_im2col(
        gpu,
        "solution im2col.wgsl",
        include_str!("../docs/book/exercises/solutions/im2col.wgsl"),
    )
    .unwrap();
}

#[test]
fn exercise_12_stub_fails_the_check() {
    let gpu = gpu_or_skip!();
    let result = check_im2col(
        gpu,
        "stub im2col.wgsl",
        include_str!("../docs/book/exercises/im2col.wgsl"),
    );
    assert!(
        result.is_err(),
        "the unsolved stub passes exercise 12's check"
    );
}
