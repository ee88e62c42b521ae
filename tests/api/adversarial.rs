//! Issue 10, "Trustworthy under attack": one test per item, each attacking
//! the hole through the real router (or the real binary) the way the
//! security review did. Named after the item they cover.

use crate::common::binary::{self, Served};
use crate::common::*;
use base64::{engine::general_purpose::STANDARD, Engine};
use poem::test::{TestClient, TestResponse};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokend::config::Config;
use tokend::core::seed::{self, AdminSeed};

// --- helpers ---------------------------------------------------------------------

fn config(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = test_config();
    f(&mut c);
    c
}

fn basic(login: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{login}:{password}")))
}

/// `POST /api/v1/login` with a name and password, from `forwarded_for`
/// (an `X-Forwarded-For` value) when given.
async fn rc_login(
    app: &TestApp,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> TestResponse {
    let mut req = app
        .client
        .post("/api/v1/login")
        .body_json(&json!({ "user": user, "password": password }));
    if let Some(xff) = forwarded_for {
        req = req.header("X-Forwarded-For", xff);
    }
    req.send().await
}

/// `GET /node/api/users/current` with Basic credentials, from `forwarded_for`.
async fn saymon_basic(
    app: &TestApp,
    login: &str,
    password: &str,
    forwarded_for: &str,
) -> TestResponse {
    app.client
        .get("/node/api/users/current")
        .header("Authorization", basic(login, password))
        .header("X-Forwarded-For", forwarded_for)
        .send()
        .await
}

/// `POST /node/api/users/session` with a login and password.
async fn saymon_session(
    app: &TestApp,
    login: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> TestResponse {
    let mut req = app
        .client
        .post("/node/api/users/session")
        .body_json(&json!({ "login": login, "password": password }));
    if let Some(xff) = forwarded_for {
        req = req.header("X-Forwarded-For", xff);
    }
    req.send().await
}

fn header(resp: &TestResponse, name: &str) -> Option<String> {
    resp.0
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The `error` of a Rocket.Chat `login` answer.
async fn rc_error(resp: TestResponse) -> (u16, String) {
    let (status, body) = status_json(resp).await;
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    )
}

/// Runs `tokend` (the real binary) in an empty directory with only `vars`
/// set; its exit status and stderr, or a panic if it is still serving
/// after 20 s (it accepted what it should have refused).
fn run_binary(vars: &[(&str, &str)], dotenv: Option<&str>) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!(
        "tokend-adversarial-{}",
        tokend::core::ids::new_user_id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    if let Some(content) = dotenv {
        std::fs::write(dir.join(".env"), content).expect(".env");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .current_dir(&dir)
        .env_clear()
        .env("BIND_IP", "127.0.0.1")
        .env("PORT", "0")
        .env("DATABASE_PATH", ":memory:")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tokend binary");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            panic!("tokend started with {vars:?} / {dotenv:?} instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    let _ = std::fs::remove_dir_all(&dir);
    (status.code().unwrap_or(-1), stderr)
}

// --- items 1-5: login throttling and brute force ------------------------------------

store_tests! {
    /// Item 1: 60 concurrent wrong passwords for one account (limit 10):
    /// at most 10 reach the password check; the rest are refused as blocked.
    async fn lockout_check_then_act(kind) {
        let app = Arc::new(TestApp::with_config(&kind, config(|c| {
            c.login_block.user_attempts = 10;
            // bcrypt itself unbounded here: only the throttle may stop them.
            c.password_checks_max = 64;
        })).await);
        app.user("dave", &[]).await;
        let attempts: Vec<_> = (0..60)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { rc_error(rc_login(&app, "dave", "wrong", None).await).await })
            })
            .collect();
        let mut checked = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                (401, e) if e == "Unauthorized" => checked += 1,
                (401, e) if e == "error-login-blocked-for-user" => {}
                other => panic!("unexpected answer {other:?}"),
            }
        }
        assert!(checked <= 10, "{checked} wrong passwords were checked, limit 10");
        // Ten failures were counted: the right password is refused too.
        for _ in 0..(10 - checked) {
            rc_login(&app, "dave", "wrong", None).await;
        }
        let (status, error) = rc_error(rc_login(&app, "dave", USER_PASS, None).await).await;
        assert_eq!((status, error.as_str()), (401, "error-login-blocked-for-user"));
    }

    /// Item 2: with every password-check slot taken, further password
    /// logins answer at once, 429 in each dialect's shape with
    /// `Retry-After`; token requests are not held up.
    async fn bound_concurrent_bcrypt(kind) {
        let app = Arc::new(TestApp::with_config(&kind, config(|c| {
            c.password_checks_max = 1;
            c.login_block.enabled = false;
        })).await);
        let bob = app.user("bob", &[]).await;
        let bob_creds = app.login("bob", USER_PASS).await;
        let _ = bob;

        let floods: Vec<_> = (0..8)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move {
                    let resp = rc_login(&app, &format!("nobody{i}"), "wrong", None).await;
                    let retry_after = header(&resp, "retry-after");
                    let (status, body) = status_json(resp).await;
                    (status, body, retry_after)
                })
            })
            .collect();
        // A token request while the flood runs.
        assert_eq!(app.me_status(&bob_creds).await, 200);
        let mut busy = 0;
        for flood in floods {
            let (status, body, retry_after) = flood.await.unwrap();
            match status {
                401 => assert_eq!(body["error"], "Unauthorized"),
                429 => {
                    busy += 1;
                    assert_eq!(body["success"], false);
                    let error = body["error"].as_str().unwrap_or_default();
                    assert!(error.ends_with("[error-too-many-requests]"), "{body}");
                    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
                    assert!(seconds >= 1);
                }
                other => panic!("status {other}: {body}"),
            }
        }
        assert!(busy > 0, "no password login was refused for want of a slot");

        let sessions: Vec<_> = (0..8)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move {
                    let resp = saymon_session(&app, &format!("nobody{i}"), "wrong", None).await;
                    let retry_after = header(&resp, "retry-after");
                    let (status, body) = status_json(resp).await;
                    (status, body, retry_after)
                })
            })
            .collect();
        let mut busy = 0;
        for session in sessions {
            let (status, body, retry_after) = session.await.unwrap();
            match status {
                401 => assert_eq!(body["code"], "InvalidCredentials"),
                429 => {
                    busy += 1;
                    assert_eq!(body["code"], "TooManyRequests", "{body}");
                    assert!(retry_after.expect("Retry-After").parse::<u64>().unwrap() >= 1);
                }
                other => panic!("status {other}: {body}"),
            }
        }
        assert!(busy > 0, "no SAYMON password login was refused for want of a slot");
    }

    /// Item 3: SAYMON's Basic and session logins count against a REST rate
    /// limit per address (one budget for both), like Rocket.Chat's `login`,
    /// and share the failed-login counters with it.
    async fn saymon_password_auth_throttled(kind) {
        let app = TestApp::with_config(&kind, config(|c| {
            c.trust_proxy = true;
            c.rate_limit.calls = 3;
            c.login_block.user_attempts = 100;
        })).await;
        app.user("bob", &[]).await;
        let attacker = "203.0.113.9";
        for _ in 0..2 {
            assert_eq!(saymon_basic(&app, "bob", "wrong", attacker).await.0.status(), 401);
        }
        assert_eq!(saymon_session(&app, "bob", "wrong", Some(attacker)).await.0.status(), 401);
        for resp in [
            saymon_basic(&app, "bob", "wrong", attacker).await,
            saymon_session(&app, "bob", USER_PASS, Some(attacker)).await,
        ] {
            let retry_after = header(&resp, "retry-after").expect("Retry-After");
            assert!(retry_after.parse::<u64>().unwrap() >= 1);
            let (status, body) = status_json(resp).await;
            assert_eq!((status, body["code"].as_str()), (429, Some("TooManyRequests")), "{body}");
        }
        // Another address has its own budget.
        assert_eq!(saymon_basic(&app, "bob", USER_PASS, "198.51.100.1").await.0.status(), 200);

        // The failed-login counters are the ones Rocket.Chat's login uses.
        let app = TestApp::with_config(&kind.fresh(), config(|c| c.login_block.user_attempts = 3)).await;
        app.user("carol", &[]).await;
        for _ in 0..3 {
            let resp = app.client.get("/node/api/users/current")
                .header("Authorization", basic("carol", "wrong")).send().await;
            assert_eq!(resp.0.status(), 401);
        }
        let (status, error) = rc_error(rc_login(&app, "carol", USER_PASS, None).await).await;
        assert_eq!((status, error.as_str()), (401, "error-login-blocked-for-user"));
    }

    /// Item 4: the per-account block holds for every name of the account,
    /// and one's own successful login clears only one's own counter, never
    /// the address's.
    async fn block_keyed_on_resolved_account(kind) {
        let app = TestApp::with_config(&kind, config(|c| {
            c.login_block.user_attempts = 3;
            c.rate_limit.enabled = false;
        })).await;
        app.user("dave", &[]).await;
        for _ in 0..3 {
            assert_eq!(rc_error(rc_login(&app, "dave", "wrong", None).await).await.1, "Unauthorized");
        }
        for other_name in ["dave@example.com", "DAVE", " dave "] {
            let (status, error) = rc_error(rc_login(&app, other_name, USER_PASS, None).await).await;
            assert_eq!((status, error.as_str()), (401, "error-login-blocked-for-user"), "{other_name}");
        }
        let resp = app.client.get("/node/api/users/current")
            .header("Authorization", basic("Dave@Example.com", USER_PASS)).send().await;
        assert_eq!(resp.0.status(), 429);
        // An unknown name is keyed trimmed and lowercased.
        for name in ["ghost", " GHOST", "Ghost "] {
            rc_login(&app, name, "wrong", None).await;
        }
        let (_, error) = rc_error(rc_login(&app, "ghost", "wrong", None).await).await;
        assert_eq!(error, "error-login-blocked-for-user");

        // One's own success does not reset the address's count.
        let app = TestApp::with_config(&kind.fresh(), config(|c| {
            c.trust_proxy = true;
            c.login_block.ip_attempts = 3;
            c.rate_limit.enabled = false;
        })).await;
        app.user("victim", &[]).await;
        app.user("mallory", &[]).await;
        let from = Some("203.0.113.66");
        for _ in 0..2 {
            assert_eq!(rc_error(rc_login(&app, "victim", "guess", from).await).await.1, "Unauthorized");
        }
        assert_eq!(rc_login(&app, "mallory", USER_PASS, from).await.0.status(), 200);
        assert_eq!(rc_error(rc_login(&app, "victim", "guess", from).await).await.1, "Unauthorized");
        let (status, error) = rc_error(rc_login(&app, "mallory", USER_PASS, from).await).await;
        assert_eq!((status, error.as_str()), (401, "error-login-blocked-for-ip"));
    }

    /// Item 5: behind a trusted proxy the client address is the one the
    /// proxy saw (the rightmost `X-Forwarded-For` entry, or the Nth with
    /// `TRUSTED_PROXY_HOPS`), not what the client wrote to its left.
    async fn trust_proxy_rightmost_forwarded_for(kind) {
        for hops in [1, 2] {
            let app = TestApp::with_config(&kind.fresh(), config(|c| {
                c.trust_proxy = true;
                c.trusted_proxy_hops = hops;
                c.rate_limit.calls = 3;
            })).await;
            let mut statuses = Vec::new();
            for i in 0..5 {
                let xff = match hops {
                    1 => format!("10.66.0.{i}, 203.0.113.5"),
                    _ => format!("10.66.0.{i}, 203.0.113.5, 10.0.0.1"),
                };
                statuses.push(rc_login(&app, "nobody", "wrong", Some(&xff)).await.0.status().as_u16());
            }
            assert_eq!(statuses, [401, 401, 401, 429, 429], "hops {hops}");
            // A different real client is not limited.
            let xff = match hops {
                1 => "10.66.0.1, 203.0.113.6".to_string(),
                _ => "10.66.0.1, 203.0.113.6, 10.0.0.1".to_string(),
            };
            assert_eq!(rc_login(&app, "nobody", "wrong", Some(&xff)).await.0.status(), 401);
        }
    }

    // --- item 9: revocation ----------------------------------------------------------

    /// Item 9: Rocket.Chat's `users.logout` also ends the user's SAYMON
    /// sessions and API token.
    async fn users_logout_ends_saymon_credentials(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let resp = app.client.post(format!("/node/api/users/{}/auth-token", bob.id))
            .header("Authorization", basic("admin", ADMIN_PASS)).send().await;
        let (status, token) = status_json(resp).await;
        assert_eq!(status, 200, "{token}");
        let token = token.as_str().unwrap().to_string();
        let (status, sid) = status_json(saymon_session(&app, "bob", USER_PASS, None).await).await;
        assert_eq!(status, 200, "{sid}");
        let sid = sid.as_str().unwrap().to_string();
        let rc = app.login("bob", USER_PASS).await;

        let resp = app.rc_post("/api/v1/users.logout", &rc, json!({})).await;
        assert_eq!(resp.0.status(), 200);

        let by_token = app.client.get("/node/api/users/current").query("api-token", &token).send().await;
        assert_eq!(by_token.0.status(), 401);
        let by_sid = app.client.get("/node/api/users/current")
            .header("Cookie", format!("sid={sid}")).send().await;
        assert_eq!(by_sid.0.status(), 401);
        assert_eq!(app.me_status(&rc).await, 401);
    }

    // --- items 15-18: bad input and secrets --------------------------------------------

    /// Item 15: `users.list` with an offset or count beyond a signed 64-bit
    /// number answers 400 in Rocket.Chat's shape (500 on MongoDB before).
    async fn users_list_offset_beyond_i64(kind) {
        let app = TestApp::start(&kind).await;
        for query in [
            "offset=9223372036854775808",
            "offset=18446744073709551615",
            "offset=18446744073709551616",
            "count=9223372036854775808",
            "offset=-1",
        ] {
            let resp = app.rc_get(&format!("/api/v1/users.list?{query}"), &app.admin).await;
            let (status, body) = status_json(resp).await;
            assert_eq!(status, 400, "{query}: {body}");
            assert_eq!(body["success"], false, "{query}: {body}");
            assert_eq!(body["errorType"], "invalid-params", "{query}: {body}");
        }
        let resp = app.rc_get("/api/v1/users.list?offset=9223372036854775807", &app.admin).await;
        let (status, body) = status_json(resp).await;
        assert_eq!((status, body["count"].as_u64()), (200, Some(0)), "{body}");
    }

    /// Item 16: a 400 for a malformed body or parameter names the type
    /// expected, never the value submitted.
    async fn bad_request_does_not_echo_value(kind) {
        let app = TestApp::start(&kind).await;
        let secret = "SuperSecretValue";
        let rc = [
            json!({ "username": [secret], "password": "x" }),
            json!({ "user": "bob", "password": { "digest": [secret], "algorithm": "sha-256" } }),
            json!({ "user": "bob", "password": "x", "resume": { "token": secret } }),
        ];
        for body in rc {
            let resp = app.client.post("/api/v1/login").body_json(&body).send().await;
            let (status, answer) = status_json(resp).await;
            assert_eq!(status, 400, "{answer}");
            assert_eq!(answer["errorType"], "invalid-params", "{answer}");
            assert!(!answer.to_string().contains(secret), "{answer}");
            assert!(answer["error"].as_str().unwrap_or_default().contains("expected type"), "{answer}");
        }
        let resp = app.client.post("/node/api/users/session")
            .body_json(&json!({ "login": [secret], "password": "x" })).send().await;
        let (status, answer) = status_json(resp).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some("InvalidContent")), "{answer}");
        assert!(!answer.to_string().contains(secret), "{answer}");
        let resp = app.rc_post("/api/v1/users.update", &app.admin,
            json!({ "userId": app.admin.user_id, "data": { "password": [secret] } })).await;
        let (status, answer) = status_json(resp).await;
        assert_eq!(status, 400, "{answer}");
        assert!(!answer.to_string().contains(secret), "{answer}");
        let resp = app.rc_get(&format!("/api/v1/users.list?count={secret}"), &app.admin).await;
        let (status, answer): (u16, Value) = status_json(resp).await;
        assert_eq!(status, 400, "{answer}");
        assert!(!answer.to_string().contains(secret), "{answer}");
    }

    /// Item 17: the first admin with a generated password (printed once)
    /// must change it.
    async fn generated_admin_requires_password_change(kind) {
        let config = config(|c| {
            c.admin_username = None;
            c.admin_pass = None;
        });
        let store = kind.open(&config).await;
        let core = tokend::app::core_with(config, store, Arc::new(tokend::core::ManualClock::new()));
        let (username, password) = match seed::seed(&core).await.expect("seeding") {
            AdminSeed::Generated { username, password } => (username, password),
            other => panic!("{other:?}"),
        };
        let client = TestClient::new(tokend::app::endpoint(core));
        let resp = client.post("/api/v1/login")
            .body_json(&json!({ "user": username, "password": password.expose() })).send().await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["me"]["requirePasswordChange"], true, "{body}");
    }

    /// Item 18: the `sid` cookie is `Secure` when the request came over
    /// HTTPS through a trusted proxy, without `COOKIE_SECURE`; an untrusted
    /// `X-Forwarded-Proto` changes nothing.
    async fn sid_cookie_secure_over_https(kind) {
        for trust in [true, false] {
            let app = TestApp::with_config(&kind.fresh(), config(|c| {
                c.trust_proxy = trust;
                c.cookie_secure = false;
            })).await;
            app.user("bob", &[]).await;
            let resp = app.client.post("/node/api/users/session")
                .header("X-Forwarded-Proto", "https")
                .body_json(&json!({ "login": "bob", "password": USER_PASS })).send().await;
            let cookie = header(&resp, "set-cookie").expect("Set-Cookie");
            let sid = json(resp).await.as_str().unwrap().to_string();
            assert_eq!(cookie.ends_with("; Secure"), trust, "trust {trust}: {cookie}");
            let resp = app.client.delete("/node/api/users/session")
                .header("X-Forwarded-Proto", "https")
                .header("Cookie", format!("sid={sid}")).send().await;
            let cleared = header(&resp, "set-cookie").expect("Set-Cookie");
            assert_eq!(cleared.ends_with("; Secure"), trust, "trust {trust}: {cleared}");
            // Plain HTTP through the proxy: no Secure.
            let resp = app.client.post("/node/api/users/session")
                .header("X-Forwarded-Proto", "http")
                .body_json(&json!({ "login": "bob", "password": USER_PASS })).send().await;
            assert!(!header(&resp, "set-cookie").unwrap_or_default().contains("Secure"));
        }
    }
}

