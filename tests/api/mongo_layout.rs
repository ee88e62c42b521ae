//! The raw MongoDB documents, read with the driver (not through tokend):
//! exactly Rocket.Chat's layout, tokens findable by Rocket.Chat's own query,
//! and users written the way Rocket.Chat writes them work in tokend, their
//! unknown fields intact. MongoDB only (skipped without `MONGO_URL`, except
//! under `CI=true`).

use crate::common::*;
use base64::{engine::general_purpose::STANDARD, Engine};
use mongodb::bson::{doc, Bson, DateTime as BsonDate, Document};
use mongodb::{Collection, Database};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use tokend::core::credential::TokenHash;
use tokend::core::model::UserKey;
use tokend::store::{StoreError, UniqueField};

const RC_ALPHABET: &str = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

/// A tokend on a fresh database, a raw driver handle on the same database,
/// and its URL.
async fn setup() -> Option<(TestApp, Database, String)> {
    let kind = StoreKind::mongo()?;
    let StoreKind::Mongo(url) = &kind else {
        return None;
    };
    let raw = mongodb::Client::with_uri_str(url).await.expect("client");
    let db = raw.default_database().expect("database in the URI");
    Some((TestApp::start(&kind).await, db, url.clone()))
}

macro_rules! setup_or_skip {
    () => {
        match setup().await {
            Some((app, db, _url)) => (app, db),
            None => {
                eprintln!("MONGO_URL unset: skipping");
                return;
            }
        }
    };
}

/// Rocket.Chat's `hashLoginToken`, computed here independently of tokend.
fn rc_hash(token: &str) -> String {
    STANDARD.encode(Sha256::digest(token.as_bytes()))
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn keys(d: &Document) -> BTreeSet<&str> {
    d.keys().map(String::as_str).collect()
}

fn set<'a>(items: &[&'a str]) -> BTreeSet<&'a str> {
    items.iter().copied().collect()
}

fn users(db: &Database) -> Collection<Document> {
    db.collection("users")
}

async fn raw_user(db: &Database, id: &str) -> Document {
    users(db)
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .expect("user document")
}

fn tokens(user: &Document) -> Vec<Document> {
    user.get_document("services")
        .and_then(|s| s.get_document("resume"))
        .and_then(|r| r.get_array("loginTokens"))
        .map(|a| a.iter().filter_map(|b| b.as_document().cloned()).collect())
        .unwrap_or_default()
}

