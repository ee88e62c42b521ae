//! A MongoDB emulator of a test's own (`../shared/tools/mongo-emulator`, or
//! `MONGO_EMULATOR_DIR`), for tests that stop the server, inject faults with
//! the `failCommand` failpoint, or count commands: none of that may touch the
//! emulator the other tests share. Ports 27300-27399 belong to these tests.

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

    /// Sends `configureFailPoint: failCommand` with this mode and data.
    pub async fn fail_point(&self, mode: mongodb::bson::Bson, data: Document) {
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
