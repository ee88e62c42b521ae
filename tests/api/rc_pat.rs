//! Rocket.Chat personal access tokens through the real router, on both stores:
//! the flows of Rocket.Chat's own end-to-end tests ("Personal Access Tokens"
//! in `apps/meteor/tests/end-to-end/api/users.ts`) and tokend's storage,
//! expiry and cap rules.

use crate::common::*;
use serde_json::{json, Value};
use tokend::core::LoginToken;
use tokend::core::TokenHash;

const GENERATE: &str = "/api/v1/users.generatePersonalAccessToken";
const REGENERATE: &str = "/api/v1/users.regeneratePersonalAccessToken";
const REMOVE: &str = "/api/v1/users.removePersonalAccessToken";
const LIST: &str = "/api/v1/users.getPersonalAccessTokens";

/// Credentials made of a user id and a PAT.
fn pat_creds(user_id: &str, token: &str) -> Creds {
    Creds {
        user_id: user_id.to_string(),
        token: token.to_string(),
    }
}

async fn post(app: &TestApp, path: &str, creds: &Creds, body: Value) -> (u16, Value) {
    status_json(app.rc_post(path, creds, body).await).await
}

async fn generate(app: &TestApp, creds: &Creds, name: &str) -> (u16, Value) {
    post(app, GENERATE, creds, json!({ "tokenName": name })).await
}

