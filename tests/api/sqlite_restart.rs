//! tokend restarted on the same SQLite file: every credential a response
//! handed out still works, every one a response revoked stays revoked, and
//! the seeded admin, roles and permission changes are the ones from before.

use crate::common::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use std::path::PathBuf;
use tokend::core::model::Role;

/// A database file of this test's own, removed with its WAL when dropped.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!(
            "tokend-restart-{}-{}.db",
            std::process::id(),
            tokend::core::ids::new_user_id()
        )))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

fn auditor() -> Role {
    Role {
        id: "auditor".into(),
        name: "auditor".into(),
        scope: "Users".into(),
        description: "added before the restart".into(),
        protected: false,
        updated_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_users_roles_tokens_and_sessions() {
    let db = TempDb::new();
    let kind = StoreKind::SqliteAt(db.0.clone());
    let basic_admin = format!("Basic {}", STANDARD.encode(format!("admin:{ADMIN_PASS}")));

    let (admin_id, bob_id, login, pat, logged_out, api_token, sid) = {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let login = app.login("bob", USER_PASS).await;
        let logged_out = app.login("bob", USER_PASS).await;
        let resp = app
            .rc_post(
                "/api/v1/users.generatePersonalAccessToken",
                &login,
                json!({"tokenName": "ci"}),
            )
            .await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        let pat = Creds {
            user_id: bob.id.clone(),
            token: body["token"].as_str().unwrap().to_string(),
        };
        let resp = app.rc_post("/api/v1/logout", &logged_out, json!({})).await;
        assert_eq!(resp.0.status().as_u16(), 200);
        let resp = app
            .client
            .post(format!("/node/api/users/{}/auth-token", bob.id))
            .header("Authorization", &basic_admin)
            .send()
            .await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        let api_token = body.as_str().unwrap().to_string();
        let resp = app
            .client
            .post("/node/api/users/session")
            .body_json(&json!({"login": "bob", "password": USER_PASS}))
            .send()
            .await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        let sid = body.as_str().unwrap().to_string();
        app.store.ensure_role(&auditor()).await.unwrap();
        app.core
            .set_permission_roles("view-logs", &["auditor".into()])
            .await
            .unwrap();
        (
            app.admin.user_id.clone(),
            bob.id,
            login,
            pat,
            logged_out,
            api_token,
            sid,
        )
    };

    // A new tokend on the same file: seeding finds the admin, changes nothing.
    let app = TestApp::start(&kind).await;
    assert_eq!(app.admin.user_id, admin_id);
    assert_eq!(app.me_status(&login).await, 200);
    assert_eq!(app.me_status(&pat).await, 200);
    assert_eq!(app.me_status(&logged_out).await, 401);
    let (status, body) = status_json(
        app.client
            .get("/node/api/users/current")
            .query("api-token", &api_token)
            .send()
            .await,
    )
    .await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some(bob_id.as_str())),
        "{body}"
    );
    let (status, body) = status_json(
        app.client
            .get("/node/api/users/current")
            .header("Cookie", format!("sid={sid}"))
            .send()
            .await,
    )
    .await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some(bob_id.as_str())),
        "{body}"
    );
    assert!(app.store.roles().await.unwrap().contains(&auditor()));
    let permissions = app.store.permissions().await.unwrap();
    let view_logs = permissions
        .iter()
        .find(|p| p.id == "view-logs")
        .expect("kept");
    assert_eq!(view_logs.roles, vec!["auditor".to_string()]);
}
