//! Predictions in the units of the training data, decoded by each task's
//! kind ([`crate::task::TaskKind::predict`]): a class task's label and its
//! probabilities, a regression's value with the standardisation undone, a
//! binary task's probability of its positive value.

pub use crate::task::TaskPrediction;

/// What [`super::Model::predict`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// The table rows predicted, in order (every row: missing inputs are imputed).
    pub rows: Vec<usize>,
    /// How many of them had a missing input filled with its training mean.
    pub imputed: usize,
    /// One entry per task of the model.
    pub tasks: Vec<TaskPrediction>,
}
