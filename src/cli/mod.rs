//! The command-line tool's library side: settings, one training run from them
//! into a run folder ([`run`]), the metrics log and plots ([`report`]), and
//! several methods over several seeds on one CSV ([`compare`]), and `eval`
//! and `predict` with a trained model ([`use_model`]), a model fine-tuned
//! per task ([`finetune`]), and MultiMNIST made from MNIST digits
//! ([`make_data`]).

pub mod compare;
pub mod finetune;
pub mod make_data;
pub mod report;
pub mod run;
pub mod settings;
mod staging;
pub mod use_model;

/// An error as the command line says it: the library's message, with the
/// flag that changes the setting it names (the library names no flags).
pub fn in_flags(e: &crate::error::Error) -> String {
    use crate::error::Error;
    match e {
        Error::NonFinite { .. } | Error::Diverged { .. } => format!("{e} (--lr)"),
        Error::Data { reason, .. } if reason.contains("Missing::Mean") => {
            e.to_string().replace("(Missing::Mean)", "(--impute mean)")
        }
        _ => e.to_string(),
    }
}

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
