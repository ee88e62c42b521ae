//! Rocket.Chat token routes (BEHAVIOUR §3): `users.createToken`, `login`,
//! `logout`, `me`, `info`, health — every row, failures included, on both stores.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use tokend::config::{Config, Secret};
use tokend::core::perm;
use tokend::core::service::CreatePat;

/// The token of a PAT the core created.
fn created_pat(outcome: CreatePat) -> String {
    match outcome {
        CreatePat::Created(token) => token.into_exposed(),
        other => panic!("PAT not created: {other:?}"),
    }
}

const NOT_LOGGED_IN: &str = "You must be logged in to do this.";

fn not_logged_in() -> Value {
    json!({"success": false, "status": "error", "message": NOT_LOGGED_IN, "error": NOT_LOGGED_IN})
}

fn login_unauthorized() -> Value {
    json!({"success": false, "status": "error", "error": "Unauthorized", "message": "Unauthorized"})
}

fn not_authorized() -> Value {
    json!({
        "success": false,
        "error": "Not authorized [error-not-authorized]",
        "errorType": "error-not-authorized",
        "details": {"method": "createToken"}
    })
}

fn invalid_user() -> Value {
    json!({
        "success": false,
        "error": "The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]",
        "errorType": "error-invalid-user"
    })
}

async fn create_token(app: &TestApp, caller: &Creds, body: Value) -> (u16, Value) {
    status_json(app.rc_post("/api/v1/users.createToken", caller, body).await).await
}

/// Mints a token through the API; panics unless it works.
async fn mint(app: &TestApp, caller: &Creds, user_id: &str) -> Creds {
    let (status, body) = create_token(app, caller, json!({ "userId": user_id })).await;
    assert_eq!(status, 200, "{body}");
    Creds {
        user_id: body["data"]["userId"].as_str().unwrap().into(),
        token: body["data"]["authToken"].as_str().unwrap().into(),
    }
}

/// `POST /api/v1/login` with this body.
async fn login_with(app: &TestApp, body: &Value) -> (u16, Value) {
    status_json(
        app.client
            .post("/api/v1/login")
            .body_json(body)
            .send()
            .await,
    )
    .await
}

fn config_from(vars: &[(&str, &str)]) -> Config {
    let map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut cfg = Config::from_lookup(|k| map.get(k).cloned()).expect("config");
    cfg.admin_username = Some("admin".into());
    cfg.admin_pass = Some(Secret(ADMIN_PASS.into()));
    cfg.permissions_cache = std::time::Duration::ZERO;
    // As `test_config`: no two-factor password fallback (tests/api/twofactor.rs covers it).
    cfg.two_factor.password_fallback = false;
    cfg
}

