//! What only the SQLite store promises: durability across a reopen, group
//! commit, and the refusal of a file from a newer schema. (The behaviour it
//! shares with MongoDB is in `tests/store_contract.rs`.)

use super::*;
use crate::core::credential::TokenHash;
use crate::core::model::*;
use crate::store::{
    AdminGuard, PatInsert, RoleStore, SaymonStore, TokenStore, UserPatch, UserStore,
};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A store call in flight.
type Pending<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;

/// A file path of this test's own, removed (with its WAL) when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!(
            "tokend-unit-{}-{}.db",
            std::process::id(),
            crate::core::ids::new_user_id()
        )))
    }

    fn as_str(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

fn now() -> Timestamp {
    crate::core::clock::truncate_ms(chrono::Utc::now())
}

fn h(s: &str) -> TokenHash {
    TokenHash::from_stored(s)
}

fn user(name: &str) -> User {
    let t = now();
    User {
        id: crate::core::ids::new_user_id(),
        created_at: t,
        updated_at: t,
        kind: "user".into(),
        username: Some(name.into()),
        name: Some(format!("{name} name")),
        emails: vec![Email {
            address: format!("{name}@example.com"),
            verified: true,
        }],
        roles: vec!["user".into(), "admin".into()],
        permissions: vec!["manage-users".into()],
        active: true,
        require_password_change: false,
        password_bcrypt: Some(PasswordHash("$2b$10$x".into())),
        last_login: Some(t),
    }
}

impl SqliteStore {
    /// Holds the writer inside a job (in its own batch) until the returned
    /// sender is dropped; returns once the writer is held, with the held
    /// job's answer.
    async fn hold_writer(&self) -> (mpsc::Sender<()>, oneshot::Receiver<StoreResult<()>>) {
        let (release, released) = mpsc::channel::<()>();
        let (held_tx, held) = oneshot::channel();
        let mut held_tx = Some(held_tx);
        let answer = self
            .submit(move |_| {
                if let Some(held_tx) = held_tx.take() {
                    let _ = held_tx.send(());
                }
                // Returns when the sender is dropped.
                let _ = released.recv();
                Ok(())
            })
            .expect("writer running");
        held.await.expect("writer took the job");
        (release, answer)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_reopen() {
    let path = TempPath::new();
    let t = now();
    let alice = user("Alice");
    let role = Role {
        id: "auditor".into(),
        name: "auditor".into(),
        scope: "Users".into(),
        description: "reads logs".into(),
        protected: false,
        updated_at: Some(t),
    };
    let pat = PersonalAccessToken {
        hashed_token: h("pat-hash"),
        created_at: t,
        last_token_part: "abcdef".into(),
        name: "ci".into(),
        bypass_two_factor: true,
        expires_at: Some(t + chrono::Duration::days(3)),
        last_used_at: Some(t),
    };
    let login = ResumeToken {
        when: t,
        hashed_token: h("login-hash"),
    };
    let api = ApiToken {
        user_id: alice.id.clone(),
        hashed_token: h("api-hash"),
        created_at: t,
        hint: "wxyz".into(),
        last_used_at: None,
    };
    let session = Session {
        hashed_id: h("session-hash"),
        user_id: alice.id.clone(),
        created_at: t,
        last_seen_at: t,
        expires_at: t + chrono::Duration::hours(1),
        absolute_expires_at: t + chrono::Duration::hours(24),
    };
    let renamed = {
        let store = SqliteStore::open(path.as_str()).expect("open");
        store.insert_user(&alice).await.unwrap();
        let patch = UserPatch {
            name: Some("Alice A.".into()),
            ..UserPatch::default()
        };
        let renamed = store
            .update_user(&alice.id, &patch, t, AdminGuard::Off)
            .await
            .unwrap();
        store.ensure_role(&role).await.unwrap();
        store
            .set_permission_roles("view-logs", &["auditor".into()], t)
            .await
            .unwrap();
        let key = UserKey::Id(alice.id.clone());
        store.push_login_token(&key, &login, 50).await.unwrap();
        assert_eq!(
            store
                .add_personal_access_token(&alice.id, &pat, 50)
                .await
                .unwrap(),
            PatInsert::Inserted
        );
        store.set_api_token(&api).await.unwrap();
        store.insert_session(&session, 100).await.unwrap();
        renamed.expect("unguarded").expect("alice exists")
    };
    // Dropped: the writer thread and every connection are closed.
    let store = SqliteStore::open(path.as_str()).expect("reopen");
    assert_eq!(
        store
            .find_user(&UserKey::Username("alice".into()))
            .await
            .unwrap(),
        Some(renamed.clone())
    );
    assert!(store.roles().await.unwrap().contains(&role));
    assert_eq!(
        store.permissions().await.unwrap(),
        vec![PermissionEntry {
            id: "view-logs".into(),
            roles: vec!["auditor".into()],
            updated_at: Some(t),
        }]
    );
    assert_eq!(
        store.find_by_token(None, &h("pat-hash")).await.unwrap(),
        Some((renamed.clone(), LoginToken::Personal(pat.clone())))
    );
    assert_eq!(
        store.tokens_of(&alice.id).await.unwrap(),
        vec![LoginToken::Resume(login), LoginToken::Personal(pat)]
    );
    assert_eq!(
        store.find_api_token(&h("api-hash")).await.unwrap(),
        Some(api)
    );
    let later = t + chrono::Duration::minutes(1);
    assert_eq!(
        store
            .touch_session(
                &h("session-hash"),
                later,
                later + chrono::Duration::hours(1)
            )
            .await
            .unwrap()
            .map(|s| s.user_id),
        Some(alice.id.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_writes_share_one_commit_and_all_persist() {
    const WRITES: usize = 64;
    let path = TempPath::new();
    let store = SqliteStore::open(path.as_str()).expect("open");
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let key = UserKey::Id(alice.id.clone());
    let base = now();

    let (release, held) = store.hold_writer().await;
    let before = store.write_stats();
    let mut writes: Vec<Pending<'_, Option<String>>> = (0..WRITES)
        .map(|i| {
            let token = ResumeToken {
                when: base + chrono::Duration::milliseconds(i as i64),
                hashed_token: h(&format!("t{i}")),
            };
            let key = key.clone();
            let store = &store;
            Box::pin(async move { store.push_login_token(&key, &token, 1000).await })
                as Pending<'_, _>
        })
        .collect();
    // One poll queues each write; none can be answered while the writer is held.
    let mut cx = Context::from_waker(Waker::noop());
    for w in &mut writes {
        assert!(matches!(w.as_mut().poll(&mut cx), Poll::Pending));
    }
    drop(release);
    held.await.unwrap().unwrap();
    for w in writes {
        assert_eq!(w.await.unwrap().as_deref(), Some(alice.id.as_str()));
    }
    let after = store.write_stats();
    // The held job's batch, then ONE batch for every write that waited.
    assert_eq!(after.commits - before.commits, 2, "{before:?} -> {after:?}");
    assert_eq!(after.writes - before.writes, WRITES as u64 + 1);
    drop(store);

    let store = SqliteStore::open(path.as_str()).expect("reopen");
    assert_eq!(store.tokens_of(&alice.id).await.unwrap().len(), WRITES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_in_a_batch_leaves_the_others_alone() {
    let store = SqliteStore::open_temporary().expect("open");
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let (release, held) = store.hold_writer().await;
    let mut clash = user("ALICE");
    clash.emails[0].address = "other@example.com".into();
    let bob = user("bob");
    let mut cx = Context::from_waker(Waker::noop());
    let mut first = store.insert_user(&clash);
    let mut second = store.insert_user(&bob);
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    drop(release);
    held.await.unwrap().unwrap();
    assert!(matches!(
        first.await,
        Err(StoreError::Duplicate(UniqueField::Username))
    ));
    second.await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 2);
    assert_eq!(
        store
            .find_user(&UserKey::Email("other@example.com".into()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.write_stats().commits, 3);
}

/// The batch runs its jobs without savepoints first; a job that fails
/// after writing makes it run again with one savepoint per job, so that
/// job's write is undone and every other job of the batch still commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_after_a_write_is_undone_alone() {
    let store = SqliteStore::open_temporary().expect("open");
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let key = UserKey::Id(alice.id.clone());
    let token = |name: &str| ResumeToken {
        when: now(),
        hashed_token: h(name),
    };
    let (first_token, last_token) = (token("first"), token("last"));
    let (release, held) = store.hold_writer().await;
    let before = store.write_stats();
    let mut cx = Context::from_waker(Waker::noop());
    let mut first = store.push_login_token(&key, &first_token, 10);
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let owner = alice.id.clone();
    let failing = store
        .submit(move |c| {
            c.execute(
                "INSERT INTO login_tokens (hash, user_id, kind, created_at) \
                 VALUES ('undone', ?1, 'resume', 0)",
                [&owner],
            )?;
            Err::<(), _>(StoreError::Internal("fails after its write".into()))
        })
        .expect("writer running");
    let mut last = store.push_login_token(&key, &last_token, 10);
    assert!(last.as_mut().poll(&mut cx).is_pending());
    drop(release);
    held.await.unwrap().unwrap();
    assert_eq!(first.await.unwrap().as_deref(), Some(alice.id.as_str()));
    assert!(matches!(failing.await, Ok(Err(StoreError::Internal(_)))));
    assert_eq!(last.await.unwrap().as_deref(), Some(alice.id.as_str()));
    let mut stored: Vec<String> = store
        .tokens_of(&alice.id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.hashed_token().as_str().to_string())
        .collect();
    stored.sort();
    let mut expected = vec![
        first_token.hashed_token.as_str().to_string(),
        last_token.hashed_token.as_str().to_string(),
    ];
    expected.sort();
    assert_eq!(stored, expected);
    // The held job's batch, then one commit for the three jobs.
    assert_eq!(store.write_stats().commits - before.commits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_all_durable() {
    const USERS: usize = 100;
    let path = TempPath::new();
    let store = Arc::new(SqliteStore::open(path.as_str()).expect("open"));
    let users: Vec<User> = (0..USERS).map(|i| user(&format!("user{i}"))).collect();
    let tasks: Vec<_> = users
        .iter()
        .cloned()
        .map(|u| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_user(&u).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.write_stats().writes, USERS as u64);
    drop(store);
    let store = SqliteStore::open(path.as_str()).expect("reopen");
    assert_eq!(store.count_users().await.unwrap(), USERS as u64);
    for u in &users {
        assert_eq!(
            store
                .find_user(&UserKey::Id(u.id.clone()))
                .await
                .unwrap()
                .as_ref(),
            Some(u)
        );
    }
}

#[test]
fn a_file_from_a_newer_schema_is_refused() {
    let path = TempPath::new();
    drop(SqliteStore::open(path.as_str()).expect("create"));
    let newer = schema_version() + 1;
    Connection::open(path.as_str())
        .unwrap()
        .pragma_update(None, "user_version", newer as i64)
        .unwrap();
    let Err(err) = SqliteStore::open(path.as_str()) else {
        panic!("a newer schema was opened");
    };
    let message = err.to_string();
    assert!(message.contains("newer tokend"), "{message}");
    assert!(message.contains(&format!("version {newer}")), "{message}");
    assert!(message.contains(path.as_str()), "{message}");
    // Refused without touching it.
    let conn = Connection::open(path.as_str()).unwrap();
    assert_eq!(user_version(&conn).unwrap(), newer);
    // Backups refuse it too.
    let dest = TempPath::new();
    assert!(backup(path.as_str(), &dest.0).is_err());
    assert!(!dest.0.exists());
}

#[test]
fn the_folder_is_created_and_the_file_is_in_wal_mode() {
    let dir = TempPath::new();
    let file = dir.0.join("nested").join("tokend.db");
    let store = SqliteStore::open(file.to_str().unwrap()).expect("open");
    let conn = Connection::open(&file).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(user_version(&conn).unwrap(), schema_version());
    drop(conn);
    drop(store);
    std::fs::remove_dir_all(&dir.0).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_a_working_store() {
    let path = TempPath::new();
    let store = SqliteStore::open(path.as_str()).expect("open");
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    store
        .push_login_token(
            &UserKey::Id(alice.id.clone()),
            &ResumeToken {
                when: now(),
                hashed_token: h("t1"),
            },
            50,
        )
        .await
        .unwrap();
    let dest = TempPath::new();
    // While the store is open and writing.
    backup(path.as_str(), &dest.0).expect("backup");
    store.insert_user(&user("bob")).await.unwrap();
    let copy = SqliteStore::open(dest.as_str()).expect("open the copy");
    assert_eq!(copy.count_users().await.unwrap(), 1);
    assert_eq!(
        copy.find_by_token(Some(&alice.id), &h("t1"))
            .await
            .unwrap()
            .map(|(u, _)| u),
        Some(alice)
    );
}

#[tokio::test]
async fn a_memory_store_works_on_one_connection() {
    let store = SqliteStore::open(MEMORY).expect("open");
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(
        store
            .find_user(&UserKey::Login("ALICE".into()))
            .await
            .unwrap(),
        Some(alice)
    );
    // Another store on :memory: is another database.
    let other = SqliteStore::open(MEMORY).expect("open");
    assert_eq!(other.count_users().await.unwrap(), 0);
}

#[tokio::test]
async fn a_point_read_sees_every_commit_and_survives_a_panicking_read() {
    let path = TempPath::new();
    let store = SqliteStore::open(path.as_str()).expect("open");
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    // Point reads run on this thread over the read connections; each sees
    // the writer's commit made just before it.
    for name in ["bob", "carol", "dave"] {
        let u = user(name);
        store.insert_user(&u).await.unwrap();
        assert_eq!(
            store.find_user(&UserKey::Login(name.into())).await.unwrap(),
            Some(u)
        );
    }
    // A read that panics leaves its transaction open on a connection: the
    // next read on that connection ends it first instead of failing.
    let conn = store.readers[0].clone();
    let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let guard = lock(&conn);
        let _ = in_read_transaction(&guard, |_| -> StoreResult<()> { panic!("read panicked") });
    }));
    assert!(panicked.is_err());
    assert!(
        !lock(&conn).is_autocommit(),
        "the panic left the transaction open"
    );
    let found = in_read_transaction(&lock(&conn), |c| super::users::user_by_id(c, &alice.id));
    assert_eq!(found.unwrap(), Some(alice));
    assert!(lock(&conn).is_autocommit());
}

fn audit_event(id: &str, target: &str) -> crate::store::AuditEvent {
    crate::store::AuditEvent {
        id: id.into(),
        at: now(),
        expires_at: now() + chrono::Duration::days(1),
        kind: crate::store::AuditKind::TokenMinted,
        actor: Some("admin".into()),
        target: Some(target.into()),
        route: None,
        address: None,
        request_id: None,
        outcome: "succeeded".into(),
        detail: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_and_its_event_are_one_write_and_a_lost_event_keeps_the_token() {
    let path = TempPath::new();
    let store = SqliteStore::open(path.as_str()).expect("open");
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let key = UserKey::Id(alice.id.clone());
    let token = |hash: &str| ResumeToken {
        when: now(),
        hashed_token: h(hash),
    };
    let before = store.write_stats();
    let (owner, recorded) = store
        .push_login_token_audited(&key, &token("first"), 50, &audit_event("e1", &alice.id))
        .await
        .unwrap();
    assert_eq!(owner.as_deref(), Some(alice.id.as_str()));
    recorded.unwrap();
    let after = store.write_stats();
    assert_eq!(after.writes - before.writes, 1, "one write job per mint");
    assert_eq!(after.commits - before.commits, 1);

    // Another process makes the event's insert fail: the token stands.
    Connection::open(path.as_str())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_events BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'no events'); END;",
        )
        .unwrap();
    let (owner, recorded) = store
        .push_login_token_audited(&key, &token("second"), 50, &audit_event("e2", &alice.id))
        .await
        .unwrap();
    assert_eq!(owner.as_deref(), Some(alice.id.as_str()));
    assert!(recorded.is_err(), "{recorded:?}");
    let found = store
        .find_by_token(Some(&alice.id), &h("second"))
        .await
        .unwrap();
    assert!(found.is_some(), "the token survives its event");
    let query = crate::store::AuditQuery {
        count: 10,
        ..Default::default()
    };
    let (events, total) = crate::store::AuditStore::audit_events(&store, &query)
        .await
        .unwrap();
    assert_eq!((total, events[0].id.as_str()), (1, "e1"));
}

#[test]
fn the_login_token_cap_reads_only_its_index() {
    let path = TempPath::new();
    drop(SqliteStore::open(path.as_str()).expect("open"));
    let conn = Connection::open(path.as_str()).unwrap();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", tokens::FIRST_BEYOND_CAP))
        .unwrap()
        .query_map(rusqlite::params!["u", 50], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        plan,
        ["SEARCH login_tokens USING COVERING INDEX login_tokens_by_user_age (user_id=? AND kind=?)"],
        "no table read, no sort"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_and_written_again_from_its_start() {
    const MINTS: usize = 600;
    let path = TempPath::new();
    let store = SqliteStore::open(path.as_str()).expect("open");
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    let key = UserKey::Id(alice.id.clone());
    for i in 0..MINTS {
        let token = ResumeToken {
            when: now(),
            hashed_token: h(&format!("wal-{i}")),
        };
        store.push_login_token(&key, &token, 50).await.unwrap();
    }
    let mut wal = path.0.clone().into_os_string();
    wal.push("-wal");
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // Each mint writes at least three pages (the row and two index
    // entries): never reused, the WAL would hold them all.
    let never_reused = (MINTS * 3 * 4096) as u64;
    assert!(
        size < never_reused / 2,
        "WAL of {size} bytes after {MINTS} commits"
    );
}
