//! The `lakeplane` binary as an operator runs it: real processes, real signals, real
//! databases. Each test starts its own process with its own data directory.

mod config_errors;
mod credentials;
mod database;
mod durability;
mod erasure_crash;
mod helm;
mod helpers;
mod ingest_crash;
mod lifecycle;
mod migrate;
mod pipeline_crash;
mod placement_crash;
mod s3;
mod saga_crash;
mod sharing;
mod walkthrough;
mod workers;

#[path = "../common/mod.rs"]
mod common;
