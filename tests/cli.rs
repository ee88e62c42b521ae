//! The operator CLI (`tokend user ...`, `tokend token ...`) on the real
//! binary, on both stores: what it does is checked through the library on
//! the same store, and its audit events name the actor `cli`.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use tokend::config::Config;
use tokend::core::audit::{AuditKind, AuditQuery};
use tokend::core::service::Authenticated;
use tokend::core::{Credential, Plaintext, SystemClock};
use tokend::store::{MongoStore, SqliteStore, Store};

/// Where the binary keeps its data: `DATABASE_PATH` or `MONGO_URL`.
enum Target {
    Sqlite(std::path::PathBuf),
    Mongo(String),
}

impl Target {
    fn env(&self) -> (&'static str, String) {
        match self {
            Target::Sqlite(p) => ("DATABASE_PATH", p.to_string_lossy().into_owned()),
            Target::Mongo(url) => ("MONGO_URL", url.clone()),
        }
    }

    async fn store(&self) -> Arc<dyn Store> {
        match self {
            Target::Sqlite(p) => Arc::new(SqliteStore::open(p.to_str().unwrap()).unwrap()),
            Target::Mongo(url) => Arc::new(
                MongoStore::connect(url, std::time::Duration::from_secs(5))
                    .await
                    .unwrap(),
            ),
        }
    }
}

/// Runs `tokend ARGS` on the target, with `stdin` fed in, from an empty
/// directory (no `.env` of the developer's).
fn tokend(target: &Target, args: &[&str], stdin: &str) -> Output {
    let dir = std::env::temp_dir();
    let (var, value) = target.env();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(args)
        .current_dir(&dir)
        .env_remove("MONGO_URL")
        .env_remove("DATABASE_PATH")
        .env(var, value)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tokend binary");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `token` authenticates, read through a store opened now: a
/// running server's SQLite store sees another process's writes (these
/// commands') within its auth cache's bound of 1 s, a fresh one at once.
async fn token_works(store: &Arc<dyn Store>, user_id: &str, token: &str) -> bool {
    let core = tokend::app::core_with(Config::default(), store.clone(), Arc::new(SystemClock));
    let credential = Credential::UserToken {
        user_id: user_id.into(),
        token: Plaintext::new(token),
    };
    matches!(
        core.authenticate(credential).await.unwrap(),
        Authenticated::Caller(_)
    )
}

async fn password_works(store: &Arc<dyn Store>, user: &str, password: &str) -> bool {
    let core = tokend::app::core_with(Config::default(), store.clone(), Arc::new(SystemClock));
    let credential = Credential::Password(tokend::core::credential::PasswordAttempt {
        user: tokend::core::UserKey::Username(user.into()),
        password: tokend::core::password::PasswordInput::Plain(password.into()),
        ip: None,
        second_factor: Default::default(),
    });
    matches!(
        core.authenticate(credential).await.unwrap(),
        Authenticated::Caller(_)
    )
}

async fn walk_through(target: Target) {
    let help = ok(&tokend(&target, &["--help"], ""));
    assert!(help.contains("user") && help.contains("token"), "{help}");
    let help = ok(&tokend(&target, &["token", "revoke", "--help"], ""));
    assert!(help.contains("--pat") && help.contains("--all"), "{help}");

    // user create, with the password on stdin (never in argv).
    ok(&tokend(
        &target,
        &[
            "user",
            "create",
            "root",
            "--role",
            "admin",
            "--email",
            "root@example.com",
            "--password-stdin",
        ],
        "first-pass-123\n",
    ));
    let bad = tokend(
        &target,
        &["user", "create", "x", "--role", "nope", "--password-stdin"],
        "p\n",
    );
    assert!(!bad.status.success());
    let list = ok(&tokend(&target, &["user", "list"], ""));
    let line = list
        .lines()
        .find(|l| l.contains("\troot\t"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains("active") && line.contains("admin"), "{line}");
    let user_id = line.split('\t').next().unwrap().to_string();
    let store = target.store().await;
    assert!(password_works(&store, "root", "first-pass-123").await);

    // token mint: a working login token.
    let minted: serde_json::Value =
        serde_json::from_str(ok(&tokend(&target, &["token", "mint", "--user", "root"], "")).trim())
            .unwrap();
    assert_eq!(minted["userId"], user_id.as_str());
    let token = minted["authToken"].as_str().unwrap().to_string();
    assert!(token_works(&target.store().await, &user_id, &token).await);

    // user passwd ends it; the new password works, the old does not.
    ok(&tokend(
        &target,
        &["user", "passwd", "root", "--password-stdin"],
        "second-pass-456\n",
    ));
    assert!(!token_works(&target.store().await, &user_id, &token).await);
    assert!(password_works(&store, "root", "second-pass-456").await);
    assert!(!password_works(&store, "root", "first-pass-123").await);

    // token revoke --all ends a fresh one; an unknown user fails.
    let minted: serde_json::Value =
        serde_json::from_str(ok(&tokend(&target, &["token", "mint", "--user", "root"], "")).trim())
            .unwrap();
    let second = minted["authToken"].as_str().unwrap().to_string();
    assert!(token_works(&target.store().await, &user_id, &second).await);
    ok(&tokend(
        &target,
        &["token", "revoke", "--user", "root", "--all"],
        "",
    ));
    assert!(!token_works(&target.store().await, &user_id, &second).await);
    let missing = tokend(
        &target,
        &["token", "revoke", "--user", "ghost", "--pat", "ci"],
        "",
    );
    assert_eq!(missing.status.code(), Some(1));
    let missing = tokend(&target, &["token", "mint", "--user", "ghost"], "");
    assert_eq!(missing.status.code(), Some(1));

    // Audited with actor "cli", and no secret in the trail.
    let (events, _) = store
        .audit_events(&AuditQuery {
            user: Some(user_id.clone()),
            count: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    for (kind, route) in [
        (AuditKind::TokenMinted, "cli.token.mint"),
        (AuditKind::PasswordChanged, "cli.user.passwd"),
        (AuditKind::Logout, "cli.token.revoke"),
    ] {
        let e = events
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("{kind:?}: {events:?}"));
        assert_eq!(e.actor.as_deref(), Some("cli"));
        assert_eq!(e.target.as_deref(), Some(user_id.as_str()));
        assert_eq!(e.route.as_deref(), Some(route));
    }
    let trail = format!("{events:?}");
    for secret in [
        "first-pass-123",
        "second-pass-456",
        token.as_str(),
        second.as_str(),
    ] {
        assert!(!trail.contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_on_sqlite() {
    let path = std::env::temp_dir().join(format!(
        "tokend-cli-{}.db",
        tokend::core::ids::new_user_id()
    ));
    walk_through(Target::Sqlite(path.clone())).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_on_mongo() {
    let Some(url) = std::env::var("MONGO_URL").ok().filter(|v| !v.is_empty()) else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but MONGO_URL is unset"
        );
        eprintln!("MONGO_URL unset: skipping the MongoDB variant");
        return;
    };
    // A database of this test's own.
    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
    let url = format!("{base}/tokend_cli_{}", tokend::core::ids::new_user_id());
    walk_through(Target::Mongo(url)).await;
}
