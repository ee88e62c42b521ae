//! MongoDB faults: failing, blocked and dropped commands (the `failCommand`
//! failpoint), the server down at start-up, stopped and started again. Each
//! test runs its own emulator on its own port (the failpoint tests can use a
//! real mongod instead: `FAILPOINT_MONGO_URL`); routes must answer 503 in
//! their dialect's shape within `STORE_TIMEOUT_SECONDS` and recover without
//! a restart of tokend. Waiting for recovery polls with a deadline.

use crate::common::emulator::{Emulator, FailpointServer};
use crate::common::*;
use mongodb::bson::{doc, Bson};
use poem::test::TestClient;
use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, Instant};
use tokend::config::Secret;
use tokend::core::model::UserKey;
use tokend::core::perm;
use tokend::core::service::CreateUser;
use tokend::store::{MongoStore, StoreError, UniqueField, UserStore};

/// The bound configured in these tests.
const BOUND: Duration = Duration::from_secs(1);
/// What a request may take at most when the store misbehaves: the bound plus slack.
const LATENCY_LIMIT: Duration = Duration::from_secs(3);
/// How long recovery may take.
const RECOVERY: Duration = Duration::from_secs(30);

/// A database of this test's own (an external failpoint server is shared).
fn fresh_name() -> String {
    format!("tokend_faults_{}", tokend::core::ids::new_user_id())
}

fn config() -> tokend::config::Config {
    tokend::config::Config {
        store_timeout: BOUND,
        ..test_config()
    }
}

/// Every command tokend issues on a request path.
fn data_commands() -> Bson {
    Bson::from(vec![
        "find",
        "findAndModify",
        "update",
        "insert",
        "delete",
        "aggregate",
        "count",
        "ping",
        "createIndexes",
    ])
}

async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + RECOVERY;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {RECOVERY:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_rc_unavailable(what: &str, status: u16, body: &Value) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(body["success"], json!(false), "{what}: {body}");
    assert_eq!(
        body["errorType"],
        json!("error-service-unavailable"),
        "{what}: {body}"
    );
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.ends_with("[error-service-unavailable]"),
        "{what}: {body}"
    );
    // Never a driver message.
    let text = body.to_string().to_lowercase();
    assert!(
        !text.contains("mongo") && !text.contains("failpoint"),
        "{what}: {body}"
    );
}

/// Every Rocket.Chat route of the branch, and readiness, answer 503 fast.
async fn assert_all_unavailable(app: &TestApp, bob_token: &Creds) {
    for (what, path, body) in [
        ("me", "/api/v1/me", None),
        (
            "createToken",
            "/api/v1/users.createToken",
            Some(json!({ "username": "bob" })),
        ),
        ("logout", "/api/v1/logout", Some(json!({}))),
    ] {
        let ((status, body), elapsed) = timed(async {
            let resp = match body {
                None => app.rc_get(path, bob_token).await,
                Some(b) => app.rc_post(path, bob_token, b).await,
            };
            status_json(resp).await
        })
        .await;
        eprintln!("{what}: {status} after {elapsed:?}");
        assert_rc_unavailable(what, status, &body);
        assert!(elapsed < LATENCY_LIMIT, "{what} took {elapsed:?}");
    }
    let ((status, body), elapsed) = timed(async {
        let resp = app
            .client
            .post("/api/v1/login")
            .body_json(&json!({ "user": "bob", "password": USER_PASS }))
            .send()
            .await;
        status_json(resp).await
    })
    .await;
    assert_rc_unavailable("login", status, &body);
    assert!(elapsed < LATENCY_LIMIT, "login took {elapsed:?}");
    // SAYMON answers in its own shape.
    let saymon_unavailable = json!({
        "code": "ServiceUnavailable",
        "message": "The service is temporarily unavailable, try again later."
    });
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("bob:{USER_PASS}")
        )
    );
    for (what, resp) in [
        (
            "saymon current",
            app.client
                .get("/node/api/users/current")
                .header("Authorization", &basic)
                .send(),
        ),
        (
            "saymon session",
            app.client
                .post("/node/api/users/session")
                .body_json(&json!({ "login": "bob", "password": USER_PASS }))
                .send(),
        ),
    ] {
        let ((status, body), elapsed) = timed(async { status_json(resp.await).await }).await;
        assert_eq!((status, body), (503, saymon_unavailable.clone()), "{what}");
        assert!(elapsed < LATENCY_LIMIT, "{what} took {elapsed:?}");
    }
    let ((status, body), elapsed) =
        timed(async { status_json(app.client.get("/readyz").send().await).await }).await;
    assert_eq!((status, body), (503, json!({ "status": "unavailable" })));
    assert!(elapsed < LATENCY_LIMIT, "readyz took {elapsed:?}");
    // Routes that need no store keep working.
    app.client
        .get("/healthz")
        .send()
        .await
        .assert_status_is_ok();
    app.client
        .get("/api/info")
        .send()
        .await
        .assert_status_is_ok();
}

