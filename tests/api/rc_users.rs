//! Rocket.Chat user administration through the real router, on both stores:
//! `users.create`, `users.info`, `users.list`, `users.update`,
//! `users.setActiveStatus`, `users.delete`, `users.logout` (including the
//! `users.logout` flows of Rocket.Chat's own end-to-end tests).

use crate::common::*;
use serde_json::{json, Value};
use tokend::core::service::NewUser;
use tokend::core::UserKey;

fn create_body(username: &str) -> Value {
    json!({
        "email": format!("{username}@example.org"),
        "name": format!("{username} name"),
        "password": "s3cret-pass",
        "username": username,
    })
}

async fn post(app: &TestApp, path: &str, creds: &Creds, body: Value) -> (u16, Value) {
    status_json(app.rc_post(path, creds, body).await).await
}

async fn get(app: &TestApp, path: &str, creds: &Creds) -> (u16, Value) {
    status_json(app.rc_get(path, creds).await).await
}

/// A plain user (role `user`) and its login credentials.
async fn plain_user(app: &TestApp, username: &str) -> (tokend::core::User, Creds) {
    let user = app.user(username, &[]).await;
    let creds = app.login(username, USER_PASS).await;
    (user, creds)
}

/// A PAT of the given user.
async fn pat_of(app: &TestApp, creds: &Creds) -> Creds {
    let (status, body) = post(
        app,
        "/api/v1/users.generatePersonalAccessToken",
        creds,
        json!({ "tokenName": "pat" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    Creds {
        user_id: creds.user_id.clone(),
        token: body["token"].as_str().unwrap().to_string(),
    }
}

fn assert_thrown(status: u16, body: &Value, code: &str, error: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["errorType"], code, "{body}");
    assert_eq!(body["error"], error, "{body}");
}

store_tests! {
    async fn create_answers_the_new_user(kind) {
        let app = TestApp::start(&kind).await;
        let mut body = create_body("newbie");
        body["verified"] = json!(true);
        body["requirePasswordChange"] = json!(true);
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["success"], true);
        let user = &answer["user"];
        assert_eq!(user["_id"].as_str().unwrap().len(), 17);
        assert_eq!(user["username"], "newbie");
        assert_eq!(user["name"], "newbie name");
        assert_eq!(user["type"], "user");
        assert_eq!(user["active"], true);
        assert_eq!(user["status"], "offline");
        assert_eq!(user["roles"], json!(["user"]));
        assert_eq!(user["requirePasswordChange"], true);
        assert_eq!(
            user["emails"],
            json!([{ "address": "newbie@example.org", "verified": true }])
        );
        assert!(user["createdAt"].as_str().unwrap().ends_with('Z'));
        assert!(user["_updatedAt"].is_string());
        assert!(user.get("services").is_none() && user.get("password").is_none());
        // The new user logs in with its password.
        let creds = app.login("newbie", "s3cret-pass").await;
        assert_eq!(creds.user_id, user["_id"].as_str().unwrap());
    }

    async fn create_needs_create_user(kind) {
        let app = TestApp::start(&kind).await;
        let (_, bob) = plain_user(&app, "bob").await;
        let (status, body) = post(&app, "/api/v1/users.create", &bob, create_body("x1")).await;
        assert_thrown(
            status,
            &body,
            "error-action-not-allowed",
            "Adding user is not allowed [error-action-not-allowed]",
        );
        assert_eq!(
            body["details"],
            json!({ "method": "insertOrUpdateUser", "action": "Adding_user" })
        );
        // As Rocket.Chat's tests do: take the permission away from the admin.
        app.core.set_permission_roles("create-user", &[]).await.unwrap();
        let (status, body) = post(&app, "/api/v1/users.create", &app.admin, create_body("x2")).await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-action-not-allowed")));
        app.core
            .set_permission_roles("create-user", &["admin".into()])
            .await
            .unwrap();
        let (status, _) = post(&app, "/api/v1/users.create", &app.admin, create_body("x3")).await;
        assert_eq!(status, 200);
    }

    async fn create_validates_its_input(kind) {
        let app = TestApp::start(&kind).await;
        let mut body = create_body("v1");
        body.as_object_mut().unwrap().remove("email");
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_thrown(
            status,
            &answer,
            "invalid-params",
            "must have required property 'email' [invalid-params]",
        );

        let mut body = create_body("v2");
        body["username"] = json!("no spaces<b>");
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_thrown(
            status,
            &answer,
            "error-input-is-not-a-valid-field",
            "no spaces&lt;b&gt; is not a valid username [error-input-is-not-a-valid-field]",
        );

        let mut body = create_body("v3");
        body["email"] = json!("not-an-email");
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_thrown(
            status,
            &answer,
            "error-invalid-email",
            "Invalid email not-an-email [error-invalid-email]",
        );

        let mut body = create_body("v4");
        body["name"] = json!("</name>");
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_eq!(status, 400);
        assert_eq!(
            answer,
            json!({ "success": false, "error": "Name contains invalid characters" })
        );

        let mut body = create_body("v5");
        body["roles"] = json!(["user", "no-such-role"]);
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_thrown(
            status,
            &answer,
            "error-action-not-allowed",
            "The field Roles consist invalid role id [error-action-not-allowed]",
        );

        let mut body = create_body("v6");
        body["password"] = json!("");
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_thrown(
            status,
            &answer,
            "error-the-field-is-required",
            "The field Password is required [error-the-field-is-required]",
        );

        // A body that is not an object at all.
        let resp = app
            .client
            .post("/api/v1/users.create")
            .header("X-User-Id", &app.admin.user_id)
            .header("X-Auth-Token", &app.admin.token)
            .content_type("application/json")
            .body("[1,2")
            .send()
            .await;
        let (status, answer) = status_json(resp).await;
        assert_eq!((status, answer["errorType"].as_str()), (400, Some("invalid-params")));
        assert_eq!(app.store.count_users().await.unwrap(), 1, "nothing was created");
    }

    async fn create_refuses_duplicates_with_rocket_chats_text(kind) {
        let app = TestApp::start(&kind).await;
        assert_eq!(post(&app, "/api/v1/users.create", &app.admin, create_body("taken")).await.0, 200);
        let mut body = create_body("TAKEN");
        body["email"] = json!("other@example.org");
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_thrown(
            status,
            &answer,
            "error-field-unavailable",
            "TAKEN is already in use :( [error-field-unavailable]",
        );
        let mut body = create_body("fresh");
        body["email"] = json!("Taken@Example.org");
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_thrown(
            status,
            &answer,
            "error-field-unavailable",
            "Taken@Example.org is already in use :( [error-field-unavailable]",
        );
    }

    async fn create_ignores_fields_a_body_may_not_set(kind) {
        let app = TestApp::start(&kind).await;
        let mut body = create_body("sneaky");
        body["_id"] = json!("chosen-id");
        body["services"] = json!({ "password": { "bcrypt": "$2b$10$forged" }, "resume": { "loginTokens": [{ "hashedToken": "x" }] } });
        body["joinDefaultChannels"] = json!(true);
        body["sendWelcomeEmail"] = json!(false);
        body["customFields"] = json!({ "a": 1 });
        body["type"] = json!("bot");
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_eq!(status, 200, "{answer}");
        let id = answer["user"]["_id"].as_str().unwrap();
        assert_ne!(id, "chosen-id");
        assert_eq!(answer["user"]["type"], "user");
        let stored = app.store.find_user(&UserKey::Id(id.into())).await.unwrap().unwrap();
        assert!(app.tokens_of(id).await.is_empty());
        assert_ne!(stored.password_bcrypt.as_ref().map(|h| h.0.as_str()), Some("$2b$10$forged"));
        app.login("sneaky", "s3cret-pass").await;
    }

    async fn create_honours_roles_active_and_random_password(kind) {
        let app = TestApp::start(&kind).await;
        let mut body = create_body("boss");
        body["roles"] = json!(["admin", "user"]);
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["user"]["roles"], json!(["admin", "user"]));
        let boss = app.login("boss", "s3cret-pass").await;
        assert_eq!(post(&app, "/api/v1/users.create", &boss, create_body("byboss")).await.0, 200);

        let mut body = create_body("sleeper");
        body["active"] = json!(false);
        let (_, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_eq!(answer["user"]["active"], false);

        let mut body = create_body("robot");
        body.as_object_mut().unwrap().remove("password");
        body["setRandomPassword"] = json!(true);
        let (status, answer) = post(&app, "/api/v1/users.create", &app.admin, body).await;
        assert_eq!(status, 200, "{answer}");
        let id = answer["user"]["_id"].as_str().unwrap().to_string();
        // Nobody knows its password, but an admin can mint tokens for it.
        let (status, minted) = post(
            &app,
            "/api/v1/users.createToken",
            &app.admin,
            json!({ "userId": id }),
        )
        .await;
        assert_eq!(status, 200, "{minted}");
    }

    async fn info_by_id_or_username(kind) {
        let app = TestApp::start(&kind).await;
        let (bob, bob_creds) = plain_user(&app, "bob").await;
        let (status, body) =
            get(&app, &format!("/api/v1/users.info?userId={}", bob.id), &app.admin).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["user"]["_id"], bob.id.as_str());
        assert_eq!(body["user"]["username"], "bob");
        assert_eq!(body["user"]["emails"][0]["address"], "bob@example.com");
        assert!(body["user"].get("services").is_none());
        let (status, body) = get(&app, "/api/v1/users.info?username=BOB", &app.admin).await;
        assert_eq!(status, 200);
        assert_eq!(body["user"]["_id"], bob.id.as_str());

        // Oneself needs no permission.
        let (status, body) = get(&app, "/api/v1/users.info?username=bob", &bob_creds).await;
        assert_eq!(status, 200);
        assert_eq!(body["user"]["emails"][0]["address"], "bob@example.com");
        // Others' public fields need no permission (Rocket.Chat), their emails do.
        let (status, body) = get(&app, "/api/v1/users.info?username=admin", &bob_creds).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["username"], "admin");
        assert!(body["user"].get("emails").is_none(), "{body}");
        // ...and the emails of others need view-full-other-user-info.
        app.core
            .set_permission_roles("view-full-other-user-info", &[])
            .await
            .unwrap();
        let (status, body) = get(&app, "/api/v1/users.info?username=bob", &app.admin).await;
        assert_eq!(status, 200);
        assert!(body["user"].get("emails").is_none(), "{body}");

        let (status, body) = get(&app, "/api/v1/users.info?username=nobody", &app.admin).await;
        assert_eq!((status, body), (400, json!({ "success": false, "error": "User not found." })));
        let (status, body) = get(&app, "/api/v1/users.info", &app.admin).await;
        assert_eq!(status, 400);
        assert_eq!(body, json!({ "success": false, "error": "Invalid search query." }));
    }

    async fn list_pages_and_totals(kind) {
        let app = TestApp::start(&kind).await;
        for name in ["carol", "alice", "dave"] {
            app.user(name, &[]).await;
        }
        let (status, body) = get(&app, "/api/v1/users.list", &app.admin).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["total"], 4);
        assert_eq!(body["count"], 4);
        assert_eq!(body["offset"], 0);
        let names: Vec<&str> = body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["admin", "alice", "carol", "dave"]);
        assert!(body.to_string().find("services").is_none());

        let (_, body) = get(&app, "/api/v1/users.list?count=2&offset=1", &app.admin).await;
        assert_eq!((body["count"].as_u64(), body["offset"].as_u64(), body["total"].as_u64()), (Some(2), Some(1), Some(4)));
        assert_eq!(body["users"][0]["username"], "alice");
        assert_eq!(body["users"][1]["username"], "carol");

        // view-d-room, which the user role holds (Rocket.Chat): others without emails.
        let (_, bob) = plain_user(&app, "bob").await;
        let (status, body) = get(&app, "/api/v1/users.list", &bob).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 5);
        for user in body["users"].as_array().unwrap() {
            assert_eq!(user.get("emails").is_some(), user["username"] == "bob", "{user}");
        }
    }

    async fn list_count_defaults_to_50_and_caps_at_100(kind) {
        let app = TestApp::start(&kind).await;
        for i in 0..110 {
            app.core
                .insert_user(NewUser {
                    username: format!("user{i:03}"),
                    email: Some(format!("user{i:03}@example.com")),
                    roles: vec!["user".into()],
                    active: true,
                    kind: "user".into(),
                    ..NewUser::default()
                })
                .await
                .unwrap();
        }
        let (_, body) = get(&app, "/api/v1/users.list", &app.admin).await;
        assert_eq!((body["count"].as_u64(), body["total"].as_u64()), (Some(50), Some(111)));
        let (_, body) = get(&app, "/api/v1/users.list?count=1000", &app.admin).await;
        assert_eq!(body["count"], 100);
        let (_, body) = get(&app, "/api/v1/users.list?count=0&offset=100", &app.admin).await;
        assert_eq!(body["count"], 11);
    }

    async fn update_by_admin(kind) {
        let app = TestApp::start(&kind).await;
        let (bob, _) = plain_user(&app, "bob").await;
        let (status, body) = post(
            &app,
            "/api/v1/users.update",
            &app.admin,
            json!({
                "userId": bob.id,
                "data": {
                    "name": "Robert",
                    "username": "robert",
                    "email": "robert@example.org",
                    "verified": true,
                    "password": "a-new-pass",
                    "roles": ["user", "bot"],
                    "requirePasswordChange": true,
                    "services": { "password": { "bcrypt": "forged" } }
                },
                "_id": "ignored"
            }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let user = &body["user"];
        assert_eq!(user["_id"], bob.id.as_str());
        assert_eq!(user["name"], "Robert");
        assert_eq!(user["username"], "robert");
        assert_eq!(user["emails"], json!([{ "address": "robert@example.org", "verified": true }]));
        assert_eq!(user["roles"], json!(["user", "bot"]));
        assert_eq!(user["requirePasswordChange"], true);
        assert!(user.get("services").is_none());
        app.login("robert", "a-new-pass").await;
    }

    async fn update_oneself_and_its_limits(kind) {
        let app = TestApp::start(&kind).await;
        let (bob, bob_creds) = plain_user(&app, "bob").await;
        let (status, body) = post(
            &app,
            "/api/v1/users.update",
            &bob_creds,
            json!({ "userId": bob.id, "data": { "name": "Bobby", "email": "bobby@example.org" } }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["name"], "Bobby");
        assert_eq!(body["user"]["emails"][0], json!({ "address": "bobby@example.org", "verified": false }));

        let refused = [
            (json!({ "verified": true }), "Editing email verification is not allowed [error-action-not-allowed]"),
            (json!({ "roles": ["admin"] }), "Assigning admin is not allowed [error-action-not-allowed]"),
            (json!({ "roles": ["user", "bot"] }), "Assign roles is not allowed [error-action-not-allowed]"),
            (json!({ "password": "a-new-pass-1" }), "Edit user password is not allowed [error-action-not-allowed]"),
            (json!({ "requirePasswordChange": false }), "Editing user is not allowed [error-action-not-allowed]"),
            (json!({ "active": true }), "Not allowed [error-not-allowed]"),
        ];
        for (data, error) in refused {
            let (status, body) = post(
                &app,
                "/api/v1/users.update",
                &bob_creds,
                json!({ "userId": bob.id, "data": data }),
            )
            .await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"], error);
        }
        // Editing someone else needs edit-other-user-info.
        let (status, body) = post(
            &app,
            "/api/v1/users.update",
            &bob_creds,
            json!({ "userId": app.admin.user_id, "data": { "name": "pwned" } }),
        )
        .await;
        assert_thrown(status, &body, "error-action-not-allowed", "Editing user is not allowed [error-action-not-allowed]");
        let admin = app.store.find_user(&UserKey::Username("admin".into())).await.unwrap().unwrap();
        assert_eq!(admin.name.as_deref(), Some("Administrator"));
    }

    async fn update_errors(kind) {
        let app = TestApp::start(&kind).await;
        let (bob, _) = plain_user(&app, "bob").await;
        plain_user(&app, "carol").await;
        let (status, body) = post(
            &app,
            "/api/v1/users.update",
            &app.admin,
            json!({ "userId": bob.id, "data": { "username": "Carol" } }),
        )
        .await;
        assert_thrown(status, &body, "error-field-unavailable", "Carol is already in use :( [error-field-unavailable]");
        let (status, body) = post(
            &app,
            "/api/v1/users.update",
            &app.admin,
            json!({ "userId": bob.id, "data": { "email": "carol@example.com" } }),
        )
        .await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-field-unavailable")));
        let (status, body) = post(
            &app,
            "/api/v1/users.update",
            &app.admin,
            json!({ "userId": bob.id, "data": { "email": "broken@" } }),
        )
        .await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-invalid-email")));
        let (status, body) = post(
            &app,
            "/api/v1/users.update",
            &app.admin,
            json!({ "userId": "nope", "data": { "name": "x" } }),
        )
        .await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-invalid-user")));
        let (status, body) = post(&app, "/api/v1/users.update", &app.admin, json!({ "userId": bob.id })).await;
        assert_thrown(status, &body, "invalid-params", "must have required property 'data' [invalid-params]");
    }

    async fn update_deactivation_ends_tokens(kind) {
        let app = TestApp::start(&kind).await;
        let (bob, bob_creds) = plain_user(&app, "bob").await;
        let pat = pat_of(&app, &bob_creds).await;
        let (status, body) = post(
            &app,
            "/api/v1/users.update",
            &app.admin,
            json!({ "userId": bob.id, "data": { "active": false } }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["active"], false);
        assert_eq!(app.me_status(&bob_creds).await, 401);
        assert_eq!(app.me_status(&pat).await, 401);
    }

    async fn set_active_status(kind) {
        let app = TestApp::start(&kind).await;
        let (bob, bob_creds) = plain_user(&app, "bob").await;
        let pat = pat_of(&app, &bob_creds).await;

        let (status, body) = post(
            &app,
            "/api/v1/users.setActiveStatus",
            &bob_creds,
            json!({ "userId": app.admin.user_id, "activeStatus": false }),
        )
        .await;
        assert_eq!(status, 403);
        assert_eq!(body, json!({ "success": false, "error": NO_PERMISSION }));

        let (status, body) = post(
            &app,
            "/api/v1/users.setActiveStatus",
            &app.admin,
            json!({ "userId": bob.id, "activeStatus": false }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({ "user": { "_id": bob.id, "active": false }, "success": true }));
        // Every token dies, and a password login fails.
        assert_eq!(app.me_status(&bob_creds).await, 401);
        assert_eq!(app.me_status(&pat).await, 401);
        let resp = app
            .client
            .post("/api/v1/login")
            .body_json(&json!({ "user": "bob", "password": USER_PASS }))
            .send()
            .await;
        assert_eq!(resp.0.status().as_u16(), 401);
        assert!(app.tokens_of(&bob.id).await.is_empty());

        // Reactivated, the user logs in again (the old tokens stay dead).
        let (status, body) = post(
            &app,
            "/api/v1/users.setActiveStatus",
            &app.admin,
            json!({ "userId": bob.id, "activeStatus": true }),
        )
        .await;
        assert_eq!((status, body["user"]["active"].as_bool()), (200, Some(true)));
        assert_eq!(app.me_status(&bob_creds).await, 401);
        app.login("bob", USER_PASS).await;

        let (status, body) = post(
            &app,
            "/api/v1/users.setActiveStatus",
            &app.admin,
            json!({ "userId": "nope", "activeStatus": false }),
        )
        .await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-invalid-user")));
        let (status, body) = post(&app, "/api/v1/users.setActiveStatus", &app.admin, json!({ "userId": bob.id })).await;
        assert_thrown(status, &body, "invalid-params", "must have required property 'activeStatus' [invalid-params]");
    }

    async fn the_last_active_admin_stays(kind) {
        let app = TestApp::start(&kind).await;
        let (status, body) = post(
            &app,
            "/api/v1/users.setActiveStatus",
            &app.admin,
            json!({ "userId": app.admin.user_id, "activeStatus": false }),
        )
        .await;
        assert_thrown(
            status,
            &body,
            "error-action-not-allowed",
            "Leaving the app without an active admin is not allowed [error-action-not-allowed]",
        );
        let (status, _) = post(&app, "/api/v1/users.delete", &app.admin, json!({ "username": "admin" })).await;
        assert_eq!(status, 400);
        let (status, _) = post(
            &app,
            "/api/v1/users.update",
            &app.admin,
            json!({ "userId": app.admin.user_id, "data": { "roles": ["user"] } }),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(app.me_status(&app.admin).await, 200);
        // With a second admin, the first may go.
        app.user("admin2", &["admin"]).await;
        let (status, _) = post(
            &app,
            "/api/v1/users.setActiveStatus",
            &app.admin,
            json!({ "userId": app.admin.user_id, "activeStatus": false }),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(app.me_status(&app.admin).await, 401);
    }

    /// Issue 10 item 8: two admins deactivating each other at once used to
    /// both succeed (check-then-act in the core), leaving no admin. The guard
    /// is now part of the store's write: on SQLite one write transaction, on
    /// MongoDB the admin lease (see `store/mongo/admin_guard.rs`), so this
    /// holds on both stores; each round races the two routes that deactivate.
    async fn two_admins_deactivating_each_other_leave_one(kind) {
        let app = TestApp::start(&kind).await;
        let admin2 = app.user("admin2", &["admin"]).await;
        let mut first = app.admin.clone();
        let mut second = app.login("admin2", USER_PASS).await;
        let mut ids = (app.admin.user_id.clone(), admin2.id.clone());
        for round in 0..6 {
            let off = |creds: &Creds, target: &str| {
                let (path, body) = if round % 2 == 0 {
                    ("/api/v1/users.setActiveStatus", json!({ "userId": target, "activeStatus": false }))
                } else {
                    ("/api/v1/users.update", json!({ "userId": target, "data": { "active": false } }))
                };
                let creds = creds.clone();
                let app = &app;
                async move { post(app, path, &creds, body).await }
            };
            let ((a, a_body), (b, b_body)) =
                tokio::join!(off(&first, &ids.1), off(&second, &ids.0));
            // Exactly one wins. The other is refused by the guard (400), or,
            // when the winner's write landed before the loser's request was
            // authenticated, by its own token having died with it (401).
            let mut statuses = [a, b];
            statuses.sort_unstable();
            assert!(
                statuses == [200, 400] || statuses == [200, 401],
                "round {round}: {a} {a_body} / {b} {b_body}"
            );
            let active_admins = app
                .store
                .list_users(0, 100)
                .await
                .unwrap()
                .0
                .iter()
                .filter(|u| u.is_active_admin())
                .count();
            assert_eq!(active_admins, 1, "round {round}");
            // The survivor brings the other back for the next round.
            let (survivor, survivor_creds, gone) = if a == 200 {
                (ids.0.clone(), first.clone(), ids.1.clone())
            } else {
                (ids.1.clone(), second.clone(), ids.0.clone())
            };
            let (status, body) = post(
                &app,
                "/api/v1/users.setActiveStatus",
                &survivor_creds,
                json!({ "userId": gone, "activeStatus": true }),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let gone_name = if gone == app.admin.user_id { "admin" } else { "admin2" };
            let gone_pass = if gone == app.admin.user_id { ADMIN_PASS } else { USER_PASS };
            let gone_creds = app.login(gone_name, gone_pass).await;
            (first, second, ids) = (survivor_creds, gone_creds, (survivor, gone));
        }
    }

    async fn delete_user(kind) {
        let app = TestApp::start(&kind).await;
        let (bob, bob_creds) = plain_user(&app, "bob").await;
        let pat = pat_of(&app, &bob_creds).await;
        let (status, body) = post(&app, "/api/v1/users.delete", &bob_creds, json!({ "userId": app.admin.user_id })).await;
        assert_eq!(status, 403);
        assert_eq!(body["error"], NO_PERMISSION);

        let (status, body) = post(&app, "/api/v1/users.delete", &app.admin, json!({ "username": "BOB" })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({ "deletedRooms": [], "success": true }));
        assert_eq!(app.me_status(&bob_creds).await, 401);
        assert_eq!(app.me_status(&pat).await, 401);
        assert!(app.store.find_user(&UserKey::Id(bob.id.clone())).await.unwrap().is_none());

        let (status, body) = post(&app, "/api/v1/users.delete", &app.admin, json!({ "userId": bob.id })).await;
        assert_thrown(
            status,
            &body,
            "error-invalid-user",
            "The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]",
        );
        let (status, body) = post(&app, "/api/v1/users.delete", &app.admin, json!({})).await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-user-param-not-provided")));
    }

    async fn logout_other_user_needs_permission(kind) {
        // Rocket.Chat: 'should throw unauthorized error to user w/o "logout-other-user" permission'.
        let app = TestApp::start(&kind).await;
        let (bob, bob_creds) = plain_user(&app, "bob").await;
        app.core.set_permission_roles("logout-other-user", &[]).await.unwrap();
        let (status, body) = post(&app, "/api/v1/users.logout", &app.admin, json!({ "userId": bob.id })).await;
        assert_eq!(status, 403);
        assert_eq!(body, json!({ "success": false, "error": "unauthorized" }));
        assert_eq!(app.me_status(&bob_creds).await, 200);
    }

    async fn logout_other_user(kind) {
        // Rocket.Chat: "should logout other user".
        let app = TestApp::start(&kind).await;
        let (bob, bob_creds) = plain_user(&app, "bob").await;
        let pat = pat_of(&app, &bob_creds).await;
        app.core
            .set_permission_roles("logout-other-user", &["admin".into()])
            .await
            .unwrap();
        let (status, body) = post(&app, "/api/v1/users.logout", &app.admin, json!({ "userId": bob.id })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({ "message": format!("User {} has been logged out!", bob.id), "success": true })
        );
        // Login tokens and PATs alike.
        assert_eq!(app.me_status(&bob_creds).await, 401);
        assert_eq!(app.me_status(&pat).await, 401);
        assert_eq!(app.me_status(&app.admin).await, 200);
        let (status, body) = post(&app, "/api/v1/users.logout", &app.admin, json!({ "userId": "nope" })).await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-invalid-user")));
    }

    async fn logout_the_requester(kind) {
        // Rocket.Chat: "should logout the requester" (permission set to [], no body).
        let app = TestApp::start(&kind).await;
        let (bob, bob_creds) = plain_user(&app, "bob").await;
        let second = app.login("bob", USER_PASS).await;
        app.core.set_permission_roles("logout-other-user", &[]).await.unwrap();
        let resp = app
            .client
            .post("/api/v1/users.logout")
            .header("X-User-Id", &bob_creds.user_id)
            .header("X-Auth-Token", &bob_creds.token)
            .send()
            .await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], format!("User {} has been logged out!", bob.id));
        assert_eq!(app.me_status(&bob_creds).await, 401);
        assert_eq!(app.me_status(&second).await, 401);
        // Naming oneself needs no permission either.
        let third = app.login("bob", USER_PASS).await;
        let (status, _) = post(&app, "/api/v1/users.logout", &third, json!({ "userId": bob.id })).await;
        assert_eq!(status, 200);
    }

    async fn routes_need_authentication(kind) {
        let app = TestApp::start(&kind).await;
        for path in [
            "/api/v1/users.create",
            "/api/v1/users.update",
            "/api/v1/users.setActiveStatus",
            "/api/v1/users.delete",
            "/api/v1/users.logout",
        ] {
            let resp = app.client.post(path).body_json(&json!({})).send().await;
            let (status, body) = status_json(resp).await;
            assert_eq!(status, 401, "{path}");
            assert_eq!(body["message"], "You must be logged in to do this.", "{path}");
        }
        for path in ["/api/v1/users.info?username=admin", "/api/v1/users.list"] {
            let resp = app.client.get(path).send().await;
            assert_eq!(resp.0.status().as_u16(), 401, "{path}");
        }
        let bogus = Creds { user_id: app.admin.user_id.clone(), token: "x".repeat(43) };
        assert_eq!(get(&app, "/api/v1/users.list", &bogus).await.0, 401);
    }
}
