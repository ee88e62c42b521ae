//! `tokend`: run the service, print its OpenAPI document, back up its
//! SQLite store, or manage users and tokens as an operator.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tokend::app::{self, Application};
use tokend::config::Config;
use tokend::core::audit::RequestMeta;
use tokend::core::service::{CreateUser, NewUser, OperatorOutcome, Revoke};
use tokend::core::{Core, UserKey};

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
    /// Manage users on the configured store (DATABASE_PATH or MONGO_URL),
    /// without the HTTP API: for when it is unreachable or the last admin
    /// is locked out. Audited with the actor "cli".
    #[command(subcommand)]
    User(UserCommand),
    /// Mint or revoke tokens on the configured store, without the HTTP API.
    /// Audited with the actor "cli".
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from stdin with
    /// --password-stdin, else generated and printed once.
    Create {
        /// The username.
        username: String,
        /// Email address (marked verified).
        #[arg(long)]
        email: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// A role id; repeat for several (default: user).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password; ends every login token and session it has.
    /// The password is read from stdin with --password-stdin, else
    /// generated and printed once.
    Passwd {
        /// Username or email address.
        user: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List every user: id, username, active, roles.
    List,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a login token for a user; prints {"userId", "authToken"} (use
    /// them as X-User-Id and X-Auth-Token).
    Mint {
        /// Username or email address.
        #[arg(long)]
        user: String,
    },
    /// Revoke one personal access token of a user (--pat NAME), or every
    /// credential it has (--all: login tokens, PATs, SAYMON API token and
    /// sessions).
    Revoke {
        /// Username or email address.
        #[arg(long)]
        user: String,
        /// The name of the personal access token to revoke.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        pat: Option<String>,
        /// Revoke every credential of the user.
        #[arg(long)]
        all: bool,
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
        Command::User(cmd) => operator(Operator::User(cmd)).await,
        Command::Token(cmd) => operator(Operator::Token(cmd)).await,
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

enum Operator {
    User(UserCommand),
    Token(TokenCommand),
}

impl Operator {
    /// The command's name in audit events (`cli.<name>`).
    fn name(&self) -> &'static str {
        match self {
            Operator::User(UserCommand::Create { .. }) => "user.create",
            Operator::User(UserCommand::Passwd { .. }) => "user.passwd",
            Operator::User(UserCommand::List) => "user.list",
            Operator::Token(TokenCommand::Mint { .. }) => "token.mint",
            Operator::Token(TokenCommand::Revoke { .. }) => "token.revoke",
        }
    }
}

/// The password of `user create` / `user passwd`: stdin's first line, or a
/// new random one (printed once on stdout).
fn password(from_stdin: bool) -> Result<String, String> {
    if !from_stdin {
        let generated = tokend::core::ids::new_token();
        println!("password: {generated}");
        return Ok(generated);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    if line.is_empty() {
        return Err("the password read from stdin is empty".into());
    }
    Ok(line)
}

/// Runs an operator command on the configured store, through the core.
async fn operator(cmd: Operator) -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tokend: {e}");
            return ExitCode::from(2);
        }
    };
    // Warnings and errors only: stdout carries the command's answer.
    std::env::set_var(
        "RUST_LOG",
        std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    tokend::telemetry::init(config.log_format);
    let store = match app::open_store(&config).await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("tokend: {e}");
            return ExitCode::from(1);
        }
    };
    let core = app::core_with(
        config,
        store,
        std::sync::Arc::new(tokend::core::SystemClock),
    );
    let meta = RequestMeta::operator(cmd.name());
    match meta.scope(run_operator(&core, cmd)).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tokend: {e}");
            ExitCode::from(1)
        }
    }
}

fn no_such_user(name: &str) -> ExitCode {
    eprintln!("tokend: no user {name:?}");
    ExitCode::from(1)
}

async fn run_operator(core: &Core, cmd: Operator) -> Result<ExitCode, String> {
    let err = |e: tokend::core::CoreError| e.to_string();
    match cmd {
        Operator::User(UserCommand::Create {
            username,
            email,
            name,
            roles,
            password_stdin,
        }) => {
            if !tokend::core::validate::is_valid_username(&username) {
                return Err(format!(
                    "not a valid username (letters, digits, - _ .): {username:?}"
                ));
            }
            if email
                .as_deref()
                .is_some_and(|e| !tokend::core::validate::is_plausible_email(e))
            {
                return Err("not an email address".into());
            }
            tokend::core::seed::seed_roles(core).await.map_err(err)?;
            if !core.roles_exist(&roles).await.map_err(err)? {
                return Err(format!("unknown role among {roles:?}"));
            }
            let password = password(password_stdin)?;
            let created = core
                .insert_user(NewUser {
                    username: username.clone(),
                    name,
                    email_verified: email.is_some(),
                    email,
                    password: Some(password),
                    roles,
                    active: true,
                    kind: "user".into(),
                    ..NewUser::default()
                })
                .await
                .map_err(err)?;
            match created {
                CreateUser::Created(user) => {
                    println!("created {username} ({})", user.id);
                    Ok(ExitCode::SUCCESS)
                }
                CreateUser::Taken(field) => Err(format!("{field:?} already taken")),
            }
        }
        Operator::User(UserCommand::Passwd {
            user,
            password_stdin,
        }) => {
            let password = password(password_stdin)?;
            match core
                .operator_set_password(&UserKey::Login(user.clone()), &password)
                .await
                .map_err(err)?
            {
                OperatorOutcome::Done => {
                    eprintln!(
                        "tokend: password of {user} set; its login tokens and sessions ended"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                _ => Ok(no_such_user(&user)),
            }
        }
        Operator::User(UserCommand::List) => {
            for u in core.operator_users().await.map_err(err)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.id,
                    u.username.as_deref().unwrap_or("-"),
                    if u.active { "active" } else { "inactive" },
                    u.roles.join(",")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Operator::Token(TokenCommand::Mint { user }) => {
            match core
                .operator_mint_token(&UserKey::Login(user.clone()))
                .await
                .map_err(err)?
            {
                Some(minted) => {
                    println!(
                        "{}",
                        serde_json::json!({ "userId": minted.user_id, "authToken": minted.token.expose() })
                    );
                    Ok(ExitCode::SUCCESS)
                }
                None => Ok(no_such_user(&user)),
            }
        }
        Operator::Token(TokenCommand::Revoke { user, pat, all }) => {
            let what = match (pat, all) {
                (Some(name), false) => Revoke::Pat(name),
                _ => Revoke::Everything,
            };
            match core
                .operator_revoke(&UserKey::Login(user.clone()), &what)
                .await
                .map_err(err)?
            {
                OperatorOutcome::Done => {
                    eprintln!("tokend: revoked");
                    Ok(ExitCode::SUCCESS)
                }
                OperatorOutcome::NoSuchToken => {
                    eprintln!("tokend: {user} has no such personal access token");
                    Ok(ExitCode::from(1))
                }
                OperatorOutcome::NoSuchUser => Ok(no_such_user(&user)),
            }
        }
    }
}