// --- items 13, 14: configuration (the real binary) -------------------------------------------------

/// Item 13: durations beyond what the clock represents are refused at
/// start-up with one line naming the variable (they used to panic every
/// request with a 500).
#[test]
fn config_durations_validated_at_startup() {
    for (var, value) in [
        ("RATE_LIMIT_WINDOW_SECONDS", "9000000000000"),
        ("LOGIN_BLOCK_USER_MINUTES", "200000000000"),
        ("LOGIN_BLOCK_IP_MINUTES", "200000000000"),
        ("SAYMON_SESSION_IDLE_MINUTES", "200000000000"),
        ("PERMISSIONS_CACHE_SECONDS", "9000000000000"),
        ("RATE_LIMIT_WINDOW_SECONDS", "9e12"),
        ("HTTP_HEADER_TIMEOUT_SECONDS", "9000000000000"),
        ("HTTP_BODY_TIMEOUT_SECONDS", "0"),
        ("HTTP_IDLE_TIMEOUT_SECONDS", "9e12"),
    ] {
        let (code, stderr) = run_binary(&[(var, value)], None);
        assert_eq!(code, 2, "{var}={value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].contains(&format!("invalid configuration: {var}:")),
            "{stderr}"
        );
    }
}

/// Item 13, the other half: the largest accepted durations serve requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_durations_at_the_bound_serve_requests() {
    let max = tokend::config::MAX_DURATION;
    let app = TestApp::with_config(
        &StoreKind::Sqlite,
        config(|c| {
            c.rate_limit.window = max;
            c.login_block.user_block = max;
            c.login_block.user_attempts = 1;
        }),
    )
    .await;
    assert_eq!(
        rc_login(&app, "nobody", "wrong", None).await.0.status(),
        401
    );
    let (status, error) = rc_error(rc_login(&app, "nobody", "wrong", None).await).await;
    assert_eq!(
        (status, error.as_str()),
        (401, "error-login-blocked-for-user")
    );
}

