//! Rocket.Chat's roles and permissions routes (issue 14 item 4): bodies,
//! permissions and texts as Rocket.Chat's `roles.ts` / `permissions.ts`,
//! answers in the shape of the 200 schemas of Rocket.Chat's OpenAPI
//! description (`user-management.yaml`, operation named in each test), and
//! the escalation rule on every change.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokend::core::service::NewUser;
use tokend::core::UserKey;

async fn get(app: &TestApp, path: &str, creds: &Creds) -> (u16, Value) {
    status_json(app.rc_get(path, creds).await).await
}

async fn post(app: &TestApp, path: &str, creds: &Creds, body: Value) -> (u16, Value) {
    status_json(app.rc_post(path, creds, body).await).await
}

/// A user with role `user` plus these permissions of its own, logged in.
async fn delegate(app: &TestApp, name: &str, permissions: &[&str]) -> Creds {
    app.core
        .insert_user(NewUser {
            username: name.into(),
            name: Some(name.into()),
            email: Some(format!("{name}@example.com")),
            password: Some(USER_PASS.into()),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            active: true,
            ..NewUser::default()
        })
        .await
        .unwrap();
    app.login(name, USER_PASS).await
}

fn assert_str(v: &Value, key: &str, op: &str) {
    assert!(v[key].is_string(), "{op}: {key} is a string in {v}");
}

fn assert_bool(v: &Value, key: &str, op: &str) {
    assert!(v[key].is_boolean(), "{op}: {key} is a boolean in {v}");
}

fn assert_strings(v: &Value, key: &str, op: &str) {
    let items = v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{op}: {key} is an array in {v}"));
    assert!(
        items.iter().all(Value::is_string),
        "{op}: {key} holds strings in {v}"
    );
}

/// `IPermission` as the 200 schemas list it: `_id`, `roles`, `_updatedAt`.
fn assert_permission(p: &Value, op: &str) {
    assert_str(p, "_id", op);
    assert_strings(p, "roles", op);
    assert_str(p, "_updatedAt", op);
}

/// A role as `roles.list` / `roles.sync` / `roles.addUserToRole` list it.
fn assert_role(r: &Value, op: &str) {
    for key in ["_id", "name", "scope", "description"] {
        assert_str(r, key, op);
    }
    assert_bool(r, "protected", op);
    assert_bool(r, "mandatory2fa", op);
}

async fn roles_of(app: &TestApp, id: &str) -> Vec<String> {
    app.store
        .find_user(&UserKey::Id(id.into()))
        .await
        .unwrap()
        .unwrap()
        .roles
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["_id"].as_str().unwrap().to_string())
        .collect()
}

