//! MongoDB commands per HTTP request, counted from the emulator's
//! `--log-commands` log (an emulator of this test's own, so no other test's
//! commands mix in). Handshake and monitoring commands (`hello`, `isMaster`,
//! `ping` of the driver's monitor, `endSessions`, `buildInfo`,
//! `getParameter`) are noise, not round trips of a request, and are left
//! out. `scripts/roundtrips.sh` prints the table.

use crate::common::emulator::Emulator;
use crate::common::*;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const NOISE: &[&str] = &[
    "hello",
    "ismaster",
    "ping",
    "endsessions",
    "buildinfo",
    "getparameter",
    "configurefailpoint",
];

struct CommandLog(PathBuf);

impl CommandLog {
    /// `cmd coll` of every logged command but the noise.
    fn commands(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|v| {
                let cmd = v["cmd"].as_str()?.to_string();
                if NOISE.contains(&cmd.to_lowercase().as_str()) {
                    return None;
                }
                Some(format!("{cmd} {}", v["coll"].as_str().unwrap_or("-")))
            })
            .collect()
    }

    /// The commands `request` caused.
    async fn during<T>(&self, request: impl std::future::Future<Output = T>) -> (T, Vec<String>) {
        let before = self.commands().len();
        let out = request.await;
        (out, self.commands().split_off(before))
    }
}

