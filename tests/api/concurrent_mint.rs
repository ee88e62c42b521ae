//! 200 concurrent `users.createToken` for one user, through the HTTP API:
//! all succeed with distinct tokens, and exactly the 50 newest keep working
//! (`MAX_RESUME_LOGIN_TOKENS`). Prints the wall time.

use crate::common::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;
use tokend::core::model::LoginToken;
use tokend::core::TokenHash;

const MINTS: i64 = 200;
const CAP: usize = 50;

store_tests! {
    async fn concurrent_mints_for_one_user_keep_exactly_the_newest(kind) {
        let app = Arc::new(TestApp::start(&kind).await);
        let bob = app.user("bob", &[]).await;
        // The clock stands still, so the core stamps the mints s0+1 .. s0+200 ms,
        // s0 being the `when` of the admin's login.
        let s0 = match app.tokens_of(&app.admin.user_id).await.as_slice() {
            [LoginToken::Resume(r)] => r.when.timestamp_millis(),
            other => panic!("admin tokens: {other:?}"),
        };

        let started = Instant::now();
        let tasks: Vec<_> = (0..MINTS)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    let resp = app
                        .rc_post("/api/v1/users.createToken", &app.admin, json!({ "username": "bob" }))
                        .await;
                    status_json(resp).await
                })
            })
            .collect();
        let mut tokens = Vec::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["data"]["userId"], json!(bob.id));
            tokens.push(body["data"]["authToken"].as_str().unwrap().to_string());
        }
        let elapsed = started.elapsed();
        assert_eq!(tokens.iter().collect::<BTreeSet<_>>().len(), MINTS as usize, "tokens differ");

        let stored = app.tokens_of(&bob.id).await;
        let whens: BTreeSet<i64> = stored
            .iter()
            .filter_map(|t| match t {
                LoginToken::Resume(r) => Some(r.when.timestamp_millis()),
                LoginToken::Personal(_) => None,
            })
            .collect();
        let newest: BTreeSet<i64> = (s0 + MINTS - CAP as i64 + 1..=s0 + MINTS).collect();
        assert_eq!(whens, newest, "not exactly the {CAP} newest");

        let checks: Vec<_> = tokens
            .iter()
            .map(|token| {
                let app = app.clone();
                let creds = Creds { user_id: bob.id.clone(), token: token.clone() };
                tokio::spawn(async move { app.rc_get("/api/v1/me", &creds).await.0.status().as_u16() })
            })
            .collect();
        let mut working = BTreeSet::new();
        for (token, check) in tokens.iter().zip(checks) {
            if check.await.unwrap() == 200 {
                working.insert(TokenHash::of(token));
            }
        }
        let kept: BTreeSet<TokenHash> = stored.iter().map(|t| t.hashed_token().clone()).collect();
        assert_eq!(working.len(), CAP);
        assert_eq!(working, kept);
        let store = match kind {
            StoreKind::Sqlite | StoreKind::SqliteAt(_) => "SQLite",
            StoreKind::Mongo(_) => "MongoDB",
        };
        println!(
            "{MINTS} concurrent users.createToken for one user on {store}: {elapsed:.2?}; \
             all {MINTS} answered 200 with distinct tokens; exactly the {CAP} newest work"
        );
    }
}
