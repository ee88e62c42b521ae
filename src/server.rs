//! The HTTP server: hyper's connections, run by tokend itself so every
//! connection has bounds (issue 10). `poem::Server` sets no hyper timer, so
//! hyper's header-read timeout never fires under it, and its idle timeout
//! cannot be told apart from the header timeout; here:
//!
//! * **headers** (`HTTP_HEADER_TIMEOUT_SECONDS`): hyper's HTTP/1
//!   `header_read_timeout`, counted from when the connection starts waiting
//!   for a request's head, however slowly its bytes trickle in;
//! * **idle** (`HTTP_IDLE_TIMEOUT_SECONDS`): no byte read or written for that
//!   long ends the connection (gracefully: a request in flight is answered
//!   first; a second idle period in that state drops it). For HTTP/1 the wait
//!   for the next request on a kept-alive connection is also bounded by the
//!   header timeout (hyper starts that clock as soon as it waits for a head),
//!   so such a connection ends after the shorter of the two. For HTTP/2 this
//!   is the only bound on a silent connection;
//! * **body**: the deadline for a request body is applied where the body is
//!   read, `http::limit_body` (`HTTP_BODY_TIMEOUT_SECONDS`, answered 408);
//! * **HTTP/2 streams** (`HTTP2_MAX_CONCURRENT_STREAMS`): announced in the
//!   server's SETTINGS and enforced by hyper.

use poem::endpoint::BoxEndpoint;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The bounds every connection gets (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to receive a request's complete head (HTTP/1).
    pub header_timeout: Duration,
    /// Time a connection may stay without any I/O.
    pub idle_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
}

/// Serves `endpoint` on `listener` until `shutdown` resolves, then stops
/// accepting, asks every connection to finish its requests, and waits up to
/// `grace` for them before dropping the rest.
pub async fn serve(
    listener: TcpListener,
    endpoint: BoxEndpoint<'static>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let endpoint = Arc::new(endpoint);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connections, so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(connection(
                        tcp,
                        local,
                        remote,
                        endpoint.clone(),
                        limits,
                        stop_rx.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off a little
                    // instead of spinning on the error.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "connections still open after the shutdown grace period: dropping them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// One connection, HTTP/1 or HTTP/2 (prior knowledge), with its bounds.
async fn connection(
    tcp: tokio::net::TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    endpoint: Arc<BoxEndpoint<'static>>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = Watched {
        inner: tcp,
        started,
        activity: activity.clone(),
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let endpoint = endpoint.clone();
        async move {
            let req = poem::Request::from((
                req,
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(remote)),
                poem::http::uri::Scheme::HTTP,
            ));
            Ok::<hyper::Response<_>, Infallible>(endpoint.get_response(req).await.into())
        }
    });
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        // What poem::Server set (rapid-reset and header-size bounds), kept.
        .max_pending_accept_reset_streams(20)
        .max_header_list_size(16 * 1024);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);

    let idle_deadline = || {
        let last = Duration::from_nanos(activity.load(Ordering::Relaxed));
        started + last + limits.idle_timeout
    };
    let mut closing = false;
    loop {
        let deadline = idle_deadline();
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep_until(deadline) => {
                // I/O may have happened meanwhile: idle only if the deadline held.
                if idle_deadline() > Instant::now() {
                    continue;
                }
                if closing {
                    tracing::debug!(%remote, "dropping a connection idle while closing");
                    return;
                }
                tracing::debug!(%remote, "closing an idle connection");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A socket that records when it last moved a byte (nanoseconds since the
/// connection started), for the idle timeout.
struct Watched<T> {
    inner: T,
    started: Instant,
    activity: Arc<AtomicU64>,
}

impl<T> Watched<T> {
    fn touch(&self) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.activity.store(nanos, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
