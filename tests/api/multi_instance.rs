//! Two real tokend processes over one MongoDB database (issue 12): the
//! protection that must hold across instances behind a load balancer.
//!
//! Needs `MONGO_URL` (the emulator in CI); without it the test says loudly
//! that it is skipped (and fails under `CI=true`, see `StoreKind::mongo`).

use crate::common::*;
use mongodb::bson::{doc, Bson, DateTime as BsonDate, Document};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Failures of one account before it is blocked, in this test.
const USER_ATTEMPTS: u32 = 4;
/// Login tokens kept per user, in this test.
const MAX_TOKENS: usize = 5;

/// The permission cache's bound on staleness, in this test.
const PERMISSIONS_CACHE_SECONDS: u64 = 1;

/// A running tokend; killed when dropped.
struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn spawn(mongo_url: &str, dir: &std::path::Path) -> Instance {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .env_clear()
        .env("MONGO_URL", mongo_url)
        .env("BIND_IP", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .env("ADMIN_USERNAME", "admin")
        .env("ADMIN_PASS", ADMIN_PASS)
        .env("ADMIN_EMAIL", "admin@example.com")
        .env("LOGIN_BLOCK_USER_ATTEMPTS", USER_ATTEMPTS.to_string())
        .env("LOGIN_BLOCK_IP_ATTEMPTS", "100000")
        .env("MAX_RESUME_LOGIN_TOKENS", MAX_TOKENS.to_string())
        .env("RATE_LIMIT_ENABLED", "false")
        .env("CREATE_TOKENS_FOR_USERS", "true")
        .env(
            "PERMISSIONS_CACHE_SECONDS",
            PERMISSIONS_CACHE_SECONDS.to_string(),
        )
        // Every wrong password of the burst gets a bcrypt slot: only the
        // throttle may stop them.
        .env("PASSWORD_CHECKS_MAX", "64")
        // Protected actions (`users.createToken`, PAT writes) without the
        // password fallback: with it, each of the concurrent mints below
        // would reserve a login attempt for admin and the burst would hit
        // the block limit (the 2FA suites cover the fallback).
        .env("TWO_FACTOR_PASSWORD_FALLBACK", "false")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run tokend");
    Instance {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// One HTTP/1.1 request (connection closed after it): status and JSON body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&Creds>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let auth = auth.map(|c| (c.user_id.as_str(), c.token.as_str()));
    let body = body.map(Value::to_string).unwrap_or_default();
    binary::call(addr, method, path, auth, &body).await
}

/// Polls `/healthz`, then `/readyz`, until both answer 200 (bounded: the
/// process must come up within 60 s, or it exited).
async fn wait_ready(instance: &mut Instance) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for path in ["/healthz", "/readyz"] {
        loop {
            if let Ok(Some(status)) = instance.child.try_wait() {
                panic!("tokend exited before it was ready: {status}");
            }
            if matches!(
                call(instance.addr, "GET", path, None, None).await,
                Ok((200, _))
            ) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{path} of {} never answered 200",
                instance.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn post(addr: SocketAddr, path: &str, auth: Option<&Creds>, body: Value) -> (u16, Value) {
    call(addr, "POST", path, auth, Some(&body))
        .await
        .expect("request")
}

/// `login` with a name and password: status and Rocket.Chat's `error`.
async fn try_login(addr: SocketAddr, user: &str, password: &str) -> (u16, String) {
    let (status, body) = post(
        addr,
        "/api/v1/login",
        None,
        json!({"user": user, "password": password}),
    )
    .await;
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    )
}

async fn login(addr: SocketAddr, user: &str, password: &str) -> Creds {
    let (status, body) = post(
        addr,
        "/api/v1/login",
        None,
        json!({"user": user, "password": password}),
    )
    .await;
    assert_eq!(status, 200, "login of {user}: {body}");
    Creds {
        user_id: body["data"]["userId"].as_str().expect("userId").into(),
        token: body["data"]["authToken"]
            .as_str()
            .expect("authToken")
            .into(),
    }
}

async fn me(addr: SocketAddr, creds: &Creds) -> u16 {
    call(addr, "GET", "/api/v1/me", Some(creds), None)
        .await
        .expect("me")
        .0
}

/// Creates a user through `users.create`; its id.
async fn create_user(addr: SocketAddr, admin: &Creds, username: &str, roles: &[&str]) -> String {
    let (status, body) = post(
        addr,
        "/api/v1/users.create",
        Some(admin),
        json!({
            "username": username,
            "email": format!("{username}@example.org"),
            "name": username,
            "password": USER_PASS,
            "roles": roles,
        }),
    )
    .await;
    assert_eq!(status, 200, "users.create {username}: {body}");
    body["user"]["_id"].as_str().expect("_id").into()
}

const UNAUTHORIZED: &str = "Unauthorized";
const BLOCKED: &str = "error-login-blocked-for-user";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_blocks_revocations_the_cap_and_the_admin_guard() {
    let Some(StoreKind::Mongo(url)) = StoreKind::mongo() else {
        eprintln!("\n*** SKIPPED multi_instance: MONGO_URL is unset; the two-process test needs MongoDB ***\n");
        return;
    };
    let dir = std::env::temp_dir().join(format!("tokend-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a folder");
    // Both start at once on an empty database: seeding races too.
    let mut a = spawn(&url, &dir);
    let mut b = spawn(&url, &dir);
    wait_ready(&mut a).await;
    wait_ready(&mut b).await;
    let (a, b) = (a.addr, b.addr);
    let mut admin = login(a, "admin", ADMIN_PASS).await;
    let raw = mongodb::Client::with_uri_str(&url).await.expect("client");
    let db = raw.default_database().expect("database in MONGO_URL");
    let events = db.collection::<Document>("rocketchat_server_events");

    // 1. Failed logins alternating over both instances: exactly the limit
    // reach bcrypt (401), then the account is blocked on both, even with the
    // right password.
    let dave = create_user(a, &admin, "dave", &[]).await;
    for i in 0..USER_ATTEMPTS {
        let on = if i % 2 == 0 { a } else { b };
        assert_eq!(
            try_login(on, "dave", "wrong").await,
            (401, UNAUTHORIZED.into()),
            "failure {i}"
        );
    }
    for on in [a, b] {
        assert_eq!(
            try_login(on, "dave", USER_PASS).await,
            (401, BLOCKED.into())
        );
        assert_eq!(
            try_login(on, "DAVE@example.org", "wrong").await,
            (401, BLOCKED.into())
        );
    }
    // Recorded in Rocket.Chat's shape.
    let record = events
        .find_one(doc! { "t": "failed-login-attempt", "u._id": &dave })
        .await
        .expect("find")
        .expect("a failed-login record");
    assert_eq!(
        record.get_document("u").unwrap().get_str("username"),
        Ok("dave")
    );
    assert_eq!(record.get_str("ip"), Ok("127.0.0.1"));
    assert!(
        matches!(record.get("ts"), Some(Bson::DateTime(_))),
        "{record}"
    );
    assert_eq!(
        events
            .count_documents(doc! { "t": "failed-login-attempt", "u._id": &dave })
            .await
            .unwrap(),
        u64::from(USER_ATTEMPTS),
        "blocked attempts are not recorded"
    );

    // 2. A concurrent burst of wrong passwords split over both: no more
    // bcrypt checks (401 wrong password) in total than the limit.
    create_user(a, &admin, "erin", &[]).await;
    let burst: Vec<_> = (0..30)
        .map(|i| tokio::spawn(try_login(if i % 2 == 0 { a } else { b }, "erin", "wrong")))
        .collect();
    let (mut wrong, mut blocked) = (0, 0);
    for t in burst {
        match t.await.unwrap() {
            (401, e) if e == UNAUTHORIZED => wrong += 1,
            (401, e) if e == BLOCKED => blocked += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    eprintln!("burst of 30 over two instances: {wrong} password checks, {blocked} blocked");
    assert!(
        wrong <= USER_ATTEMPTS,
        "{wrong} wrong-password answers, limit {USER_ATTEMPTS}"
    );
    assert_eq!(wrong + blocked, 30);
    // Whatever the burst left counted, the account blocks at the limit.
    let mut more = 0;
    while try_login(b, "erin", "wrong").await == (401, UNAUTHORIZED.into()) {
        more += 1;
        assert!(wrong + more <= USER_ATTEMPTS, "over the limit");
    }
    assert_eq!(wrong + more, USER_ATTEMPTS);
    assert_eq!(try_login(a, "erin", USER_PASS).await, (401, BLOCKED.into()));

    // 3. Failures Rocket.Chat recorded count toward tokend's block.
    let frank = create_user(b, &admin, "frank", &[]).await;
    let now = BsonDate::now();
    for i in 0..USER_ATTEMPTS - 1 {
        events
            .insert_one(doc! {
                "_id": format!("rc-event-{i}-{frank}"),
                "ip": "192.0.2.10",
                "t": "failed-login-attempt",
                "ts": now,
                "u": { "_id": &frank, "username": "frank" },
                "_updatedAt": now,
            })
            .await
            .expect("insert");
    }
    assert_eq!(
        try_login(a, "frank", "wrong").await,
        (401, UNAUTHORIZED.into())
    );
    assert_eq!(
        try_login(b, "frank", USER_PASS).await,
        (401, BLOCKED.into())
    );
    // A successful login clears only that account: grace has its own count.
    create_user(a, &admin, "grace", &[]).await;
    assert_eq!(try_login(b, "grace", "wrong").await.0, 401);
    login(a, "grace", USER_PASS).await;
    for _ in 0..USER_ATTEMPTS {
        assert_eq!(
            try_login(b, "grace", "wrong").await,
            (401, UNAUTHORIZED.into())
        );
    }
    assert_eq!(
        try_login(a, "grace", USER_PASS).await,
        (401, BLOCKED.into())
    );

    // 4. A logout or revocation on one instance is refused on the other at once.
    create_user(a, &admin, "bob", &[]).await;
    let bob = login(a, "bob", USER_PASS).await;
    assert_eq!(me(b, &bob).await, 200);
    assert_eq!(
        post(a, "/api/v1/logout", Some(&bob), json!({})).await.0,
        200
    );
    assert_eq!(
        me(b, &bob).await,
        401,
        "logged out on A, still accepted on B"
    );
    let bob2 = login(b, "bob", USER_PASS).await;
    let bob3 = login(b, "bob", USER_PASS).await;
    assert_eq!(me(a, &bob2).await, 200);
    let (status, body) = post(
        a,
        "/api/v1/users.logout",
        Some(&admin),
        json!({"userId": bob2.user_id}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for creds in [&bob2, &bob3] {
        assert_eq!(me(b, creds).await, 401, "revoked on A, still accepted on B");
    }

    // 4b. A permission change made elsewhere (another instance or the
    // database) shows on every instance within PERMISSIONS_CACHE_SECONDS.
    let bob = login(b, "bob", USER_PASS).await;
    let newbie = |n: u32| json!({"username": format!("newbie{n}"), "email": format!("newbie{n}@example.org"), "name": "n", "password": USER_PASS});
    for (n, on) in [(0, a), (1, b)] {
        let (status, body) = post(on, "/api/v1/users.create", Some(&bob), newbie(n)).await;
        // Rocket.Chat's answer to `users.create` without `create-user`.
        assert_eq!(
            (status, &body["errorType"]),
            (400, &json!("error-action-not-allowed")),
            "cache warmed, permission absent: {body}"
        );
    }
    db.collection::<Document>("rocketchat_permissions")
        .update_one(
            doc! { "_id": "create-user" },
            doc! { "$set": { "roles": ["admin", "user"] } },
        )
        .await
        .expect("grant");
    let changed = Instant::now();
    for (n, on) in [(2, a), (3, b)] {
        loop {
            let (status, body) = post(on, "/api/v1/users.create", Some(&bob), newbie(n)).await;
            if status == 200 {
                break;
            }
            assert_eq!(body["errorType"], "error-action-not-allowed", "{body}");
            assert!(
                changed.elapsed()
                    <= Duration::from_secs(PERMISSIONS_CACHE_SECONDS) + Duration::from_millis(900),
                "the change was not visible within PERMISSIONS_CACHE_SECONDS"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // 5. Concurrent mints for one user split over both instances keep
    // exactly the newest MAX_RESUME_LOGIN_TOKENS. (`users.createToken`:
    // concurrent *password* logins beyond the block limit are refused, since
    // attempts in flight count toward it.)
    let minty = create_user(b, &admin, "minty", &[]).await;
    let mints: Vec<_> = (0..24)
        .map(|i| {
            let admin = admin.clone();
            let minty = minty.clone();
            tokio::spawn(async move {
                let on = if i % 2 == 0 { a } else { b };
                let (status, body) = post(
                    on,
                    "/api/v1/users.createToken",
                    Some(&admin),
                    json!({"userId": minty}),
                )
                .await;
                assert_eq!(status, 200, "{body}");
                Creds {
                    user_id: minty,
                    token: body["data"]["authToken"]
                        .as_str()
                        .expect("authToken")
                        .into(),
                }
            })
        })
        .collect();
    let mut minted = Vec::new();
    for t in mints {
        minted.push(t.await.unwrap());
    }
    let user = db
        .collection::<Document>("users")
        .find_one(doc! { "_id": &minty })
        .await
        .unwrap()
        .expect("minty");
    let whens: Vec<i64> = user
        .get_document("services")
        .and_then(|s| s.get_document("resume"))
        .and_then(|r| r.get_array("loginTokens"))
        .expect("login tokens")
        .iter()
        .filter_map(|e| {
            e.as_document()?
                .get_datetime("when")
                .ok()
                .map(|d| d.timestamp_millis())
        })
        .collect();
    assert_eq!(whens.len(), MAX_TOKENS, "kept {whens:?}");
    let mut working = 0;
    for creds in &minted {
        if me(if working % 2 == 0 { a } else { b }, creds).await == 200 {
            working += 1;
        }
    }
    assert_eq!(working, MAX_TOKENS, "tokens that still work");

    // 6. Two admins deactivating each other through different instances
    // leave one admin active.
    for round in 0..3 {
        let one = format!("boss{round}a");
        let two = format!("boss{round}b");
        // The seeded admin steps aside so these two are the only active admins.
        let one_id = create_user(a, &admin, &one, &["admin", "user"]).await;
        let two_id = create_user(a, &admin, &two, &["admin", "user"]).await;
        let one_creds = login(a, &one, USER_PASS).await;
        let two_creds = login(b, &two, USER_PASS).await;
        let (status, body) = post(
            a,
            "/api/v1/users.setActiveStatus",
            Some(&one_creds),
            json!({"userId": admin.user_id, "activeStatus": false}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (x, y) = tokio::join!(
            post(
                a,
                "/api/v1/users.setActiveStatus",
                Some(&one_creds),
                json!({"userId": two_id, "activeStatus": false})
            ),
            post(
                b,
                "/api/v1/users.setActiveStatus",
                Some(&two_creds),
                json!({"userId": one_id, "activeStatus": false})
            ),
        );
        let oks = [&x, &y].iter().filter(|r| r.0 == 200).count();
        assert!(
            oks <= 1,
            "round {round}: both deactivations succeeded: {x:?} {y:?}"
        );
        let active_admins = db
            .collection::<Document>("users")
            .count_documents(doc! { "active": true, "roles": "admin" })
            .await
            .unwrap();
        assert_eq!(active_admins, 1, "round {round}: {x:?} {y:?}");
        // Bring the seeded admin back (through the one that is still active) for the next round.
        let survivor = if x.0 == 200 { &one_creds } else { &two_creds };
        let (status, body) = post(
            b,
            "/api/v1/users.setActiveStatus",
            Some(survivor),
            json!({"userId": admin.user_id, "activeStatus": true}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let admin_again = login(a, "admin", ADMIN_PASS).await;
        let (status, _) = post(
            a,
            "/api/v1/users.setActiveStatus",
            Some(&admin_again),
            json!({"userId": if x.0 == 200 { &one_id } else { &two_id }, "activeStatus": false}),
        )
        .await;
        assert_eq!(status, 200);
        // The reactivated admin's tokens were ended: go on with the fresh login.
        admin = admin_again;
    }
    let _ = raw.database(db.name()).drop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Graceful drain for a load balancer: after SIGTERM, `/readyz` answers 503
/// while requests are still served for `SHUTDOWN_DRAIN_SECONDS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_readiness_first_then_stops() {
    let dir = std::env::temp_dir().join(format!(
        "tokend-drain-{}-{}",
        std::process::id(),
        tokend::core::ids::new_user_id()
    ));
    std::fs::create_dir_all(&dir).expect("a folder");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .env_clear()
        .env("DATABASE_PATH", dir.join("tokend.db"))
        .env("BIND_IP", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .env("ADMIN_USERNAME", "admin")
        .env("ADMIN_PASS", ADMIN_PASS)
        .env("SHUTDOWN_DRAIN_SECONDS", "60")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run tokend");
    let mut instance = Instance {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    wait_ready(&mut instance).await;
    let addr = instance.addr;
    let status = Command::new("kill")
        .args(["-TERM", &instance.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if call(addr, "GET", "/readyz", None, None)
            .await
            .expect("still serving")
            .0
            == 503
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered 503 after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still serving while draining.
    assert_eq!(
        call(addr, "GET", "/healthz", None, None)
            .await
            .expect("healthz")
            .0,
        200
    );
    login(addr, "admin", ADMIN_PASS).await;
    assert!(
        instance.child.try_wait().expect("wait").is_none(),
        "exited before the drain ended"
    );
    drop(instance);
    let _ = std::fs::remove_dir_all(&dir);
}