/// Item 14: a malformed `.env` line is reported by number and variable,
/// never printed.
#[test]
fn malformed_dotenv_line_not_printed() {
    for dotenv in [
        "PORT=0\nADMIN_PASS=SuperSecretValue with spaces\n",
        "# tokend\nPORT=0\nADMIN_PASS=\"SuperSecretValue\nLOG_FORMAT=json\n",
        "PORT=0\nADMIN_PASS=Super\\qSecretValue\n",
    ] {
        let (code, stderr) = run_binary(&[], Some(dotenv));
        assert_eq!(code, 2, "{stderr}");
        assert!(
            !stderr.contains("SuperSecret") && !stderr.contains("SecretValue"),
            "{stderr}"
        );
        let line = if dotenv.starts_with('#') { 3 } else { 2 };
        assert!(
            stderr.contains(&format!("line {line} (ADMIN_PASS)")),
            "{stderr}"
        );
    }
}

// --- item 10: server timeouts (the real binary) --------------------------------------------

/// Starts the real binary (throwaway store) with `vars`, and waits for its
/// "tokend listening" line to learn the port.
fn serve_binary(vars: &[(&str, &str)]) -> Served {
    let mut cmd = binary::tokend();
    cmd.current_dir(std::env::temp_dir())
        .env("DATABASE_PATH", ":memory:")
        .env("ADMIN_PASS", "timeouts-test-pass")
        .envs(vars.iter().copied())
        .stderr(Stdio::null());
    binary::serve(cmd)
}

