//! The Lakeplane REST control plane: config, HTTP stack, routes, OpenAPI and the binary's
//! commands.

pub mod access;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod extract;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod rollup;
pub mod routes;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod token_cli;
pub mod worker_cli;

use crate::config::Config;

/// `lakeplane migrate`: applies pending migrations and prints what it did.
pub async fn migrate(config: &Config) -> Result<String, tenancy::store::StoreError> {
    let url = config.database_url();
    if let Some(dir) = config
        .data_dir
        .to_str()
        .filter(|_| url.backend() == tenancy::store::Backend::Sqlite)
    {
        // The embedded default keeps its file in data_dir, which may not exist yet.
        let _ = std::fs::create_dir_all(dir);
    }
    let store = tenancy::store::connect(&url, &config.pool_settings()).await?;
    let report = store.migrate().await;
    store.close().await;
    let report = report?;
    Ok(format!(
        "{{\"applied\":{:?},\"current\":{}}}",
        report.applied,
        report.current.map_or("null".to_owned(), |v| v.to_string())
    ))
}
