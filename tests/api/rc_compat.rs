//! Rocket.Chat clients unchanged (issue 14): request bodies as Rocket.Chat
//! takes them (JSON and form-encoded), `GET logout`, `/api/info`, the
//! `users.info` / `users.list` permission model, start-up, `me`. Each test
//! names the Rocket.Chat operation whose shape it follows; on both stores.

use crate::common::*;
use serde_json::{json, Value};
use tokend::config::{Config, Secret};
use tokend::core::seed::{seed, AdminSeed};

/// `avatarUrl` of `me` for a request to `chat.example.org`.
async fn me_url(app: &TestApp, proto: Option<&str>) -> Value {
    let mut req = app
        .client
        .get("/api/v1/me")
        .header("Host", "chat.example.org")
        .header("X-User-Id", &app.admin.user_id)
        .header("X-Auth-Token", &app.admin.token);
    if let Some(p) = proto {
        req = req.header("X-Forwarded-Proto", p);
    }
    status_json(req.send().await).await.1["avatarUrl"].clone()
}

/// `POST` a form-encoded body, with Rocket.Chat credentials when given.
async fn post_form(app: &TestApp, path: &str, creds: Option<&Creds>, form: &str) -> (u16, Value) {
    let mut req = app
        .client
        .post(path)
        .content_type("application/x-www-form-urlencoded")
        .body(form.to_string());
    if let Some(c) = creds {
        req = req
            .header("X-User-Id", &c.user_id)
            .header("X-Auth-Token", &c.token);
    }
    status_json(req.send().await).await
}

async fn get(app: &TestApp, path: &str, creds: &Creds) -> (u16, Value) {
    status_json(app.rc_get(path, creds).await).await
}

/// `%`-encodes a form value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

