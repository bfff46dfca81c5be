use std::process::ExitCode;

use api::cli::{Cli, Command};
use api::config::Config;
use clap::Parser;

// Opt-in: measured against glibc's malloc for ingestion, with no gain beyond noise and more
// idle memory (README, Measurements).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for configuration errors, distinct from runtime failures (1).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        // Needs no config: the spec is a property of the binary.
        print!("{}", api::openapi::spec_json());
        return ExitCode::SUCCESS;
    }
    if let Command::Config(api::cli::ConfigCommand::Check { file }) = &cli.command {
        return match Config::load(Some(file), &cli.overrides()).map(|c| c.to_masked_toml()) {
            Ok(Ok(text)) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                eprintln!("lakeplane: cannot print the configuration: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("lakeplane: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }
    let config = match Config::load(cli.config.as_deref(), &cli.overrides()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("lakeplane: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = api::telemetry::init(&config.log.level) {
        eprintln!("lakeplane: invalid configuration: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lakeplane: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve => api::server::run(config)
                .await
                .map_err(|e| Some(api::error::chain(&e))),
            Command::Migrate => api::migrate(&config)
                .await
                .map(|report| println!("{report}"))
                .map_err(|e| Some(api::error::chain(&e))),
            Command::Openapi | Command::Config(_) => Ok(()),
            Command::Worker(api::cli::WorkerCommand::Run { id }) => api::worker_cli::run(config, &id)
                .await
                .map_err(|e| Some(api::error::chain(&e))),
            Command::Token(api::cli::TokenCommand::Create(args)) => {
                match api::token_cli::create(&config, &args).await {
                    Ok(token) => {
                        println!("{token}");
                        Ok(())
                    }
                    Err(api::token_cli::TokenCliError::Invalid(message)) => {
                        eprintln!("lakeplane: {message}");
                        Err(None)
                    }
                    Err(e) => Err(Some(api::error::chain(&e))),
                }
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // Bad arguments were already explained on stderr.
        Err(None) => ExitCode::from(EXIT_CONFIG),
        Err(Some(message)) => {
            tracing::error!(error = %message, "fatal");
            ExitCode::FAILURE
        }
    }
}
