//! The accept loop: HTTP/1.1 connections served by hyper with the server's bounds (the
//! header timeout, which is also the idle keep-alive timeout, the header count and size,
//! each connection's buffer, a write timeout for clients that stop reading), a cap on
//! connections at once whose overflow is answered 503 and closed at once, and a drain at
//! shutdown bounded by those timeouts.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

use crate::limits::{
    BUSY_RETRY_AFTER_S, CONNECTION_BUFFER_BYTES, INGEST_QUEUE_TIMEOUT, Limits, MAX_HEADER_BYTES,
    MAX_HEADERS,
};
use crate::log_limit::LogLimit;

/// Time to write the 503 to a connection over the cap; it is refused, not served.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// A write that makes no progress for this long fails and ends its connection: a client
/// that never reads its answers would otherwise hold a slot under the cap for ever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors, most often): retrying at once
/// would spin while nothing has been freed.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Connection counts for `/metrics`.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Connections being served now.
    pub open: AtomicUsize,
    /// Connections refused for the cap since start.
    pub refused: AtomicU64,
}

/// Decrements the open count when a connection's task ends, however it ends.
struct Open(Arc<Gauges>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then lets the
/// requests in flight finish within a grace the timeouts bound.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    gauges: Arc<Gauges>,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(CONNECTION_BUFFER_BYTES)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    // Refused connections get their own bucket: a connection flood cannot hide the upload
    // refusals' lines, nor the other way round.
    let refusal_log = LogLimit::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if gauges.open.load(Ordering::Relaxed) >= limits.max_connections {
            gauges.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = refusal_log.admit(std::time::Instant::now()) {
                tracing::warn!(
                    status = 503,
                    reason = "connection cap reached",
                    %peer,
                    suppressed,
                    "refused connection"
                );
            }
            tokio::spawn(refuse(stream));
            continue;
        }
        gauges.open.fetch_add(1, Ordering::Relaxed);
        let open = Open(gauges.clone());
        let connection = http.serve_connection(
            TokioIo::new(WriteTimeout::new(stream)),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _open = open;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // What may still be in flight: a body up to its deadline, a wait for a worker, an answer
    // written to a slow reader. Beyond that, the connections left are dropped.
    let grace = limits.body_timeout + INGEST_QUEUE_TIMEOUT + WRITE_TIMEOUT;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace; closing them");
    }
}

/// A connection whose writes fail after [`WRITE_TIMEOUT`] without progress.
struct WriteTimeout {
    io: TcpStream,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteTimeout {
    fn new(io: TcpStream) -> Self {
        WriteTimeout { io, stalled: None }
    }

    /// Passes a write's result on; while it is pending, fails it once it has been pending
    /// for [`WRITE_TIMEOUT`].
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Answers a connection over the cap with 503 and Retry-After, and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":"too many connections"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {BUSY_RETRY_AFTER_S}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
