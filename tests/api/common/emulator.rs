//! A MongoDB emulator of a test's own (`../shared/tools/mongo-emulator`, or
//! `MONGO_EMULATOR_DIR`), for tests that stop the server, inject faults with
//! the `failCommand` failpoint, or count commands: none of that may touch the
//! emulator the other tests share. Ports 27300-27399 belong to these tests.
//!
//! Failpoint tests can run against a real mongod instead
//! (`FAILPOINT_MONGO_URL`, see [`FailpointServer`]).

use mongodb::bson::{doc, Document};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// An emulator process on a fixed port, stopped on drop.
pub struct Emulator {
    pub port: u16,
    dir: PathBuf,
    flags: Vec<String>,
}

fn tool_dir() -> PathBuf {
    std::env::var_os("MONGO_EMULATOR_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/mongo-emulator")
        })
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

impl Emulator {
    /// Starts an emulator on `port` with extra `mongo_emulator.py` flags.
    /// `None` (the test skips) when MongoDB tests are off (no `MONGO_URL`) or
    /// the tool is missing; under `CI=true` both are failures instead.
    pub fn start(port: u16, flags: &[&str]) -> Option<Emulator> {
        let emulator = Self::stopped(port, flags)?;
        emulator.resume();
        Some(emulator)
    }

    /// Like [`Emulator::start`], but leaves the port closed until [`Emulator::resume`].
    pub fn stopped(port: u16, flags: &[&str]) -> Option<Emulator> {
        let dir = tool_dir();
        let wanted = ci() || std::env::var("MONGO_URL").is_ok_and(|v| !v.is_empty());
        if !wanted {
            eprintln!("MONGO_URL unset: skipping a test that needs its own MongoDB emulator");
            return None;
        }
        if !dir.join("start").exists() {
            assert!(
                !ci(),
                "CI=true but the MongoDB emulator is missing at {}",
                dir.display()
            );
            eprintln!("no MongoDB emulator at {}: skipping", dir.display());
            return None;
        }
        let emulator = Emulator {
            port,
            dir,
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        // One left over from an interrupted run would carry its data and failpoints.
        emulator.stop();
        Some(emulator)
    }

    /// A URI of database `db` on this emulator.
    pub fn uri(&self, db: &str) -> String {
        format!("mongodb://127.0.0.1:{}/{db}", self.port)
    }

    /// Starts the process again (empty: the emulator keeps nothing on disk).
    pub fn resume(&self) {
        let status = Command::new(self.dir.join("start"))
            .arg(self.port.to_string())
            .args(&self.flags)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run the emulator's start script");
        assert!(
            status.success(),
            "emulator did not start on port {}",
            self.port
        );
    }

    /// Stops the process and waits until the port refuses connections.
    pub fn stop(&self) {
        let _ = Command::new(self.dir.join("stop"))
            .arg(self.port.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while accepts(self.port) {
            assert!(
                Instant::now() < deadline,
                "emulator on {} did not stop",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `url` with its database (path) replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    match query {
        Some(q) => format!("{}/{db}?{q}", &base[..host_end]),
        None => format!("{}/{db}", &base[..host_end]),
    }
}

/// Failpoints are server-wide: tests on one external server take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server for `failCommand` tests: the test's own emulator, or the mongod
/// named by `FAILPOINT_MONGO_URL` (started with `--setParameter
/// enableTestCommands=1`, and used by nothing else while the tests run).
pub struct FailpointServer {
    base: String,
    _emulator: Option<Emulator>,
    _turn: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl FailpointServer {
    /// The external server if configured, else an emulator on `port`;
    /// `None` when the test must skip (see [`Emulator::start`]).
    pub async fn start(port: u16) -> Option<FailpointServer> {
        let server = match std::env::var("FAILPOINT_MONGO_URL")
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(url) => FailpointServer {
                base: url,
                _emulator: None,
                _turn: Some(TURN.lock().await),
            },
            None => {
                let emulator = Emulator::start(port, &[])?;
                FailpointServer {
                    base: emulator.uri(""),
                    _emulator: Some(emulator),
                    _turn: None,
                }
            }
        };
        // A failed earlier test may have left one on.
        server.fail_point_off().await;
        Some(server)
    }

    /// A URI of database `db` on this server.
    pub fn uri(&self, db: &str) -> String {
        with_database(&self.base, db)
    }

    /// Sends `configureFailPoint: failCommand` with this mode and data,
    /// limited to tokend's own connections (`appName`, which the emulator ignores).
    pub async fn fail_point(&self, mode: mongodb::bson::Bson, mut data: Document) {
        data.insert("appName", "tokend");
        let client = mongodb::Client::with_uri_str(self.uri("admin"))
            .await
            .expect("client");
        client
            .database("admin")
            .run_command(doc! { "configureFailPoint": "failCommand", "mode": mode, "data": data })
            .await
            .expect("configureFailPoint");
    }

    /// Turns the failpoint off.
    pub async fn fail_point_off(&self) {
        self.fail_point("off".into(), Document::new()).await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = Command::new(self.dir.join("stop"))
            .arg(self.port.to_string())
            .status();
    }
}
