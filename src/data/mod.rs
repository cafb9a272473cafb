//! Data: CSV tables, the schema that encodes them (standardised numbers,
//! one-hot categories, missing values), datasets with masked targets, splits
//! and minibatches, Ma et al. (2018)'s synthetic two-task generator, and
//! MultiMNIST images (Sener & Koltun, 2018; [`multimnist`]).
//! Nothing here touches the GPU.

mod dataset;
pub mod encode;
pub mod multimnist;
pub mod synthetic;
mod table;

pub use crate::task::{Target, TaskSpec, TaskType};
pub use dataset::{Dataset, HostBatch, Split};
pub use table::{is_missing, Table};