store_tests! {
    /// `get-permissions.listAll`: `{update: IPermission[], remove: [], success}`.
    async fn permissions_list_all_and_updated_since(kind) {
        let app = TestApp::start(&kind).await;
        let bob = { app.user("bob", &[]).await; app.login("bob", USER_PASS).await };
        let op = "get-permissions.listAll";
        let (status, body) = get(&app, "/api/v1/permissions.listAll", &bob).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["remove"], json!([]));
        let update = body["update"].as_array().unwrap();
        update.iter().for_each(|p| assert_permission(p, op));
        assert!(ids(&body["update"]).contains(&"assign-admin-role".to_string()));

        // Only what changed after `updatedSince`.
        let before = tokend::core::clock::iso(&app.core.now());
        app.clock.advance(chrono::Duration::seconds(5));
        app.core.set_permission_roles("view-d-room", &["user".into(), "bot".into()]).await.unwrap();
        let (status, body) = get(&app, &format!("/api/v1/permissions.listAll?updatedSince={before}"), &bob).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(ids(&body["update"]), vec!["view-d-room".to_string()]);
        assert_eq!(body["update"][0]["roles"], json!(["user", "bot"]));
        assert_eq!(body["remove"], json!([]));

        let (status, body) = get(&app, "/api/v1/permissions.listAll?updatedSince=yesterday", &bob).await;
        assert_eq!(status, 400);
        assert_eq!(body["errorType"], "error-roomId-param-invalid");
    }

    /// `post-api-v1-permissions.update`: `access-permissions`, answers
    /// `{permissions: IPermission[], success}`; the cache is cleared at once.
    async fn permissions_update_and_the_cache(kind) {
        let mut config = test_config();
        config.permissions_cache = Duration::from_secs(3600);
        let app = TestApp::with_config(&kind, config).await;
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        assert_eq!(app.rc_get("/api/v1/users.list", &bob).await.0.status(), 200);

        let (status, body) = post(&app, "/api/v1/permissions.update", &bob,
            json!({ "permissions": [{ "_id": "view-d-room", "roles": ["admin"] }] })).await;
        assert_eq!((status, body["error"].as_str()), (403, Some(NO_PERMISSION)), "{body}");

        let op = "post-api-v1-permissions.update";
        let (status, body) = post(&app, "/api/v1/permissions.update", &app.admin,
            json!({ "permissions": [{ "_id": "view-d-room", "roles": ["admin"] }] })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        body["permissions"].as_array().unwrap().iter().for_each(|p| assert_permission(p, op));
        let entry = body["permissions"].as_array().unwrap().iter().find(|p| p["_id"] == "view-d-room").unwrap();
        assert_eq!(entry["roles"], json!(["admin"]));
        // Without waiting for the hour-long cache.
        assert_eq!(app.rc_get("/api/v1/users.list", &bob).await.0.status(), 403);

        for (body, error) in [
            (json!({ "permissions": [{ "_id": "no-such-permission", "roles": [] }] }), "error-invalid-permission"),
            (json!({ "permissions": [{ "_id": "view-d-room", "roles": ["no-such-role"] }] }), "error-invalid-role"),
            (json!({ "permissions": [{ "_id": "view-d-room", "roles": ["user", "user"] }] }), "error-invalid-body-params"),
            (json!({}), "error-invalid-body-params"),
        ] {
            let (status, answer) = post(&app, "/api/v1/permissions.update", &app.admin, body.clone()).await;
            assert_eq!((status, answer["errorType"].as_str()), (400, Some(error)), "{body}: {answer}");
        }
    }

    /// Item 6 of issue 10 through `permissions.update`: `access-permissions`
    /// alone cannot hand out a permission it does not hold (to its own role
    /// or any other), nor take one away.
    async fn permissions_update_grants_only_what_the_caller_holds(kind) {
        let app = TestApp::start(&kind).await;
        let d = delegate(&app, "dele", &["access-permissions", "view-statistics"]).await;
        for body in [
            json!({ "permissions": [{ "_id": "user-generate-access-token", "roles": ["admin", "user"] }] }),
            json!({ "permissions": [{ "_id": "assign-admin-role", "roles": ["admin", "user"] }] }),
            json!({ "permissions": [{ "_id": "manage-users", "roles": [] }] }),
        ] {
            let (status, answer) = post(&app, "/api/v1/permissions.update", &d, body.clone()).await;
            assert_eq!((status, answer["errorType"].as_str()), (400, Some("error-edit-permissions-not-allowed")), "{body}");
        }
        let perms = app.store.permissions().await.unwrap();
        let roles_of = |id: &str| perms.iter().find(|p| p.id == id).unwrap().roles.clone();
        assert_eq!(roles_of("user-generate-access-token"), vec!["admin".to_string()]);
        assert_eq!(roles_of("manage-users"), vec!["admin".to_string()]);
        // What it holds, it may hand out.
        let (status, body) = post(&app, "/api/v1/permissions.update", &d,
            json!({ "permissions": [{ "_id": "view-statistics", "roles": ["admin", "user"] }] })).await;
        assert_eq!(status, 200, "{body}");
    }

    /// `get-api-v1-roles.list` and `get-api-v1-roles.sync`.
    async fn roles_list_and_sync(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &[]).await;
        let bob = app.login("bob", USER_PASS).await;
        let (status, body) = get(&app, "/api/v1/roles.list", &bob).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        body["roles"].as_array().unwrap().iter().for_each(|r| assert_role(r, "get-api-v1-roles.list"));
        assert!(body["roles"].as_array().unwrap().iter().all(|r| r.get("_updatedAt").is_none()));
        let all = ids(&body["roles"]);
        for role in ["admin", "user", "bot", "app", "guest", "anonymous"] {
            assert!(all.contains(&role.to_string()), "{role} in {all:?}");
        }

        let op = "get-api-v1-roles.sync";
        let (status, body) = get(&app, "/api/v1/roles.sync", &bob).await;
        assert_eq!((status, &body["roles"]), (200, &json!({ "update": [], "remove": [] })), "{body}");
        let (status, body) = get(&app, "/api/v1/roles.sync?updatedSince=2000-01-01T00:00:00.000Z", &bob).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        body["roles"]["update"].as_array().unwrap().iter().for_each(|r| assert_role(r, op));
        assert_eq!(ids(&body["roles"]["update"]).len(), all.len());
        assert_eq!(body["roles"]["remove"], json!([]));
        app.clock.advance(chrono::Duration::seconds(60));
        let later = tokend::core::clock::iso(&app.core.now());
        let (_, body) = get(&app, &format!("/api/v1/roles.sync?updatedSince={later}"), &bob).await;
        assert_eq!(body["roles"]["update"], json!([]));
    }

    /// `get-api-v1-roles.getUsersInRole` (`access-permissions`) and
    /// `roles.getUsersInPublicRoles` (any user; RC source's 200 schema:
    /// `users: [{_id, username, roles}]`).
    async fn users_in_role_and_in_public_roles(kind) {
        let app = TestApp::start(&kind).await;
        app.user("bob", &["user", "bot"]).await;
        app.user("carol", &["bot"]).await;
        let bob = app.login("bob", USER_PASS).await;
        let (status, body) = get(&app, "/api/v1/roles.getUsersInRole?role=bot", &bob).await;
        assert_eq!((status, body["error"].as_str()), (403, Some(NO_PERMISSION)), "{body}");

        let op = "get-api-v1-roles.getUsersInRole";
        let (status, body) = get(&app, "/api/v1/roles.getUsersInRole?role=bot&count=1", &app.admin).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["total"], 2);
        let users = body["users"].as_array().unwrap();
        assert_eq!(users.len(), 1);
        for key in ["_id", "username", "name", "createdAt", "_updatedAt"] {
            assert_str(&users[0], key, op);
        }
        assert_eq!(users[0]["username"], "bob");
        let (_, body) = get(&app, "/api/v1/roles.getUsersInRole?role=bot&offset=1", &app.admin).await;
        assert_eq!(body["users"][0]["username"], "carol");
        let (_, body) = get(&app, "/api/v1/roles.getUsersInRole?role=bot&roomId=GENERAL", &app.admin).await;
        assert_eq!((body["users"].clone(), body["total"].clone()), (json!([]), json!(0)), "tokend has no rooms");
        let (status, body) = get(&app, "/api/v1/roles.getUsersInRole", &app.admin).await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-param-not-provided")));
        let (status, body) = get(&app, "/api/v1/roles.getUsersInRole?role=nope", &app.admin).await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-invalid-roleId")));

        let op = "roles.getUsersInPublicRoles";
        let (status, body) = get(&app, "/api/v1/roles.getUsersInPublicRoles", &bob).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        let users = body["users"].as_array().unwrap();
        users.iter().for_each(|u| { assert_str(u, "_id", op); assert_str(u, "username", op); assert_strings(u, "roles", op); });
        // Only the admin role has a description: only the admin, with only it.
        assert_eq!(users.len(), 1, "{body}");
        assert_eq!((users[0]["username"].as_str(), &users[0]["roles"]), (Some("admin"), &json!(["admin"])));
    }

    /// `post-api-v1-roles.addUserToRole` and `roles.removeUserFromRole`:
    /// `{role, success}`, Rocket.Chat's texts, and the escalation rule.
    async fn add_and_remove_user_roles(kind) {
        let app = TestApp::start(&kind).await;
        let bob = app.user("bob", &[]).await;
        let op = "post-api-v1-roles.addUserToRole";
        let (status, body) = post(&app, "/api/v1/roles.addUserToRole", &app.admin,
            json!({ "roleId": "bot", "username": "bob" })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_role(&body["role"], op);
        assert_eq!(body["role"]["_id"], "bot");
        assert_eq!(roles_of(&app, &bob.id).await, vec!["user".to_string(), "bot".to_string()]);
        let (status, body) = post(&app, "/api/v1/roles.addUserToRole", &app.admin,
            json!({ "roleName": "bot", "userId": bob.id })).await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-user-already-in-role")), "{body}");
        for (body, error) in [
            (json!({ "roleId": "nope", "username": "bob" }), "error-invalid-roleId"),
            (json!({ "roleId": "bot", "username": "ghost" }), "error-invalid-user"),
            (json!({ "roleId": "guest", "username": "bob", "roomId": "GENERAL" }), "error-invalid-user"),
        ] {
            let (status, answer) = post(&app, "/api/v1/roles.addUserToRole", &app.admin, body.clone()).await;
            assert_eq!((status, answer["errorType"].as_str()), (400, Some(error)), "{body}: {answer}");
        }

        let op = "roles.removeUserFromRole";
        let (status, body) = post(&app, "/api/v1/roles.removeUserFromRole", &app.admin,
            json!({ "roleId": "bot", "username": "bob" })).await;
        assert_eq!(status, 200, "{body}");
        assert_role(&body["role"], op);
        assert_eq!(roles_of(&app, &bob.id).await, vec!["user".to_string()]);
        let (status, body) = post(&app, "/api/v1/roles.removeUserFromRole", &app.admin,
            json!({ "roleId": "bot", "username": "bob" })).await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-user-not-in-role")));
        // The last admin keeps admin.
        let (status, body) = post(&app, "/api/v1/roles.removeUserFromRole", &app.admin,
            json!({ "roleId": "admin", "username": "admin" })).await;
        assert_eq!((status, body["errorType"].as_str()), (400, Some("error-admin-required")), "{body}");

        // Without access-permissions.
        let plain = app.login("bob", USER_PASS).await;
        let (status, body) = post(&app, "/api/v1/roles.addUserToRole", &plain,
            json!({ "roleId": "guest", "username": "bob" })).await;
        assert_eq!((status, body["error"].as_str()),
            (400, Some("Accessing permissions is not allowed [error-action-not-allowed]")), "{body}");
        let (status, _) = post(&app, "/api/v1/roles.removeUserFromRole", &plain,
            json!({ "roleId": "user", "username": "bob" })).await;
        assert_eq!(status, 403);
    }

    /// Item 6 of issue 10 through the role routes: `access-permissions`
    /// alone gives nobody `admin`, nor a role conferring what it lacks, and
    /// cannot demote the admin.
    async fn role_routes_obey_the_escalation_rule(kind) {
        let app = TestApp::start(&kind).await;
        app.user("victim", &[]).await;
        let d = delegate(&app, "dele", &["access-permissions"]).await;
        for (role, user, error) in [
            ("admin", "dele", "Assigning admin is not allowed [error-action-not-allowed]"),
            ("admin", "victim", "Assigning admin is not allowed [error-action-not-allowed]"),
            ("bot", "dele", "Assign roles is not allowed [error-action-not-allowed]"),
            ("bot", "victim", "Assign roles is not allowed [error-action-not-allowed]"),
        ] {
            let (status, body) = post(&app, "/api/v1/roles.addUserToRole", &d,
                json!({ "roleId": role, "username": user })).await;
            assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{role} to {user}: {body}");
        }
        let (status, body) = post(&app, "/api/v1/roles.removeUserFromRole", &d,
            json!({ "roleId": "admin", "username": "admin" })).await;
        assert_eq!((status, body["error"].as_str()),
            (400, Some("Editing user is not allowed [error-action-not-allowed]")), "{body}");
        for name in ["dele", "victim"] {
            let user = app.store.find_user(&UserKey::Username(name.into())).await.unwrap().unwrap();
            assert_eq!(user.roles, vec!["user".to_string()], "{name}");
        }
        // A role conferring nothing it lacks: allowed.
        let (status, body) = post(&app, "/api/v1/roles.addUserToRole", &d,
            json!({ "roleId": "guest", "username": "victim" })).await;
        assert_eq!(status, 200, "{body}");
    }
}
