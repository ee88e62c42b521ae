//! The real binary on a SQLite file. Killed with SIGKILL while clients mint
//! and revoke tokens concurrently, then started again on the same file:
//! every token whose mint answered 200 authenticates, every token whose
//! logout answered 200 is refused, and the server starts cleanly. And
//! `tokend backup` copies a running store.

use crate::common::binary::{self, call, Served};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const ADMIN_PASS: &str = "crash-admin-pass";
/// Workers minting and revoking at once.
const WORKERS: usize = 8;
/// Completed operations after which the server is killed.
const KILL_AFTER: usize = 240;

/// A database file of this test's own, removed with its WAL when dropped.
struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Starts the binary on `db` and waits for its "listening" log line.
fn start(db: &Path) -> Served {
    let mut cmd = binary::tokend();
    cmd.env("RUST_LOG", "info")
        .env("DATABASE_PATH", db)
        .env("ADMIN_USERNAME", "admin")
        .env("ADMIN_PASS", ADMIN_PASS)
        .env("CREATE_TOKENS_FOR_USERS", "true")
        // The workers mint with users.createToken, a protected action: no
        // password fallback for this admin (tests/api/twofactor.rs covers it).
        .env("TWO_FACTOR_PASSWORD_FALLBACK", "false")
        // Every minted token must stay: no cap evictions in this test.
        .env("MAX_RESUME_LOGIN_TOKENS", "100000")
        // bob logs out from one address far more than 10 times a minute.
        .env("RATE_LIMIT_ENABLED", "false")
        .current_dir(db.parent().expect("a folder"));
    binary::serve(cmd)
}