store_tests! {
    // --- request bodies: JSON and form-encoded -----------------------------------

    /// Rocket.Chat `login` (`POST /api/v1/login`) takes a form body as its
    /// old official examples send it.
    async fn login_takes_a_form_encoded_body(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let digest = tokend::core::token::sha256_hex(USER_PASS);
        for form in [
            format!("user=bob&password={}", enc(USER_PASS)),
            format!("username=bob&password={}", enc(USER_PASS)),
            format!("user%5Bemail%5D=bob%40example.com&password={}", enc(USER_PASS)),
            format!("user=bob&password[digest]={digest}&password[algorithm]=sha-256"),
        ] {
            let (status, answer) = post_form(&app, "/api/v1/login", None, &form).await;
            assert_eq!(status, 200, "{form} -> {answer}");
            assert_eq!(answer["status"], "success");
            assert_eq!(answer["data"]["userId"], bob.id.as_str());
            let creds = Creds {
                user_id: bob.id.clone(),
                token: answer["data"]["authToken"].as_str().unwrap().to_string(),
            };
            assert_eq!(app.me_status(&creds).await, 200);
        }
        // A wrong password in a form is the same 401 as in JSON.
        let (status, answer) = post_form(&app, "/api/v1/login", None, "user=bob&password=nope").await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("Unauthorized")));
        // `; charset=...` on the media type changes nothing.
        let resp = app.client.post("/api/v1/login")
            .content_type("application/x-www-form-urlencoded; charset=UTF-8")
            .body(format!("user=bob&password={}", enc(USER_PASS)))
            .send().await;
        assert_eq!(resp.0.status().as_u16(), 200);
    }

    /// Rocket.Chat `users.create` with a form body: strings coerced to the
    /// schema's booleans and lists, as Rocket.Chat's validator (`coerceTypes`) does.
    async fn users_create_takes_a_form_body_with_typed_fields(kind) {
        let app = TestApp::start(&kind).await;
        let form = "email=f%40example.org&name=Form+User&password=s3cret-pass&username=formuser\
                    &active=false&verified=true&roles[]=user&roles[]=bot&requirePasswordChange=true";
        let (status, answer) = post_form(&app, "/api/v1/users.create", Some(&app.admin), form).await;
        assert_eq!(status, 200, "{answer}");
        let user = &answer["user"];
        assert_eq!(user["name"], "Form User");
        assert_eq!(user["active"], false);
        assert_eq!(user["roles"], json!(["user", "bot"]));
        assert_eq!(user["requirePasswordChange"], true);
        assert_eq!(user["emails"], json!([{"address": "f@example.org", "verified": true}]));
        // A single `roles` value is a one-element list.
        let form = "email=g%40example.org&name=G&password=s3cret-pass&username=guser&roles=user";
        let (status, answer) = post_form(&app, "/api/v1/users.create", Some(&app.admin), form).await;
        assert_eq!((status, &answer["user"]["roles"]), (200, &json!(["user"])), "{answer}");
        // A value that is no boolean stays a string, and the schema refuses it.
        let form = "email=h%40example.org&name=H&password=s3cret-pass&username=huser&active=maybe";
        let (status, answer) = post_form(&app, "/api/v1/users.create", Some(&app.admin), form).await;
        assert_eq!((status, answer["errorType"].as_str()), (400, Some("invalid-params")), "{answer}");
    }

    /// Rocket.Chat `users.update` (nested `data[...]`), `users.setActiveStatus`
    /// and `users.createToken` with form bodies.
    async fn nested_and_boolean_form_fields_reach_the_routes(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let form = format!("userId={}&data[name]=Robert&data[roles][]=user", bob.id);
        let (status, answer) = post_form(&app, "/api/v1/users.update", Some(&app.admin), &form).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["user"]["name"], "Robert");

        let form = format!("userId={}", bob.id);
        let (status, answer) = post_form(&app, "/api/v1/users.createToken", Some(&app.admin), &form).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["data"]["userId"], bob.id.as_str());

        let form = format!("userId={}&activeStatus=false", bob.id);
        let (status, answer) = post_form(&app, "/api/v1/users.setActiveStatus", Some(&app.admin), &form).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["user"], json!({"_id": bob.id, "active": false}));
    }

    /// Rocket.Chat `logout` answers `GET` as well as `POST` (the npm
    /// `@rocket.chat/sdk` `api.logout` uses `GET`).
    async fn logout_answers_get_too(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        let (status, answer) = get(&app, "/api/v1/logout", &bob).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            json!({"status": "success", "data": {"message": "You've been logged out!"}})
        );
        assert_eq!(app.me_status(&bob).await, 401, "the token ended");
        // Without credentials: Rocket.Chat's 401.
        let (status, _) = status_json(app.client.get("/api/v1/logout").send().await).await;
        assert_eq!(status, 401);
    }

    // --- /api/info ----------------------------------------------------------------

    /// Rocket.Chat `info` (`getServerInfo`): anyone learns `MAJOR.MINOR` of the
    /// release; tokend's own version has a field of its own.
    async fn info_answers_the_rocket_chat_release(kind) {
        let config = Config { rc_compat_version: "7.10.3".into(), ..test_config() };
        let app = TestApp::with_config(&kind, config).await;
        let (status, body) = status_json(app.client.get("/api/info").send().await).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"version": "7.10", "tokendVersion": env!("CARGO_PKG_VERSION"), "success": true})
        );
        // A plain user, and invalid credentials, get the same anonymous answer.
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        assert_eq!(get(&app, "/api/info", &bob).await, (200, body.clone()));
        let wrong = Creds { user_id: bob.user_id.clone(), token: "nope".into() };
        assert_eq!(get(&app, "/api/info", &wrong).await, (200, body));
    }

    /// Rocket.Chat `info` for a caller with `view-statistics` (admins): the
    /// full version and `info` with `version` and `build`.
    async fn info_tells_admins_the_full_version_and_build(kind) {
        let config = Config { rc_compat_version: "7.10.3".into(), ..test_config() };
        let app = TestApp::with_config(&kind, config).await;
        let (status, body) = get(&app, "/api/info", &app.admin).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["version"], "7.10.3");
        assert_eq!(body["success"], true);
        assert_eq!(body["tokendVersion"], env!("CARGO_PKG_VERSION"));
        let info = &body["info"];
        assert_eq!(info["version"], "7.10.3");
        assert!(info["build"]["arch"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
        assert!(info["build"]["platform"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
        assert!(info["build"]["cpus"].as_u64().is_some_and(|n| n >= 1), "{body}");
        // The permission, not the role, decides (as in Rocket.Chat).
        app.core.set_permission_roles("view-statistics", &["user".to_string()]).await.unwrap();
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        assert_eq!(get(&app, "/api/info", &bob).await.1["version"], "7.10.3");
    }

    // --- users.info / users.list: Rocket.Chat's permission model ---------------------

    /// Rocket.Chat `users.info`: any logged-in user reads another user's
    /// public fields (no `view-other-user-info`), by `userId`, `username` or
    /// `email`; the emails only with `view-full-other-user-info`.
    async fn users_info_reads_others_public_fields(kind) {
        let app = TestApp::start(&kind).await;
        let carol = app.user("carol", &[]).await;
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        for query in [
            format!("userId={}", carol.id),
            "username=CAROL".to_string(),
        ] {
            let (status, body) = get(&app, &format!("/api/v1/users.info?{query}"), &bob).await;
            assert_eq!(status, 200, "{query}: {body}");
            assert_eq!(body["success"], true);
            let user = &body["user"];
            assert_eq!(user["_id"], carol.id.as_str());
            assert_eq!(user["username"], "carol");
            assert_eq!(user["name"], "carol name");
            assert!(user["roles"].is_array() && user["active"].is_boolean(), "{user}");
            assert!(user["status"].is_string() && user["type"].is_string(), "{user}");
            assert!(user.get("emails").is_none(), "{user}");
            assert!(user.get("services").is_none(), "{user}");
        }
        // By email: an admin (view-full-other-user-info) finds anyone, with emails.
        let (status, body) = get(&app, "/api/v1/users.info?email=Carol%40example.com", &app.admin).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["_id"], carol.id.as_str());
        assert_eq!(body["user"]["emails"][0]["address"], "carol@example.com");
        // A plain user finds itself by email, but nobody else: no oracle of
        // which address belongs to whom.
        let (status, body) = get(&app, "/api/v1/users.info?email=bob%40example.com", &bob).await;
        assert_eq!((status, body["user"]["username"].as_str()), (200, Some("bob")), "{body}");
        let (status, body) = get(&app, "/api/v1/users.info?email=carol%40example.com", &bob).await;
        assert_eq!((status, body), (400, json!({"success": false, "error": "User not found."})));
    }

    /// Rocket.Chat `users.info` for an unknown user: `{"success":false,"error":"User not found."}`,
    /// and the same for every lookup (`importId` too); no search term: "Invalid search query.".
    async fn users_info_unknown_user_is_rocket_chats_failure(kind) {
        let app = TestApp::start(&kind).await;
        let not_found = json!({"success": false, "error": "User not found."});
        for query in ["userId=nope", "username=nobody", "email=no%40where.org"] {
            let (status, body) = get(&app, &format!("/api/v1/users.info?{query}"), &app.admin).await;
            assert_eq!((status, body), (400, not_found.clone()), "{query}");
        }
        // importId is a search term (Rocket.Chat's importers set them; a
        // tokend store holds none of its own).
        let (status, body) = get(&app, "/api/v1/users.info?importId=x", &app.admin).await;
        assert_eq!((status, body), (400, not_found.clone()));
        let (status, body) = get(&app, "/api/v1/users.info?importId=", &app.admin).await;
        assert_eq!((status, body), (400, json!({"success": false, "error": "Invalid search query."})));
    }

    /// Rocket.Chat `users.list`: permission `view-d-room`, seeded for the
    /// user, bot and app roles; without it 403 `{"success":false,"error":"unauthorized"}`.
    async fn users_list_needs_view_d_room(kind) {
        let app = TestApp::start(&kind).await;
        let perms = app.store.permissions().await.unwrap();
        let roles = perms.iter().find(|p| p.id == "view-d-room").map(|p| p.roles.clone()).unwrap();
        for role in ["user", "bot", "app"] {
            assert!(roles.iter().any(|r| r == role), "{role} in {roles:?}");
        }
        assert!(perms.iter().all(|p| p.id != "view-other-user-info"), "tokend's invention is gone");

        let bot = app.user("robot", &["bot"]).await;
        let bot = app.login(&bot.username.unwrap(), USER_PASS).await;
        let (status, body) = get(&app, "/api/v1/users.list", &bot).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["total"].as_u64(), body["count"].as_u64(), body["offset"].as_u64()), (Some(2), Some(2), Some(0)));
        assert!(body["users"].is_array() && body["success"] == true);

        let guest = app.user("visitor", &["guest"]).await;
        let guest = app.login(&guest.username.unwrap(), USER_PASS).await;
        let (status, body) = get(&app, "/api/v1/users.list", &guest).await;
        assert_eq!((status, body), (403, json!({"success": false, "error": "unauthorized"})));
        // The permission decides, not the role.
        app.core.set_permission_roles("view-d-room", &["guest".to_string()]).await.unwrap();
        assert_eq!(get(&app, "/api/v1/users.list", &guest).await.0, 200);
        assert_eq!(get(&app, "/api/v1/users.list", &bot).await.0, 403);
    }

    // --- start-up as Rocket.Chat ----------------------------------------------------

    /// Rocket.Chat's start-up admin: `ADMIN_NAME` names it (default
    /// `Administrator`), `ADMIN_EMAIL_VERIFIED=true` marks its email verified
    /// (default unverified); seen through `me`.
    async fn start_up_admin_takes_admin_name_and_email_verified(kind) {
        let config = Config {
            admin_name: Some("Root Admin".into()),
            admin_email_verified: true,
            ..test_config()
        };
        let app = TestApp::with_config(&kind, config).await;
        let (status, me) = get(&app, "/api/v1/me", &app.admin).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["name"], "Root Admin");
        assert_eq!(me["emails"], json!([{"address": "admin@example.com", "verified": true}]));
        assert_eq!(me["email"], "admin@example.com");

        let app = TestApp::start(&kind.fresh()).await;
        let (_, me) = get(&app, "/api/v1/me", &app.admin).await;
        assert_eq!(me["name"], "Administrator");
        assert_eq!(me["emails"], json!([{"address": "admin@example.com", "verified": false}]));
        assert!(me.get("email").is_none(), "{me}");
    }

    /// Rocket.Chat creates the admin from `ADMIN_*` only when no user holds
    /// the admin role, not whenever the username is free.
    async fn start_up_admin_only_while_nobody_is_admin(kind) {
        let app = TestApp::start(&kind).await;
        let other = Config {
            admin_username: Some("root".into()),
            admin_pass: Some(Secret("root-pass-123".into())),
            ..test_config()
        };
        let core = tokend::app::core_with(other.clone(), app.store.clone(), app.clock.clone());
        assert_eq!(seed(&core).await.unwrap(), AdminSeed::Unchanged);
        let (status, _) = status_json(
            app.client.post("/api/v1/login")
                .body_json(&json!({"user": "root", "password": "root-pass-123"}))
                .send().await,
        ).await;
        assert_eq!(status, 401, "no second admin");

        // A store whose only users are not admins gets one.
        let store = kind.fresh().open(&other).await;
        let core = tokend::app::core_with(other, store.clone(), app.clock.clone());
        let created = core
            .insert_user(tokend::core::service::NewUser {
                username: "bob".into(),
                password: Some(USER_PASS.into()),
                active: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(matches!(created, tokend::core::service::CreateUser::Created(_)));
        assert_eq!(seed(&core).await.unwrap(), AdminSeed::Created { username: "root".into() });
        assert_eq!(store.count_users().await.unwrap(), 2);
    }

    // --- me: the fields of Rocket.Chat's schema ---------------------------------------

    /// Rocket.Chat `me` (`GET /api/v1/me`) and `login`'s `data.me` carry the
    /// fields of Rocket.Chat's 200 schema: `_id`, `name`, `emails`, `status`,
    /// `statusConnection`, `username`, `utcOffset`, `active`, `roles`,
    /// `settings.preferences`, `avatarUrl` (absolute, under the site's origin).
    async fn me_and_login_carry_rocket_chats_schema_fields(kind) {
        let app = TestApp::start(&kind).await;
        let check = |me: &Value| {
            assert!(me["_id"].is_string() && me["name"].is_string() && me["username"] == "admin", "{me}");
            assert!(me["emails"][0]["address"].is_string() && me["emails"][0]["verified"].is_boolean(), "{me}");
            assert_eq!(me["status"], "offline");
            assert_eq!(me["statusConnection"], "offline");
            assert_eq!(me["utcOffset"], 0);
            assert!(me["active"].is_boolean() && me["roles"].is_array(), "{me}");
            assert!(me["settings"]["preferences"].is_object(), "{me}");
            assert_eq!(me["avatarUrl"], "http://chat.example.org:3000/avatar/admin");
        };
        let resp = app.client.get("/api/v1/me")
            .header("Host", "chat.example.org:3000")
            .header("X-User-Id", &app.admin.user_id)
            .header("X-Auth-Token", &app.admin.token)
            .send().await;
        let (status, me) = status_json(resp).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["success"], true);
        check(&me);
        let resp = app.client.post("/api/v1/login")
            .header("Host", "chat.example.org:3000")
            .body_json(&json!({"user": "admin", "password": ADMIN_PASS}))
            .send().await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        check(&body["data"]["me"]);
        // A malformed Host gives no URL at all.
        let resp = app.client.get("/api/v1/me")
            .header("Host", "evil.org/x?y")
            .header("X-User-Id", &app.admin.user_id)
            .header("X-Auth-Token", &app.admin.token)
            .send().await;
        assert!(status_json(resp).await.1.get("avatarUrl").is_none());
    }

    /// `avatarUrl`'s scheme: `https` with `COOKIE_SECURE`, and
    /// `X-Forwarded-Proto` only behind a trusted proxy (`TRUST_PROXY`).
    async fn avatar_url_scheme_follows_the_deployment(kind) {
        let app = TestApp::start(&kind).await;
        assert_eq!(me_url(&app, Some("https")).await, "http://chat.example.org/avatar/admin");
        let app = TestApp::with_config(&kind.fresh(), Config { cookie_secure: true, ..test_config() }).await;
        assert_eq!(me_url(&app, None).await, "https://chat.example.org/avatar/admin");
        let app = TestApp::with_config(&kind.fresh(), Config { trust_proxy: true, ..test_config() }).await;
        assert_eq!(me_url(&app, Some("https")).await, "https://chat.example.org/avatar/admin");
    }

    // --- token lifecycle ----------------------------------------------------------------

    /// Rocket.Chat `users.logoutOtherClients`: every other login token of the
    /// caller ends, the one presented and the PATs keep working; answers
    /// `{token, tokenExpires, success}`.
    async fn logout_other_clients_keeps_the_presented_token(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let phone = app.login("bob", USER_PASS).await;
        let laptop = app.login("bob", USER_PASS).await;
        let (status, body) = status_json(
            app.rc_post("/api/v1/users.generatePersonalAccessToken", &laptop, json!({"tokenName": "ci"})).await,
        ).await;
        assert_eq!(status, 200, "{body}");
        let pat = Creds { user_id: laptop.user_id.clone(), token: body["token"].as_str().unwrap().into() };
        let (status, body) = status_json(
            app.rc_post("/api/v1/users.logoutOtherClients", &laptop, json!({})).await,
        ).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["token"], laptop.token.as_str());
        let expires = body["tokenExpires"].as_str().unwrap();
        let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("ISO 8601");
        let days = (expires.with_timezone(&chrono::Utc) - app.core.now()).num_days();
        assert!((89..=90).contains(&days), "{days} days");
        assert_eq!(app.me_status(&laptop).await, 200);
        assert_eq!(app.me_status(&pat).await, 200);
        assert_eq!(app.me_status(&phone).await, 401, "the other client is out");
        // Called with the PAT: no login token left to keep, no expiry.
        app.login("bob", USER_PASS).await;
        let (status, body) = status_json(
            app.rc_post("/api/v1/users.logoutOtherClients", &pat, json!({})).await,
        ).await;
        assert_eq!((status, body["tokenExpires"].as_str()), (200, Some("")), "{body}");
        assert_eq!(app.me_status(&laptop).await, 401);
        assert_eq!(app.me_status(&pat).await, 200);
    }

    /// Rocket.Chat `users.removeOtherTokens`: `{"success":true}`, the other
    /// login tokens end.
    async fn remove_other_tokens_ends_the_other_logins(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let old = app.login("bob", USER_PASS).await;
        let current = app.login("bob", USER_PASS).await;
        let (status, body) = post_form(&app, "/api/v1/users.removeOtherTokens", Some(&current), "").await;
        assert_eq!((status, body), (200, json!({"success": true})));
        assert_eq!(app.me_status(&current).await, 200);
        assert_eq!(app.me_status(&old).await, 401);
    }

    /// Rocket.Chat `users.checkUsernameAvailability`: `{result, success}`;
    /// one's own name is available to oneself, another user's (any case) and
    /// an invalid one are not; no `username`: 400.
    async fn check_username_availability(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        for (name, result) in [("free-name", true), ("bob", true), ("ADMIN", false), ("no spaces", false)] {
            let path = format!("/api/v1/users.checkUsernameAvailability?username={}", enc(name));
            let (status, body) = get(&app, &path, &bob).await;
            assert_eq!((status, body), (200, json!({"result": result, "success": true})), "{name}");
        }
        let (status, body) = get(&app, "/api/v1/users.checkUsernameAvailability", &bob).await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("invalid-params")), "{body}");
        let (status, _) = status_json(
            app.client.get("/api/v1/users.checkUsernameAvailability?username=x").send().await,
        ).await;
        assert_eq!(status, 401);
    }
}

