//! Helpers shared by the benchmarks (`lakeplane-bench` here, `api_reads` in the `api` crate):
//! an open-loop load driver, and `lakeplane serve` started on a temporary data dir.

pub mod open_loop;
pub mod serve;
