//! The command-line tool's library side: settings, one training run from them
//! into a run folder ([`run`]), the metrics log and plots ([`report`]), and
//! several methods over several seeds on one CSV ([`compare`]).

pub mod compare;
pub mod report;
pub mod run;
pub mod settings;