async fn create_token(app: &TestApp, username: &str) -> Creds {
    let resp = app
        .rc_post(
            "/api/v1/users.createToken",
            &app.admin,
            json!({ "username": username }),
        )
        .await;
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    Creds {
        user_id: body["data"]["userId"].as_str().unwrap().into(),
        token: body["data"]["authToken"].as_str().unwrap().into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_documents_have_rocket_chats_layout() {
    let (app, db) = setup_or_skip!();
    let alice = app.user("alice", &[]).await;
    let minted = create_token(&app, "alice").await;
    let logged_in = app.login("alice", USER_PASS).await;
    let resp = app
        .rc_post(
            "/api/v1/users.generatePersonalAccessToken",
            &logged_in,
            json!({ "tokenName": "ci", "bypassTwoFactor": false }),
        )
        .await;
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    let pat = body["token"].as_str().unwrap().to_string();

    let d = raw_user(&db, &alice.id).await;
    assert_eq!(
        keys(&d),
        set(&[
            "_id",
            "createdAt",
            "_updatedAt",
            "type",
            "username",
            "name",
            "emails",
            "roles",
            "active",
            "services",
            // Rocket.Chat's, written at every login.
            "lastLogin"
        ])
    );
    assert!(matches!(d.get("lastLogin"), Some(Bson::DateTime(_))));
    let id = d.get_str("_id").unwrap();
    assert_eq!(id.len(), 17);
    assert!(id.chars().all(|c| RC_ALPHABET.contains(c)), "{id}");
    assert!(matches!(d.get("createdAt"), Some(Bson::DateTime(_))));
    assert!(matches!(d.get("_updatedAt"), Some(Bson::DateTime(_))));
    assert_eq!(d.get_str("type").unwrap(), "user");
    assert_eq!(d.get_str("username").unwrap(), "alice");
    assert_eq!(d.get_str("name").unwrap(), "alice name");
    assert_eq!(
        d.get_array("emails").unwrap(),
        &vec![Bson::Document(
            doc! { "address": "alice@example.com", "verified": true }
        )]
    );
    assert_eq!(d.get_array("roles").unwrap(), &vec![Bson::from("user")]);
    assert!(d.get_bool("active").unwrap());

    let services = d.get_document("services").unwrap();
    assert_eq!(keys(services), set(&["password", "resume"]));
    let password = services.get_document("password").unwrap();
    assert_eq!(keys(password), set(&["bcrypt"]));
    let hash = password.get_str("bcrypt").unwrap();
    assert!(hash.starts_with("$2b$10$"), "{hash}");
    assert!(bcrypt::verify(sha256_hex(USER_PASS), hash).unwrap());
    assert_eq!(
        keys(services.get_document("resume").unwrap()),
        set(&["loginTokens"])
    );

    let entries = tokens(&d);
    assert_eq!(entries.len(), 3);
    for entry in &entries[..2] {
        assert_eq!(keys(entry), set(&["when", "hashedToken"]));
        assert!(matches!(entry.get("when"), Some(Bson::DateTime(_))));
    }
    let pat_entry = &entries[2];
    assert_eq!(
        keys(pat_entry),
        set(&[
            "hashedToken",
            "type",
            "createdAt",
            "lastTokenPart",
            "name",
            "bypassTwoFactor"
        ])
    );
    assert_eq!(pat_entry.get_str("type").unwrap(), "personalAccessToken");
    assert_eq!(pat_entry.get_str("name").unwrap(), "ci");
    assert_eq!(
        pat_entry.get_str("lastTokenPart").unwrap(),
        &pat[pat.len() - 6..]
    );
    assert!(!pat_entry.get_bool("bypassTwoFactor").unwrap());
    assert!(matches!(
        pat_entry.get("createdAt"),
        Some(Bson::DateTime(_))
    ));

    // Rocket.Chat's own lookup finds every token tokend minted; none is stored in clear.
    let text = d.to_string();
    for token in [&minted.token, &logged_in.token, &pat] {
        assert_eq!(token.len(), 43);
        let found = users(&db)
            .find_one(doc! { "_id": &alice.id, "services.resume.loginTokens.hashedToken": rc_hash(token) })
            .await
            .unwrap();
        assert!(found.is_some(), "Rocket.Chat's query misses a token");
        assert!(!text.contains(token.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_permissions_have_rocket_chats_layout() {
    let (_app, db) = setup_or_skip!();
    let perms: Collection<Document> = db.collection("rocketchat_permissions");
    let p = perms
        .find_one(doc! { "_id": "create-personal-access-tokens" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys(&p), set(&["_id", "roles", "_updatedAt"]));
    assert_eq!(
        p.get_array("roles").unwrap(),
        &vec![Bson::from("admin"), Bson::from("user")]
    );
    assert!(matches!(p.get("_updatedAt"), Some(Bson::DateTime(_))));
    let roles: Collection<Document> = db.collection("rocketchat_roles");
    let mut admin = roles
        .find_one(doc! { "_id": "admin" })
        .await
        .unwrap()
        .unwrap();
    // Rocket.Chat's `_updatedAt` (a Date), which `roles.sync` filters on.
    assert!(matches!(
        admin.remove("_updatedAt"),
        Some(Bson::DateTime(_))
    ));
    assert_eq!(
        admin,
        doc! { "_id": "admin", "name": "admin", "scope": "Users", "description": "Admin",
        "protected": true, "mandatory2fa": false }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_are_created_idempotently() {
    let Some((app, db, url)) = setup().await else {
        eprintln!("MONGO_URL unset: skipping");
        return;
    };
    // A second start on the same database changes nothing and fails nothing.
    let again = tokend::store::MongoStore::connect(&url, app.core.config().store_timeout)
        .await
        .unwrap();
    again.ensure_indexes().await.unwrap();

    let specs = |coll: &'static str| {
        let db = db.clone();
        async move {
            let mut cursor = db
                .collection::<Document>(coll)
                .list_indexes()
                .await
                .unwrap();
            let mut out = Vec::new();
            while cursor.advance().await.unwrap() {
                out.push(cursor.deserialize_current().unwrap());
            }
            out
        }
    };
    let find = |list: &[mongodb::IndexModel], name: &str| {
        list.iter()
            .find(|m| m.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("index {name} missing"))
    };
    let users = specs("users").await;
    for name in [
        "username_1",
        "emails.address_1",
        "services.resume.loginTokens.hashedToken_1",
    ] {
        let opts = find(&users, name).options.unwrap();
        assert_eq!(
            (opts.unique, opts.sparse),
            (Some(true), Some(true)),
            "{name}"
        );
    }
    let sessions = specs("tokend_sessions").await;
    let ttl = find(&sessions, "expiresAt_1").options.unwrap();
    assert_eq!(ttl.expire_after, Some(std::time::Duration::ZERO));
    find(&sessions, "userId_1");
    let api = specs("tokend_api_tokens").await;
    assert_eq!(
        find(&api, "hashedToken_1").options.unwrap().unique,
        Some(true)
    );
    find(&specs("tokend_user_keys").await, "userId_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saymon_data_lives_in_tokends_collections_hashed() {
    let (app, db) = setup_or_skip!();
    let t = app.core.now();
    let token = tokend::core::model::ApiToken {
        user_id: "someUser".into(),
        hashed_token: TokenHash::from_stored(rc_hash("api-token")),
        created_at: t,
        hint: "oken".into(),
        last_used_at: None,
    };
    app.store.set_api_token(&token).await.unwrap();
    let d: Document = db
        .collection("tokend_api_tokens")
        .find_one(doc! { "_id": "someUser" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d,
        doc! { "_id": "someUser", "hashedToken": rc_hash("api-token"),
        "createdAt": BsonDate::from_millis(t.timestamp_millis()), "lastTokenPart": "oken" }
    );
    let session = tokend::core::model::Session {
        hashed_id: TokenHash::from_stored(rc_hash("session-id")),
        user_id: "someUser".into(),
        created_at: t,
        last_seen_at: t,
        expires_at: t + chrono::Duration::hours(1),
        absolute_expires_at: t + chrono::Duration::hours(24),
    };
    app.store.insert_session(&session, 100).await.unwrap();
    let d: Document = db
        .collection("tokend_sessions")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        keys(&d),
        set(&[
            "_id",
            "userId",
            "createdAt",
            "lastSeenAt",
            "expiresAt",
            "absoluteExpiresAt"
        ])
    );
    assert_eq!(d.get_str("_id").unwrap(), rc_hash("session-id"));
    for field in ["createdAt", "lastSeenAt", "expiresAt", "absoluteExpiresAt"] {
        assert!(matches!(d.get(field), Some(Bson::DateTime(_))), "{field}");
    }
}

/// A user as Rocket.Chat writes it, with fields tokend does not know.
fn rocket_chat_user(id: &str, password: &str, token: &str, pat: &str) -> Document {
    let now = BsonDate::now();
    doc! {
        "_id": id,
        "createdAt": now,
        "_updatedAt": now,
        "type": "user",
        "username": "rc.user",
        "name": "RC User",
        "emails": [ { "address": "rc.user@example.org", "verified": true } ],
        "roles": ["user"],
        "active": true,
        "status": "online",
        "statusConnection": "online",
        "utcOffset": 2,
        "lastLogin": now,
        "settings": { "preferences": { "language": "en" } },
        "__rooms": ["GENERAL"],
        "services": {
            "password": { "bcrypt": bcrypt::hash(sha256_hex(password), 10).unwrap() },
            // Switched off: with it on (Rocket.Chat's auto opt-in) the password
            // alone no longer logs in (tests/api/twofactor.rs).
            "email2fa": { "enabled": false, "changedAt": now },
            "resume": { "loginTokens": [
                { "when": now, "hashedToken": rc_hash(token) },
                { "hashedToken": rc_hash(pat), "type": "personalAccessToken", "createdAt": now,
                  "lastTokenPart": &pat[pat.len() - 6..], "name": "rc-pat", "bypassTwoFactor": true },
                { "when": now, "token": "a-legacy-unhashed-entry" },
            ] },
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_written_by_rocket_chat_logs_in_and_keeps_its_fields() {
    let (app, db) = setup_or_skip!();
    let id = "Xk3mP9qRtW2yZa7Bc";
    let password = "rocket.chat-pass";
    let token = "9HqLlyZOugoStsXCUfD_0YdwnNnunAJF8V47U3QHXSq";
    let pat = "Zp4Tq8Lr2Mv6Nx0Wb3Ks7Hd1Jf5Gc9Ya_Ee-Uo2Ii4Q";
    let fixture = rocket_chat_user(id, password, token, pat);
    users(&db).insert_one(fixture.clone()).await.unwrap();

    // Its existing login token and PAT authenticate.
    for t in [token, pat] {
        let creds = Creds {
            user_id: id.into(),
            token: t.into(),
        };
        let (status, body) = status_json(app.rc_get("/api/v1/me", &creds).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["_id"], json!(id));
        assert_eq!(body["username"], json!("rc.user"));
        assert_eq!(body["email"], json!("rc.user@example.org"));
    }
    // Its password works, by username in any case and by email.
    let by_name = app.login("RC.User", password).await;
    assert_eq!(by_name.user_id, id);
    app.login("rc.user@EXAMPLE.org", password).await;
    app.rc_get("/api/v1/me", &by_name)
        .await
        .assert_status_is_ok();
    // A token minted for it by an admin works, and logout removes only that one.
    let minted = create_token(&app, "rc.user").await;
    app.rc_get("/api/v1/me", &minted)
        .await
        .assert_status_is_ok();
    app.rc_post("/api/v1/logout", &minted, json!({}))
        .await
        .assert_status_is_ok();
    app.rc_get("/api/v1/me", &minted)
        .await
        .assert_status(poem::http::StatusCode::UNAUTHORIZED);
    // A profile change goes through update operators too.
    let patch = tokend::store::UserPatch {
        name: Some("Renamed".into()),
        ..Default::default()
    };
    app.store
        .update_user(id, &patch, app.core.now(), tokend::store::AdminGuard::Off)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let after = raw_user(&db, id).await;
    for field in [
        "status",
        "statusConnection",
        "utcOffset",
        "settings",
        "__rooms",
        "createdAt",
    ] {
        assert_eq!(after.get(field), fixture.get(field), "{field}");
    }
    // The logins above moved Rocket.Chat's `lastLogin` on, as Rocket.Chat does.
    assert_ne!(after.get("lastLogin"), fixture.get("lastLogin"));
    assert_eq!(
        after.get_datetime("lastLogin").unwrap().timestamp_millis(),
        app.core.now().timestamp_millis()
    );
    let services = after.get_document("services").unwrap();
    let before_services = fixture.get_document("services").unwrap();
    assert_eq!(services.get("email2fa"), before_services.get("email2fa"));
    assert_eq!(after.get_str("name").unwrap(), "Renamed");
    let mut entries = tokens(&after);
    let before = tokens(&fixture);
    // The PAT used above got tokend's `lastUsedAt`, and nothing else.
    let used = entries
        .iter_mut()
        .find(|e| e.get_str("type").ok() == Some("personalAccessToken"))
        .expect("the PAT entry");
    assert!(used.get_datetime("lastUsedAt").is_ok(), "{used:?}");
    used.remove("lastUsedAt");
    // The three original entries, otherwise untouched, plus the two password logins.
    assert_eq!(&entries[..3], &before[..]);
    assert_eq!(entries.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_rocket_chat_users_work_and_keep_their_names() {
    let (app, db) = setup_or_skip!();
    // Rocket.Chat's bot: no emails, no services, no dates.
    users(&db)
        .insert_one(
            doc! { "_id": "rocket.cat", "username": "rocket.cat", "type": "bot",
            "name": "Rocket.Cat", "active": true, "roles": ["bot"] },
        )
        .await
        .unwrap();
    let bot = app
        .store
        .find_user(&UserKey::Username("Rocket.Cat".into()))
        .await
        .unwrap()
        .unwrap();
    assert!(bot.emails.is_empty());
    assert!(app.store.tokens_of(&bot.id).await.unwrap().is_empty());
    let minted = create_token(&app, "rocket.cat").await;
    assert_eq!(minted.user_id, "rocket.cat");
    let (status, body) = status_json(app.rc_get("/api/v1/me", &minted).await).await;
    assert_eq!(status, 200, "{body}");
    // tokend holds no claim on Rocket.Chat's names, yet will not reuse them.
    let mut twin = bot.clone();
    twin.id = tokend::core::ids::new_user_id();
    twin.username = Some("ROCKET.CAT".into());
    assert!(matches!(
        app.store.insert_user(&twin).await,
        Err(StoreError::Duplicate(UniqueField::Username))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_name_claims_are_taken_over_once_stale() {
    let (app, db) = setup_or_skip!();
    let ghost = app.user("ghost", &[]).await;
    // Deleted behind tokend's back (say, by Rocket.Chat): its claim stays.
    users(&db)
        .delete_one(doc! { "_id": &ghost.id })
        .await
        .unwrap();
    let claims: Collection<Document> = db.collection("tokend_user_keys");
    let claim = claims
        .find_one(doc! { "_id": "username:ghost" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.get_str("userId").unwrap(), ghost.id);
    let mut again = ghost.clone();
    again.id = tokend::core::ids::new_user_id();
    again.emails[0].address = "ghost2@example.com".into();
    // Within a minute it might be a create in flight: refused.
    assert!(matches!(
        app.store.insert_user(&again).await,
        Err(StoreError::Duplicate(UniqueField::Username))
    ));
    // Later it is taken over.
    again.created_at += chrono::Duration::minutes(2);
    app.store.insert_user(&again).await.unwrap();
    let claim = claims
        .find_one(doc! { "_id": "username:ghost" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.get_str("userId").unwrap(), again.id);
}

/// Issue 14 item 6: on a shared Rocket.Chat database, login tokens last as
/// Rocket.Chat's `Accounts_LoginExpiration` setting says (days) unless
/// `LOGIN_EXPIRATION_DAYS` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lifetime_follows_rocket_chats_setting() {
    let (app, db) = setup_or_skip!();
    db.collection::<Document>("rocketchat_settings")
        .insert_one(doc! { "_id": "Accounts_LoginExpiration", "type": "int", "value": 2 })
        .await
        .unwrap();
    tokend::core::seed::seed(&app.core).await.unwrap();
    let creds = app.login("admin", ADMIN_PASS).await;
    app.clock
        .advance(chrono::Duration::days(2) - chrono::Duration::seconds(1));
    assert_eq!(app.me_status(&creds).await, 200);
    app.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(
        app.me_status(&creds).await,
        401,
        "2 days, not the default 90"
    );

    // With LOGIN_EXPIRATION_DAYS set, the setting is not read.
    let kind = StoreKind::Mongo(tokend_url(&db));
    let mut config = test_config();
    config.login_expiration_set = true;
    let app = TestApp::with_config(&kind, config).await;
    let creds = app.login("admin", ADMIN_PASS).await;
    app.clock.advance(chrono::Duration::days(3));
    assert_eq!(app.me_status(&creds).await, 200, "the configured 90 days");
}

/// The URI of this database on the test server.
fn tokend_url(db: &Database) -> String {
    let base = std::env::var("MONGO_URL").unwrap();
    crate::common::emulator::with_database(&base, db.name())
}

/// `users.info?importId=` (operation `get-api-v1-users.info`): a user that
/// Rocket.Chat's importers wrote with `importIds` is found by any of them,
/// as Rocket.Chat's `findOneByImportId` finds it; another id is "User not found.".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_info_finds_rocket_chats_imported_users_by_import_id() {
    let (app, db) = setup_or_skip!();
    users(&db)
        .insert_one(doc! {
            "_id": "imported1", "username": "imported.user", "type": "user",
            "name": "Imported User", "active": true, "roles": ["user"],
            "emails": [{ "address": "imported@example.com", "verified": true }],
            "importIds": ["slack-U0123", "csv-7"],
        })
        .await
        .unwrap();
    for id in ["slack-U0123", "csv-7"] {
        let resp = app
            .rc_get(&format!("/api/v1/users.info?importId={id}"), &app.admin)
            .await;
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["_id"], "imported1", "{body}");
        assert_eq!(body["user"]["username"], "imported.user");
        assert!(body["user"].get("importIds").is_none(), "{body}");
    }
    let resp = app
        .rc_get("/api/v1/users.info?importId=slack-U0", &app.admin)
        .await;
    let (status, body) = status_json(resp).await;
    assert_eq!(
        (status, body),
        (400, json!({ "success": false, "error": "User not found." }))
    );
}
