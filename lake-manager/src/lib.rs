//! What and how: storage backends, provisioning, Delta tables, ingestion, maintenance,
//! workers and credentials.

pub mod catalog;
pub mod cost;
pub mod credentials;
pub mod delta;
pub mod drift;
pub mod erasures;
pub mod faults;
pub mod fence;
pub mod grants;
pub mod identity;
pub mod ingest;
pub mod layout;
pub mod lifecycle;
pub mod migrate;
pub mod pipelines;
pub mod provision;
pub mod sharing;
pub mod slots;
pub mod storage;
pub mod tenants;
pub mod volume;
pub mod workers;
