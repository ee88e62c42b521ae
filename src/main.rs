//! `tokend`: run the service, or print its OpenAPI document.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tokend::app::{self, Application};
use tokend::config::Config;

#[derive(Parser)]
#[command(
    name = "tokend",
    version,
    about = "Token service with Rocket.Chat and SAYMON APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Print the OpenAPI document (JSON, or YAML with --yaml).
    Openapi {
        #[arg(long)]
        yaml: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = tokend::envfile::load() {
        eprintln!("tokend: {e}");
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi { yaml } => {
            print!(
                "{}",
                if yaml {
                    app::openapi_yaml()
                } else {
                    app::openapi_json()
                }
            );
            ExitCode::SUCCESS
        }
        Command::Serve => {
            let config = match Config::from_env() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tokend: {e}");
                    return ExitCode::from(2);
                }
            };
            tokend::telemetry::init(config.log_format);
            let app = match Application::build(config).await {
                Ok(app) => app,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("tokend: {e}");
                    return ExitCode::from(1);
                }
            };
            match app.run_until(app::shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tokend: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
