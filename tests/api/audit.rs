//! Issue 13: the audit trail, PAT expiry and last use, admin governance of
//! PATs, `/metrics`. Every test runs on both stores.

use crate::common::*;
use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::{json, Value};
use std::sync::Arc;
use tokend::core::audit::{AuditKind, AuditQuery};
use tokend::core::clock::iso;
use tokend::core::TokenHash;

/// Every event the admin route lists for this query string, newest first.
async fn events(app: &TestApp, creds: &Creds, query: &str) -> (u16, Value) {
    status_json(
        app.rc_get(&format!("/api/v1/tokend.auditEvents?{query}"), creds)
            .await,
    )
    .await
}

fn kinds(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The one event of this kind in a listing.
fn one<'a>(body: &'a Value, kind: &str) -> &'a Value {
    let found: Vec<&Value> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "{kind}: {body:#}");
    found[0]
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

async fn generate(app: &TestApp, creds: &Creds, body: Value) -> (u16, Value) {
    status_json(
        app.rc_post("/api/v1/users.generatePersonalAccessToken", creds, body)
            .await,
    )
    .await
}

async fn pat_of(app: &TestApp, creds: &Creds, name: &str) -> Creds {
    let (status, body) = generate(app, creds, json!({ "tokenName": name })).await;
    assert_eq!(status, 200, "{body}");
    Creds {
        user_id: creds.user_id.clone(),
        token: body["token"].as_str().unwrap().to_string(),
    }
}

/// The caller's PAT listing entry of this name.
async fn listed(app: &TestApp, creds: &Creds, name: &str) -> Value {
    let (status, body) = status_json(
        app.rc_get("/api/v1/users.getPersonalAccessTokens", creds)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name}: {body}"))
}

