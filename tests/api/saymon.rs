//! The SAYMON dialect (`/node/api`, BEHAVIOUR §4) through the real router,
//! on every store.

use crate::common::{json, status_json, test_config, Creds, TestApp, ADMIN_PASS, USER_PASS};
use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::Duration as Span;
use poem::test::TestResponse;
use serde_json::{json, Value};
use std::time::Duration;
use tokend::config::Config;
use tokend::core::service::{UpdateUser, UserChanges};

// --- helpers ---------------------------------------------------------------------

/// One way to authenticate a SAYMON request.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Sid(&'a str),
    Token(&'a str),
}

fn basic(login: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{login}:{password}")))
}

const ADMIN: Auth<'static> = Auth::Basic("admin", ADMIN_PASS);

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> TestResponse {
    let mut req = match method {
        "GET" => app.client.get(path),
        "POST" => app.client.post(path),
        "PATCH" => app.client.patch(path),
        "DELETE" => app.client.delete(path),
        other => panic!("method {other}"),
    };
    req = match auth {
        Auth::None => req,
        Auth::Basic(l, p) => req.header("Authorization", basic(l, p)),
        Auth::Sid(sid) => req.header("Cookie", format!("sid={sid}")),
        Auth::Token(t) => req.query("api-token", &t),
    };
    if let Some(body) = body {
        req = req.body_json(&body);
    }
    req.send().await
}

/// Status and JSON body of a request.
async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> (u16, Value) {
    status_json(call(app, method, path, auth, body).await).await
}

async fn get(app: &TestApp, path: &str, auth: Auth<'_>) -> (u16, Value) {
    send(app, "GET", path, auth, None).await
}

/// Status and body text (for routes answering an empty body).
async fn status_text(resp: TestResponse) -> (u16, String) {
    let status = resp.0.status().as_u16();
    let text = resp.0.into_body().into_string().await.expect("body");
    (status, text)
}

fn set_cookie(resp: &TestResponse) -> String {
    resp.0
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie")
        .to_string()
}

fn unauthorized(message: &str) -> Value {
    json!({
        "code": "Unauthorized",
        "message": format!("{{\"errorCode\":3,\"message\":\"{message}\"}}"),
    })
}

fn invalid_credentials() -> Value {
    json!({
        "code": "InvalidCredentials",
        "message": "{\"errorCode\":3,\"message\":\"Invalid login or password.\"}",
    })
}

fn forbidden() -> Value {
    json!({"code": "Forbidden", "message": "Permission 'manage-users' required."})
}

