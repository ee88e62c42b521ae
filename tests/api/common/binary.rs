//! The real `tokend` binary, for the tests that need a process (a kill,
//! a restart, two instances, socket-level timeouts): starting it and
//! learning its port from its log, and one-shot HTTP/1.1 requests to it.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running tokend; killed when dropped.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tokend` with a clean environment, on 127.0.0.1 and a port of the
/// system's choosing, logging JSON to stdout: add the test's variables
/// and folder, then [`serve`] it.
pub fn tokend() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokend"));
    cmd.env_clear()
        .env("BIND_IP", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Starts `cmd` (from [`tokend`]) and waits for its "tokend listening"
/// line; no line before it may be an error. The log is drained after, so
/// the server never blocks on a full pipe.
pub fn serve(mut cmd: Command) -> Served {
    let mut child = cmd.spawn().expect("run tokend");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let status = child.wait();
            panic!("tokend stopped before listening: {status:?}");
        };
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        assert_ne!(event["level"], "ERROR", "{line}");
        if event["message"] == "tokend listening" {
            break event["addr"]
                .as_str()
                .expect("addr")
                .parse()
                .expect("an address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, addr }
}

/// One HTTP/1.1 request (connection closed after it), authenticated with
/// Rocket.Chat's headers when `auth` is `(user id, token)`: the status and
/// the JSON body (`Null` if it is none).
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: &str,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(addr).await?;
    let auth = auth
        .map(|(id, token)| format!("X-User-Id: {id}\r\nX-Auth-Token: {token}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {text:?}")))?;
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    Ok((status, json))
}