store_tests! {
    /// Every kind tokend emits today, with actor, target, route, address
    /// and request id, and no secret anywhere in the stored events.
    async fn every_credential_event_is_recorded_without_secrets(kind) {
        let mut cfg = test_config();
        cfg.login_block.user_attempts = 1;
        let app = TestApp::with_config(&kind, cfg).await;
        let admin = app.admin.clone();
        let bob = app.user("bob", &[]).await;
        let carol = app.user("carol", &[]).await;
        let mut secrets = vec![ADMIN_PASS.to_string(), USER_PASS.to_string(), admin.token.clone()];

        // login.failed, then login.blocked (one attempt allowed), for carol.
        for _ in 0..2 {
            app.client
                .post("/api/v1/login")
                .header("X-Request-Id", "req-failed-login")
                .body_json(&json!({ "user": "carol", "password": "wrong-pass-4711" }))
                .send()
                .await;
        }
        secrets.push("wrong-pass-4711".into());
        // token.minted by admin for bob.
        let resp = app
            .rc_post("/api/v1/users.createToken", &admin, json!({ "userId": bob.id }))
            .await;
        let minted = json(resp).await["data"]["authToken"].as_str().unwrap().to_string();
        secrets.push(minted.clone());
        let bob_creds = Creds { user_id: bob.id.clone(), token: minted };
        // pat.created, pat.regenerated, pat.removed (bob's own).
        let pat = pat_of(&app, &bob_creds, "ci").await;
        secrets.push(pat.token.clone());
        let (_, body) = status_json(
            app.rc_post(
                "/api/v1/users.regeneratePersonalAccessToken",
                &bob_creds,
                json!({ "tokenName": "ci" }),
            )
            .await,
        )
        .await;
        secrets.push(body["token"].as_str().unwrap().to_string());
        app.rc_post("/api/v1/users.removePersonalAccessToken", &bob_creds, json!({ "tokenName": "ci" }))
            .await
            .assert_status_is_ok();
        // api_token.created / deleted by admin for bob (SAYMON, Basic auth:
        // two more login.succeeded for admin).
        let resp = app
            .client
            .post(format!("/node/api/users/{}/auth-token", bob.id))
            .header("Authorization", basic("admin", ADMIN_PASS))
            .send()
            .await;
        secrets.push(json(resp).await.as_str().unwrap().to_string());
        app.client
            .delete(format!("/node/api/users/{}/auth-token", bob.id))
            .header("Authorization", basic("admin", ADMIN_PASS))
            .send()
            .await
            .assert_status_is_ok();
        // session.opened and session.closed by bob.
        let resp = app
            .client
            .post("/node/api/users/session")
            .body_json(&json!({ "login": "bob", "password": USER_PASS }))
            .send()
            .await;
        let sid = json(resp).await.as_str().unwrap().to_string();
        secrets.push(sid.clone());
        app.client
            .delete("/node/api/users/session")
            .header("Cookie", format!("sid={sid}"))
            .send()
            .await
            .assert_status_is_ok();
        // logout of bob's minted token.
        app.rc_post("/api/v1/logout", &bob_creds, json!({})).await.assert_status_is_ok();
        // password.changed, user.deactivated, user.deleted, by admin.
        app.rc_post(
            "/api/v1/users.update",
            &admin,
            json!({ "userId": bob.id, "data": { "password": "brand-new-pass-99" } }),
        )
        .await
        .assert_status_is_ok();
        secrets.push("brand-new-pass-99".into());
        app.rc_post(
            "/api/v1/users.setActiveStatus",
            &admin,
            json!({ "userId": bob.id, "activeStatus": false }),
        )
        .await
        .assert_status_is_ok();
        app.rc_post("/api/v1/users.delete", &admin, json!({ "userId": bob.id }))
            .await
            .assert_status_is_ok();

        let (status, body) = events(&app, &admin, "count=500").await;
        assert_eq!(status, 200, "{body}");
        let admin_id = admin.user_id.as_str();
        let bob_id = bob.id.as_str();
        for (kind, actor, target, route) in [
            ("login.failed", None, Some(carol.id.as_str()), "login"),
            ("login.blocked", None, Some(carol.id.as_str()), "login"),
            ("token.minted", Some(admin_id), Some(bob_id), "users.createToken"),
            ("pat.created", Some(bob_id), Some(bob_id), "users.generatePersonalAccessToken"),
            ("pat.regenerated", Some(bob_id), Some(bob_id), "users.regeneratePersonalAccessToken"),
            ("pat.removed", Some(bob_id), Some(bob_id), "users.removePersonalAccessToken"),
            ("api_token.created", Some(admin_id), Some(bob_id), "saymon.authToken.create"),
            ("api_token.deleted", Some(admin_id), Some(bob_id), "saymon.authToken.delete"),
            ("session.opened", Some(bob_id), Some(bob_id), "saymon.session.create"),
            ("session.closed", Some(bob_id), Some(bob_id), "saymon.session.delete"),
            ("logout", Some(bob_id), Some(bob_id), "logout"),
            ("password.changed", Some(admin_id), Some(bob_id), "users.update"),
            ("user.deactivated", Some(admin_id), Some(bob_id), "users.setActiveStatus"),
            ("user.deleted", Some(admin_id), Some(bob_id), "users.delete"),
        ] {
            let e = one(&body, kind);
            assert_eq!(e["actorId"].as_str(), actor, "{kind}: {e}");
            assert_eq!(e["userId"].as_str(), target, "{kind}: {e}");
            assert_eq!(e["route"], route, "{kind}: {e}");
            assert!(e["requestId"].as_str().is_some_and(|r| !r.is_empty()), "{kind}: {e}");
            assert!(chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).is_ok());
        }
        assert_eq!(one(&body, "login.failed")["requestId"], "req-failed-login");
        assert_eq!(one(&body, "login.failed")["outcome"], "refused");
        assert_eq!(one(&body, "login.blocked")["detail"], "user");
        assert_eq!(one(&body, "pat.created")["detail"], "ci");
        assert_eq!(one(&body, "token.minted")["outcome"], "succeeded");
        // Password logins: the test app's own admin login, Basic twice, bob's session.
        let logins = kinds(&body).iter().filter(|k| *k == "login.succeeded").count();
        assert!(logins >= 4, "{body:#}");

        // No secret, nor its hash, in the listing or in what the store holds.
        let (stored, _) = app
            .store
            .audit_events(&AuditQuery { count: 1000, ..AuditQuery::default() })
            .await
            .unwrap();
        let everything = format!("{body} {stored:?}");
        for secret in &secrets {
            let hash = TokenHash::of(secret);
            for needle in [secret.as_str(), hash.as_str()] {
                assert!(!everything.contains(needle), "{needle:?} is in the audit trail");
            }
        }
    }

    /// `users.createToken` is impersonation: an admin sees who minted what
    /// for whom; the user it was minted for cannot read the trail.
    async fn minted_tokens_are_visible_to_admins_not_to_users(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let resp = app
            .rc_post("/api/v1/users.createToken", &app.admin, json!({ "username": "bob" }))
            .await;
        let token = json(resp).await["data"]["authToken"].as_str().unwrap().to_string();
        let bob_creds = Creds { user_id: bob.id.clone(), token };

        let (status, body) = events(&app, &app.admin, &format!("userId={}&kind=token.minted", bob.id)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 1);
        assert_eq!(body["events"][0]["actorId"], app.admin.user_id.as_str());

        let (status, body) = events(&app, &bob_creds, "").await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["success"], false);
        assert_eq!(body["events"], Value::Null);
    }

    /// Filters by user, kind and time range; paging newest first; bad
    /// filters are the client's mistake.
    async fn the_trail_filters_by_user_kind_and_time(kind) {
        let app = TestApp::start(&kind).await;
        app.clock.advance(chrono::Duration::seconds(10));
        let start = app.core.now();
        let bob = app.user("bob", &[]).await;
        let bob_creds = app.login("bob", USER_PASS).await;
        app.clock.advance(chrono::Duration::seconds(10));
        let middle = app.core.now();
        app.clock.advance(chrono::Duration::seconds(10));
        pat_of(&app, &bob_creds, "one").await;
        app.clock.advance(chrono::Duration::seconds(10));
        pat_of(&app, &bob_creds, "two").await;

        let (_, body) = events(&app, &app.admin, &format!("userId={}", bob.id)).await;
        assert_eq!(kinds(&body), ["pat.created", "pat.created", "login.succeeded"]);
        assert_eq!(body["events"][0]["detail"], "two");
        let (_, body) = events(&app, &app.admin, &format!("userId={}&count=1&offset=1", bob.id)).await;
        assert_eq!((body["total"].as_u64(), body["count"].as_u64()), (Some(3), Some(1)));
        assert_eq!(body["events"][0]["detail"], "one");
        let (_, body) = events(&app, &app.admin, "kind=login.succeeded").await;
        assert_eq!(body["total"], 2, "the admin's and bob's: {body:#}");
        let since = iso(&middle);
        let (_, body) = events(&app, &app.admin, &format!("since={since}")).await;
        assert_eq!(kinds(&body), ["pat.created", "pat.created"]);
        let (_, body) = events(&app, &app.admin, &format!("since={}&until={since}", iso(&start))).await;
        assert_eq!(kinds(&body), ["login.succeeded"]);
        for bad in ["kind=nope", "since=yesterday"] {
            let (status, body) = events(&app, &app.admin, bad).await;
            assert_eq!(status, 400, "{bad}: {body}");
        }
    }

    /// An event names the client address as the core decides it (here
    /// behind a trusted proxy), not whatever the client claims further left.
    async fn events_name_the_client_address(kind) {
        let mut cfg = test_config();
        cfg.trust_proxy = true;
        let app = TestApp::with_config(&kind, cfg).await;
        app.client
            .post("/api/v1/login")
            .header("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
            .body_json(&json!({ "user": "admin", "password": "not-the-password" }))
            .send()
            .await;
        let (_, body) = events(&app, &app.admin, "kind=login.failed").await;
        assert_eq!(body["events"][0]["clientAddress"], "203.0.113.9", "{body}");
        assert_eq!(body["events"][0]["userId"], app.admin.user_id.as_str());
    }

    /// Events past `AUDIT_RETENTION_DAYS` are pruned.
    async fn old_events_are_pruned(kind) {
        let mut cfg = test_config();
        cfg.audit_retention = std::time::Duration::from_secs(24 * 60 * 60);
        let app = TestApp::with_config(&kind, cfg).await;
        let all = AuditQuery { count: 100, ..AuditQuery::default() };
        let before = app.store.audit_events(&all).await.unwrap().1;
        assert!(before >= 1, "the admin's login");
        app.clock.advance(chrono::Duration::days(2));
        // The next event prunes (at most hourly) what is past retention.
        app.login("admin", ADMIN_PASS).await;
        let (events, total) = app.store.audit_events(&all).await.unwrap();
        assert_eq!(total, 1, "{events:?}");
        assert_eq!(events[0].kind, AuditKind::LoginSucceeded);
        assert!(events[0].expires_at > app.core.now());
    }

    /// A PAT with an expiry works until then and is refused (401) after,
    /// and is listed as expired.
    async fn an_expired_pat_is_refused(kind) {
        let app = TestApp::start(&kind).await;
        let (status, body) = generate(&app, &app.admin, json!({ "tokenName": "short", "expiresInDays": 1 })).await;
        assert_eq!(status, 200, "{body}");
        let pat = Creds { user_id: app.admin.user_id.clone(), token: body["token"].as_str().unwrap().into() };
        let at = chrono::Utc::now() + chrono::Duration::hours(2);
        let (status, body) = generate(&app, &app.admin, json!({ "tokenName": "dated", "expiresAt": iso(&at) })).await;
        assert_eq!(status, 200, "{body}");
        let dated = Creds { user_id: app.admin.user_id.clone(), token: body["token"].as_str().unwrap().into() };
        let forever = pat_of(&app, &app.admin, "forever").await;
        assert_eq!(app.me_status(&pat).await, 200);
        assert_eq!(app.me_status(&dated).await, 200);
        let entry = listed(&app, &app.admin, "short").await;
        assert_eq!(entry["expired"], false);
        assert_eq!(entry["expiresAt"], iso(&(app.core.now() + chrono::Duration::days(1))));

        app.clock.advance(chrono::Duration::hours(3));
        assert_eq!(app.me_status(&dated).await, 401);
        assert_eq!(app.me_status(&pat).await, 200);
        app.clock.advance(chrono::Duration::days(1));
        assert_eq!(app.me_status(&pat).await, 401);
        // Also through `login` with `resume`.
        let resp = app.client.post("/api/v1/login").body_json(&json!({ "resume": pat.token })).send().await;
        assert_eq!(resp.0.status().as_u16(), 401);
        assert_eq!(app.me_status(&forever).await, 200);
        assert_eq!(listed(&app, &app.admin, "short").await["expired"], true);
        assert_eq!(listed(&app, &app.admin, "forever").await["expired"], false);
        assert_eq!(listed(&app, &app.admin, "forever").await["expiresAt"], Value::Null);
    }

    /// Expiries in the past, both fields at once, or past
    /// `PAT_MAX_LIFETIME_DAYS` are refused; with a maximum, a PAT without
    /// an expiry gets the maximum.
    async fn pat_lifetimes_are_bounded(kind) {
        let mut cfg = test_config();
        cfg.pat_max_lifetime = Some(std::time::Duration::from_secs(30 * 24 * 60 * 60));
        let app = TestApp::with_config(&kind, cfg).await;
        let past = iso(&(app.core.now() - chrono::Duration::minutes(1)));
        for body in [
            json!({ "tokenName": "a", "expiresAt": past }),
            json!({ "tokenName": "a", "expiresInDays": 0 }),
            json!({ "tokenName": "a", "expiresInDays": 31 }),
            json!({ "tokenName": "a", "expiresInDays": 1, "expiresAt": past }),
            json!({ "tokenName": "a", "expiresAt": "next week" }),
        ] {
            let (status, answer) = generate(&app, &app.admin, body.clone()).await;
            assert_eq!(status, 400, "{body}: {answer}");
            assert_eq!(answer["success"], false);
        }
        let (status, answer) = generate(&app, &app.admin, json!({ "tokenName": "a", "expiresInDays": 30 })).await;
        assert_eq!(status, 200, "{answer}");
        pat_of(&app, &app.admin, "default").await;
        let entry = listed(&app, &app.admin, "default").await;
        assert_eq!(entry["expiresAt"], iso(&(app.core.now() + chrono::Duration::days(30))));
    }

    /// `lastUsedAt` appears on first use and moves at most once per
    /// `LAST_USED_RESOLUTION_SECONDS` (the test clock moves, nothing sleeps).
    async fn last_use_moves_at_most_once_per_window(kind) {
        let app = TestApp::start(&kind).await;
        let pat = pat_of(&app, &app.admin, "ci").await;
        assert_eq!(listed(&app, &app.admin, "ci").await.get("lastUsedAt"), None);
        let first = app.core.now();
        assert_eq!(app.me_status(&pat).await, 200);
        assert_eq!(listed(&app, &app.admin, "ci").await["lastUsedAt"], iso(&first));

        app.clock.advance(chrono::Duration::seconds(59));
        assert_eq!(app.me_status(&pat).await, 200);
        assert_eq!(listed(&app, &app.admin, "ci").await["lastUsedAt"], iso(&first), "within the window");

        app.clock.advance(chrono::Duration::seconds(2));
        let later = app.core.now();
        assert_eq!(app.me_status(&pat).await, 200);
        assert_eq!(listed(&app, &app.admin, "ci").await["lastUsedAt"], iso(&later));
        // A regenerated token starts unused.
        app.rc_post("/api/v1/users.regeneratePersonalAccessToken", &app.admin, json!({ "tokenName": "ci" }))
            .await
            .assert_status_is_ok();
        assert_eq!(listed(&app, &app.admin, "ci").await.get("lastUsedAt"), None);
    }

    /// The same for a SAYMON API token; a new token starts unused.
    async fn api_token_last_use_moves_at_most_once_per_window(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let issue = || async {
            let resp = app
                .client
                .post(format!("/node/api/users/{}/auth-token", bob.id))
                .header("Authorization", basic("admin", ADMIN_PASS))
                .send()
                .await;
            json(resp).await.as_str().unwrap().to_string()
        };
        let token = issue().await;
        let app = &app;
        let use_it = |t: String| async move {
            app.client.get("/node/api/users/current").query("api-token", &t).send().await.assert_status_is_ok();
        };
        let last = || async { app.store.api_token_of(&bob.id).await.unwrap().unwrap().last_used_at };
        assert_eq!(last().await, None);
        let first = app.core.now();
        use_it(token.clone()).await;
        assert_eq!(last().await, Some(first));
        app.clock.advance(chrono::Duration::seconds(30));
        use_it(token.clone()).await;
        assert_eq!(last().await, Some(first));
        app.clock.advance(chrono::Duration::seconds(31));
        use_it(token.clone()).await;
        assert_eq!(last().await, Some(app.core.now()));
        issue().await;
        assert_eq!(last().await, None);
    }

    /// With a resolution of 0 every use is written.
    async fn resolution_zero_writes_every_use(kind) {
        let mut cfg = test_config();
        cfg.last_used_resolution = Some(std::time::Duration::ZERO);
        let app = TestApp::with_config(&kind, cfg).await;
        let pat = pat_of(&app, &app.admin, "ci").await;
        for _ in 0..2 {
            app.clock.advance(chrono::Duration::milliseconds(5));
            assert_eq!(app.me_status(&pat).await, 200);
            assert_eq!(listed(&app, &app.admin, "ci").await["lastUsedAt"], iso(&app.core.now()));
        }
    }

    /// An admin lists another user's PATs (never the secret) and revokes
    /// one, which ends it at once; a user cannot do either to another.
    async fn admins_list_and_revoke_other_users_pats(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let bob_creds = app.login("bob", USER_PASS).await;
        let pat = pat_of(&app, &bob_creds, "integration").await;
        assert_eq!(app.me_status(&pat).await, 200);
        let mallory = app.user("mallory", &[]).await;
        let mallory_creds = app.login("mallory", USER_PASS).await;

        let path = format!("/api/v1/tokend.personalAccessTokens?userId={}", bob.id);
        let (status, body) = status_json(app.rc_get(&path, &app.admin).await).await;
        assert_eq!(status, 200, "{body}");
        let tokens = body["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0]["name"], "integration");
        assert_eq!(tokens[0]["lastTokenPart"], &pat.token[pat.token.len() - 6..]);
        assert_eq!(tokens[0]["bypassTwoFactor"], false);
        assert!(tokens[0]["lastUsedAt"].is_string(), "{body}");
        assert!(!body.to_string().contains(&pat.token));

        // The attack: another user reading or revoking bob's tokens.
        let (status, _) = status_json(app.rc_get(&path, &mallory_creds).await).await;
        assert_eq!(status, 403);
        let revoke = json!({ "userId": bob.id, "tokenName": "integration" });
        let resp = app.rc_post("/api/v1/tokend.revokePersonalAccessToken", &mallory_creds, revoke.clone()).await;
        assert_eq!(resp.0.status().as_u16(), 403);
        assert_eq!(app.me_status(&pat).await, 200);

        let resp = app.rc_post("/api/v1/tokend.revokePersonalAccessToken", &app.admin, revoke.clone()).await;
        resp.assert_status_is_ok();
        assert_eq!(app.me_status(&pat).await, 401);
        let (status, body) = status_json(
            app.rc_post("/api/v1/tokend.revokePersonalAccessToken", &app.admin, revoke).await,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let (status, _) = status_json(
            app.rc_get(&format!("/api/v1/tokend.personalAccessTokens?userId={}", "nobody"), &app.admin).await,
        )
        .await;
        assert_eq!(status, 400);
        let (_, body) = events(&app, &app.admin, &format!("userId={}&kind=pat.removed", bob.id)).await;
        assert_eq!(body["events"][0]["actorId"], app.admin.user_id.as_str());
        assert_eq!(body["events"][0]["userId"], bob.id.as_str());
        assert_eq!(body["events"][0]["route"], "tokend.revokePersonalAccessToken");
        let _ = mallory;
    }

    /// With `LAST_USED_RESOLUTION_SECONDS=off` nothing is written.
    async fn last_use_tracking_can_be_off(kind) {
        let mut cfg = test_config();
        cfg.last_used_resolution = None;
        let app = TestApp::with_config(&kind, cfg).await;
        let pat = pat_of(&app, &app.admin, "ci").await;
        assert_eq!(app.me_status(&pat).await, 200);
        assert_eq!(listed(&app, &app.admin, "ci").await.get("lastUsedAt"), None);
    }

    /// The two new permissions are seeded for admins only.
    async fn governance_permissions_are_seeded_for_admins(kind) {
        let app = TestApp::start(&kind).await;
        let perms = app.store.permissions().await.unwrap();
        for id in ["view-audit-log", "manage-personal-access-tokens"] {
            let entry = perms.iter().find(|p| p.id == id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(entry.roles, ["admin"], "{id}");
        }
    }
    /// `/metrics` parses as Prometheus text, and its counters move with traffic.
    async fn metrics_parse_and_move_with_traffic(kind) {
        let app = TestApp::start(&kind).await;
        let get = |m: &std::collections::HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
        let me = "tokend_http_requests_total{operation=me,status=200}";
        let me_latency = "tokend_http_request_duration_seconds_count{operation=me}";
        let me_inf = "tokend_http_request_duration_seconds_bucket{le=+Inf,operation=me}";
        let failed = "tokend_logins_total{outcome=failed}";
        let minted = "tokend_tokens_minted_total{kind=login}";
        let blocked = "tokend_throttle_blocks_total{scope=rate_limit}";
        let before = metrics(&app).await;
        for _ in 0..3 {
            assert_eq!(app.me_status(&app.admin).await, 200);
        }
        let resp = app.client.post("/api/v1/login").body_json(&json!({ "user": "admin", "password": "nope-nope" })).send().await;
        assert_eq!(resp.0.status().as_u16(), 401);
        app.login("admin", ADMIN_PASS).await;
        let after = metrics(&app).await;
        // Other tests share the process's registry: at least our traffic.
        assert!(get(&after, me) >= get(&before, me) + 3.0, "{after:?}");
        assert!(get(&after, me_latency) >= get(&before, me_latency) + 3.0);
        assert_eq!(get(&after, me_inf), get(&after, me_latency));
        assert!(get(&after, failed) > get(&before, failed));
        assert!(get(&after, minted) > get(&before, minted));
        assert!(after.contains_key("tokend_audit_write_failures_total{}"));
        let _ = blocked;
    }
}

/// A strict reader of the Prometheus text format (0.0.4): `# HELP`/`# TYPE`
/// lines, then `name{label="value",...} number` samples; panics on anything
/// else. Answers every sample by its name and sorted labels.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let mut samples = std::collections::HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(kw == "HELP" || kw == "TYPE", "{line}");
            if kw == "TYPE" {
                let ty = parts.next().unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&ty), "{line}");
                assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
            }
            continue;
        }
        assert!(!line.is_empty(), "blank line");
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert!(
                        key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => value.push(chars.next().unwrap()),
                            Some('"') => break,
                            Some(c) => value.push(c),
                            None => panic!("unterminated label: {line}"),
                        }
                    }
                    labels.push(format!("{key}={value}"));
                    match chars.next() {
                        None => break,
                        Some(',') => {}
                        Some(c) => panic!("{c:?} after a label: {line}"),
                    }
                }
                (name, labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| typed.contains(*f))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line}");
        let mut labels = labels;
        labels.sort();
        samples.insert(format!("{name}{{{}}}", labels.join(",")), value);
    }
    samples
}