/// Sends `prefix` on a new connection and reads until the server closes
/// it, for at most `bound`: what was answered and how long the connection
/// lived, or a panic if it was still open after `bound`.
fn closed_by_server(
    addr: std::net::SocketAddr,
    prefix: &[u8],
    bound: Duration,
) -> (String, Duration) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(bound)).expect("read timeout");
    let started = Instant::now();
    stream.write_all(prefix).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "connection still open after {:?} ({e}); read so far: {:?}",
                started.elapsed(),
                String::from_utf8_lossy(&answer)
            ),
        }
        assert!(
            started.elapsed() < bound,
            "connection still open after {bound:?}"
        );
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// Item 10: a request head that never completes is cut off after
/// `HTTP_HEADER_TIMEOUT_SECONDS` (it stayed open for 45 s and more).
#[test]
fn timeout_partial_headers() {
    let served = serve_binary(&[
        ("HTTP_HEADER_TIMEOUT_SECONDS", "1"),
        ("HTTP_IDLE_TIMEOUT_SECONDS", "60"),
        ("HTTP_BODY_TIMEOUT_SECONDS", "60"),
    ]);
    let (_, lived) = closed_by_server(
        served.addr,
        b"GET /healthz HTTP/1.1\r\nHost: tokend\r\nX-Slow: ",
        Duration::from_secs(15),
    );
    assert!(
        lived >= Duration::from_millis(900),
        "closed after {lived:?}"
    );
}

/// Item 10: a body that never completes is answered 408 and the
/// connection closed after `HTTP_BODY_TIMEOUT_SECONDS`.
#[test]
fn timeout_partial_body() {
    let served = serve_binary(&[
        ("HTTP_HEADER_TIMEOUT_SECONDS", "60"),
        ("HTTP_IDLE_TIMEOUT_SECONDS", "60"),
        ("HTTP_BODY_TIMEOUT_SECONDS", "1"),
    ]);
    let (answer, lived) = closed_by_server(
        served.addr,
        b"POST /api/v1/login HTTP/1.1\r\nHost: tokend\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"user\": \"adm",
        Duration::from_secs(15),
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // In Rocket.Chat's shape: the route is Rocket.Chat's.
    assert!(answer.contains("\"success\":false"), "{answer}");
    assert!(
        lived >= Duration::from_millis(900),
        "closed after {lived:?}"
    );
}

/// Item 10: a kept-alive connection with no further request is closed
/// after `HTTP_IDLE_TIMEOUT_SECONDS`.
#[test]
fn timeout_idle_keep_alive() {
    let served = serve_binary(&[
        ("HTTP_HEADER_TIMEOUT_SECONDS", "60"),
        ("HTTP_IDLE_TIMEOUT_SECONDS", "1"),
        ("HTTP_BODY_TIMEOUT_SECONDS", "60"),
    ]);
    let (answer, lived) = closed_by_server(
        served.addr,
        b"GET /healthz HTTP/1.1\r\nHost: tokend\r\n\r\n",
        Duration::from_secs(15),
    );
    // Answered, kept alive (no `Connection: close`), then closed when idle.
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        lived >= Duration::from_millis(900),
        "closed after {lived:?}"
    );
}

/// Item 10: HTTP/2 connections announce and enforce
/// `HTTP2_MAX_CONCURRENT_STREAMS` in the server's SETTINGS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_concurrent_streams_capped() {
    let served = serve_binary(&[("HTTP2_MAX_CONCURRENT_STREAMS", "7")]);
    let tcp = tokio::net::TcpStream::connect(served.addr)
        .await
        .expect("connect");
    let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::get(format!("http://{}/healthz", served.addr))
        .body(())
        .expect("request");
    client = client.ready().await.expect("ready");
    let (response, _) = client.send_request(request, true).expect("send");
    // The server's SETTINGS came before its first response.
    let response = tokio::time::timeout(Duration::from_secs(15), response)
        .await
        .expect("answered in time")
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(client.current_max_send_streams(), 7);
}

