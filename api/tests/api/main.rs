//! The HTTP API, tested in-process: each test spawns its own app on a free port with its
//! own data directory and a fresh database, so tests run in parallel.

mod audit;
mod console;
mod console_browser;
mod credentials;
mod cross_tenant;
mod cross_tenant_populated;
mod erasures;
mod errors;
mod fixtures;
mod grants;
mod helpers;
mod info;
mod kafka;
mod metrics;
mod oidc;
mod openapi;
mod ops;
mod outage;
mod pipeline_partitions;
mod pipeline_workers;
mod pipelines;
mod push_files;
mod sharing;
mod storage;
mod storage_outage;
mod streams;
mod tables;
mod tenants;
mod tokens;
mod unity;
mod volumes;
mod workers;

#[path = "../common/mod.rs"]
mod common;