async fn metrics(app: &TestApp) -> std::collections::HashMap<String, f64> {
    let resp = app.client.get("/metrics").send().await;
    resp.assert_status_is_ok();
    let text = resp.0.into_body().into_string().await.unwrap();
    parse_prometheus(&text)
}

/// The failure policy: a credential event the store cannot record is still
/// served (the token exists; refusing would hide it from its owner), and
/// the miss is counted. The audit table is dropped under a running store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecordable_event_is_still_served_and_counted() {
    let path = std::env::temp_dir().join(format!(
        "tokend-audit-fail-{}.db",
        tokend::core::ids::new_user_id()
    ));
    let app = TestApp::start(&StoreKind::SqliteAt(path.clone())).await;
    let bob = app.user("bob", &[]).await;
    let before = tokend::core::metrics::METRICS.audit_write_failures.get();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE audit_events")
        .unwrap();
    let resp = app
        .rc_post(
            "/api/v1/users.createToken",
            &app.admin,
            json!({ "userId": bob.id }),
        )
        .await;
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    let creds = Creds {
        user_id: bob.id.clone(),
        token: body["data"]["authToken"].as_str().unwrap().to_string(),
    };
    assert_eq!(app.me_status(&creds).await, 200);
    assert!(tokend::core::metrics::METRICS.audit_write_failures.get() > before);
    drop(app);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Seeds `core` and logs the admin in through the core (no router).
