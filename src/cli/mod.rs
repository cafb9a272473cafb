//! The command-line tool's library side: settings, one training run from them
//! into a run folder ([`run`]), the metrics log and plots ([`report`]), and
//! several methods over several seeds on one CSV ([`compare`]).

pub mod compare;
pub mod report;
pub mod run;
pub mod settings;

/// The matmul tuning as a step of its own before any training: run (or read
/// from the cache) now, and when it ran, said on stderr with its time, so
/// that a first run's training time is training alone. Returns its seconds.
pub fn tune_matmul(gpu: &crate::gpu::Gpu) -> crate::error::Result<f64> {
    let t = crate::kernels::matmul_choice::tuning(gpu)?;
    if let Some(line) = t.announcement(gpu) {
        eprintln!("{line}");
    }
    Ok(t.seconds)
}