// --- item 11: per-user growth -----------------------------------------------------------------

mod growth {
    use super::*;

    /// bob's SAYMON API token, made by the admin.
    async fn api_token(app: &TestApp, user_id: &str) -> String {
        let resp = app
            .client
            .post(format!("/node/api/users/{user_id}/auth-token"))
            .header("Authorization", basic("admin", ADMIN_PASS))
            .send()
            .await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        body.as_str().expect("the token").to_string()
    }

    /// Opens a SAYMON session with an API token; its `sid`.
    async fn open(app: &TestApp, token: &str) -> String {
        let resp = app
            .client
            .post("/node/api/users/session")
            .body_json(&json!({ "auth-token": token }))
            .send()
            .await;
        assert_eq!(resp.0.status(), 200);
        let cookie = header(&resp, "set-cookie").expect("Set-Cookie");
        cookie
            .split(';')
            .next()
            .and_then(|c| c.strip_prefix("sid="))
            .expect("sid cookie")
            .to_string()
    }

    async fn session_works(app: &TestApp, sid: &str) -> bool {
        let resp = app
            .client
            .get("/node/api/users/current")
            .header("Cookie", format!("sid={sid}"))
            .send()
            .await;
        resp.0.status() == 200
    }

    async fn generate_pat(app: &TestApp, creds: &Creds, name: &str) -> (u16, Value) {
        status_json(
            app.rc_post(
                "/api/v1/users.generatePersonalAccessToken",
                creds,
                json!({ "tokenName": name }),
            )
            .await,
        )
        .await
    }

    store_tests! {
        /// Item 11: one API token opened 10,000 sessions. Past
        /// `MAX_SESSIONS_PER_USER` each new session ends the oldest.
        async fn sessions_per_user_capped(kind) {
            let app = TestApp::with_config(&kind, config(|c| {
                c.max_sessions_per_user = 3;
                c.rate_limit.enabled = false;
            })).await;
            let bob = app.user("bob", &[]).await;
            let carol = app.user("carol", &[]).await;
            let (bob_token, carol_token) = (api_token(&app, &bob.id).await, api_token(&app, &carol.id).await);
            let carols = open(&app, &carol_token).await;
            let mut sids = Vec::new();
            for _ in 0..5 {
                // Distinct opening times: "oldest" is well defined.
                app.clock.advance(chrono::TimeDelta::seconds(1));
                sids.push(open(&app, &bob_token).await);
            }
            let mut alive = Vec::new();
            for sid in &sids {
                alive.push(session_works(&app, sid).await);
            }
            assert_eq!(alive, [false, false, true, true, true]);
            // Another user's session is not counted against bob.
            assert!(session_works(&app, &carols).await);
        }

        /// Item 11: concurrent opens never leave more than the cap.
        async fn concurrent_sessions_keep_the_cap(kind) {
            let app = Arc::new(TestApp::with_config(&kind, config(|c| {
                c.max_sessions_per_user = 4;
                c.rate_limit.enabled = false;
            })).await);
            let bob = app.user("bob", &[]).await;
            let token = api_token(&app, &bob.id).await;
            let opens: Vec<_> = (0..24)
                .map(|_| {
                    let (app, token) = (app.clone(), token.clone());
                    tokio::spawn(async move { open(&app, &token).await })
                })
                .collect();
            let mut sids = Vec::new();
            for o in opens {
                sids.push(o.await.unwrap());
            }
            let mut working = 0;
            for sid in &sids {
                working += usize::from(session_works(&app, sid).await);
            }
            assert_eq!(working, 4, "{working} of 24 sessions still work, cap 4");
        }

        /// Item 11: the number of PATs was unlimited. Past
        /// `MAX_PERSONAL_ACCESS_TOKENS` a new one is refused in Rocket.Chat's
        /// error shape; removing one makes room.
        async fn pat_count_capped(kind) {
            let app = TestApp::with_config(&kind, config(|c| c.max_personal_access_tokens = 3)).await;
            for name in ["a", "b", "c"] {
                assert_eq!(generate_pat(&app, &app.admin, name).await.0, 200);
            }
            let (status, body) = generate_pat(&app, &app.admin, "d").await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["success"], false);
            assert_eq!(body["errorType"], "error-too-many-tokens");
            assert_eq!(body["details"]["method"], "personalAccessTokens:generateToken");
            let names: Vec<String> = app.tokens_of(&app.admin.user_id).await.into_iter()
                .filter_map(|t| match t { tokend::core::LoginToken::Personal(p) => Some(p.name), _ => None })
                .collect();
            assert_eq!(names.len(), 3, "{names:?}");
            let resp = app.rc_post("/api/v1/users.removePersonalAccessToken", &app.admin, json!({ "tokenName": "a" })).await;
            assert_eq!(resp.0.status(), 200);
            assert_eq!(generate_pat(&app, &app.admin, "d").await.0, 200);
        }

