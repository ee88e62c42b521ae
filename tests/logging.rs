//! Logs (BEHAVIOUR §5): one line per request and per audit event, and never a token, password,
//! secret, session id or query string, even at `TRACE` from every crate, over
//! a walk-through of every credential (login, createToken, PAT, SAYMON token
//! and session, Basic auth, password change).
//!
//! This binary holds a single test on purpose: `tracing` caches per-callsite
//! interest process-wide, so another test logging without a subscriber at the
//! same moment could make the scoped capture below miss lines.

// Kept out of the `api` binary: tracing caches callsite interest per process (see above).
#[path = "api/common/mod.rs"]
mod common;

use base64::{engine::general_purpose::STANDARD, Engine};
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::instrument::WithSubscriber;

/// A `MakeWriter` collecting everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn request_logs_carry_no_secret() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .json()
        .finish();
    let mut cfg = test_config();
    cfg.create_tokens_secret = Some(tokend::config::Secret("the-shared-secret".into()));
    let secrets: Vec<String> = async {
        let app = TestApp::with_config(&StoreKind::Sqlite, cfg).await;
        let bob = app.user("bob", &[]).await;
        // Rocket.Chat: mint with the secret, use the token, fail a login.
        let resp = app
            .rc_post(
                "/api/v1/users.createToken",
                &app.admin,
                json!({"userId": bob.id, "secret": "the-shared-secret"}),
            )
            .await;
        let minted = json(resp).await["data"]["authToken"]
            .as_str()
            .unwrap()
            .to_string();
        let creds = Creds {
            user_id: bob.id.clone(),
            token: minted.clone(),
        };
        app.rc_get("/api/v1/me", &creds).await.assert_status_is_ok();
        let resp = app
            .client
            .post("/api/v1/login")
            .body_json(&json!({"user": "bob", "password": "wrong-password-xyz"}))
            .send()
            .await;
        assert_eq!(resp.0.status().as_u16(), 401);
        // SAYMON: an API token in the query, Basic auth, a session cookie.
        let admin_basic = format!("Basic {}", STANDARD.encode(format!("admin:{ADMIN_PASS}")));
        let resp = app
            .client
            .post(format!("/node/api/users/{}/auth-token", bob.id))
            .header("Authorization", &admin_basic)
            .send()
            .await;
        let api_token = json(resp).await.as_str().unwrap().to_string();
        let resp = app
            .client
            .get("/node/api/users/current")
            .query("api-token", &api_token)
            .send()
            .await;
        resp.assert_status_is_ok();
        let resp = app
            .client
            .get("/node/api/users/current")
            .query("api-token", &"wrong-token-value-123")
            .send()
            .await;
        assert_eq!(resp.0.status().as_u16(), 401);
        let resp = app
            .client
            .post("/node/api/users/session")
            .body_json(&json!({"login": "bob", "password": USER_PASS}))
            .send()
            .await;
        let sid = json(resp).await.as_str().unwrap().to_string();
        let resp = app
            .client
            .get("/node/api/users/current")
            .header("Cookie", format!("sid={sid}"))
            .send()
            .await;
        resp.assert_status_is_ok();
        // A personal access token, used; then a password change with it,
        // and a login with the new password.
        let resp = app
            .rc_post(
                "/api/v1/users.generatePersonalAccessToken",
                &creds,
                json!({"tokenName": "walk-through"}),
            )
            .await;
        let pat = json(resp).await["token"].as_str().unwrap().to_string();
        let pat_creds = Creds {
            user_id: bob.id.clone(),
            token: pat.clone(),
        };
        app.rc_get("/api/v1/me", &pat_creds)
            .await
            .assert_status_is_ok();
        let resp = app
            .rc_post(
                "/api/v1/users.update",
                &pat_creds,
                json!({"userId": bob.id, "data": {"password": "the-new-password-77"}}),
            )
            .await;
        resp.assert_status_is_ok();
        let relogin = app.login("bob", "the-new-password-77").await;
        vec![
            app.admin.token.clone(),
            minted,
            api_token,
            sid,
            admin_basic[6..].to_string(),
            pat,
            relogin.token,
            "the-new-password-77".to_string(),
        ]
    }
    .with_subscriber(subscriber)
    .await;

    let logs = captured.text();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert!(requests.len() >= 9, "one line per request:\n{logs}");
    let login = requests
        .iter()
        .find(|l| l["fields"]["path"] == "/api/v1/login")
        .unwrap();
    assert_eq!(login["fields"]["method"], "POST");
    assert_eq!(login["fields"]["operation"], "login");
    assert_eq!(login["fields"]["status"], 200);
    assert!(login["fields"]["latency_ms"].is_string());
    assert!(login["fields"]["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let current = |l: &&&Value| {
        l["fields"]["path"] == "/node/api/users/current"
            && l["fields"]["operation"] == "saymon.users.current"
    };
    assert!(requests
        .iter()
        .any(|l| current(&l) && l["fields"]["status"] == 200));
    // Failures keep their operation too (the wrong api-token answered 401).
    assert!(requests
        .iter()
        .any(|l| current(&l) && l["fields"]["status"] == 401));
    // Each credential event is one structured line, with its context.
    let audits: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "audit event")
        .collect();
    for kind in [
        "token.minted",
        "login.failed",
        "login.succeeded",
        "api_token.created",
        "session.opened",
        "pat.created",
        "password.changed",
    ] {
        let line = audits
            .iter()
            .find(|l| l["fields"]["audit"] == kind)
            .unwrap_or_else(|| panic!("no audit line for {kind}:\n{logs}"));
        for field in ["actor", "target_user", "route", "request_id", "outcome"] {
            assert!(line["fields"][field].is_string(), "{kind} {field}: {line}");
        }
    }
    let minted_line = audits
        .iter()
        .find(|l| l["fields"]["audit"] == "token.minted")
        .unwrap();
    assert_eq!(minted_line["fields"]["route"], "users.createToken");
    let fixed = [
        "the-shared-secret",
        ADMIN_PASS,
        USER_PASS,
        "wrong-password-xyz",
        "wrong-token-value-123",
        "api-token",
    ];
    for secret in secrets.iter().map(String::as_str).chain(fixed) {
        assert!(
            !logs.contains(secret),
            "{secret:?} reached the logs:\n{logs}"
        );
    }
}
