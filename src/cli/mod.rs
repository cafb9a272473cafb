//! The command-line tool's library side: settings, one training run from them
//! into a run folder ([`run`]), and the metrics log and plots ([`report`]).

pub mod report;
pub mod run;
pub mod settings;
