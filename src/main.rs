//! `tokend`: run the service, print its OpenAPI document, or back up its
//! SQLite store.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
    /// Write a consistent copy of the SQLite store (DATABASE_PATH) to PATH,
    /// safe while the server runs.
    Backup {
        /// Where to write the copy (replaced if it exists).
        path: PathBuf,
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
        Command::Backup { path } => {
            let config = match Config::from_env() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tokend: {e}");
                    return ExitCode::from(2);
                }
            };
            if config.mongo_url.is_some() {
                eprintln!(
                    "tokend: MONGO_URL is set, so the data is in MongoDB: back it up with \
                     MongoDB's own tools (mongodump)"
                );
                return ExitCode::from(2);
            }
            match tokend::store::sqlite::backup(&config.database_path, &path) {
                Ok(()) => {
                    eprintln!(
                        "tokend: backed up {} to {}",
                        config.database_path,
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tokend: backup failed: {e}");
                    ExitCode::from(1)
                }
            }
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
