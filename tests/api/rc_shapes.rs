//! Issue 14 acceptance: every answer of the Rocket.Chat routes tokend serves
//! has the shape of the 200 schema of Rocket.Chat's OpenAPI description
//! (repository `RocketChat/Rocket.Chat-Open-API`, files `authentication.yaml`
//! and `user-management.yaml`). Each test names the operation id it follows.
//!
//! Those response schemas list `properties` without a `required` list, so a
//! property is asserted present (with its JSON type) when Rocket.Chat always
//! sends it; a property the description marks as sometimes absent (or that
//! only exists for some users, as `bio`) is checked for its type when there.
//! Routes covered elsewhere: `users.list`, `users.info`, `users.register`,
//! `users.deactivateIdle` (rc_users), the roles and permissions routes
//! (rc_roles).

use crate::common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A JSON type of the schemas.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    Str,
    Bool,
    Int,
    Arr,
    Obj,
}

fn is(v: &Value, ty: Ty) -> bool {
    match ty {
        Ty::Str => v.is_string(),
        Ty::Bool => v.is_boolean(),
        Ty::Int => v.is_i64() || v.is_u64(),
        Ty::Arr => v.is_array(),
        Ty::Obj => v.is_object(),
    }
}

/// `key` is in `v` and of type `ty`.
fn has(op: &str, v: &Value, key: &str, ty: Ty) {
    let got = v
        .get(key)
        .unwrap_or_else(|| panic!("{op}: `{key}` missing in {v}"));
    assert!(is(got, ty), "{op}: `{key}` is {ty:?}, got {got} in {v}");
}

/// If `key` is in `v`, it is of type `ty`.
fn maybe(op: &str, v: &Value, key: &str, ty: Ty) {
    if let Some(got) = v.get(key) {
        assert!(is(got, ty), "{op}: `{key}` is {ty:?}, got {got} in {v}");
    }
}

/// Every key listed is present with its type.
fn all(op: &str, v: &Value, keys: &[(&str, Ty)]) {
    for (key, ty) in keys {
        has(op, v, key, *ty);
    }
}

/// `success: true`, as every 200 answer of these schemas carries.
fn succeeded(op: &str, v: &Value) {
    has(op, v, "success", Ty::Bool);
    assert_eq!(v["success"], true, "{op}: {v}");
}

/// `emails: [{address: string, verified: boolean}]`.
fn emails(op: &str, user: &Value) {
    has(op, user, "emails", Ty::Arr);
    let list = user["emails"].as_array().unwrap();
    assert!(
        !list.is_empty(),
        "{op}: the test users have an email: {user}"
    );
    for e in list {
        all(op, e, &[("address", Ty::Str), ("verified", Ty::Bool)]);
    }
}

/// `roles: string[]`.
fn roles(op: &str, user: &Value) {
    has(op, user, "roles", Ty::Arr);
    let list = user["roles"].as_array().unwrap();
    assert!(
        list.iter().all(Value::is_string),
        "{op}: roles are strings in {user}"
    );
}

/// The profile of `me`, as `post-api-v1-login` (`data.me`) and
/// `get-api-v1-me` list it.
fn profile(op: &str, me: &Value) {
    all(
        op,
        me,
        &[
            ("_id", Ty::Str),
            ("name", Ty::Str),
            ("status", Ty::Str),
            ("statusConnection", Ty::Str),
            ("username", Ty::Str),
            ("utcOffset", Ty::Int),
            ("active", Ty::Bool),
            ("settings", Ty::Obj),
            ("avatarUrl", Ty::Str),
        ],
    );
    emails(op, me);
    roles(op, me);
    has(op, &me["settings"], "preferences", Ty::Obj);
    // "won't be returned if it doesn't exist on the workspace".
    maybe(op, me, "customFields", Ty::Obj);
}

/// The user object of `post-api-v1-users.create` / `users.update` /
/// `users.updateOwnBasicInfo`: what every user has, and the optional
/// fields' types when present.
fn user_object(op: &str, user: &Value) {
    all(
        op,
        user,
        &[
            ("_id", Ty::Str),
            ("createdAt", Ty::Str),
            ("username", Ty::Str),
            ("type", Ty::Str),
            ("status", Ty::Str),
            ("active", Ty::Bool),
            ("_updatedAt", Ty::Str),
            ("name", Ty::Str),
        ],
    );
    emails(op, user);
    roles(op, user);
    for (key, ty) in [
        ("bio", Ty::Str),
        ("nickname", Ty::Str),
        ("requirePasswordChange", Ty::Bool),
        ("settings", Ty::Obj),
        ("customFields", Ty::Obj),
        ("lastLogin", Ty::Str),
        ("statusConnection", Ty::Str),
        ("utcOffset", Ty::Int),
        ("statusText", Ty::Str),
        ("services", Ty::Obj),
    ] {
        maybe(op, user, key, ty);
    }
}

