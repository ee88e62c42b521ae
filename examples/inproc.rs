//! Server-side cost of one request, without sockets or a client: calls the
//! real endpoint (every middleware, the embedded store on a temporary file)
//! N times in a row and prints microseconds per request, for profiling
//! (`perf record ... target/release/examples/inproc 100000 /api/v1/me`).
//! The throughput figures are `examples/bench.rs`'s.
//!
//! `cargo run --release --example inproc -- N PATH...` (GET, as the admin).

use poem::{Endpoint, Request};
use std::time::Instant;
use tokend::app::Application;
use tokend::config::{Config, Secret};

#[tokio::main]
async fn main() {
    let db = std::env::temp_dir().join(format!("inproc-{}.db", std::process::id()));
    let config = Config {
        database_path: db.to_string_lossy().into_owned(),
        bind_ip: [127, 0, 0, 1].into(),
        port: 0,
        admin_username: Some("admin".into()),
        admin_pass: Some(Secret("bench-admin-pass".into())),
        rate_limit: tokend::config::RateLimitConfig {
            enabled: false,
            ..Config::default().rate_limit
        },
        ..Config::default()
    };
    let app = Application::build(config).await.expect("start");
    let ep = tokend::app::endpoint(app.core());
    let resp = ep
        .call(
            Request::builder()
                .method(poem::http::Method::POST)
                .uri_str("/api/v1/login")
                .content_type("application/json")
                .body(r#"{"user":"admin","password":"bench-admin-pass"}"#),
        )
        .await
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&resp.into_body().into_vec().await.unwrap()).unwrap();
    let uid = v["data"]["userId"].as_str().unwrap().to_string();
    let tok = v["data"]["authToken"].as_str().unwrap().to_string();
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000u32);
    for path in std::env::args()
        .skip(2)
        .collect::<Vec<_>>()
        .iter()
        .map(String::as_str)
    {
        let t = Instant::now();
        for _ in 0..n {
            let r = ep
                .call(
                    Request::builder()
                        .uri_str(path)
                        .header("X-User-Id", &uid)
                        .header("X-Auth-Token", &tok)
                        .finish(),
                )
                .await
                .unwrap();
            assert!(r.status().is_success());
            let _ = r.into_body().into_vec().await.unwrap();
        }
        println!(
            "{path}: {:.2} us/req",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
    let _ = std::fs::remove_file(&db);
}
