//! One module per resource; each exposes its handlers for the OpenAPI router.

pub mod admin;
pub mod audit;
pub mod credentials;
pub mod erasures;
pub mod files;
pub mod grants;
pub mod info;
pub mod ops;
pub mod pipelines;
pub mod shares;
pub mod sharing;
pub mod storage;
pub mod streams;
pub mod tables;
pub mod tenants;
pub mod tokens;
pub mod unity;
pub mod views;
pub mod workers;