/// Lowercase SHA-256 hex, as Rocket.Chat's clients send a password.
fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn get(app: &TestApp, path: &str, creds: &Creds) -> (u16, Value) {
    status_json(app.rc_get(path, creds).await).await
}

async fn post(app: &TestApp, path: &str, creds: &Creds, body: Value) -> (u16, Value) {
    status_json(app.rc_post(path, creds, body).await).await
}

/// The `Host` of the requests whose answer carries `avatarUrl`: tokend
/// builds that URL from the site's origin, which (without a configured
/// public URL) it learns from `Host`, present on every HTTP/1.1 request.
const HOST: &str = "chat.example.com";

/// Bob, made through the core, logged in.
async fn bob(app: &TestApp) -> Creds {
    app.user("bob", &[]).await;
    app.login("bob", USER_PASS).await
}

store_tests! {
    /// `post-api-v1-login`: `{status, data: {authToken, userId, me}}`, `me`
    /// the profile of `get-api-v1-me`.
    async fn login(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let op = "post-api-v1-login";
        let resp = app.client.post("/api/v1/login").header("Host", HOST)
            .body_json(&json!({ "user": "bob", "password": USER_PASS })).send().await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "status", Ty::Str);
        assert_eq!(body["status"], "success");
        has(op, &body, "data", Ty::Obj);
        let data = &body["data"];
        all(op, data, &[("authToken", Ty::Str), ("userId", Ty::Str), ("me", Ty::Obj)]);
        profile(op, &data["me"]);
        assert_eq!(data["me"]["_id"], data["userId"]);
    }

    /// `post-api-v1-logout`: `{status, data: {message}}`; the `GET` route
    /// answers the same.
    async fn logout_both_methods(kind) {
        let app = TestApp::start(&kind).await;
        let op = "post-api-v1-logout";
        let creds = bob(&app).await;
        let (status, body) = post(&app, "/api/v1/logout", &creds, json!({})).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "status", Ty::Str);
        assert_eq!(body["status"], "success");
        has(op, &body, "data", Ty::Obj);
        has(op, &body["data"], "message", Ty::Str);

        let op = "post-api-v1-logout (GET)";
        let creds = app.login("bob", USER_PASS).await;
        let (status, body) = get(&app, "/api/v1/logout", &creds).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "status", Ty::Str);
        assert_eq!(body["status"], "success");
        has(op, &body["data"], "message", Ty::Str);
    }

    /// `get-api-v1-me`: the profile at the top level, with `success`.
    async fn me(kind) {
        let app = TestApp::start(&kind).await;
        let op = "get-api-v1-me";
        for creds in [bob(&app).await, app.admin.clone()] {
            let resp = app.client.get("/api/v1/me").header("Host", HOST)
                .header("X-User-Id", &creds.user_id).header("X-Auth-Token", &creds.token)
                .send().await;
            let (status, body) = status_json(resp).await;
            assert_eq!(status, 200, "{body}");
            profile(op, &body);
            succeeded(op, &body);
        }
    }

    /// `post-api-v1-users.createToken`: `{data: {userId, authToken}, success}`.
    async fn create_token(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let op = "post-api-v1-users.createToken";
        let (status, body) = post(&app, "/api/v1/users.createToken", &app.admin,
            json!({ "userId": bob.id })).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "data", Ty::Obj);
        all(op, &body["data"], &[("userId", Ty::Str), ("authToken", Ty::Str)]);
        assert_eq!(body["data"]["userId"], bob.id.as_str());
        succeeded(op, &body);
    }

    /// `post-api-v1-users.generatePersonalAccessToken` and
    /// `post-api-v1-users.regeneratePersonalAccessToken`: `{token, success}`;
    /// `get-api-v1-users.getPersonalAccessTokens`:
    /// `{tokens: [{name, createdAt, lastTokenPart}], success}`;
    /// `post-api-v1-users.removePersonalAccessToken`: `{success}`.
    async fn personal_access_tokens(kind) {
        let app = TestApp::start(&kind).await;
        let creds = bob(&app).await;

        let op = "post-api-v1-users.generatePersonalAccessToken";
        let (status, body) = post(&app, "/api/v1/users.generatePersonalAccessToken", &creds,
            json!({ "tokenName": "ci" })).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "token", Ty::Str);
        succeeded(op, &body);

        let op = "post-api-v1-users.regeneratePersonalAccessToken";
        let (status, body) = post(&app, "/api/v1/users.regeneratePersonalAccessToken", &creds,
            json!({ "tokenName": "ci" })).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "token", Ty::Str);
        succeeded(op, &body);

        let op = "get-api-v1-users.getPersonalAccessTokens";
        let (status, body) = get(&app, "/api/v1/users.getPersonalAccessTokens", &creds).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "tokens", Ty::Arr);
        let tokens = body["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 1, "{body}");
        all(op, &tokens[0], &[("name", Ty::Str), ("createdAt", Ty::Str), ("lastTokenPart", Ty::Str)]);
        succeeded(op, &body);

        let op = "post-api-v1-users.removePersonalAccessToken";
        let (status, body) = post(&app, "/api/v1/users.removePersonalAccessToken", &creds,
            json!({ "tokenName": "ci" })).await;
        assert_eq!(status, 200, "{body}");
        succeeded(op, &body);
    }

    /// `post-api-v1-users.logoutOtherClients`: `{token, tokenExpires,
    /// success}`; `post-api-v1-users.removeOtherTokens`: `{success}`.
    async fn other_clients(kind) {
        let app = TestApp::start(&kind).await;
        let creds = bob(&app).await;
        let op = "post-api-v1-users.logoutOtherClients";
        let (status, body) = post(&app, "/api/v1/users.logoutOtherClients", &creds, json!({})).await;
        assert_eq!(status, 200, "{body}");
        all(op, &body, &[("token", Ty::Str), ("tokenExpires", Ty::Str)]);
        let expires = body["tokenExpires"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(expires).is_ok(), "{op}: a date: {body}");
        succeeded(op, &body);

        let op = "post-api-v1-users.removeOtherTokens";
        let (status, body) = post(&app, "/api/v1/users.removeOtherTokens", &creds, json!({})).await;
        assert_eq!(status, 200, "{body}");
        succeeded(op, &body);
    }

    /// `post-api-v1-users.create`: `{user, success}`.
    async fn users_create(kind) {
        let app = TestApp::start(&kind).await;
        let op = "post-api-v1-users.create";
        let (status, body) = post(&app, "/api/v1/users.create", &app.admin, json!({
            "name": "Carol", "email": "carol@example.com", "password": "carol-pass-123",
            "username": "carol", "nickname": "caz", "bio": "hi",
        })).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "user", Ty::Obj);
        user_object(op, &body["user"]);
        succeeded(op, &body);
    }

    /// `post-api-v1-users.update`: `{user, success}`.
    async fn users_update(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let op = "post-api-v1-users.update";
        let (status, body) = post(&app, "/api/v1/users.update", &app.admin,
            json!({ "userId": bob.id, "data": { "name": "Bobby" } })).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "user", Ty::Obj);
        user_object(op, &body["user"]);
        assert_eq!(body["user"]["name"], "Bobby");
        succeeded(op, &body);
    }

    /// `post-api-v1-users.updateOwnBasicInfo`: `{user, success}`.
    async fn users_update_own_basic_info(kind) {
        let app = TestApp::start(&kind).await;
        let creds = bob(&app).await;
        let op = "post-api-v1-users.updateOwnBasicInfo";
        let (status, body) = post(&app, "/api/v1/users.updateOwnBasicInfo", &creds,
            json!({ "data": { "name": "Bobby" } })).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "user", Ty::Obj);
        user_object(op, &body["user"]);
        assert_eq!(body["user"]["name"], "Bobby");
        succeeded(op, &body);
    }

    /// `post-api-v1-users.setActiveStatus`: `{user: {_id, active}, success}`.
    async fn users_set_active_status(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let op = "post-api-v1-users.setActiveStatus";
        let (status, body) = post(&app, "/api/v1/users.setActiveStatus", &app.admin,
            json!({ "userId": bob.id, "activeStatus": false })).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "user", Ty::Obj);
        all(op, &body["user"], &[("_id", Ty::Str), ("active", Ty::Bool)]);
        assert_eq!(body["user"]["active"], false);
        succeeded(op, &body);
    }

    /// `post-api-v1-users.delete`: `{success}`.
    async fn users_delete(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let op = "post-api-v1-users.delete";
        let (status, body) = post(&app, "/api/v1/users.delete", &app.admin,
            json!({ "userId": bob.id })).await;
        assert_eq!(status, 200, "{body}");
        succeeded(op, &body);
    }

    /// `post-api-v1-roles.removeUserFromRole`: `{success}` (tokend also
    /// sends `role`, as Rocket.Chat's source does; rc_roles checks it).
    async fn remove_user_from_role(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &["user", "bot"]).await;
        let op = "post-api-v1-roles.removeUserFromRole";
        let (status, body) = post(&app, "/api/v1/roles.removeUserFromRole", &app.admin,
            json!({ "roleId": "bot", "username": "bob" })).await;
        assert_eq!(status, 200, "{body}");
        succeeded(op, &body);
    }
    /// `get-api-info`, which neither of the two description files holds:
    /// the shape of Rocket.Chat's `getServerInfo` (`default/info.ts`):
    /// `{version, success}` to anyone, plus `info: {version, build}` to a
    /// caller with `view-statistics`.
    async fn server_info(kind) {
        let app = TestApp::start(&kind).await;
        let op = "get-api-info";
        let (status, body) = status_json(app.client.get("/api/info").send().await).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "version", Ty::Str);
        assert!(body.get("info").is_none(), "{op}: no details anonymously: {body}");
        succeeded(op, &body);

        let op = "get-api-info (admin)";
        let (status, body) = get(&app, "/api/info", &app.admin).await;
        assert_eq!(status, 200, "{body}");
        has(op, &body, "version", Ty::Str);
        has(op, &body, "info", Ty::Obj);
        all(op, &body["info"], &[("version", Ty::Str), ("build", Ty::Obj)]);
        succeeded(op, &body);
    }

    /// `get-api-v1-users.checkUsernameAvailability`, which neither
    /// description file holds: Rocket.Chat's `users.ts` answers
    /// `{result: boolean, success}`.
    async fn check_username_availability(kind) {
        let app = TestApp::start(&kind).await;
        let creds = bob(&app).await;
        let op = "get-api-v1-users.checkUsernameAvailability";
        for (name, free) in [("someone-new", true), ("admin", false)] {
            let path = format!("/api/v1/users.checkUsernameAvailability?username={name}");
            let (status, body) = get(&app, &path, &creds).await;
            assert_eq!(status, 200, "{body}");
            has(op, &body, "result", Ty::Bool);
            assert_eq!(body["result"], free, "{op}: {name}: {body}");
            succeeded(op, &body);
        }
    }
    /// With Rocket.Chat's password fallback on (a user without a second
    /// factor confirms with the password), the protected routes answer the
    /// same shapes once `X-2FA-Method: password` and `X-2FA-Code: sha256 hex`
    /// are given: `post-api-v1-users.generatePersonalAccessToken`,
    /// `post-api-v1-users.regeneratePersonalAccessToken`,
    /// `post-api-v1-users.removePersonalAccessToken`,
    /// `post-api-v1-users.createToken`.
    async fn protected_routes_behind_the_password_fallback(kind) {
        let mut config = test_config();
        config.two_factor.password_fallback = true;
        let app = TestApp::with_config(&kind, config).await;
        let bob = app.user("bob", &[]).await;
        let creds = app.login("bob", USER_PASS).await;
        let send = |path: &'static str, creds: Creds, body: Value, code: String| {
            let req = app.client.post(path)
                .header("X-User-Id", &creds.user_id).header("X-Auth-Token", &creds.token)
                .header("X-2FA-Method", "password").header("X-2FA-Code", code)
                .body_json(&body);
            async move { status_json(req.send().await).await }
        };
        let bob_code = sha256_hex(USER_PASS);

        let op = "post-api-v1-users.generatePersonalAccessToken";
        let (status, body) = send("/api/v1/users.generatePersonalAccessToken", creds.clone(),
            json!({ "tokenName": "ci" }), bob_code.clone()).await;
        assert_eq!(status, 200, "{op}: {body}");
        has(op, &body, "token", Ty::Str);
        succeeded(op, &body);

        let op = "post-api-v1-users.regeneratePersonalAccessToken";
        let (status, body) = send("/api/v1/users.regeneratePersonalAccessToken", creds.clone(),
            json!({ "tokenName": "ci" }), bob_code.clone()).await;
        assert_eq!(status, 200, "{op}: {body}");
        has(op, &body, "token", Ty::Str);
        succeeded(op, &body);

        let op = "post-api-v1-users.removePersonalAccessToken";
        let (status, body) = send("/api/v1/users.removePersonalAccessToken", creds.clone(),
            json!({ "tokenName": "ci" }), bob_code).await;
        assert_eq!(status, 200, "{op}: {body}");
        succeeded(op, &body);

        let op = "post-api-v1-users.createToken";
        let (status, body) = send("/api/v1/users.createToken", app.admin.clone(),
            json!({ "userId": bob.id }), sha256_hex(ADMIN_PASS)).await;
        assert_eq!(status, 200, "{op}: {body}");
        all(op, &body["data"], &[("userId", Ty::Str), ("authToken", Ty::Str)]);
        succeeded(op, &body);
    }
}
