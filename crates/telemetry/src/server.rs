//! The HTTP endpoint: `GET /metrics`, `/healthz`, `/readyz`, served by axum on a tokio runtime of its own thread,
//! so the synchronous pipeline never waits for a scrape.

use crate::{CLASSIC_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, Telemetry, TelemetryError};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
struct Shared {
    telemetry: Arc<Telemetry>,
    ready: AtomicBool,
}

/// A running metrics server; dropping it shuts the server down gracefully.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port) and serves in a background thread. Binding happens before this
    /// returns, so a port in use is an error here.
    pub fn start(addr: SocketAddr, telemetry: Arc<Telemetry>) -> Result<Self, TelemetryError> {
        let bind_err = |e: std::io::Error| TelemetryError::Bind {
            addr: addr.to_string(),
            message: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let shared = Arc::new(Shared {
            telemetry,
            ready: AtomicBool::new(false),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| TelemetryError::Server(e.to_string()))?;
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("nsod-metrics".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })
            .map_err(|e| TelemetryError::Server(e.to_string()))?;
        Ok(Self {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Marks the process ready (`/readyz` answers 200): models and rules are loaded.
    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::SeqCst);
    }

    /// Stops accepting connections, finishes in-flight requests and joins the server thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> impl IntoResponse {
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let telemetry = shared.telemetry.clone();
    // Encoding reads system state (sysinfo, NVML): keep it off the async worker.
    let body = tokio::task::spawn_blocking(move || {
        if wants_openmetrics {
            telemetry.openmetrics()
        } else {
            telemetry.classic()
        }
    })
    .await;
    match body {
        Ok(body) => {
            let ct = if wants_openmetrics {
                OPENMETRICS_CONTENT_TYPE
            } else {
                CLASSIC_CONTENT_TYPE
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