async fn login(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
    let body = format!(r#"{{"user":"{user}","password":"{password}"}}"#);
    let (status, json) = call(addr, "POST", "/api/v1/login", None, &body)
        .await
        .expect("login");
    assert_eq!(status, 200, "{json}");
    let data = &json["data"];
    (
        data["userId"].as_str().unwrap().to_string(),
        data["authToken"].as_str().unwrap().to_string(),
    )
}

#[derive(Default)]
struct Outcomes {
    /// Minted (200) and never sent to logout.
    live: BTreeSet<String>,
    /// Logged out with a 200.
    revoked: BTreeSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_writes_loses_nothing_acknowledged() {
    let dir = std::env::temp_dir().join(format!(
        "tokend-crash-{}-{}",
        std::process::id(),
        tokend::core::ids::new_user_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let db = TempDb(dir.join("tokend.db"));
    let server = start(&db.0);
    let addr = server.addr;
    let admin = login(addr, "admin", ADMIN_PASS).await;
    let create =
        r#"{"username":"bob","email":"bob@example.com","password":"bob-pass-123","name":"Bob"}"#;
    let (status, json) = call(
        addr,
        "POST",
        "/api/v1/users.create",
        Some((&admin.0, &admin.1)),
        create,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{json}");
    let bob = json["user"]["_id"].as_str().unwrap().to_string();

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let done = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (outcomes, done, enough) = (outcomes.clone(), done.clone(), enough.clone());
            let (admin, bob) = (admin.clone(), bob.clone());
            tokio::spawn(async move {
                let count = |done: &AtomicUsize| {
                    if done.fetch_add(1, Ordering::AcqRel) + 1 == KILL_AFTER {
                        enough.notify_one();
                    }
                };
                let mint = format!(r#"{{"userId":"{bob}"}}"#);
                // Bounded: the server is killed long before this runs out.
                for i in 0..10 * KILL_AFTER {
                    let Ok((200, json)) = call(
                        addr,
                        "POST",
                        "/api/v1/users.createToken",
                        Some((&admin.0, &admin.1)),
                        &mint,
                    )
                    .await
                    else {
                        return;
                    };
                    let token = json["data"]["authToken"].as_str().unwrap().to_string();
                    count(&done);
                    if (i + w) % 2 == 0 {
                        outcomes.lock().unwrap().live.insert(token);
                        continue;
                    }
                    // Sent to logout: from here on only a 200 decides.
                    let answer =
                        call(addr, "POST", "/api/v1/logout", Some((&bob, &token)), "{}").await;
                    match answer {
                        Ok((200, _)) => {
                            outcomes.lock().unwrap().revoked.insert(token);
                            count(&done);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    enough.notified().await;
    drop(server); // SIGKILL, requests in flight.
    for w in workers {
        w.await.unwrap();
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(outcomes.live.len() + outcomes.revoked.len() >= KILL_AFTER / 2);
    assert!(!outcomes.revoked.is_empty());

    let server = start(&db.0);
    let addr = server.addr;
    for token in &outcomes.live {
        let (status, _) = call(addr, "GET", "/api/v1/me", Some((&bob, token)), "")
            .await
            .unwrap();
        assert_eq!(status, 200, "a minted token was lost");
    }
    for token in &outcomes.revoked {
        let (status, _) = call(addr, "GET", "/api/v1/me", Some((&bob, token)), "")
            .await
            .unwrap();
        assert_eq!(status, 401, "a revoked token came back");
    }
    // And the same admin: its password still logs in.
    assert_eq!(login(addr, "admin", ADMIN_PASS).await.0, admin.0);
    drop(server);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_running_store() {
    use tokend::core::model::UserKey;
    use tokend::store::{SqliteStore, TokenStore, UserStore};
    let dir = std::env::temp_dir().join(format!(
        "tokend-backup-{}-{}",
        std::process::id(),
        tokend::core::ids::new_user_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let db = TempDb(dir.join("tokend.db"));
    let server = start(&db.0);
    let (admin_id, token) = login(server.addr, "admin", ADMIN_PASS).await;
    let copy = TempDb(dir.join("copy.db"));
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .env_clear()
        .env("DATABASE_PATH", &db.0)
        .current_dir(&dir)
        .arg("backup")
        .arg(&copy.0)
        .output()
        .expect("run tokend backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server still answers, and the copy is a working store holding
    // the admin and the login token minted before the backup.
    assert_eq!(login(server.addr, "admin", ADMIN_PASS).await.0, admin_id);
    let store = SqliteStore::open(copy.0.to_str().unwrap()).expect("open the copy");
    let admin = store
        .find_user(&UserKey::Username("admin".into()))
        .await
        .unwrap();
    assert_eq!(admin.map(|u| u.id), Some(admin_id.clone()));
    let hash = tokend::core::credential::TokenHash::of(&token);
    let found = store.find_by_token(Some(&admin_id), &hash).await.unwrap();
    assert!(found.is_some());
    drop((store, server, db, copy));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn backup_refuses_a_missing_store() {
    let dir = std::env::temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .env_clear()
        .env("DATABASE_PATH", dir.join("tokend-no-such-store.db"))
        .current_dir(&dir)
        .args(["backup", "/nonexistent-dir/copy.db"])
        .output()
        .expect("run tokend backup");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tokend-no-such-store.db does not exist"),
        "{stderr}"
    );
}

#[test]
fn a_store_from_a_newer_schema_stops_start_up() {
    let dir = std::env::temp_dir().join(format!(
        "tokend-newer-{}-{}",
        std::process::id(),
        tokend::core::ids::new_user_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let db = TempDb(dir.join("tokend.db"));
    drop(tokend::store::SqliteStore::open(db.0.to_str().unwrap()).expect("create"));
    let newer = tokend::store::sqlite::schema_version() + 1;
    rusqlite::Connection::open(&db.0)
        .unwrap()
        .pragma_update(None, "user_version", newer as i64)
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .env_clear()
        .env("BIND_IP", "127.0.0.1")
        .env("PORT", "0")
        .env("DATABASE_PATH", &db.0)
        .current_dir(&dir)
        .output()
        .expect("run tokend");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was written by a newer tokend")
            && stderr.contains(&format!("store schema version {newer}")),
        "{stderr}"
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