/// The OpenAPI document states both media types on every Rocket.Chat
/// `POST` route that takes a body.
#[tokio::test]
async fn openapi_lists_json_and_form_bodies() {
    let doc: Value = serde_json::from_str(&tokend::app::openapi_json()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut seen = 0;
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/api/v1/")) {
        let Some(body) = item.get("post").and_then(|op| op.get("requestBody")) else {
            continue;
        };
        let content = body["content"].as_object().unwrap();
        assert!(
            content.contains_key("application/json; charset=utf-8"),
            "{path}"
        );
        assert!(
            content.contains_key("application/x-www-form-urlencoded"),
            "{path}"
        );
        seen += 1;
    }
    assert!(seen >= 10, "{seen} bodies");
    assert!(paths["/api/v1/logout"].get("get").is_some());
    // tokend's own version is the document's; the Rocket.Chat one is named.
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(
        description.contains(tokend::config::RC_COMPAT_VERSION),
        "{description}"
    );
}

/// Issue 14 item 5: `lastLogin` written at every login, and
/// `users.deactivateIdle` reading it.
mod idle {
    use super::*;
    use tokend::core::UserKey;

    async fn last_login(app: &TestApp, name: &str) -> Option<tokend::core::Timestamp> {
        app.store
            .find_user(&UserKey::Username(name.into()))
            .await
            .unwrap()
            .unwrap()
            .last_login
    }