store_tests! {
    // --- authentication (401) ---------------------------------------------------

    async fn missing_headers_answer_401_in_rocketchat_shape(kind) {
        let app = TestApp::start(&kind).await;
        for path in ["/api/v1/me"] {
            let (status, body) = status_json(app.client.get(path).send().await).await;
            assert_eq!((status, body), (401, not_logged_in()));
        }
        // Only one of the two headers: still 401, never 400.
        let only_token = app.client.get("/api/v1/me").header("X-Auth-Token", &app.admin.token).send().await;
        assert_eq!(status_json(only_token).await, (401, not_logged_in()));
        let only_id = app.client.get("/api/v1/me").header("X-User-Id", &app.admin.user_id).send().await;
        assert_eq!(status_json(only_id).await, (401, not_logged_in()));
        let create = app.client.post("/api/v1/users.createToken").body_json(&json!({"username": "admin"})).send().await;
        assert_eq!(status_json(create).await, (401, not_logged_in()));
        let logout = app.client.post("/api/v1/logout").send().await;
        assert_eq!(status_json(logout).await, (401, not_logged_in()));
    }

    async fn wrong_token_or_wrong_user_id_answer_401(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let wrong_token = Creds { user_id: app.admin.user_id.clone(), token: "x".repeat(43) };
        assert_eq!(status_json(app.rc_get("/api/v1/me", &wrong_token).await).await, (401, not_logged_in()));
        // A valid token presented with another user's id does not authenticate.
        let wrong_id = Creds { user_id: bob.id.clone(), token: app.admin.token.clone() };
        assert_eq!(status_json(app.rc_get("/api/v1/me", &wrong_id).await).await, (401, not_logged_in()));
        let (status, body) = create_token(&app, &wrong_id, json!({"userId": bob.id})).await;
        assert_eq!((status, body), (401, not_logged_in()));
    }

    async fn login_tokens_expire_after_login_expiration_days(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let token = mint(&app, &app.admin.clone(), &bob.id).await;
        app.clock.advance(chrono::Duration::days(90) - chrono::Duration::minutes(1));
        assert_eq!(app.me_status(&token).await, 200);
        app.clock.advance(chrono::Duration::minutes(2));
        assert_eq!(status_json(app.rc_get("/api/v1/me", &token).await).await, (401, not_logged_in()));
        // `resume` refuses it too.
        assert_eq!(login_with(&app, &json!({"resume": token.token})).await, (401, login_unauthorized()));
    }

    async fn login_expiration_days_is_configurable(kind) {
        let app = TestApp::with_config(&kind, config_from(&[("CREATE_TOKENS_FOR_USERS", "true"), ("LOGIN_EXPIRATION_DAYS", "1")])).await;
        let token = app.admin.clone();
        app.clock.advance(chrono::Duration::hours(23));
        assert_eq!(app.me_status(&token).await, 200);
        app.clock.advance(chrono::Duration::hours(1));
        assert_eq!(app.me_status(&token).await, 401);
    }

    // --- users.createToken ------------------------------------------------------

    async fn create_token_for_another_user_as_admin(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let (status, body) = create_token(&app, &app.admin, json!({"userId": bob.id})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["data"]["userId"], bob.id.as_str());
        let token = body["data"]["authToken"].as_str().unwrap();
        assert_eq!(token.len(), 43);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(body.as_object().unwrap().len(), 2, "only data and success: {body}");
        // The token works for /me as bob.
        let creds = Creds { user_id: bob.id.clone(), token: token.into() };
        let me = json(app.rc_get("/api/v1/me", &creds).await).await;
        assert_eq!(me["username"], "bob");
    }

    async fn create_token_is_off_unless_enabled(kind) {
        let mut cfg = test_config();
        cfg.create_tokens_for_users = false;
        let app = TestApp::with_config(&kind, cfg).await;
        let bob = app.user("bob", &[]).await;
        let (status, body) = create_token(&app, &app.admin, json!({"userId": bob.id})).await;
        assert_eq!((status, body), (400, not_authorized()));
        // Even for oneself.
        let (status, body) = create_token(&app, &app.admin, json!({"username": "admin"})).await;
        assert_eq!((status, body), (400, not_authorized()));
    }

    async fn create_tokens_for_users_accepts_yes_and_true(kind) {
        for value in ["yes", "true"] {
            let app = TestApp::with_config(&kind.fresh(), config_from(&[("CREATE_TOKENS_FOR_USERS", value)])).await;
            let bob = app.user("bob", &[]).await;
            let (status, body) = create_token(&app, &app.admin, json!({"userId": bob.id})).await;
            assert_eq!(status, 200, "CREATE_TOKENS_FOR_USERS={value}: {body}");
        }
        let app = TestApp::with_config(&kind.fresh(), config_from(&[("CREATE_TOKENS_FOR_USERS", "no")])).await;
        let bob = app.user("bob", &[]).await;
        let (status, _) = create_token(&app, &app.admin, json!({"userId": bob.id})).await;
        assert_eq!(status, 400);
    }

    async fn secret_mode_requires_the_matching_secret(kind) {
        let app = TestApp::with_config(&kind, config_from(&[("CREATE_TOKENS_FOR_USERS_SECRET", "V@9#mK2$pL8!nQ5^rT1&wX6*jY3%uZ7")])).await;
        let bob = app.user("bob", &[]).await;
        let (status, body) = create_token(&app, &app.admin, json!({"userId": bob.id, "secret": "V@9#mK2$pL8!nQ5^rT1&wX6*jY3%uZ7"})).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = create_token(&app, &app.admin, json!({"userId": bob.id, "secret": "wrong-secret"})).await;
        assert_eq!((status, body), (400, not_authorized()));
        let (status, body) = create_token(&app, &app.admin, json!({"userId": bob.id})).await;
        assert_eq!((status, body), (400, not_authorized()));
        // The secret gates self-service too, and the flag does not bypass it.
        let (status, _) = create_token(&app, &app.admin, json!({"userId": app.admin.user_id})).await;
        assert_eq!(status, 400);
    }

    async fn secret_mode_still_needs_the_permission_for_others(kind) {
        let app = TestApp::with_config(&kind, config_from(&[("CREATE_TOKENS_FOR_USERS_SECRET", "s3cret")])).await;
        app.user("bob", &[]).await;
        let carol = app.user("carol", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        let (status, body) = create_token(&app, &bob, json!({"userId": carol.id, "secret": "s3cret"})).await;
        assert_eq!((status, body), (400, not_authorized()));
        let (status, _) = create_token(&app, &bob, json!({"userId": bob.user_id, "secret": "s3cret"})).await;
        assert_eq!(status, 200);
    }

    async fn a_user_may_create_a_token_for_itself_without_the_permission(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        for body in [json!({"userId": bob.user_id}), json!({"username": "BOB"}), json!({"user": "bob"})] {
            let (status, answer) = create_token(&app, &bob, body).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["data"]["userId"], bob.user_id.as_str());
        }
    }

    async fn another_user_needs_user_generate_access_token(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &["user", "bot"]).await;
        let carol = app.user("carol", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        let (status, body) = create_token(&app, &bob, json!({"userId": carol.id})).await;
        assert_eq!((status, body), (400, not_authorized()));
        // Granting the permission to one of bob's roles makes it work (and the admin loses it).
        app.core.set_permission_roles("user-generate-access-token", &["bot".to_string()]).await.unwrap();
        let (status, _) = create_token(&app, &bob, json!({"username": "carol"})).await;
        assert_eq!(status, 200);
        let (status, body) = create_token(&app, &app.admin, json!({"username": "carol"})).await;
        assert_eq!((status, body["errorType"].clone()), (400, json!("error-not-authorized")));
    }

    async fn username_and_user_are_case_insensitive(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("Bob.Smith", &[]).await;
        for body in [json!({"username": "bob.smith"}), json!({"username": "BOB.SMITH"}), json!({"user": "bOb.SmItH"})] {
            let (status, answer) = create_token(&app, &app.admin, body).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["data"]["userId"], bob.id.as_str());
        }
    }

    async fn first_non_blank_parameter_wins(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        app.user("carol", &[]).await;
        let (_, body) = create_token(&app, &app.admin, json!({"userId": "  ", "username": "bob", "user": "carol"})).await;
        assert_eq!(body["data"]["userId"], bob.id.as_str());
        let (_, body) = create_token(&app, &app.admin, json!({"userId": bob.id, "username": "carol"})).await;
        assert_eq!(body["data"]["userId"], bob.id.as_str());
    }

    async fn unknown_user_answers_error_invalid_user(kind) {
        let app = TestApp::start(&kind).await;
        for body in [json!({"userId": "nosuchuserid12345"}), json!({"username": "ghost"}), json!({"user": "ghost"})] {
            assert_eq!(create_token(&app, &app.admin, body).await, (400, invalid_user()));
        }
        // The lookup comes before the enabled check: unknown beats "not authorized".
        let mut cfg = test_config();
        cfg.create_tokens_for_users = false;
        let off = TestApp::with_config(&kind, cfg).await;
        assert_eq!(create_token(&off, &off.admin, json!({"username": "ghost"})).await, (400, invalid_user()));
    }

    async fn no_user_parameter_answers_error_user_param_not_provided(kind) {
        let app = TestApp::start(&kind).await;
        let expected = json!({
            "success": false,
            "error": "The required \"userId\" or \"username\" param was not provided [error-user-param-not-provided]",
            "errorType": "error-user-param-not-provided"
        });
        for body in [json!({}), json!({"userId": "", "username": " "}), json!({"secret": "x"})] {
            assert_eq!(create_token(&app, &app.admin, body).await, (400, expected.clone()));
        }
    }

    async fn malformed_body_is_a_clear_400(kind) {
        let app = TestApp::start(&kind).await;
        let resp = app.client.post("/api/v1/users.createToken")
            .header("X-User-Id", &app.admin.user_id)
            .header("X-Auth-Token", &app.admin.token)
            .content_type("application/json")
            .body("{not json")
            .send().await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 400);
        assert_eq!(body["success"], false);
        assert_eq!(body["errorType"], "invalid-params");
        let resp = app.rc_post("/api/v1/users.createToken", &app.admin, json!({"userId": 42})).await;
        assert_eq!(status_json(resp).await.0, 400);
    }

    // --- the token cap ----------------------------------------------------------

    async fn the_51st_token_evicts_the_oldest(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let admin = app.admin.clone();
        let mut tokens = Vec::new();
        for _ in 0..50 {
            tokens.push(mint(&app, &admin, &bob.id).await);
        }
        for t in [&tokens[0], &tokens[49]] {
            assert_eq!(app.me_status(t).await, 200);
        }
        tokens.push(mint(&app, &admin, &bob.id).await);
        assert_eq!(app.me_status(&tokens[0]).await, 401, "the oldest is evicted");
        for t in &tokens[1..] {
            assert_eq!(app.me_status(t).await, 200);
        }
    }

    async fn personal_access_tokens_are_never_evicted_by_the_cap(kind) {
        let mut cfg = test_config();
        cfg.max_resume_login_tokens = 3;
        let app = TestApp::with_config(&kind, cfg).await;
        let bob = app.user("bob", &[]).await;
        let bob_creds = app.login("bob", USER_PASS).await;
        let grant = app.grant::<perm::CreatePersonalAccessTokens>(&bob_creds).await;
        let pat = created_pat(app.core.create_pat(&grant, "ci", false, Default::default()).await.unwrap());
        let pat = Creds { user_id: bob.id.clone(), token: pat };
        let admin = app.admin.clone();
        let mut tokens = Vec::new();
        for _ in 0..10 {
            tokens.push(mint(&app, &admin, &bob.id).await);
        }
        assert_eq!(app.me_status(&pat).await, 200);
        let live: usize = {
            let mut n = 0;
            for t in &tokens {
                if app.me_status(t).await == 200 { n += 1; }
            }
            n
        };
        assert_eq!(live, 3);
        // PATs do not count either: a user with many PATs keeps its 3 login tokens.
        for i in 0..5 {
            created_pat(app.core.create_pat(&grant, &format!("pat{i}"), false, Default::default()).await.unwrap());
        }
        for t in &tokens[7..] {
            assert_eq!(app.me_status(t).await, 200);
        }
        // And PATs never expire.
        app.clock.advance(chrono::Duration::days(400));
        assert_eq!(app.me_status(&pat).await, 200);
        assert_eq!(app.me_status(&tokens[9]).await, 401);
    }

    async fn concurrent_mints_all_succeed_and_the_newest_fifty_survive(kind) {
        let app = Arc::new(TestApp::start(&kind).await);
        let bob = app.user("bob", &[]).await;
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let app = app.clone();
            let id = bob.id.clone();
            tasks.push(tokio::spawn(async move {
                create_token(&app, &app.admin, json!({ "userId": id })).await
            }));
        }
        let mut tokens = Vec::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, 200, "{body}");
            tokens.push(body["data"]["authToken"].as_str().unwrap().to_string());
        }
        let distinct: HashSet<&String> = tokens.iter().collect();
        assert_eq!(distinct.len(), 200);
        let mut live = Vec::new();
        for t in &tokens {
            let creds = Creds { user_id: bob.id.clone(), token: t.clone() };
            if app.me_status(&creds).await == 200 {
                live.push(creds);
            }
        }
        assert_eq!(live.len(), 50, "exactly MAX_RESUME_LOGIN_TOKENS survive");
        // They are the newest: the stored survivors' timestamps are all newer
        // than any token minted before them, so one more mint evicts exactly one.
        assert_eq!(app.tokens_of(&bob.id).await.len(), 50);
        let newest = mint(&app, &app.admin.clone(), &bob.id).await;
        let mut still = 0;
        for c in &live {
            if app.me_status(c).await == 200 { still += 1; }
        }
        assert_eq!(still, 49);
        assert_eq!(app.me_status(&newest).await, 200);
    }

    // --- login ------------------------------------------------------------------

    async fn login_accepts_every_body_form(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let digest = tokend::core::token::sha256_hex(USER_PASS);
        let bodies = [
            json!({"user": "bob", "password": USER_PASS}),
            json!({"user": "BOB@example.com", "password": USER_PASS}),
            json!({"username": "Bob", "password": USER_PASS}),
            json!({"email": "bob@example.com", "password": USER_PASS}),
            json!({"user": {"username": "bob"}, "password": USER_PASS}),
            json!({"user": {"email": "bob@example.com"}, "password": USER_PASS}),
            json!({"user": {"id": bob.id}, "password": USER_PASS}),
            json!({"user": "bob", "password": {"digest": digest, "algorithm": "sha-256"}}),
        ];
        for body in bodies {
            let (status, answer) = login_with(&app, &body).await;
            assert_eq!(status, 200, "{body} -> {answer}");
            assert_eq!(answer["status"], "success");
            assert_eq!(answer["success"], true);
            assert_eq!(answer["data"]["userId"], bob.id.as_str());
            assert_eq!(answer["data"]["authToken"].as_str().unwrap().len(), 43);
            assert_eq!(answer["data"]["me"]["username"], "bob");
            assert!(answer["data"]["me"]["services"].get("password").is_some());
            assert!(!answer.to_string().contains("bcrypt"));
        }
    }

    async fn login_with_resume_returns_the_same_token(kind) {
        let app = TestApp::start(&kind).await;
        let (status, body) = login_with(&app, &json!({"resume": app.admin.token})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["authToken"], app.admin.token.as_str());
        assert_eq!(body["data"]["userId"], app.admin.user_id.as_str());
        assert_eq!(login_with(&app, &json!({"resume": "nope"})).await, (401, login_unauthorized()));
    }

    async fn login_failures_all_look_alike(kind) {
        let app = TestApp::start(&kind).await;
        let eve = app.user("eve", &[]).await;
        let grant = app.grant::<perm::EditOtherUserActiveStatus>(&app.admin).await;
        let done = app.core.set_active(&grant, &eve.id, false).await.unwrap();
        assert!(matches!(done, tokend::core::service::SetActive::Done(_)), "{done:?}");
        app.user("bob", &[]).await;
        let bodies = [
            json!({"user": "bob", "password": "wrong"}),
            json!({"user": "ghost", "password": USER_PASS}),
            json!({"user": "eve", "password": USER_PASS}),
            json!({"user": "bob"}),
            json!({"password": USER_PASS}),
            json!({"user": "bob", "password": {"digest": "abc", "algorithm": "md5"}}),
            json!({}),
        ];
        for body in bodies {
            assert_eq!(login_with(&app, &body).await, (401, login_unauthorized()), "{body}");
        }
    }

    async fn repeated_failures_block_the_user_then_unblock(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        for _ in 0..10 {
            assert_eq!(login_with(&app, &json!({"user": "bob", "password": "wrong"})).await, (401, login_unauthorized()));
        }
        let blocked = json!({
            "success": false, "status": "error",
            "error": "error-login-blocked-for-user",
            "message": "Login has been temporarily blocked For User",
            "details": {"function": "Accounts.validateLoginAttempt"}
        });
        // Even the right password is refused while blocked.
        assert_eq!(login_with(&app, &json!({"user": "bob", "password": USER_PASS})).await, (401, blocked));
        app.clock.advance(chrono::Duration::minutes(5));
        app.login("bob", USER_PASS).await;
    }

    async fn a_success_resets_the_failure_count(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        for round in 0..2 {
            for _ in 0..9 {
                assert_eq!(login_with(&app, &json!({"user": "bob", "password": "wrong"})).await.0, 401, "round {round}");
            }
            app.login("bob", USER_PASS).await;
        }
    }

    async fn repeated_failures_from_one_address_block_it(kind) {
        let app = TestApp::with_config(&kind, config_from(&[
            ("CREATE_TOKENS_FOR_USERS", "true"),
            ("LOGIN_BLOCK_IP_ATTEMPTS", "3"),
            ("TRUST_PROXY", "true"),
        ])).await;
        app.user("bob", &[]).await;
        for name in ["x1", "x2", "x3"] {
            let resp = app.client.post("/api/v1/login").header("X-Forwarded-For", "203.0.113.9")
                .body_json(&json!({"user": name, "password": "wrong"})).send().await;
            assert_eq!(status_json(resp).await.0, 401);
        }
        let resp = app.client.post("/api/v1/login").header("X-Forwarded-For", "203.0.113.9")
            .body_json(&json!({"user": "bob", "password": USER_PASS})).send().await;
        let (status, body) = status_json(resp).await;
        assert_eq!((status, body["error"].clone()), (401, json!("error-login-blocked-for-ip")));
        // Another address is not affected.
        let resp = app.client.post("/api/v1/login").header("X-Forwarded-For", "203.0.113.10")
            .body_json(&json!({"user": "bob", "password": USER_PASS})).send().await;
        assert_eq!(status_json(resp).await.0, 200);
    }

    // --- rate limiting ------------------------------------------------------------

    async fn over_the_rate_limit_answers_429_with_headers(kind) {
        let app = TestApp::with_config(&kind, config_from(&[
            ("CREATE_TOKENS_FOR_USERS", "true"),
            ("RATE_LIMIT_CALLS", "3"),
            ("RATE_LIMIT_WINDOW_SECONDS", "60"),
            ("TRUST_PROXY", "true"),
        ])).await;
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        let me = |ip: &'static str| {
            app.client.get("/api/v1/me")
                .header("X-User-Id", &bob.user_id).header("X-Auth-Token", &bob.token)
                .header("X-Forwarded-For", ip).send()
        };
        for _ in 0..3 {
            assert_eq!(me("198.51.100.7").await.0.status().as_u16(), 200);
        }
        let start = app.core.now();
        let resp = me("198.51.100.7").await;
        let header = |name: &str| resp.0.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(header("x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(header("x-ratelimit-remaining").as_deref(), Some("0"));
        let reset: i64 = header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset > start.timestamp_millis() && reset <= start.timestamp_millis() + 60_000);
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 429);
        assert_eq!(body, json!({
            "success": false,
            "error": "Error, too many requests. Please slow down. You must wait 60 seconds before trying this endpoint again. [error-too-many-requests]"
        }));
        // Another address, and another route, have their own windows.
        assert_eq!(me("198.51.100.8").await.0.status().as_u16(), 200);
        let other_route = app.client.post("/api/v1/users.createToken")
            .header("X-User-Id", &bob.user_id).header("X-Auth-Token", &bob.token)
            .header("X-Forwarded-For", "198.51.100.7")
            .body_json(&json!({"userId": bob.user_id})).send().await;
        assert_eq!(other_route.0.status().as_u16(), 200);
        // The window ends.
        app.clock.advance(chrono::Duration::seconds(60));
        assert_eq!(me("198.51.100.7").await.0.status().as_u16(), 200);
    }

    async fn api_bypass_rate_limit_is_never_limited(kind) {
        let app = TestApp::with_config(&kind, config_from(&[
            ("RATE_LIMIT_CALLS", "2"),
            ("TRUST_PROXY", "true"),
        ])).await;
        for _ in 0..6 {
            let resp = app.client.get("/api/v1/me")
                .header("X-User-Id", &app.admin.user_id).header("X-Auth-Token", &app.admin.token)
                .header("X-Forwarded-For", "198.51.100.7").send().await;
            assert_eq!(resp.0.status().as_u16(), 200);
        }
    }

    async fn login_is_rate_limited_per_address(kind) {
        let app = TestApp::with_config(&kind, config_from(&[
            ("RATE_LIMIT_CALLS", "2"),
            ("TRUST_PROXY", "true"),
        ])).await;
        app.user("bob", &[]).await;
        let login = |ip: &'static str| {
            app.client.post("/api/v1/login").header("X-Forwarded-For", ip)
                .body_json(&json!({"user": "bob", "password": USER_PASS})).send()
        };
        assert_eq!(login("198.51.100.7").await.0.status().as_u16(), 200);
        assert_eq!(login("198.51.100.7").await.0.status().as_u16(), 200);
        let (status, body) = status_json(login("198.51.100.7").await).await;
        assert_eq!(status, 429);
        assert!(body["error"].as_str().unwrap().ends_with("[error-too-many-requests]"));
        assert_eq!(login("198.51.100.9").await.0.status().as_u16(), 200);
        // Switched off, nothing is limited.
        let off = TestApp::with_config(&kind.fresh(), config_from(&[
            ("RATE_LIMIT_CALLS", "2"), ("RATE_LIMIT_ENABLED", "false"), ("TRUST_PROXY", "true"),
        ])).await;
        off.user("bob", &[]).await;
        for _ in 0..4 {
            let resp = off.client.post("/api/v1/login").header("X-Forwarded-For", "198.51.100.7")
                .body_json(&json!({"user": "bob", "password": USER_PASS})).send().await;
            assert_eq!(resp.0.status().as_u16(), 200);
        }
    }

    // --- logout and me ----------------------------------------------------------

    async fn a_minted_token_works_until_logout(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let token = mint(&app, &app.admin.clone(), &bob.id).await;
        let other = mint(&app, &app.admin.clone(), &bob.id).await;
        assert_eq!(app.me_status(&token).await, 200);
        let resp = app.client.post("/api/v1/logout")
            .header("X-User-Id", &token.user_id).header("X-Auth-Token", &token.token).send().await;
        let (status, body) = status_json(resp).await;
        assert_eq!((status, body), (200, json!({"status": "success", "data": {"message": "You've been logged out!"}})));
        assert_eq!(status_json(app.rc_get("/api/v1/me", &token).await).await, (401, not_logged_in()));
        // Only the token used is gone.
        assert_eq!(app.me_status(&other).await, 200);
    }

    async fn me_shows_the_caller_and_never_a_hash(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let creds = app.login("bob", USER_PASS).await;
        let resp = app.rc_get("/api/v1/me", &creds).await;
        assert_eq!(resp.0.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
        let body = json(resp).await;
        assert_eq!(body["success"], true);
        assert_eq!(body["_id"], bob.id.as_str());
        assert_eq!(body["username"], "bob");
        assert_eq!(body["name"], "bob name");
        assert_eq!(body["emails"], json!([{"address": "bob@example.com", "verified": true}]));
        assert_eq!(body["email"], "bob@example.com");
        assert_eq!(body["roles"], json!(["user"]));
        assert_eq!(body["active"], true);
        assert_eq!(body["status"], "offline");
        assert_eq!(body["settings"], json!({"profile": {}, "preferences": {}}));
        assert_eq!(body["services"], json!({"password": {"exists": true}}));
        let text = body.to_string();
        assert!(!text.contains("$2b$") && !text.contains("hashedToken") && !text.contains(&creds.token));
    }

    async fn info_health_and_readiness(kind) {
        let app = TestApp::start(&kind).await;
        let info = status_json(app.client.get("/api/info").send().await).await;
        let version = tokend::config::RC_COMPAT_VERSION.rsplit_once('.').unwrap().0;
        assert_eq!(
            info,
            (200, json!({"version": version, "tokendVersion": env!("CARGO_PKG_VERSION"), "success": true}))
        );
        assert_eq!(status_json(app.client.get("/healthz").send().await).await, (200, json!({"status": "ok"})));
        assert_eq!(status_json(app.client.get("/readyz").send().await).await, (200, json!({"status": "ready"})));
    }

    async fn seeding_creates_roles_permissions_and_admin_once(kind) {
        let app = TestApp::start(&kind).await;
        let perms = app.store.permissions().await.unwrap();
        let find = |id: &str| perms.iter().find(|p| p.id == id).map(|p| p.roles.clone());
        assert_eq!(find("user-generate-access-token"), Some(vec!["admin".to_string()]));
        assert_eq!(find("create-personal-access-tokens"), Some(vec!["admin".to_string(), "user".to_string()]));
        assert_eq!(find("api-bypass-rate-limit"), Some(vec!["admin".to_string(), "bot".to_string(), "app".to_string()]));
        assert!(app.store.roles().await.unwrap().iter().any(|r| r.id == "admin" && r.scope == "Users" && r.protected));
        // An operator's change survives a restart (seeding again).
        app.store.set_permission_roles("user-generate-access-token", &["bot".to_string()], app.core.now()).await.unwrap();
        let again = tokend::core::seed::seed(&app.core).await.unwrap();
        assert_eq!(again, tokend::core::seed::AdminSeed::Unchanged);
        let perms = app.store.permissions().await.unwrap();
        assert_eq!(perms.iter().find(|p| p.id == "user-generate-access-token").unwrap().roles, vec!["bot".to_string()]);
        assert_eq!(app.store.count_users().await.unwrap(), 1);
    }

    async fn without_admin_settings_a_password_is_generated_once(kind) {
        let cfg = Config { permissions_cache: std::time::Duration::ZERO, ..Config::default() };
        let store = kind.open(&cfg).await;
        let core = tokend::app::core_with(cfg, store.clone(), Arc::new(tokend::core::SystemClock));
        let first = tokend::core::seed::seed(&core).await.unwrap();
        let tokend::core::seed::AdminSeed::Generated { username, password } = first else {
            panic!("expected a generated admin, got {first:?}");
        };
        assert_eq!(username, "admin");
        assert!(password.expose().len() >= 16);
        assert_eq!(tokend::core::seed::seed(&core).await.unwrap(), tokend::core::seed::AdminSeed::Unchanged);
        let client = poem::test::TestClient::new(tokend::app::endpoint(core));
        let resp = client.post("/api/v1/login").body_json(&json!({"user": "admin", "password": password.expose()})).send().await;
        resp.assert_status_is_ok();
    }
}
