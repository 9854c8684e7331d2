//! The accept loop: connections served by hyper's HTTP/1 server with a timer, so that nothing a client sends slowly
//! can hold the server (slowloris):
//!
//! * a **header-read timeout** (`--header-timeout`): a request's head must arrive in full within it, and an idle
//!   keep-alive connection is closed after it. A client that sent part of a head is answered `408` before the
//!   connection closes;
//! * a **cap on open connections**, from `RLIMIT_NOFILE` at start-up less the descriptors the process holds and a
//!   reserve for its own files ([`connection_cap`]): at the cap the loop stops accepting until a connection closes
//!   (the kernel's backlog holds the next ones), so `accept` never fails for want of descriptors and a health check
//!   is answered once the timeouts above free a slot;
//! * the body's own limits (a total deadline, concurrent uploads, `Content-Length` above `--max-body`) are checked
//!   by the handlers (`crate::body_bytes`);
//! * graceful shutdown: the listener closes, open connections finish their requests (hyper-util's
//!   `GracefulShutdown`), bounded by the drain deadline.
//!
//! The answers hyper gives by itself (400 for a malformed head, 414, 431) and the 408s are counted in
//! `nsod_http_requests_total{route="other"}` with their reason in `nsod_requests_rejected_total`.

use crate::Shared;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Descriptors kept for the process's own use above those open at start-up (model and rule files, GDAL, the rules
/// workers' pipes, logs).
pub const FD_RESERVE: u64 = 64;

/// The most connections served at once: `RLIMIT_NOFILE`'s soft limit, less the descriptors open now and
/// [`FD_RESERVE`], at least 4; with the limit it was taken from.
pub fn connection_cap() -> (usize, u64) {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let open = std::fs::read_dir("/proc/self/fd").map_or(32, |d| d.count() as u64);
    let cap = soft.saturating_sub(open).saturating_sub(FD_RESERVE).max(4);
    (
        usize::try_from(cap).unwrap_or(usize::MAX).min(1 << 20),
        soft,
    )
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 65,536), as servers do at start-up: the cap on
/// connections follows from it.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.min(65_536);
        if want > soft {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}

/// What the connection loop needs to know.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub drain: Duration,
}

/// A TCP stream shared between hyper and the loop, so that the loop can still answer `408` after hyper gave up on
/// a head that did not arrive in time. Remembers whether bytes arrived since the last answer was written (a
/// request begun).
#[derive(Debug, Clone)]
struct SharedStream {
    stream: Arc<TcpStream>,
    begun: Arc<AtomicBool>,
}

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match self.stream.try_read(unfilled) {
                Ok(n) => {
                    if n > 0 {
                        self.begun.store(true, Ordering::Relaxed);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(buf) {
                Ok(n) => {
                    self.begun.store(false, Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket closes (FIN) when the last holder drops it.
        Poll::Ready(Ok(()))
    }
}

/// The answer to a head that did not arrive within the header timeout.
fn timeout_answer(timeout: Duration) -> Vec<u8> {
    let body = serde_json::json!({
        "error": format!("request headers not received within {timeout:?} (--header-timeout)")
    })
    .to_string();
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for open connections up to the drain
/// deadline. Returns whether they all finished.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shared: Arc<Shared>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors despite the cap (another part of the process holds them), or a
                    // connection reset before it was accepted: wait a moment and go on.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = SharedStream {
            stream: Arc::new(stream),
            begun: Arc::new(AtomicBool::new(false)),
        };
        let own = io.clone();
        let conn =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()));
        let done = graceful.watch(conn);
        let shared = shared.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            if let Err(e) = done.await {
                connection_error(&shared, &e, &own, header_timeout);
            }
            drop(slot);
        });
    }
    drop(listener);
    let mut finished = Box::pin(graceful.shutdown());
    if tokio::time::timeout(limits.drain, &mut finished)
        .await
        .is_ok()
    {
        return true;
    }
    // The drain deadline passed: what still runs is cancelled (the workers stop at their next batch of slices)
    // and its requests are answered 503, for at most CANCEL_GRACE more.
    shared.pool.cancel_all();
    let _ = tokio::time::timeout(CANCEL_GRACE, &mut finished).await;
    false
}

/// After the drain deadline, how long cancelled requests have to send their answers.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Counts what hyper answered (or the 408 this loop answers) when a connection ends with an error.
fn connection_error(
    shared: &Shared,
    e: &hyper::Error,
    io: &SharedStream,
    header_timeout: Duration,
) {
    let (code, reason) = if e.is_timeout() {
        // A keep-alive connection left idle is closed without an answer; a head begun and not finished gets 408.
        if !io.begun.load(Ordering::Relaxed) {
            return;
        }
        let _ = io.stream.try_write(&timeout_answer(header_timeout));
        (408, "header_timeout")
    } else if e.is_parse_too_large() {
        if e.to_string().contains("URI") {
            (414, "header_too_large")
        } else {
            (431, "header_too_large")
        }
    } else if e.is_parse() {
        (400, "bad_request")
    } else {
        return;
    };
    shared.service.rejected(reason);
    shared.service.connection_answer(code);
}