async fn seeded_admin(core: &tokend::core::Core) -> Box<tokend::core::Caller> {
    tokend::core::seed::seed(core).await.unwrap();
    let admin = core
        .login(tokend::core::Credential::Password(
            tokend::core::credential::PasswordAttempt {
                user: tokend::core::UserKey::Username("admin".into()),
                password: tokend::core::password::PasswordInput::Plain(ADMIN_PASS.into()),
                ip: None,
                second_factor: Default::default(),
            },
        ))
        .await
        .unwrap();
    let tokend::core::service::Login::Ok { caller, .. } = admin else {
        panic!("admin login: {admin:?}");
    };
    caller
}

/// Within `LAST_USED_RESOLUTION_SECONDS` a PAT-authenticated request writes
/// nothing: one write for the first use, none for the next ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pat_requests_within_the_window_write_nothing() {
    let store = Arc::new(tokend::store::SqliteStore::open_temporary().unwrap());
    let clock = Arc::new(tokend::core::ManualClock::new());
    let core = tokend::app::core_with(test_config(), store.clone(), clock.clone());
    let caller = seeded_admin(&core).await;
    let grant = core.authorize(&caller).await.unwrap().unwrap();
    let tokend::core::service::CreatePat::Created(pat) = core
        .create_pat(&grant, "ci", false, Default::default())
        .await
        .unwrap()
    else {
        panic!("no PAT");
    };
    let present = || tokend::core::Credential::UserToken {
        user_id: caller.user.id.clone(),
        token: pat.clone(),
    };
    let before = store.write_stats().writes;
    for _ in 0..5 {
        assert!(matches!(
            core.authenticate(present()).await.unwrap(),
            tokend::core::service::Authenticated::Caller(_)
        ));
        clock.advance(chrono::Duration::seconds(1));
    }
    assert_eq!(
        store.write_stats().writes - before,
        1,
        "one lastUsedAt write"
    );
    clock.advance(chrono::Duration::seconds(60));
    core.authenticate(present()).await.unwrap();
    assert_eq!(store.write_stats().writes - before, 2);
}

