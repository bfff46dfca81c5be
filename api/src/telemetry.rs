//! JSON logs on stderr (stdout is kept for command output such as `lakeplane openapi`).

use tracing_subscriber::EnvFilter;

/// Installs the global JSON subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(level: &str) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.trim().is_empty() => {
            EnvFilter::try_new(&from_env).map_err(|e| format!("RUST_LOG: not a valid filter: {e}"))?
        }
        _ => EnvFilter::try_new(level).map_err(|e| format!("log.level: not a valid filter: {e}"))?,
    };
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))
}