        /// Item 11: concurrent PAT creations stop exactly at the cap.
        async fn concurrent_pats_keep_the_cap(kind) {
            let app = Arc::new(TestApp::with_config(&kind, config(|c| c.max_personal_access_tokens = 5)).await);
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let app = app.clone();
                    tokio::spawn(async move { generate_pat(&app, &app.admin, &format!("t{i}")).await.0 })
                })
                .collect();
            let mut created = 0;
            for t in tasks {
                match t.await.unwrap() {
                    200 => created += 1,
                    400 => {}
                    other => panic!("unexpected status {other}"),
                }
            }
            assert_eq!(created, 5);
            let pats = app.tokens_of(&app.admin.user_id).await.into_iter()
                .filter(|t| matches!(t, tokend::core::LoginToken::Personal(_)))
                .count();
            assert_eq!(pats, 5);
        }

        /// Item 11: PAT names of 60,000 characters were accepted; at most 100.
        async fn pat_name_length_capped(kind) {
            let app = TestApp::start(&kind).await;
            let max = tokend::core::validate::MAX_TOKEN_NAME_CHARS;
            for name in ["x".repeat(max + 1), "ü".repeat(60_000 / 2)] {
                let (status, body) = generate_pat(&app, &app.admin, &name).await;
                assert_eq!(status, 400, "{body}");
                assert_eq!(body["errorType"], "error-token-name-too-long");
            }
            // Counted in characters, not bytes.
            assert_eq!(generate_pat(&app, &app.admin, &"ü".repeat(max)).await.0, 200);
            assert!(app.tokens_of(&app.admin.user_id).await.len() <= 2);
        }

        /// Item 11: login names past the cap are a 400 in each dialect,
        /// before any lookup (never a store error's 500); so is creating a
        /// user with such a login.
        async fn login_name_length_capped(kind) {
            let app = TestApp::with_config(&kind, config(|c| c.rate_limit.enabled = false)).await;
            let max = tokend::core::validate::MAX_LOGIN_NAME_LEN;
            for name in ["a".repeat(max + 1), format!("{}@example.org", "a".repeat(60_000))] {
                let (status, error) = rc_error(rc_login(&app, &name, "x", None).await).await;
                assert_eq!(status, 400, "{error}");
                assert!(error.contains("at most"), "{error}");
                let resp = saymon_session(&app, &name, "x", None).await;
                assert_eq!(resp.0.status(), 400);
                let resp = saymon_basic(&app, &name[..max + 1], "x", "192.0.2.1").await;
                assert_eq!(resp.0.status(), 400);
                let resp = app.rc_post("/api/v1/users.create", &app.admin, json!({
                    "username": &name[..max + 1], "email": "long@example.org",
                    "password": "pw123456", "name": "Long",
                })).await;
                assert_eq!(resp.0.status(), 400);
                let resp = app.client.post("/node/api/users")
                    .header("Authorization", basic("admin", ADMIN_PASS))
                    .body_json(&json!({ "login": &name[..max + 1], "password": "pw123456" }))
                    .send().await;
                assert_eq!(resp.0.status(), 400);
            }
            // At the cap: an ordinary refusal.
            let at_cap = format!("{}@example.org", "a".repeat(max - 12));
            assert_eq!(at_cap.len(), max);
            assert_eq!(rc_login(&app, &at_cap, "x", None).await.0.status(), 401);
        }

        /// Item 11: `GET /node/api/users` loaded every user at once. It pages:
        /// `limit` (default 100, at most 500) after `skip`, with the total.
        async fn saymon_users_listing_pages(kind) {
            let app = TestApp::start(&kind).await;
            for i in 0..105 {
                app.user(&format!("u{i:03}"), &[]).await;
            }
            let bob = app.user("zz-bob", &[]).await;
            let _ = bob;
            let list = |query: &'static str| {
                let app = &app;
                async move {
                    let resp = app.client.get(format!("/node/api/users{query}"))
                        .header("Authorization", basic("zz-bob", USER_PASS))
                        .send().await;
                    let total = header(&resp, "x-total-count");
                    let (status, body) = status_json(resp).await;
                    (status, body, total)
                }
            };
            // admin + 105 + zz-bob.
            let (status, body, total) = list("").await;
            assert_eq!(status, 200);
            assert_eq!(body.as_array().unwrap().len(), 100);
            assert_eq!(total.as_deref(), Some("107"));
            let (_, body, _) = list("?skip=100&limit=5").await;
            assert_eq!(body.as_array().unwrap().len(), 5);
            let (_, body, _) = list("?skip=105").await;
            assert_eq!(body.as_array().unwrap().len(), 2);
            let (_, body, _) = list("?limit=100000").await;
            assert_eq!(body.as_array().unwrap().len(), 107);
            for bad in ["?limit=0", "?skip=9223372036854775808", "?limit=x"] {
                assert_eq!(list(bad).await.0, 400, "{bad}");
            }
        }
    }
}

/// Item 6: every delegated permission against every escalation path, in
/// both dialects. The rule: nobody grants a permission or role they do not
/// hold, nor obtains a credential (login token, SAYMON API token, password)
/// for a user who holds permissions they lack.
mod escalation {
    use super::*;
    use tokend::core::service::{CreateUser, IssueApiToken, NewUser};
    use tokend::core::{perm, UserKey};

    /// The delegations a security review tried: each alone, and the pairs
    /// Rocket.Chat's finer permissions are meant to be used in.
    const DELEGATIONS: &[&[&str]] = &[
        &["manage-users"],
        &["create-user"],
        &["edit-other-user-info"],
        &["edit-other-user-password"],
        &["edit-other-user-info", "edit-other-user-password"],
        &["user-generate-access-token"],
        &["assign-roles"],
        &["edit-other-user-info", "assign-roles"],
        &["manage-users", "assign-roles", "user-generate-access-token"],
    ];

    /// Permissions none of the delegates hold, all of which admin holds.
    const WANTED: &[&str] = &[
        "assign-admin-role",
        "user-generate-access-token",
        "manage-users",
    ];

    struct Delegate {
        user: tokend::core::User,
        rc: Creds,
        api_token: String,
    }

    /// A user with role `user` plus these permissions, logged in through
    /// both dialects.
    async fn delegate(app: &TestApp, n: usize, permissions: &[&str]) -> Delegate {
        let name = format!("delegate{n}");
        let created = app
            .core
            .insert_user(NewUser {
                username: name.clone(),
                name: Some(format!("Delegate {n}")),
                email: Some(format!("{name}@example.com")),
                password: Some(USER_PASS.into()),
                permissions: permissions.iter().map(|p| p.to_string()).collect(),
                active: true,
                ..NewUser::default()
            })
            .await
            .unwrap();
        let CreateUser::Created(user) = created else {
            panic!("{created:?}")
        };
        let grant = app.grant::<perm::ManageUsers>(&app.admin).await;
        let IssueApiToken::Issued(token) =
            app.core.issue_api_token(&grant, &user.id).await.unwrap()
        else {
            panic!("no API token")
        };
        let rc = app.login(&name, USER_PASS).await;
        Delegate {
            user: *user,
            rc,
            api_token: token.into_exposed(),
        }
    }

