//! Exercise 0 (chapter 0): read a step's profile.
//!
//! `step` is one profiled training step, one entry per dispatch in the
//! order they ran: the kernel's label (`"matmul.wgsl::matmul"`) and its GPU
//! time in milliseconds, as `Gpu::run_profiled` measures them. Return one
//! row per kernel: how many dispatches ran it, their total time, and that
//! time's share of the step's kernel time (0 to 1), largest total first
//! (equal totals by label, so the table is the same on every run).
//!
//! Check it:   cargo test --release --test exercises -- --ignored exercise_0
//! Until you write it, the test fails: this stub lists each dispatch on its
//! own, in the order it ran, which hides that 14 small products make most
//! of a W-iris step.

#[derive(Clone, Debug, PartialEq)]
pub struct KernelRow {
    pub kernel: String,
    pub calls: usize,
    pub total_ms: f64,
    pub share: f64,
}

// ANCHOR: by_kernel
pub fn by_kernel(step: &[(&str, f64)]) -> Vec<KernelRow> {
    let mut rows: Vec<KernelRow> = Vec::new();
    for &(kernel, ms) in step {
        match rows.iter_mut().find(|r| r.kernel == kernel) {
            Some(r) => {
                r.calls += 1;
                r.total_ms += ms;
            }
            None => rows.push(KernelRow {
                kernel: kernel.to_string(),
                calls: 1,
                total_ms: ms,
                share: 0.0,
            }),
        }
    }
    let total: f64 = rows.iter().map(|r| r.total_ms).sum();
    for r in &mut rows {
        r.share = if total > 0.0 { r.total_ms / total } else { 0.0 };
    }
    rows.sort_by(|a, b| {
        b.total_ms
            .total_cmp(&a.total_ms)
            .then_with(|| a.kernel.cmp(&b.kernel))
    });
    rows
}
// ANCHOR_END: by_kernel
