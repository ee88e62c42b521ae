//! Around the API (BEHAVIOUR §5): the OpenAPI document, logging without
//! secrets, configuration errors, a real socket and graceful shutdown.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::Arc;

#[test]
fn committed_openapi_document_matches_the_code() {
    let root = env!("CARGO_MANIFEST_DIR");
    let committed = std::fs::read_to_string(format!("{root}/openapi/openapi.json"))
        .expect("openapi/openapi.json");
    assert!(
        committed == tokend::app::openapi_json(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
    let committed = std::fs::read_to_string(format!("{root}/openapi/openapi.yaml"))
        .expect("openapi/openapi.yaml");
    assert!(
        committed == tokend::app::openapi_yaml(),
        "openapi/openapi.yaml is stale: run `cargo run -- openapi --yaml > openapi/openapi.yaml`"
    );
}

#[test]
fn rocketchat_headers_are_one_requirement_not_alternatives() {
    let doc: Value = serde_json::from_str(&tokend::app::openapi_json()).unwrap();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["RcAuthToken"]["name"], "X-Auth-Token");
    assert_eq!(schemes["RcUserId"]["name"], "X-User-Id");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(security) = op.get("security").and_then(Value::as_array) else {
                continue;
            };
            for requirement in security {
                let req = requirement.as_object().unwrap();
                assert_eq!(
                    req.contains_key("RcAuthToken"),
                    req.contains_key("RcUserId"),
                    "{method} {path}: X-Auth-Token and X-User-Id must be required together"
                );
            }
        }
    }
    assert_eq!(
        doc["paths"]["/api/v1/me"]["get"]["security"],
        json!([{"RcAuthToken": [], "RcUserId": []}])
    );
}

#[tokio::test]
async fn served_documents_and_swagger_ui() {
    let app = TestApp::start(&StoreKind::Sqlite).await;
    let served = json(app.client.get("/openapi.json").send().await).await;
    let code: Value = serde_json::from_str(&tokend::app::openapi_json()).unwrap();
    assert_eq!(served, code);
    let yaml = app.client.get("/openapi.yaml").send().await;
    yaml.assert_status_is_ok();
    yaml.assert_text(tokend::app::openapi_yaml()).await;
    let ui = app.client.get("/docs").send().await;
    ui.assert_status_is_ok();
    let html = ui.0.into_body().into_string().await.unwrap();
    assert!(html.contains("swagger"), "Swagger UI page");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::start(&StoreKind::Sqlite).await;
    for resp in [
        app.rc_get("/api/v1/me", &app.admin).await,
        app.client.get("/api/v1/me").send().await,
        app.client
            .get("/node/api/users/current?api-token=nope")
            .send()
            .await,
        app.client.get("/no/such/route").send().await,
        app.client.get("/healthz").send().await,
    ] {
        resp.assert_header("cache-control", "no-store");
        resp.assert_header("referrer-policy", "no-referrer");
        resp.assert_header("x-content-type-options", "nosniff");
    }
}

#[test]
fn invalid_configuration_stops_startup_with_one_line_naming_the_variable() {
    for (var, value) in [
        ("PORT", "eighty"),
        ("CREATE_TOKENS_FOR_USERS", "1"),
        ("LOGIN_EXPIRATION_DAYS", "-3"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
            .env(var, value)
            .env_remove("MONGO_URL")
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run tokend");
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with(&format!("tokend: invalid configuration: {var}:")),
            "{stderr}"
        );
    }
}

#[test]
fn openapi_subcommand_prints_the_document() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("openapi")
        .output()
        .expect("run tokend");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        tokend::app::openapi_json()
    );
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_a_real_port_and_shuts_down_gracefully() {
    let config = test_config();
    let store = StoreKind::Sqlite.open(&config).await;
    let core = tokend::app::core_with(config, store, Arc::new(tokend::core::SystemClock));
    let app = tokend::app::Application::bind(core, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = app.local_addr();
    assert_ne!(addr.port(), 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let response = tokio::task::spawn_blocking(move || http_get(addr, "/healthz"))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-request-id:"));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "listener closed after shutdown"
    );
}

#[test]
fn the_binary_stops_cleanly_on_sigterm() {
    use std::io::BufRead;
    // A file of its own: the default `data/tokend.db` under the shared temp
    // folder is whatever another checkout's build last migrated it to.
    let database = std::env::temp_dir().join(format!(
        "tokend-sigterm-{}.db",
        tokend::core::ids::new_user_id()
    ));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"))
        .env("DATABASE_PATH", &database)
        .env("PORT", "0")
        .env("BIND_IP", "127.0.0.1")
        .env("LOG_FORMAT", "json")
        .env("ADMIN_PASS", "sigterm-test-pass")
        // Not `data/tokend.db` under the shared temp folder: another build's
        // newer schema there would make this one refuse to start.
        .env("DATABASE_PATH", ":memory:")
        .env_remove("MONGO_URL")
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tokend");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    // The "listening" log line says where; read until it appears.
    let addr: std::net::SocketAddr = loop {
        let line = lines
            .next()
            .expect("tokend exited before listening")
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "tokend listening" {
            break v["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    assert!(http_get(addr, "/healthz").starts_with("HTTP/1.1 200"));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
}