fn is_token(t: &str) -> bool {
    t.len() == 43
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Creates the API token of `user_id` as the admin.
async fn create_token(app: &TestApp, user_id: &str) -> String {
    let path = format!("/node/api/users/{user_id}/auth-token");
    let (status, body) = send(app, "POST", &path, ADMIN, None).await;
    assert_eq!(status, 200, "{body}");
    let token = body.as_str().expect("a JSON string").to_string();
    assert!(is_token(&token), "{token}");
    token
}

/// Opens a session with a login and password; returns the session id.
async fn open_session(app: &TestApp, login: &str, password: &str) -> String {
    let resp = call(
        app,
        "POST",
        "/node/api/users/session",
        Auth::None,
        Some(json!({"login": login, "password": password})),
    )
    .await;
    let cookie = set_cookie(&resp);
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    let sid = body.as_str().expect("a JSON string").to_string();
    assert_eq!(cookie, format!("sid={sid}; Path=/; HttpOnly; SameSite=Lax"));
    sid
}

async fn current_login(app: &TestApp, auth: Auth<'_>) -> (u16, Value) {
    get(app, "/node/api/users/current", auth).await
}

fn with_config(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = test_config();
    f(&mut c);
    c
}

// --- tests -------------------------------------------------------------------------

store_tests! {
    async fn the_last_active_admin_can_be_neither_blocked_nor_deleted(kind) {
        let app = TestApp::start(&kind).await;
        let admin_id = app.admin.user_id.clone();
        let refusal = json!({
            "code": "BadRequest",
            "message": "Leaving the app without an active admin is not allowed."
        });
        let path = format!("/node/api/users/{admin_id}");
        let blocked = send(&app, "PATCH", &path, ADMIN, Some(json!({"status": 3}))).await;
        assert_eq!(blocked, (400, refusal.clone()));
        assert_eq!(send(&app, "DELETE", &path, ADMIN, None).await, (400, refusal));
        // With a second active admin, both are allowed.
        app.user("second", &["admin", "user"]).await;
        let resp = call(&app, "PATCH", &path, ADMIN, Some(json!({"status": 3}))).await;
        assert_eq!(resp.0.status().as_u16(), 200);
    }

    async fn current_with_basic_auth(kind) {
        let app = TestApp::start(&kind).await;
        let (status, body) = current_login(&app, ADMIN).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], app.admin.user_id.as_str());
        assert_eq!(body["login"], "admin");
        assert_eq!(body["email"], "admin@example.com");
        assert_eq!(body["displayName"], "Administrator");
        assert_eq!(body["authenticationToken"], Value::Null);
        assert_eq!(body["status"], 2);
        assert_eq!(body["group"], Value::Null);
        assert_eq!(body["contacts"], json!([]));
        assert_eq!(body["eventFilter"], json!([]));
        // Effective permissions: the admin role's.
        let perms = body["permissions"].as_array().unwrap();
        assert!(perms.contains(&json!("manage-users")), "{body}");
        assert!(body.get("password").is_none() && body.get("services").is_none());

        // The login may be the email address, in any case.
        let (status, body) = current_login(&app, Auth::Basic("ADMIN@example.com", ADMIN_PASS)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["login"], "admin");
    }

    async fn current_with_api_token(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let token = create_token(&app, &bob.id).await;
        let (status, body) = current_login(&app, Auth::Token(&token)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], bob.id.as_str());
        assert_eq!(body["login"], "bob");
        // A hint, never the token.
        let hint = body["authenticationToken"].as_str().unwrap();
        assert_eq!(hint, format!("****{}", &token[39..]));
        assert!(!body.to_string().contains(&token));
        // The user's own view from another method shows the same hint.
        let (_, by_basic) = current_login(&app, Auth::Basic("bob", USER_PASS)).await;
        assert_eq!(by_basic["authenticationToken"], hint);
    }

    async fn current_with_session_cookie(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let sid = open_session(&app, "bob", USER_PASS).await;
        assert!(is_token(&sid));
        let (status, body) = current_login(&app, Auth::Sid(&sid)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], bob.id.as_str());
        // Among other cookies too.
        let resp = app
            .client
            .get("/node/api/users/current")
            .header("Cookie", format!("theme=dark; sid={sid}; csrf=x"))
            .send()
            .await;
        resp.assert_status_is_ok();
    }

    async fn session_by_email_or_api_token(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let sid = open_session(&app, "Bob@Example.com", USER_PASS).await;
        assert_eq!(current_login(&app, Auth::Sid(&sid)).await.1["login"], "bob");

        let token = create_token(&app, &bob.id).await;
        let resp = call(&app, "POST", "/node/api/users/session", Auth::None,
            Some(json!({"auth-token": token}))).await;
        let cookie = set_cookie(&resp);
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        let sid2 = body.as_str().unwrap();
        assert_ne!(sid2, token);
        assert!(cookie.starts_with(&format!("sid={sid2};")));
        assert_eq!(current_login(&app, Auth::Sid(sid2)).await.1["id"], bob.id.as_str());

        // An unknown token opens nothing.
        let (status, body) = send(&app, "POST", "/node/api/users/session", Auth::None,
            Some(json!({"auth-token": "x".repeat(43)}))).await;
        assert_eq!((status, body), (401, unauthorized("Invalid API token.")));
    }

    async fn missing_auth_is_not_logged_in(kind) {
        let app = TestApp::start(&kind).await;
        for path in ["/node/api/users/current", "/node/api/users", "/node/api/users/x"] {
            assert_eq!(get(&app, path, Auth::None).await, (401, unauthorized("Not logged in.")));
        }
        let (status, body) = send(&app, "POST",
            &format!("/node/api/users/{}/auth-token", app.admin.user_id), Auth::None, None).await;
        assert_eq!((status, body), (401, unauthorized("Not logged in.")));
        // An empty api-token is no credential.
        assert_eq!(current_login(&app, Auth::Token("")).await, (401, unauthorized("Not logged in.")));
    }

    async fn wrong_password_is_invalid_credentials(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        for auth in [
            Auth::Basic("bob", "wrong-pass"),
            Auth::Basic("nobody", USER_PASS),
            Auth::Basic("", ""),
        ] {
            assert_eq!(current_login(&app, auth).await, (401, invalid_credentials()));
        }
        let garbage = app.client.get("/node/api/users/current")
            .header("Authorization", "Basic %%%").send().await;
        assert_eq!(status_json(garbage).await, (401, invalid_credentials()));
        // Same on session creation.
        let (status, body) = send(&app, "POST", "/node/api/users/session", Auth::None,
            Some(json!({"login": "bob", "password": "wrong-pass"}))).await;
        assert_eq!((status, body), (401, invalid_credentials()));
    }

    async fn session_request_needs_credentials(kind) {
        let app = TestApp::start(&kind).await;
        for (body, field) in [
            (json!({}), "login"),
            (json!({"password": "x"}), "login"),
            (json!({"login": "bob"}), "password"),
            (json!({"login": "bob", "password": ""}), "password"),
        ] {
            let (status, got) = send(&app, "POST", "/node/api/users/session",
                Auth::None, Some(body)).await;
            assert_eq!(status, 400);
            assert_eq!(got, json!({"code": "BadRequest",
                "message": format!("Mandatory \"{field}\" parameter is absent/empty.")}));
        }
    }

    async fn unknown_api_token_is_rejected(kind) {
        let app = TestApp::start(&kind).await;
        let (status, body) = current_login(&app, Auth::Token("no-such-token")).await;
        assert_eq!((status, body), (401, unauthorized("Invalid API token.")));
        // A Rocket.Chat login token is not an API token.
        let (status, body) = current_login(&app, Auth::Token(&app.admin.token)).await;
        assert_eq!((status, body), (401, unauthorized("Invalid API token.")));
    }

    async fn deleted_api_token_is_rejected(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let token = create_token(&app, &bob.id).await;
        let path = format!("/node/api/users/{}/auth-token", bob.id);
        let (status, text) = status_text(call(&app, "DELETE", &path, ADMIN, None).await).await;
        assert_eq!((status, text.as_str()), (200, ""));
        assert_eq!(current_login(&app, Auth::Token(&token)).await,
            (401, unauthorized("Invalid API token.")));
        let (_, body) = current_login(&app, Auth::Basic("bob", USER_PASS)).await;
        assert_eq!(body["authenticationToken"], Value::Null);
        let (_, body) = get(&app, &format!("/node/api/users/{}", bob.id), ADMIN).await;
        assert_eq!(body["authenticationToken"], Value::Null);
        // Deleting again is fine.
        let (status, _) = status_text(call(&app, "DELETE", &path, ADMIN, None).await).await;
        assert_eq!(status, 200);
    }

    async fn second_token_replaces_the_first(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let first = create_token(&app, &bob.id).await;
        let second = create_token(&app, &bob.id).await;
        assert_ne!(first, second);
        assert_eq!(current_login(&app, Auth::Token(&first)).await,
            (401, unauthorized("Invalid API token.")));
        let (status, body) = current_login(&app, Auth::Token(&second)).await;
        assert_eq!(status, 200);
        assert_eq!(body["authenticationToken"], format!("****{}", &second[39..]));
    }

    async fn session_ends_after_idle_time(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let sid = open_session(&app, "bob", USER_PASS).await;
        // Each use moves the idle window (60 minutes) forward.
        for _ in 0..3 {
            app.clock.advance(Span::minutes(59));
            assert_eq!(current_login(&app, Auth::Sid(&sid)).await.0, 200);
        }
        app.clock.advance(Span::minutes(61));
        assert_eq!(current_login(&app, Auth::Sid(&sid)).await,
            (401, unauthorized("Session expired.")));
    }

    async fn session_ends_at_its_absolute_limit(kind) {
        let config = with_config(|c| c.saymon_session_max = Duration::from_secs(2 * 3600));
        let app = TestApp::with_config(&kind, config).await;
        app.user("bob", &[]).await;
        let sid = open_session(&app, "bob", USER_PASS).await;
        app.clock.advance(Span::minutes(50));
        assert_eq!(current_login(&app, Auth::Sid(&sid)).await.0, 200);
        app.clock.advance(Span::minutes(50));
        assert_eq!(current_login(&app, Auth::Sid(&sid)).await.0, 200);
        // 150 minutes after opening: never idle for long, but past the 2 hours.
        app.clock.advance(Span::minutes(50));
        assert_eq!(current_login(&app, Auth::Sid(&sid)).await,
            (401, unauthorized("Session expired.")));
    }

    async fn default_absolute_limit_is_24_hours(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let sid = open_session(&app, "bob", USER_PASS).await;
        for _ in 0..28 {
            app.clock.advance(Span::minutes(50));
            assert_eq!(current_login(&app, Auth::Sid(&sid)).await.0, 200);
        }
        // 23 h 20 min so far; the next use is at 24 h 10 min.
        app.clock.advance(Span::minutes(50));
        assert_eq!(current_login(&app, Auth::Sid(&sid)).await,
            (401, unauthorized("Session expired.")));
    }

    async fn deleted_session_is_rejected(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let sid = open_session(&app, "bob", USER_PASS).await;
        let other = open_session(&app, "bob", USER_PASS).await;
        let resp = call(&app, "DELETE", "/node/api/users/session", Auth::Sid(&sid), None).await;
        let cookie = set_cookie(&resp);
        assert_eq!(status_text(resp).await, (200, String::new()));
        assert_eq!(cookie, "sid=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax");
        assert_eq!(current_login(&app, Auth::Sid(&sid)).await,
            (401, unauthorized("Session expired.")));
        // Only that session ended.
        assert_eq!(current_login(&app, Auth::Sid(&other)).await.0, 200);
        // Ending it again, or without a cookie.
        let again = send(&app, "DELETE", "/node/api/users/session", Auth::Sid(&sid), None).await;
        assert_eq!(again, (401, unauthorized("Session expired.")));
        let none = send(&app, "DELETE", "/node/api/users/session", Auth::None, None).await;
        assert_eq!(none, (401, unauthorized("Not logged in.")));
        // Basic credentials do not name a session to end.
        let basic = send(&app, "DELETE", "/node/api/users/session", Auth::Basic("bob", USER_PASS), None).await;
        assert_eq!(basic, (401, unauthorized("Not logged in.")));
    }

    async fn cookie_is_secure_when_configured(kind) {
        let app = TestApp::with_config(&kind, with_config(|c| c.cookie_secure = true)).await;
        app.user("bob", &[]).await;
        let resp = call(&app, "POST", "/node/api/users/session", Auth::None,
            Some(json!({"login": "bob", "password": USER_PASS}))).await;
        let cookie = set_cookie(&resp);
        let sid = json(resp).await.as_str().unwrap().to_string();
        assert_eq!(cookie, format!("sid={sid}; Path=/; HttpOnly; SameSite=Lax; Secure"));
        let resp = call(&app, "DELETE", "/node/api/users/session", Auth::Sid(&sid), None).await;
        assert_eq!(set_cookie(&resp), "sid=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure");
    }

    async fn credential_precedence(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let token = create_token(&app, &bob.id).await;
        // A stale cookie does not spoil a valid API token.
        let resp = app.client.get("/node/api/users/current")
            .header("Cookie", "sid=stale").query("api-token", &token).send().await;
        assert_eq!(resp.0.status().as_u16(), 200);
        // With nothing valid, the first credential present names the problem:
        // Basic, then sid, then api-token.
        let resp = app.client.get("/node/api/users/current")
            .header("Cookie", "sid=stale").query("api-token", &"bad").send().await;
        assert_eq!(status_json(resp).await, (401, unauthorized("Session expired.")));
        let resp = app.client.get("/node/api/users/current")
            .header("Authorization", basic("bob", "wrong"))
            .header("Cookie", "sid=stale").query("api-token", &"bad").send().await;
        assert_eq!(status_json(resp).await, (401, invalid_credentials()));
    }

    async fn manage_users_is_required(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let carol = app.user("carol", &[]).await;
        let bob_auth = Auth::Basic("bob", USER_PASS);
        let token_path = format!("/node/api/users/{}/auth-token", carol.id);
        let user_path = format!("/node/api/users/{}", carol.id);
        let cases: [(&str, &str, Option<Value>); 5] = [
            ("POST", &token_path, None),
            ("DELETE", &token_path, None),
            ("POST", "/node/api/users", Some(json!({"login": "dave", "password": "pw-123456"}))),
            ("PATCH", &user_path, Some(json!({"displayName": "C"}))),
            ("DELETE", &user_path, None),
        ];
        for (method, path, body) in &cases {
            let got = send(&app, method, path, bob_auth, body.clone()).await;
            assert_eq!(got, (403, forbidden()), "{method} {path}");
        }
        // Checked before the body is read.
        let resp = app.client.post("/node/api/users").header("Authorization", basic("bob", USER_PASS))
            .content_type("application/json").body("{oops").send().await;
        assert_eq!(status_json(resp).await, (403, forbidden()));
        // Carol is untouched.
        let (status, body) = get(&app, &user_path, ADMIN).await;
        assert_eq!(status, 200);
        assert_eq!(body["displayName"], "carol name");

        // SAYMON-style permissions granted to the user itself count.
        let (status, _) = send(&app, "PATCH", &format!("/node/api/users/{}", bob.id),
            ADMIN, Some(json!({"permissions": ["manage-users"]}))).await;
        assert_eq!(status, 200);
        let resp = call(&app, "POST", &token_path, bob_auth, None).await;
        assert_eq!(resp.0.status().as_u16(), 200);
    }

    async fn unknown_id_is_not_found(kind) {
        let app = TestApp::start(&kind).await;
        for (method, path, body) in [
            ("GET", "/node/api/users/nope", None),
            ("PATCH", "/node/api/users/nope", Some(json!({"displayName": "X"}))),
            ("DELETE", "/node/api/users/nope", None),
            ("POST", "/node/api/users/nope/auth-token", None),
            ("DELETE", "/node/api/users/nope/auth-token", None),
        ] {
            let (status, body) = send(&app, method, path, ADMIN, body).await;
            assert_eq!(status, 404, "{method} {path}");
            assert_eq!(body, json!({"code": "ResourceNotFound", "message": "User 'nope' not found."}));
        }
        // Also for a caller without manage-users.
        app.user("bob", &[]).await;
        let (status, body) = get(&app, "/node/api/users/nope", Auth::Basic("bob", USER_PASS)).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("ResourceNotFound")));
    }

    async fn bad_json_is_invalid_content(kind) {
        let app = TestApp::start(&kind).await;
        let admin_basic = basic("admin", ADMIN_PASS);
        for (method, path) in [
            ("POST", "/node/api/users/session".to_string()),
            ("POST", "/node/api/users".to_string()),
            ("PATCH", format!("/node/api/users/{}", app.admin.user_id)),
        ] {
            let req = if method == "POST" { app.client.post(&path) } else { app.client.patch(&path) };
            let resp = req.header("Authorization", &admin_basic)
                .content_type("application/json").body("{\"login\": ").send().await;
            let (status, body) = status_json(resp).await;
            assert_eq!(status, 400, "{method} {path}");
            assert_eq!(body["code"], "InvalidContent");
            assert!(body["message"].as_str().unwrap().starts_with("Invalid JSON"), "{body}");
        }
        // Valid JSON of the wrong shape is invalid content too.
        let resp = app.client.post("/node/api/users/session").content_type("application/json")
            .body("{\"login\": [1]}").send().await;
        let (status, body) = status_json(resp).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("InvalidContent")));
    }

    async fn users_crud(kind) {
        let app = TestApp::start(&kind).await;
        let (status, created) = send(&app, "POST", "/node/api/users", ADMIN, Some(json!({
            "login": "example.user",
            "email": "ex@example.com",
            "password": "first-pass-1",
            "displayName": "Example",
            "permissions": ["manage-objects"],
        }))).await;
        assert_eq!(status, 200, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(created, json!({
            "id": id, "login": "example.user", "email": "ex@example.com",
            "displayName": "Example", "authenticationToken": null, "status": 2,
            "permissions": ["manage-objects"], "group": null, "contacts": [], "eventFilter": [],
        }));
        let path = format!("/node/api/users/{id}");
        assert_eq!(get(&app, &path, ADMIN).await, (200, created.clone()));
        let (_, list) = get(&app, "/node/api/users", ADMIN).await;
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.contains(&created));

        // Partial update: only the fields given change.
        let (status, updated) = send(&app, "PATCH", &path, ADMIN, Some(json!({
            "email": "new@example.com",
            "permissions": ["manage-links"],
            "password": "second-pass-2",
            "id": "ignored", "contacts": ["ignored"],
        }))).await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["email"], "new@example.com");
        assert_eq!(updated["permissions"], json!(["manage-links"]));
        assert_eq!(updated["displayName"], "Example");
        assert_eq!(updated["login"], "example.user");
        assert_eq!(updated["id"], id.as_str());
        // The new password works, the old does not; by login or new email.
        assert_eq!(current_login(&app, Auth::Basic("example.user", "first-pass-1")).await.0, 401);
        assert_eq!(current_login(&app, Auth::Basic("new@example.com", "second-pass-2")).await.0, 200);
        assert_eq!(current_login(&app, Auth::Basic("ex@example.com", "second-pass-2")).await.0, 401);

        let (_, renamed) = send(&app, "PATCH", &path, ADMIN,
            Some(json!({"login": "renamed", "displayName": "Renamed One"}))).await;
        assert_eq!((renamed["login"].as_str(), renamed["displayName"].as_str()),
            (Some("renamed"), Some("Renamed One")));

        // Delete: empty body, then gone with its credentials.
        let token = create_token(&app, &id).await;
        let sid = open_session(&app, "renamed", "second-pass-2").await;
        let (status, text) = status_text(call(&app, "DELETE", &path, ADMIN, None).await).await;
        assert_eq!((status, text.as_str()), (200, ""));
        assert_eq!(get(&app, &path, ADMIN).await.0, 404);
        assert_eq!(current_login(&app, Auth::Token(&token)).await,
            (401, unauthorized("Invalid API token.")));
        assert_eq!(current_login(&app, Auth::Sid(&sid)).await,
            (401, unauthorized("Session expired.")));
        assert!(app.store.api_token_of(&id).await.unwrap().is_none());
    }

    async fn user_creation_rules(kind) {
        let app = TestApp::start(&kind).await;
        // Login made from the email address; no display name; no password.
        let (status, body) = send(&app, "POST", "/node/api/users", ADMIN,
            Some(json!({"email": "jane.doe@example.com"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["login"], "jane.doe");
        assert!(body.get("displayName").is_none());
        let user = app.store.find_user(&tokend::core::UserKey::Id(body["id"].as_str().unwrap().into()))
            .await.unwrap().unwrap();
        assert_eq!(user.roles, vec!["user".to_string()]);
        // Created blocked.
        let (status, body) = send(&app, "POST", "/node/api/users", ADMIN,
            Some(json!({"login": "temp", "password": "pw-123456", "status": 3}))).await;
        assert_eq!((status, body["status"].as_i64()), (200, Some(3)));
        assert_eq!(current_login(&app, Auth::Basic("temp", "pw-123456")).await.0, 401);

        for (body, message) in [
            (json!({"password": "x"}), "Mandatory \"login\" parameter is absent/empty."),
            (json!({"login": "has space"}), "Invalid login: use 1 to 64 letters, digits, '-', '_' or '.'."),
            (json!({"login": "ok", "email": "not-an-email"}), "Invalid email address."),
            (json!({"login": "same", "displayName": "SAME"}), "displayName must differ from login."),
            (json!({"login": "ok", "password": ""}), "Mandatory \"password\" parameter is absent/empty."),
            (json!({"login": "ok", "status": 7}), "Invalid status: use 2 (active) or 3 (blocked)."),
            (json!({"login": "ADMIN"}), "This login is already taken."),
            (json!({"login": "other", "email": "Admin@Example.com"}), "This email address is already taken."),
            (json!({"email": "jane.doe@elsewhere.com"}), "This login is already taken."),
        ] {
            let (status, got) = send(&app, "POST", "/node/api/users", ADMIN, Some(body.clone())).await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(got, json!({"code": "BadRequest", "message": message}), "{body}");
        }
        // A new login may not take the current display name either
        // (app.user names bob "bob name"); another login is fine.
        let bob = app.user("bob", &[]).await;
        let path = format!("/node/api/users/{}", bob.id);
        let admin = app.login("admin", ADMIN_PASS).await;
        let changes = UserChanges { name: Some("bobby".into()), ..UserChanges::default() };
        let updated = app.core.update_user(&app.caller(&admin).await, &bob.id, changes).await.unwrap();
        assert!(matches!(updated, UpdateUser::Updated(_)), "{updated:?}");
        let (status, got) = send(&app, "PATCH", &path, ADMIN, Some(json!({"login": "BOBBY"}))).await;
        assert_eq!((status, got), (400, json!({"code": "BadRequest", "message": "displayName must differ from login."})));
        let (status, got) = send(&app, "PATCH", &path, ADMIN, Some(json!({"login": "bob2"}))).await;
        assert_eq!((status, got["login"].as_str()), (200, Some("bob2")));
        // Duplicates on update too.
        let (status, got) = send(&app, "PATCH", &format!("/node/api/users/{}", bob.id),
            ADMIN, Some(json!({"login": "Admin"}))).await;
        assert_eq!((status, got["message"].as_str()), (400, Some("This login is already taken.")));
    }

    async fn limited_view_without_manage_users(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let (_, plain) = send(&app, "POST", "/node/api/users", ADMIN,
            Some(json!({"login": "example.user", "password": "pw-123456"}))).await;
        let plain_id = plain["id"].as_str().unwrap().to_string();
        let bob_auth = Auth::Basic("bob", USER_PASS);

        let (status, list) = get(&app, "/node/api/users", bob_auth).await;
        assert_eq!(status, 200);
        let list = list.as_array().unwrap().clone();
        assert_eq!(list.len(), 3);
        for entry in &list {
            let keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
            assert_eq!(keys, vec!["id", "login"], "{entry}");
        }
        assert!(list.contains(&json!({"id": app.admin.user_id, "login": "Administrator"})));
        assert!(list.contains(&json!({"id": bob.id, "login": "bob name"})));
        assert!(list.contains(&json!({"id": plain_id, "login": "exampl******"})));

        let (status, one) = get(&app, &format!("/node/api/users/{plain_id}"), bob_auth).await;
        assert_eq!((status, one), (200, json!({"id": plain_id, "login": "exampl******"})));
        // With manage-users: everything.
        let (_, full) = get(&app, &format!("/node/api/users/{plain_id}"), ADMIN).await;
        assert_eq!(full["login"], "example.user");
        assert_eq!(full["status"], 2);
    }

    async fn saymon_users_log_in_through_rocketchat(kind) {
        let app = TestApp::start(&kind).await;
        let (status, created) = send(&app, "POST", "/node/api/users", ADMIN, Some(json!({
            "login": "sam", "email": "sam@example.com", "password": "sam-pass-1",
        }))).await;
        assert_eq!(status, 200);
        let creds = app.login("sam", "sam-pass-1").await;
        assert_eq!(creds.user_id, created["id"].as_str().unwrap());
        let by_email = app.login("sam@example.com", "sam-pass-1").await;
        assert_eq!(by_email.user_id, creds.user_id);
        let (status, me) = status_json(app.rc_get("/api/v1/me", &creds).await).await;
        assert_eq!(status, 200);
        assert_eq!(me["username"], "sam");
        assert_eq!(me["roles"], json!(["user"]));
    }

    async fn rocketchat_users_log_in_through_saymon(kind) {
        let app = TestApp::start(&kind).await;
        // A user as the Rocket.Chat side makes them, with a Rocket.Chat login token.
        let rc = app.user("rcuser", &[]).await;
        let rc_creds: Creds = app.login("rcuser", USER_PASS).await;
        let sid = open_session(&app, "rcuser", USER_PASS).await;
        let (status, body) = current_login(&app, Auth::Sid(&sid)).await;
        assert_eq!((status, body["id"].as_str()), (200, Some(rc.id.as_str())));
        assert_eq!(body["displayName"], "rcuser name");
        assert_eq!(body["email"], "rcuser@example.com");
        let perms = body["permissions"].as_array().unwrap();
        assert!(perms.contains(&json!("create-personal-access-tokens")));
        assert!(!perms.contains(&json!("manage-users")));
        assert_eq!(current_login(&app, Auth::Basic("rcuser@example.com", USER_PASS)).await.0, 200);
        // A password changed through SAYMON applies to Rocket.Chat login too.
        let (status, _) = send(&app, "PATCH", &format!("/node/api/users/{}", rc.id), ADMIN,
            Some(json!({"password": "changed-pass-9"}))).await;
        assert_eq!(status, 200);
        let new_creds = app.login("rcuser", "changed-pass-9").await;
        // An admin's reset ends the login tokens the user had (issue
        // "Trustworthy under attack", item 7): the old one is refused, the
        // one from the new password works.
        assert_eq!(app.rc_get("/api/v1/me", &rc_creds).await.0.status().as_u16(), 401);
        assert_eq!(app.rc_get("/api/v1/me", &new_creds).await.0.status().as_u16(), 200);
    }

    async fn deactivation_ends_tokens_and_sessions(kind) {
        let app = TestApp::start(&kind).await;
        for (how, reactivate) in [
            (json!({"status": 3}), json!({"status": 2})),
            (json!({"active": false}), json!({"active": true})),
        ] {
            let name = format!("u{}", tokend::core::ids::new_user_id().to_lowercase());
            let user = app.user(&name, &[]).await;
            let token = create_token(&app, &user.id).await;
            let sid = open_session(&app, &name, USER_PASS).await;
            let rc = app.login(&name, USER_PASS).await;
            let path = format!("/node/api/users/{}", user.id);
            let (status, body) = send(&app, "PATCH", &path, ADMIN, Some(how)).await;
            assert_eq!((status, body["status"].as_i64()), (200, Some(3)), "{body}");
            assert_eq!(body["authenticationToken"], Value::Null);

            assert_eq!(current_login(&app, Auth::Token(&token)).await,
                (401, unauthorized("Invalid API token.")));
            assert_eq!(current_login(&app, Auth::Sid(&sid)).await,
                (401, unauthorized("Session expired.")));
            assert_eq!(current_login(&app, Auth::Basic(&name, USER_PASS)).await,
                (401, invalid_credentials()));
            assert_eq!(app.rc_get("/api/v1/me", &rc).await.0.status().as_u16(), 401);

            // Reactivated: the password works again, the old token and session do not.
            let (status, body) = send(&app, "PATCH", &path, ADMIN, Some(reactivate)).await;
            assert_eq!((status, body["status"].as_i64()), (200, Some(2)));
            assert_eq!(current_login(&app, Auth::Basic(&name, USER_PASS)).await.0, 200);
            assert_eq!(current_login(&app, Auth::Token(&token)).await.0, 401);
            assert_eq!(current_login(&app, Auth::Sid(&sid)).await.0, 401);
            assert_eq!(app.rc_get("/api/v1/me", &rc).await.0.status().as_u16(), 401);
        }
    }

    async fn failed_basic_logins_get_blocked(kind) {
        let config = with_config(|c| c.login_block.user_attempts = 3);
        let app = TestApp::with_config(&kind, config).await;
        app.user("bob", &[]).await;
        for _ in 0..3 {
            assert_eq!(current_login(&app, Auth::Basic("bob", "wrong")).await.0, 401);
        }
        let resp = call(&app, "GET", "/node/api/users/current", Auth::Basic("bob", USER_PASS), None).await;
        assert_eq!(resp.0.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("300"));
        let (status, body) = status_json(resp).await;
        assert_eq!((status, body["code"].as_str()), (429, Some("TooManyRequests")));
        // Session creation shares the counters.
        let (status, _) = send(&app, "POST", "/node/api/users/session", Auth::None,
            Some(json!({"login": "bob", "password": USER_PASS}))).await;
        assert_eq!(status, 429);
        app.clock.advance(Span::minutes(6));
        assert_eq!(current_login(&app, Auth::Basic("bob", USER_PASS)).await.0, 200);
    }
}