async fn ready(client: &TestClient<poem::endpoint::BoxEndpoint<'static>>) -> bool {
    client.get("/readyz").send().await.0.status().as_u16() == 200
}

async fn assert_recovered(app: &TestApp, bob: &Creds) {
    eventually("readyz 200 after the fault", || ready(&app.client)).await;
    app.rc_get("/api/v1/me", bob).await.assert_status_is_ok();
    app.login("bob", USER_PASS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_commands_answer_503_in_rocketchat_shape_then_recover() {
    let Some(emu) = FailpointServer::start(27310).await else {
        return;
    };
    let app = TestApp::with_config(&StoreKind::Mongo(emu.uri(&fresh_name())), config()).await;
    app.user("bob", &[]).await;
    let bob = app.login("bob", USER_PASS).await;
    emu.fail_point(
        "alwaysOn".into(),
        doc! { "failCommands": data_commands(), "errorCode": 91, "closeConnection": false },
    )
    .await;
    assert_all_unavailable(&app, &bob).await;
    emu.fail_point_off().await;
    assert_recovered(&app, &bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_commands_are_cut_off_at_the_configured_bound() {
    let Some(emu) = FailpointServer::start(27311).await else {
        return;
    };
    let app = TestApp::with_config(&StoreKind::Mongo(emu.uri(&fresh_name())), config()).await;
    app.user("bob", &[]).await;
    let bob = app.login("bob", USER_PASS).await;
    emu.fail_point(
        "alwaysOn".into(),
        doc! { "failCommands": data_commands(), "blockConnection": true, "blockTimeMS": 10_000 },
    )
    .await;
    let ((status, body), elapsed) =
        timed(async { status_json(app.rc_get("/api/v1/me", &bob).await).await }).await;
    assert_rc_unavailable("blocked me", status, &body);
    // Cut off by the bound, not failed at once, and not after the 10 s block.
    assert!(
        elapsed >= BOUND.mul_f32(0.9) && elapsed < LATENCY_LIMIT,
        "blocked me answered after {elapsed:?}"
    );
    let (status, elapsed) =
        timed(async { app.client.get("/readyz").send().await.0.status().as_u16() }).await;
    assert_eq!(status, 503);
    assert!(
        elapsed < LATENCY_LIMIT,
        "blocked readyz answered after {elapsed:?}"
    );
    assert_all_unavailable(&app, &bob).await;
    emu.fail_point_off().await;
    assert_recovered(&app, &bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_answer_503_then_recover() {
    let Some(emu) = FailpointServer::start(27312).await else {
        return;
    };
    let app = TestApp::with_config(&StoreKind::Mongo(emu.uri(&fresh_name())), config()).await;
    app.user("bob", &[]).await;
    let bob = app.login("bob", USER_PASS).await;
    emu.fail_point(
        "alwaysOn".into(),
        doc! { "failCommands": data_commands(), "closeConnection": true },
    )
    .await;
    assert_all_unavailable(&app, &bob).await;
    emu.fail_point_off().await;
    assert_recovered(&app, &bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_or_503_and_the_next_request_succeeds() {
    let Some(emu) = FailpointServer::start(27313).await else {
        return;
    };
    let app = TestApp::with_config(&StoreKind::Mongo(emu.uri(&fresh_name())), config()).await;
    let fail_finds = |times: i32| {
        emu.fail_point(
            doc! { "times": times }.into(),
            doc! { "failCommands": ["find"], "errorCode": 91 },
        )
    };
    // One failure: the driver retries the read once, the client sees nothing.
    fail_finds(1).await;
    app.rc_get("/api/v1/me", &app.admin)
        .await
        .assert_status_is_ok();
    // Two: the retry fails too, 503.
    fail_finds(2).await;
    let (status, body) = status_json(app.rc_get("/api/v1/me", &app.admin).await).await;
    assert_rc_unavailable("me", status, &body);
    // No poll: the very next request works.
    app.rc_get("/api/v1/me", &app.admin)
        .await
        .assert_status_is_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_mongodb_down_and_recovers_when_it_comes_up() {
    let Some(emu) = Emulator::stopped(27314, &[]) else {
        return;
    };
    let config = tokend::config::Config {
        mongo_url: Some(Secret(emu.uri("startup"))),
        bind_ip: [127, 0, 0, 1].into(),
        port: 0,
        ..config()
    };
    let (built, elapsed) = timed(tokend::app::Application::build(config)).await;
    let app = built.expect("tokend starts with MongoDB down");
    assert!(elapsed < LATENCY_LIMIT, "start-up took {elapsed:?}");
    let client = TestClient::new(tokend::app::endpoint(app.core()));
    let login = || async {
        let resp = client
            .post("/api/v1/login")
            .body_json(&json!({ "user": "admin", "password": ADMIN_PASS }))
            .send()
            .await;
        status_json(resp).await
    };
    let ((status, body), elapsed) = timed(login()).await;
    assert_rc_unavailable("login while down", status, &body);
    assert!(elapsed < LATENCY_LIMIT, "login took {elapsed:?}");
    let (status, elapsed) =
        timed(async { client.get("/readyz").send().await.0.status().as_u16() }).await;
    assert_eq!(status, 503);
    assert!(elapsed < LATENCY_LIMIT, "readyz took {elapsed:?}");

    emu.resume();
    eventually("readyz 200 once MongoDB is up", || ready(&client)).await;
    // Seeding was retried in the background: the configured admin appears
    // (polled on the store: polling the login would trip the login blocking).
    let probe = MongoStore::connect(&emu.uri("startup"), BOUND)
        .await
        .unwrap();
    let admin = UserKey::Username("admin".into());
    eventually("the admin seeded in the background", || async {
        matches!(probe.find_user(&admin).await, Ok(Some(_)))
    })
    .await;
    let (status, body) = login().await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_mongodb_stopping_and_starting_again() {
    let Some(emu) = Emulator::start(27315, &[]) else {
        return;
    };
    let app = TestApp::with_config(&StoreKind::Mongo(emu.uri("restart")), config()).await;
    app.user("bob", &[]).await;
    let bob = app.login("bob", USER_PASS).await;
    app.rc_get("/api/v1/me", &bob).await.assert_status_is_ok();

    emu.stop();
    assert_all_unavailable(&app, &bob).await;

    emu.resume();
    eventually("readyz 200 after the restart", || ready(&app.client)).await;
    // The emulator keeps nothing on disk: the database comes back empty, and
    // tokend has ensured its indexes again on its own.
    let raw = mongodb::Client::with_uri_str(emu.uri("restart"))
        .await
        .unwrap();
    let indexes = raw
        .database("restart")
        .collection::<mongodb::bson::Document>("users")
        .list_index_names()
        .await
        .unwrap();
    assert!(indexes.contains(&"username_1".to_string()), "{indexes:?}");
    tokend::core::seed::seed(&app.core).await.expect("seed");
    app.user("bob", &[]).await;
    let bob = app.login("bob", USER_PASS).await;
    app.rc_get("/api/v1/me", &bob).await.assert_status_is_ok();
}

/// Two creates of one username at once: one user, and a clean `Duplicate`
/// for the other (the dialects answer 400 for it), never an internal error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_key_race_is_a_clean_duplicate() {
    let Some(kind) = StoreKind::mongo() else {
        eprintln!("MONGO_URL unset: skipping");
        return;
    };
    let app = TestApp::start(&kind).await;
    let grant = app.grant::<perm::CreateUser>(&app.admin).await;
    for round in 0..10 {
        let name = format!("twin{round}");
        let new_user = |email: &str| tokend::core::service::NewUser {
            username: name.clone(),
            email: Some(email.into()),
            password: None,
            roles: vec!["user".into()],
            active: true,
            kind: "user".into(),
            ..Default::default()
        };
        let (a, b) = tokio::join!(
            app.core
                .create_user(&grant, new_user(&format!("a{round}@example.com"))),
            app.core
                .create_user(&grant, new_user(&format!("b{round}@example.com")))
        );
        let (a, b) = (a.expect("no store error"), b.expect("no store error"));
        let created = |c: &CreateUser| matches!(c, CreateUser::Created(_));
        assert_eq!(
            created(&a) as u8 + created(&b) as u8,
            1,
            "round {round}: {a:?} {b:?}"
        );
        let taken = |c: &CreateUser| matches!(c, CreateUser::Taken(UniqueField::Username));
        assert!(taken(&a) || taken(&b), "round {round}: {a:?} {b:?}");
    }
    // Through both dialects' routes: one 200, one clean 400, never a 500.
    for round in 0..5 {
        let rc = |name: String| {
            app.rc_post(
                "/api/v1/users.create",
                &app.admin,
                json!({"username": name, "name": "Twin", "email": format!("{name}@example.com"), "password": "twin-pass-123"}),
            )
        };
        let (a, b) = tokio::join!(rc(format!("rc{round}")), rc(format!("RC{round}")));
        let mut statuses = [a.0.status().as_u16(), b.0.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 400], "users.create race, round {round}");
        let admin = format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("admin:{ADMIN_PASS}")
            )
        );
        let saymon = |login: String| {
            app.client
                .post("/node/api/users")
                .header("Authorization", &admin)
                .body_json(&json!({"login": login, "password": "twin-pass-123"}))
                .send()
        };
        let (a, b) = tokio::join!(saymon(format!("sy{round}")), saymon(format!("SY{round}")));
        let mut statuses = [a.0.status().as_u16(), b.0.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 400], "SAYMON create race, round {round}");
    }
    // And through the trait directly.
    let mut user = app.user("solo", &[]).await;
    user.id = tokend::core::ids::new_user_id();
    user.emails.clear();
    assert!(matches!(
        app.store.insert_user(&user).await,
        Err(StoreError::Duplicate(UniqueField::Username))
    ));
}

/// The cap's trim is a second command after the push. If only it fails, the
/// token is stored: the mint must succeed (the client gets a token that
/// works), and the next mint trims back to the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cap_trim_does_not_fail_the_mint() {
    let Some(emu) = FailpointServer::start(27316).await else {
        return;
    };
    let cfg = tokend::config::Config {
        max_resume_login_tokens: 2,
        ..config()
    };
    let app = TestApp::with_config(&StoreKind::Mongo(emu.uri(&fresh_name())), cfg).await;
    let bob = app.user("bob", &[]).await;
    let mint = || {
        app.rc_post(
            "/api/v1/users.createToken",
            &app.admin,
            json!({ "userId": bob.id }),
        )
    };
    for _ in 0..2 {
        mint().await.assert_status_is_ok();
    }
    let stored = || async { app.store.tokens_of(&bob.id).await.unwrap().len() };
    assert_eq!(stored().await, 2);
    // Only `update` (the trim's `$pull`) fails; the push is a findAndModify.
    emu.fail_point(
        "alwaysOn".into(),
        doc! { "failCommands": ["update"], "errorCode": 91, "closeConnection": false },
    )
    .await;
    let (status, body) = status_json(mint().await).await;
    assert_eq!(status, 200, "{body}");
    let creds = Creds {
        user_id: bob.id.clone(),
        token: body["data"]["authToken"].as_str().unwrap().into(),
    };
    app.rc_get("/api/v1/me", &creds).await.assert_status_is_ok();
    emu.fail_point_off().await;
    assert_eq!(stored().await, 3, "over the cap until the next push");
    mint().await.assert_status_is_ok();
    assert_eq!(stored().await, 2, "the next push trims back to the cap");
}