/// On SQLite, `users.createToken` writes its token and its audit event in one
/// write job: one commit to wait for, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minted_token_and_its_event_are_one_write() {
    let store = Arc::new(tokend::store::SqliteStore::open_temporary().unwrap());
    let core = tokend::app::core_with(
        test_config(),
        store.clone(),
        Arc::new(tokend::core::ManualClock::new()),
    );
    let caller = seeded_admin(&core).await;
    let tokend::core::service::CreateUser::Created(bob) = core
        .insert_user(tokend::core::service::NewUser {
            username: "bob".into(),
            active: true,
            ..Default::default()
        })
        .await
        .unwrap()
    else {
        panic!("bob not created");
    };
    let before = store.write_stats();
    let minted = core
        .create_token(&caller, &tokend::core::UserKey::Id(bob.id.clone()), None)
        .await
        .unwrap();
    assert!(matches!(
        minted,
        tokend::core::service::CreateToken::Minted(_)
    ));
    let after = store.write_stats();
    assert_eq!(after.writes - before.writes, 1, "{before:?} -> {after:?}");
    let grant = core.authorize(&caller).await.unwrap().unwrap();
    let page = core
        .audit_events(
            &grant,
            &AuditQuery {
                kind: Some(AuditKind::TokenMinted),
                count: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.events[0].target.as_deref(), Some(bob.id.as_str()));
    assert_eq!(
        page.events[0].actor.as_deref(),
        Some(caller.user.id.as_str())
    );
}
