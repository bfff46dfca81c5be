//! The `lakeplane` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Overrides;

/// Lakeplane: a multi-tenant data-lake control plane.
#[derive(Debug, Parser)]
#[command(name = "lakeplane", version, about)]
pub struct Cli {
    /// A TOML config file; environment variables and flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `server.listen`: address to listen on.
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// `data_dir`: root for the embedded database and local lake.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// `database.url`: `sqlite://...` or `postgres://...`.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// `log.level`: a tracing filter such as `info` or `debug`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run workers.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `lakeplane config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file (with the environment and flags layered on top, as `serve`
    /// would) and print the effective config as TOML with secrets masked; exits 2 naming the
    /// bad key otherwise. Opens nothing: no database, storage or key.
    Check {
        /// The TOML file to check.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

/// `lakeplane worker ...`.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Run one pending worker in the foreground against the configured database and storage
    /// (the entry point of worker pods): exits 0 when it succeeds or is stopped, 1 with the
    /// error when it fails.
    Run {
        /// The worker id, as listed by `GET /v1/admin/workers`.
        #[arg(long)]
        id: String,
    },
}

/// `lakeplane token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print one signed JWT on stdout, using the same config and key as `serve`.
    Create(TokenArgs),
}

/// Arguments of `lakeplane token create`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// platform-admin, tenant-admin, engineer, scientist, analyst or viewer.
    #[arg(long)]
    pub role: String,
    /// The tenant; required for every role but platform-admin.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Who the token is for.
    #[arg(long, default_value = "admin")]
    pub subject: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub ttl: u64,
    /// Groups the token carries, for grants to `group:NAME`; repeat or separate with commas.
    #[arg(long = "groups", value_delimiter = ',')]
    pub groups: Vec<String>,
}

impl Cli {
    /// The flags that override config keys.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            log_level: self.log_level.clone(),
        }
    }
}