    store_tests! {
        async fn every_login_writes_last_login(kind) {
            let app = TestApp::start(&kind).await;
            app.user("bob", &[]).await;
            assert_eq!(last_login(&app, "bob").await, None);
            let t0 = app.core.now();
            let creds = app.login("bob", USER_PASS).await;
            assert_eq!(last_login(&app, "bob").await, Some(t0), "password login");
            app.clock.advance(chrono::Duration::hours(1));
            let resp = app.client.post("/api/v1/login").body_json(&json!({ "resume": creds.token })).send().await;
            resp.assert_status_is_ok();
            assert_eq!(last_login(&app, "bob").await, Some(app.core.now()), "resume login");
            app.clock.advance(chrono::Duration::hours(1));
            let resp = app.client.post("/node/api/users/session")
                .body_json(&json!({ "login": "bob", "password": USER_PASS })).send().await;
            resp.assert_status_is_ok();
            assert_eq!(last_login(&app, "bob").await, Some(app.core.now()), "SAYMON session");
            // A token request is no login.
            app.clock.advance(chrono::Duration::hours(1));
            assert_eq!(app.me_status(&creds).await, 200);
            assert_ne!(last_login(&app, "bob").await, Some(app.core.now()));
        }

        /// Rocket.Chat's `users.deactivateIdle`: `{daysIdle, role}` →
        /// `{count, success}` (RC OpenAPI `post-api-v1-users.deactivateIdle`).
        async fn deactivate_idle_users(kind) {
            let app = TestApp::start(&kind).await;
            for name in ["old", "recent", "oldbot"] {
                app.user(name, if name == "oldbot" { &["bot"] } else { &[] }).await;
            }
            app.user("never", &[]).await;
            let old = app.login("old", USER_PASS).await;
            app.login("oldbot", USER_PASS).await;
            app.clock.advance(chrono::Duration::days(40));
            app.login("recent", USER_PASS).await;
            // The admin logged in 40 days ago too: re-login so it stays.
            let admin = app.login("admin", ADMIN_PASS).await;

            app.user("plain", &[]).await;
            let plain = app.login("plain", USER_PASS).await;
            let (status, body) = status_json(app.rc_post("/api/v1/users.deactivateIdle", &plain, json!({ "daysIdle": 30 })).await).await;
            assert_eq!((status, body["error"].as_str()), (403, Some(NO_PERMISSION)));
            let (status, body) = status_json(app.rc_post("/api/v1/users.deactivateIdle", &admin, json!({})).await).await;
            assert_eq!((status, body["errorType"].as_str()), (400, Some("invalid-params")), "{body}");

            // Found by the fuzzer: a span reaching before the calendar's first
            // day answered 500 (the date subtraction panicked). Nobody is that idle.
            for days in [117_473_881u64, u64::from(u32::MAX)] {
                let (status, body) = status_json(app.rc_post("/api/v1/users.deactivateIdle", &admin, json!({ "daysIdle": days })).await).await;
                assert_eq!((status, body["count"].as_u64()), (200, Some(0)), "{days}: {body}");
            }

            let (status, body) = status_json(app.rc_post("/api/v1/users.deactivateIdle", &admin, json!({ "daysIdle": 30 })).await).await;
            assert_eq!(status, 200, "{body}");
            assert!(body["count"].is_u64() && body["success"] == true, "post-api-v1-users.deactivateIdle: {body}");
            assert_eq!(body["count"], 1, "only old: {body}");
            let active = |name: &'static str| { let app = &app; async move {
                app.store.find_user(&UserKey::Username(name.into())).await.unwrap().unwrap().active } };
            assert!(!active("old").await);
            assert!(active("recent").await && active("never").await && active("oldbot").await);
            assert_eq!(app.me_status(&old).await, 401, "its tokens ended");
            let (_, body) = status_json(app.rc_post("/api/v1/users.deactivateIdle", &admin, json!({ "daysIdle": 30, "role": "bot" })).await).await;
            assert_eq!(body["count"], 1);
            assert!(!active("oldbot").await);
        }
    }
}