struct Row {
    route: &'static str,
    commands: Vec<String>,
    limit: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_per_route() {
    let path = std::env::temp_dir().join(format!("tokend-roundtrips-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let flag = path.to_string_lossy().to_string();
    let Some(emu) = Emulator::start(27320, &["--log-commands", &flag]) else {
        return;
    };
    let log = CommandLog(path.clone());
    // Worst case: no permission cache (test_config), so permission checks read the store.
    let app = TestApp::with_config(&StoreKind::Mongo(emu.uri("roundtrips")), test_config()).await;
    let bob = app.user("bob", &[]).await;
    let mut rows = Vec::new();

    let (resp, commands) = log.during(app.rc_get("/api/v1/me", &app.admin)).await;
    resp.assert_status_is_ok();
    rows.push(Row {
        route: "GET /api/v1/me (authenticated)",
        commands,
        limit: 1,
    });

    let create = || {
        app.rc_post(
            "/api/v1/users.createToken",
            &app.admin,
            json!({ "username": "bob" }),
        )
    };
    let (resp, commands) = log.during(create()).await;
    resp.assert_status_is_ok();
    rows.push(Row {
        route: "POST users.createToken, another user",
        commands,
        // The caller, the target (the escalation rule compares their
        // permissions), one permission read for both checks, the push, the audit insert.
        limit: 6, // +1: the second factors (`two_factor`)
    });

    let (_, commands) = log.during(app.login("bob", USER_PASS)).await;
    rows.push(Row {
        route: "POST /api/v1/login (password)",
        commands,
        // find users; the attempt: insert + find rocketchat_server_events
        // (+ count with a client address), its success: update; the mint:
        // findAndModify users; insert tokend_audit; `lastLogin`.
        // +1: the second factors (`two_factor`, a `find users`).
        limit: 8,
    });

    // Bring bob to the cap of 50 login tokens: every new one now also trims.
    for _ in 0..50 {
        create().await.assert_status_is_ok();
    }
    let (resp, commands) = log.during(create()).await;
    resp.assert_status_is_ok();
    rows.push(Row {
        route: "POST users.createToken, user at the cap",
        commands,
        // As above, plus the trim of the oldest token.
        limit: 7, // +1: the second factors (`two_factor`)
    });
    let (_, commands) = log.during(app.login("bob", USER_PASS)).await;
    rows.push(Row {
        route: "POST /api/v1/login, user at the cap",
        commands,
        // As the shared failed-login check makes it, +1 audit insert,
        // +1 `lastLogin`.
        // +1: the second factors (`two_factor`, a `find users`).
        limit: 9,
    });

    // With the default permission cache (PERMISSIONS_CACHE_SECONDS=5), warm.
    let cached = tokend::config::Config {
        permissions_cache: Duration::from_secs(5),
        ..test_config()
    };
    let warm = TestApp::with_config(&StoreKind::Mongo(emu.uri("roundtrips_cached")), cached).await;
    warm.user("bob", &[]).await;
    let create_warm = || {
        warm.rc_post(
            "/api/v1/users.createToken",
            &warm.admin,
            json!({ "username": "bob" }),
        )
    };
    create_warm().await.assert_status_is_ok();
    let (resp, commands) = log.during(create_warm()).await;
    resp.assert_status_is_ok();
    rows.push(Row {
        route: "POST users.createToken, permission cache warm",
        commands,
        // The caller, the target (for the escalation rule), the push, the audit insert.
        limit: 5, // +1: the second factors (`two_factor`)
    });
    for _ in 0..50 {
        create_warm().await.assert_status_is_ok();
    }
    let (resp, commands) = log.during(create_warm()).await;
    resp.assert_status_is_ok();
    rows.push(Row {
        route: "POST users.createToken, cache warm, at the cap",
        commands,
        // As warm, plus the trim.
        limit: 6, // +1: the second factors (`two_factor`)
    });

    // SAYMON, cold permission cache as above.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("admin:{ADMIN_PASS}")
        )
    );
    let resp = app
        .client
        .post(format!("/node/api/users/{}/auth-token", bob.id))
        .header("Authorization", &basic)
        .send()
        .await;
    let api_token = json(resp).await.as_str().unwrap().to_string();
    let (resp, commands) = log
        .during(
            app.client
                .get("/node/api/users/current")
                .query("api-token", &api_token)
                .send(),
        )
        .await;
    resp.assert_status_is_ok();
    rows.push(Row {
        route: "GET /node/api/users/current ?api-token=",
        commands,
        limit: 4,
    });
    // Within LAST_USED_RESOLUTION_SECONDS of that use: no `lastUsedAt` write.
    let (resp, commands) = log
        .during(
            app.client
                .get("/node/api/users/current")
                .query("api-token", &api_token)
                .send(),
        )
        .await;
    resp.assert_status_is_ok();
    rows.push(Row {
        route: "GET /node/api/users/current ?api-token= again",
        commands,
        limit: 3,
    });
    let (resp, commands) = log
        .during(
            app.client
                .post("/node/api/users/session")
                .body_json(&json!({ "login": "bob", "password": USER_PASS }))
                .send(),
        )
        .await;
    let sid = json(resp).await.as_str().unwrap().to_string();
    rows.push(Row {
        route: "POST /node/api/users/session (password)",
        commands,
        // As the password login, then `insert tokend_sessions`, the
        // session cap's `find` of the user's sessions beyond
        // `MAX_SESSIONS_PER_USER`, an audit insert each for the login and
        // the session, and `lastLogin`.
        // +1: the second factors (`two_factor`, a `find users`).
        limit: 10,
    });
    let (resp, commands) = log
        .during(
            app.client
                .get("/node/api/users/current")
                .header("Cookie", format!("sid={sid}"))
                .send(),
        )
        .await;
    resp.assert_status_is_ok();
    rows.push(Row {
        route: "GET /node/api/users/current (sid cookie)",
        commands,
        limit: 4,
    });

    println!("\nMongoDB commands per request (emulator --log-commands; hello/isMaster/ping/endSessions/buildInfo excluded):");
    for row in &rows {
        println!(
            "  {:<48} {}   [{}]",
            row.route,
            row.commands.len(),
            row.commands.join(", ")
        );
    }
    for row in &rows {
        assert!(
            row.commands.len() <= row.limit,
            "{}: {:?}",
            row.route,
            row.commands
        );
    }
    assert_eq!(rows[0].commands.len(), 1);
    drop(emu);
    let _ = std::fs::remove_file(&path);
}