    async fn saymon(
        app: &TestApp,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> (u16, Value) {
        let req = match method {
            "POST" => app.client.post(path),
            "PATCH" => app.client.patch(path),
            _ => unreachable!(),
        };
        let resp = req.query("api-token", &token).body_json(&body).send().await;
        let status = resp.0.status().as_u16();
        let text = resp.0.into_body().into_string().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn stored(app: &TestApp, id: &str) -> tokend::core::User {
        app.store
            .find_user(&UserKey::Id(id.into()))
            .await
            .unwrap()
            .unwrap()
    }

    store_tests! {
        async fn every_delegation_against_every_escalation_path(kind) {
            let app = TestApp::start(&kind).await;
            let admin_before = stored(&app, &app.admin.user_id).await;
            let admin_tokens = app.tokens_of(&app.admin.user_id).await.len();
            let victim = app.user("victim", &[]).await;
            for (n, permissions) in DELEGATIONS.iter().enumerate() {
                let d = delegate(&app, n, permissions).await;
                let me = &d.user.id;
                let case = |path: &str| format!("{permissions:?}: {path}");

                // 1. Self-grant through SAYMON's permissions PATCH.
                let mut wanted: Vec<&str> = permissions.to_vec();
                wanted.extend(WANTED);
                let (status, body) = saymon(&app, "PATCH", &format!("/node/api/users/{me}"), &d.api_token,
                    json!({ "permissions": wanted })).await;
                assert_ne!(status, 200, "{} {body}", case("SAYMON self permissions"));
                // ... and the same grant to an accomplice.
                let (status, body) = saymon(&app, "PATCH", &format!("/node/api/users/{}", victim.id), &d.api_token,
                    json!({ "permissions": WANTED })).await;
                assert_ne!(status, 200, "{} {body}", case("SAYMON victim permissions"));
                assert_eq!(stored(&app, me).await.permissions, d.user.permissions, "{}", case("self permissions"));
                assert!(stored(&app, &victim.id).await.permissions.is_empty(), "{}", case("victim permissions"));

                // 2. Create a user with the admin role (Rocket.Chat) or admin's
                // permissions (SAYMON).
                let resp = app.rc_post("/api/v1/users.create", &d.rc, json!({
                    "username": format!("evil{n}"), "name": "Evil", "email": format!("evil{n}@example.com"),
                    "password": "evil-pass-123", "roles": ["admin", "user"] })).await;
                assert_ne!(resp.0.status(), 200, "{}", case("users.create admin"));
                let (status, body) = saymon(&app, "POST", "/node/api/users", &d.api_token,
                    json!({ "login": format!("evil{n}s"), "password": "evil-pass-123", "permissions": WANTED })).await;
                assert_ne!(status, 200, "{} {body}", case("SAYMON create with permissions"));
                for login in [format!("evil{n}"), format!("evil{n}s")] {
                    assert!(app.store.find_user(&UserKey::Username(login)).await.unwrap().is_none(), "{}", case("created"));
                }

                // 3. Set roles through users.update: oneself and the victim.
                for target in [me.as_str(), victim.id.as_str()] {
                    for roles in [json!(["user", "admin"]), json!(["user", "bot"])] {
                        let resp = app.rc_post("/api/v1/users.update", &d.rc,
                            json!({ "userId": target, "data": { "roles": roles } })).await;
                        assert_ne!(resp.0.status(), 200, "{} {roles}", case("users.update roles"));
                    }
                    assert_eq!(stored(&app, target).await.roles, vec!["user".to_string()], "{}", case("roles"));
                }

                // 4. Mint a login token for the admin.
                let resp = app.rc_post("/api/v1/users.createToken", &d.rc,
                    json!({ "userId": app.admin.user_id })).await;
                assert_ne!(resp.0.status(), 200, "{}", case("users.createToken admin"));

                // 5. Create the admin's SAYMON API token (to then use it).
                let (status, body) = saymon(&app, "POST", &format!("/node/api/users/{}/auth-token", app.admin.user_id),
                    &d.api_token, json!({})).await;
                assert_ne!(status, 200, "{} {body}", case("SAYMON admin API token"));
                let admin_token = app.core.api_token_hint(&app.caller(&app.admin).await, &app.admin.user_id).await.unwrap();
                assert!(admin_token.is_none(), "{}", case("admin API token"));

                // 6. Reset the admin's password, in both dialects.
                let resp = app.rc_post("/api/v1/users.update", &d.rc,
                    json!({ "userId": app.admin.user_id, "data": { "password": "pwned-pass-123" } })).await;
                assert_ne!(resp.0.status(), 200, "{}", case("users.update admin password"));
                let (status, body) = saymon(&app, "PATCH", &format!("/node/api/users/{}", app.admin.user_id),
                    &d.api_token, json!({ "password": "pwned-pass-123" })).await;
                assert_ne!(status, 200, "{} {body}", case("SAYMON admin password"));
                assert_eq!(stored(&app, &app.admin.user_id).await.password_bcrypt, admin_before.password_bcrypt,
                    "{}", case("admin password"));
            }
            assert_eq!(app.tokens_of(&app.admin.user_id).await.len(), admin_tokens, "a login token was minted for admin");
        }

        /// The rule refuses only escalation: what a delegate holds, it can
        /// still hand out, and over users it does not outrank its powers work.
        async fn delegations_still_work_within_their_holder(kind) {
            let app = TestApp::start(&kind).await;
            let victim = app.user("victim", &[]).await;
            // user-generate-access-token: a token for a plain user.
            let d = delegate(&app, 0, &["user-generate-access-token"]).await;
            let resp = app.rc_post("/api/v1/users.createToken", &d.rc, json!({ "userId": victim.id })).await;
            assert_eq!(resp.0.status(), 200);
            // manage-users: a plain user's API token and password, and a
            // permission it holds itself.
            let d = delegate(&app, 1, &["manage-users"]).await;
            let (status, body) = saymon(&app, "POST", &format!("/node/api/users/{}/auth-token", victim.id),
                &d.api_token, json!({})).await;
            assert_eq!(status, 200, "{body}");
            let (status, body) = saymon(&app, "PATCH", &format!("/node/api/users/{}", victim.id), &d.api_token,
                json!({ "password": "victim-new-pass", "permissions": ["manage-users"] })).await;
            assert_eq!(status, 200, "{body}");
            app.login("victim", "victim-new-pass").await;
            // edit-other-user-info + edit-other-user-password: another plain
            // user's password; assign-roles: a role conferring nothing new.
            let d = delegate(&app, 2, &["edit-other-user-info", "edit-other-user-password", "assign-roles"]).await;
            let carol = app.user("carol", &[]).await;
            let resp = app.rc_post("/api/v1/users.update", &d.rc, json!({ "userId": carol.id,
                "data": { "password": "carol-new-pass", "roles": ["user", "guest"] } })).await;
            let (status, body) = status_json(resp).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["user"]["roles"], json!(["user", "guest"]));
            app.login("carol", "carol-new-pass").await;
            // The admin holds everything: it still does all of it.
            let resp = app.rc_post("/api/v1/users.update", &app.admin, json!({ "userId": carol.id,
                "data": { "roles": ["user", "admin"] } })).await;
            assert_eq!(resp.0.status(), 200);
        }
    }
}

/// Item 7: a stolen token cannot change the password. One's own password
/// changes only with the current one (Rocket.Chat's
/// `users.updateOwnBasicInfo` with `currentPassword` as SHA-256 hex; SAYMON's
/// self PATCH with `currentPassword`), checked like a login, and the change
/// ends every other login token and session of the user.
mod own_password {
    use super::*;
    use sha2::{Digest, Sha256};
    use tokend::core::UserKey;

