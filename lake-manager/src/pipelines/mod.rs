//! Pipelines: incremental transformations from bronze to silver and from silver to gold,
//! planned and run with DataFusion. The definition and its validation live in
//! `tenancy::pipeline`; this module adds what needs the engine.

pub mod partitions;
pub mod plan;
pub mod rows;
pub mod run;
pub mod service;

pub use service::{Executed, PipelineError, Pipelines};
