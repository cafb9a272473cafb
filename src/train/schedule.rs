//! Learning-rate schedules.

use crate::error::{Error, Result};

/// Learning-rate schedule, as a factor of the base rate per epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f32,
    },
    /// Cosine from 1 down to `min_factor` over the run.
    Cosine {
        min_factor: f32,
    },
}

impl Schedule {
    /// Factor for `epoch` (0-based) of `epochs`.
    pub fn factor(&self, epoch: usize, epochs: usize) -> f32 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, gamma } => gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Cosine { min_factor } => {
                let t = epoch as f32 / (epochs.max(2) - 1) as f32;
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
            }
        }
    }

    /// Parse `constant`, `step:EVERY:GAMMA` or `cosine[:MIN]`.
    pub fn parse(s: &str) -> Result<Schedule> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let num = |i: usize, default: f32| -> Result<f32> {
            parts.get(i).map_or(Ok(default), |v| {
                v.parse().map_err(|_| {
                    Error::InvalidConfig(format!("bad number {v:?} in schedule {s:?}"))
                })
            })
        };
        match parts[0] {
            "constant" => Ok(Schedule::Constant),
            "step" => Ok(Schedule::Step {
                every: num(1, 30.0)? as usize,
                gamma: num(2, 0.5)?,
            }),
            "cosine" => Ok(Schedule::Cosine {
                min_factor: num(1, 0.0)?,
            }),
            _ => Err(Error::InvalidConfig(format!(
                "unknown schedule {s:?}: use constant, step:EVERY:GAMMA or cosine[:MIN]"
            ))),
        }
    }
}