    fn sha256_hex(s: &str) -> String {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    store_tests! {
        async fn own_password_needs_the_current_one(kind) {
            let app = TestApp::with_config(&kind, config(|c| c.login_block.user_attempts = 3)).await;
            app.user("bob", &[]).await;
            let stolen = app.login("bob", USER_PASS).await;
            // Failures count after the account's last successful login:
            // let time pass the login (the test clock stands still).
            app.clock.advance(chrono::TimeDelta::seconds(1));
            let path = "/api/v1/users.updateOwnBasicInfo";

            // Without the current password, or with a wrong one: refused.
            let (status, body) = status_json(app.rc_post(path, &stolen,
                json!({ "data": { "newPassword": "taken-over-1" } })).await).await;
            assert_eq!((status, body["errorType"].as_str()), (400, Some("totp-required")), "{body}");
            let (status, body) = status_json(app.rc_post(path, &stolen,
                json!({ "data": { "newPassword": "taken-over-1", "currentPassword": sha256_hex("guess") } })).await).await;
            assert_eq!((status, body["errorType"].as_str()), (400, Some("totp-invalid")), "{body}");
            // Nor through users.update, which takes no current password.
            let (status, _) = status_json(app.rc_post("/api/v1/users.update", &stolen,
                json!({ "userId": stolen.user_id, "data": { "password": "taken-over-1" } })).await).await;
            assert_eq!(status, 400);
            // Guessing is throttled as logins are: the third failure blocks.
            for _ in 0..2 {
                let _ = app.rc_post(path, &stolen,
                    json!({ "data": { "newPassword": "taken-over-1", "currentPassword": sha256_hex("guess") } })).await;
            }
            let (status, body) = status_json(app.rc_post(path, &stolen,
                json!({ "data": { "newPassword": "taken-over-1", "currentPassword": sha256_hex(USER_PASS) } })).await).await;
            assert_eq!(status, 401, "blocked even with the right one: {body}");
            assert_eq!(body["error"], "error-login-blocked-for-user", "{body}");
            let stored = app.store.find_user(&UserKey::Username("bob".into())).await.unwrap().unwrap();
            let old = tokend::core::password::PasswordInput::Plain(USER_PASS.into());
            let check = tokend::core::password::verify_password(&old, stored.password_bcrypt.as_ref());
            assert!(check.await.unwrap(), "the password is unchanged");
        }

        async fn own_password_change_ends_the_other_logins(kind) {
            let app = TestApp::start(&kind).await;
            let bob = app.user("bob", &[]).await;
            let current = app.login("bob", USER_PASS).await;
            let other = app.login("bob", USER_PASS).await;
            let (status, sid) = status_json(saymon_session(&app, "bob", USER_PASS, None).await).await;
            assert_eq!(status, 200);
            let sid = sid.as_str().unwrap().to_string();
            let (status, body) = status_json(app.rc_post("/api/v1/users.updateOwnBasicInfo", &current,
                json!({ "data": { "name": "Bobby", "newPassword": "bob-new-pass-1",
                                  "currentPassword": sha256_hex(USER_PASS) } })).await).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["success"], true);
            assert_eq!(body["user"]["name"], "Bobby");
            assert_eq!(app.me_status(&current).await, 200, "the token in use stays");
            assert_eq!(app.me_status(&other).await, 401, "every other login token ends");
            let by_sid = app.client.get("/node/api/users/current").header("Cookie", format!("sid={sid}")).send().await;
            assert_eq!(by_sid.0.status(), 401, "every session ends");
            app.login("bob", "bob-new-pass-1").await;

            // SAYMON: a manage-users holder changing its own password through
            // PATCH gives `currentPassword` too.
            let admin = app.store.find_user(&UserKey::Username("admin".into())).await.unwrap().unwrap();
            let path = format!("/node/api/users/{}", admin.id);
            let patch = |body: Value| app.client.patch(&path).header("Authorization", basic("admin", ADMIN_PASS))
                .body_json(&body).send();
            let (status, body) = status_json(patch(json!({ "password": "admin-new-pass" })).await).await;
            assert_eq!(status, 400, "{body}");
            assert!(body["message"].as_str().unwrap().contains("currentPassword"), "{body}");
            let (status, body) = status_json(patch(json!({ "password": "admin-new-pass", "currentPassword": "wrong" })).await).await;
            assert_eq!(status, 400, "{body}");
            let (status, body) = status_json(patch(json!({ "password": "admin-new-pass", "currentPassword": ADMIN_PASS })).await).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(app.me_status(&app.admin).await, 401, "Basic auth kept no login token of the admin's");
            app.login("admin", "admin-new-pass").await;
            assert!(app.tokens_of(&bob.id).await.len() >= 2);
        }
    }
}

/// Item 8, the way back: two admins deactivated each other, and restarting
/// with `ADMIN_USERNAME`/`ADMIN_PASS` could not help (the name is taken). At
/// start-up the oldest active user becomes admin, as Rocket.Chat does.
mod admin_recovery {
    use super::*;
    use tokend::core::UserKey;
    use tokend::store::{AdminGuard, UserPatch};

    store_tests! {
        async fn oldest_active_user_becomes_admin_at_start_up(kind) {
            let app = TestApp::start(&kind).await;
            app.clock.advance(chrono::Duration::seconds(1));
            let bob = app.user("bob", &[]).await;
            app.clock.advance(chrono::Duration::seconds(1));
            app.user("carol", &[]).await;
            // The admin is deactivated behind the guard's back (the race it lost).
            let off = UserPatch { active: Some(false), ..UserPatch::default() };
            app.store.update_user(&app.admin.user_id, &off, app.core.now(), AdminGuard::Off).await.unwrap().unwrap();
            assert_eq!(app.me_status(&app.admin).await, 401, "nobody administers tokend now");

            let outcome = seed::seed(&app.core).await.unwrap();
            assert_eq!(outcome, AdminSeed::Promoted { username: "bob".into() });
            let stored = app.store.find_user(&UserKey::Id(bob.id.clone())).await.unwrap().unwrap();
            assert_eq!(stored.roles, vec!["user".to_string(), "admin".to_string()]);
            let bob_creds = app.login("bob", USER_PASS).await;
            let resp = app.rc_post("/api/v1/users.setActiveStatus", &bob_creds,
                json!({ "userId": app.admin.user_id, "activeStatus": true })).await;
            assert_eq!(resp.0.status(), 200, "bob can bring the admin back");
            // With an active admin, nobody else is promoted.
            assert_eq!(seed::seed(&app.core).await.unwrap(), AdminSeed::Unchanged);
        }
    }
}