/// Issue 14 item 5: `users.register`, switched by
/// `ACCOUNTS_REGISTRATION_FORM` (Rocket.Chat's `Accounts_RegistrationForm`),
/// default off.
mod register {
    use super::*;

    fn body(name: &str) -> Value {
        json!({ "username": name, "email": format!("{name}@example.org"), "pass": "reg-pass-123", "name": "Reg User" })
    }

    store_tests! {
        async fn registration_is_off_by_default(kind) {
            let app = TestApp::start(&kind).await;
            let resp = app.client.post("/api/v1/users.register").body_json(&body("reg")).send().await;
            let (status, answer) = status_json(resp).await;
            assert_eq!((status, answer["errorType"].as_str()), (400, Some("error-user-registration-disabled")), "{answer}");
            assert!(app.store.find_user(&tokend::core::UserKey::Username("reg".into())).await.unwrap().is_none());
        }

        /// `post-api-v1-users.register`: `{user: {_id, username, ...}, success}`.
        async fn public_registration_makes_a_plain_user(kind) {
            let mut config = test_config();
            config.registration_public = true;
            let app = TestApp::with_config(&kind, config).await;
            // Fields a body may not set (roles) are ignored.
            let mut b = body("reg");
            b["roles"] = json!(["admin"]);
            let resp = app.client.post("/api/v1/users.register").body_json(&b).send().await;
            let (status, answer) = status_json(resp).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["success"], true);
            let user = &answer["user"];
            assert!(user["_id"].is_string() && user["username"] == "reg", "{answer}");
            assert_eq!(user["roles"], json!(["user"]));
            app.login("reg", "reg-pass-123").await;
            for (b, error) in [
                (body("reg"), "Username is already in use"),
                (json!({ "username": "x", "email": "x@example.org", "name": "X" }), "must have required property 'pass' [invalid-params]"),
            ] {
                let resp = app.client.post("/api/v1/users.register").body_json(&b).send().await;
                let (status, answer) = status_json(resp).await;
                assert_eq!((status, answer["error"].as_str()), (400, Some(error)), "{answer}");
            }
        }
    }
}