/// Generates a PAT for the admin; panics unless it works.
async fn admin_token(app: &TestApp, name: &str) -> String {
    let (status, body) = generate(app, &app.admin, name).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn list(app: &TestApp, creds: &Creds) -> (u16, Value) {
    status_json(app.rc_get(LIST, creds).await).await
}

/// The admin's login tokens and PATs as stored.
async fn stored_admin_tokens(app: &TestApp) -> Vec<LoginToken> {
    app.tokens_of(&app.admin.user_id).await
}

store_tests! {
    async fn lists_an_empty_array_without_tokens(kind) {
        let app = TestApp::start(&kind).await;
        let (status, body) = list(&app, &app.admin).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({ "tokens": [], "success": true }));
    }

    async fn generated_token_authenticates_and_extra_fields_are_ignored(kind) {
        let app = TestApp::start(&kind).await;
        // Rocket.Chat's "should accept loginToken when we call /me".
        let body = json!({ "tokenName": "test", "loginToken": "1234567890" });
        let (status, body) = post(&app, GENERATE, &app.admin, body).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        let token = body["token"].as_str().unwrap();
        assert_eq!(token.len(), 43);
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        let creds = pat_creds(&app.admin.user_id, token);
        let (status, me) = status_json(app.rc_get("/api/v1/me", &creds).await).await;
        assert_eq!(status, 200);
        assert_eq!(me["_id"], app.admin.user_id.as_str());
        // With another user's id the PAT is worthless.
        let other = app.user("someone", &[]).await;
        assert_eq!(app.me_status(&pat_creds(&other.id, token)).await, 401);
    }

    async fn duplicate_name_is_refused(kind) {
        let app = TestApp::start(&kind).await;
        let (status, _) = generate(&app, &app.admin, "dup").await;
        assert_eq!(status, 200);
        let (status, body) = generate(&app, &app.admin, "dup").await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({
                "success": false,
                "error": "A token with this name already exists [error-token-already-exists]",
                "errorType": "error-token-already-exists",
                "details": { "method": "personalAccessTokens:generateToken" }
            })
        );
        // Names are per user: another user may use the same one.
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        assert_eq!(generate(&app, &bob, "dup").await.0, 200);
    }

    async fn missing_token_name_is_refused(kind) {
        let app = TestApp::start(&kind).await;
        for body in [json!({}), json!({ "tokenName": "  " })] {
            let (status, answer) = post(&app, GENERATE, &app.admin, body).await;
            assert_eq!(status, 400);
            assert_eq!(answer["error"], "The 'tokenName' param is required");
        }
        // No body at all is the same as `{}`.
        let resp = app
            .client
            .post(REMOVE)
            .header("X-User-Id", &app.admin.user_id)
            .header("X-Auth-Token", &app.admin.token)
            .send()
            .await;
        let (status, answer) = status_json(resp).await;
        assert_eq!(status, 400);
        assert_eq!(answer["error"], "The 'tokenName' param is required");
    }

    async fn regenerate_replaces_the_token(kind) {
        let app = TestApp::start(&kind).await;
        let body = json!({ "tokenName": "ci", "bypassTwoFactor": true });
        let body = post(&app, GENERATE, &app.admin, body).await.1;
        let old = body["token"].as_str().unwrap().to_string();
        let (status, body) = post(&app, REGENERATE, &app.admin, json!({ "tokenName": "ci" })).await;
        assert_eq!(status, 200, "{body}");
        let new = body["token"].as_str().unwrap();
        assert_ne!(new, old);
        assert_eq!(app.me_status(&pat_creds(&app.admin.user_id, &old)).await, 401);
        assert_eq!(app.me_status(&pat_creds(&app.admin.user_id, new)).await, 200);
        let listed = list(&app, &app.admin).await.1;
        let tokens = listed["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0]["name"], "ci");
        assert_eq!(tokens[0]["bypassTwoFactor"], true, "the 2FA choice is kept");
        assert_eq!(tokens[0]["lastTokenPart"], &new[new.len() - 6..]);
    }

    async fn regenerate_unknown_token_is_refused(kind) {
        let app = TestApp::start(&kind).await;
        let body = json!({ "tokenName": "tokenthatdoesnotexist" });
        let (status, body) = post(&app, REGENERATE, &app.admin, body).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({
                "success": false,
                "error": "Token does not exist [error-token-does-not-exists]",
                "errorType": "error-token-does-not-exists",
                "details": { "method": "personalAccessTokens:regenerateToken" }
            })
        );
    }

    async fn lists_my_tokens_without_the_secret(kind) {
        let app = TestApp::start(&kind).await;
        let token = admin_token(&app, "first").await;
        generate(&app, &app.admin, "second").await;
        let (status, body) = list(&app, &app.admin).await;
        assert_eq!(status, 200);
        assert_eq!(body["success"], true);
        let tokens = body["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 2);
        let first = tokens.iter().find(|t| t["name"] == "first").unwrap();
        let mut keys: Vec<&String> = first.as_object().unwrap().keys().collect();
        keys.sort();
        // Rocket.Chat's four, and tokend's `expired` (`lastUsedAt` and
        // `expiresAt` only once there is one).
        assert_eq!(keys, ["bypassTwoFactor", "createdAt", "expired", "lastTokenPart", "name"]);
        assert_eq!(first["lastTokenPart"], &token[token.len() - 6..]);
        assert_eq!(first["bypassTwoFactor"], false);
        let created = first["createdAt"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok() && created.ends_with('Z'),
            "{created}"
        );
        assert!(!body.to_string().contains(&token));
    }

    async fn remove_token_then_it_is_gone(kind) {
        let app = TestApp::start(&kind).await;
        let token = admin_token(&app, "gone").await;
        let (status, body) = post(&app, REMOVE, &app.admin, json!({ "tokenName": "gone" })).await;
        assert_eq!(status, 200);
        assert_eq!(body, json!({ "success": true }));
        assert_eq!(app.me_status(&pat_creds(&app.admin.user_id, &token)).await, 401);
        let (status, body) = post(&app, REMOVE, &app.admin, json!({ "tokenName": "gone" })).await;
        assert_eq!(status, 400);
        assert_eq!(body["errorType"], "error-token-does-not-exists");
        assert_eq!(body["details"]["method"], "personalAccessTokens:removeToken");
    }

    async fn refused_without_create_personal_access_tokens(kind) {
        let app = TestApp::start(&kind).await;
        generate(&app, &app.admin, "kept").await;
        app.core
            .set_permission_roles("create-personal-access-tokens", &[])
            .await
            .unwrap();
        let not_authorized = |method: &str| {
            json!({
                "success": false,
                "error": "Not Authorized [not-authorized]",
                "errorType": "not-authorized",
                "details": { "method": method }
            })
        };
        let (status, body) = generate(&app, &app.admin, "new").await;
        assert_eq!((status, body), (400, not_authorized("personalAccessTokens:generateToken")));
        let (status, body) = post(&app, REGENERATE, &app.admin, json!({ "tokenName": "kept" })).await;
        assert_eq!((status, body), (400, not_authorized("personalAccessTokens:regenerateToken")));
        let (status, body) = list(&app, &app.admin).await;
        assert_eq!(status, 403);
        assert_eq!(body, json!({ "success": false, "error": NO_PERMISSION }));
        for name in ["kept", "tokenthatdoesnotexist"] {
            let (status, body) = post(&app, REMOVE, &app.admin, json!({ "tokenName": name })).await;
            assert_eq!((status, body), (400, not_authorized("personalAccessTokens:removeToken")));
        }
    }

    async fn plain_users_hold_the_permission_by_default(kind) {
        let app = TestApp::start(&kind).await;
        app.user("carol", &[]).await;
        let carol = app.login("carol", USER_PASS).await;
        let (status, body) = generate(&app, &carol, "mine").await;
        assert_eq!(status, 200, "{body}");
        let creds = pat_creds(&carol.user_id, body["token"].as_str().unwrap());
        let me = status_json(app.rc_get("/api/v1/me", &creds).await).await.1;
        assert_eq!(me["username"], "carol");
    }

    async fn stored_as_rocket_chat_stores_it(kind) {
        let app = TestApp::start(&kind).await;
        let body = json!({ "tokenName": "stored", "bypassTwoFactor": true });
        let body = post(&app, GENERATE, &app.admin, body).await.1;
        let token = body["token"].as_str().unwrap();
        let user = stored_admin_tokens(&app).await;
        let pat = user
            .iter()
            .find_map(|t| match t {
                LoginToken::Personal(p) if p.name == "stored" => Some(p.clone()),
                _ => None,
            })
            .expect("the PAT is in services.resume.loginTokens");
        assert_eq!(pat.hashed_token, TokenHash::of(token));
        assert_eq!(pat.last_token_part, token[token.len() - 6..]);
        assert!(pat.bypass_two_factor);
        assert!(
            !format!("{user:?}").contains(token),
            "the token itself is never stored"
        );
    }

    async fn pats_never_expire(kind) {
        let app = TestApp::start(&kind).await;
        let token = admin_token(&app, "forever").await;
        let pat = pat_creds(&app.admin.user_id, &token);
        // Past LOGIN_EXPIRATION_DAYS (90): login tokens die, the PAT lives.
        app.clock.advance(chrono::Duration::days(91));
        assert_eq!(app.me_status(&app.admin).await, 401);
        assert_eq!(app.me_status(&pat).await, 200);
        app.clock.advance(chrono::Duration::days(3650));
        assert_eq!(app.me_status(&pat).await, 200);
    }

    async fn pats_are_not_evicted_by_the_login_token_cap(kind) {
        let config = tokend::config::Config {
            max_resume_login_tokens: 3,
            ..test_config()
        };
        let app = TestApp::with_config(&kind, config).await;
        let token = admin_token(&app, "capped").await;
        for _ in 0..5 {
            app.login("admin", ADMIN_PASS).await;
        }
        assert_eq!(app.me_status(&pat_creds(&app.admin.user_id, &token)).await, 200);
        // The first login token went to the cap.
        assert_eq!(app.me_status(&app.admin).await, 401);
        let user = stored_admin_tokens(&app).await;
        let resume = user
            .iter()
            .filter(|t| matches!(t, LoginToken::Resume(_)))
            .count();
        assert_eq!(resume, 3);
        assert_eq!(user.iter().filter(|t| matches!(t, LoginToken::Personal(_))).count(), 1);
    }

    async fn routes_need_authentication(kind) {
        let app = TestApp::start(&kind).await;
        for path in [GENERATE, REGENERATE, REMOVE] {
            let resp = app.client.post(path).body_json(&json!({ "tokenName": "x" })).send().await;
            let (status, body) = status_json(resp).await;
            assert_eq!(status, 401, "{path}");
            assert_eq!(body["message"], "You must be logged in to do this.");
        }
        let resp = app.client.get(LIST).send().await;
        assert_eq!(resp.0.status().as_u16(), 401);
    }
}
