//! `nsod serve`: the pipeline as a long-running HTTP service.
//!
//! * [`Server`]: binds (127.0.0.1:8080 by default), starts the session workers ([`pool`]) and serves, on one port:
//!   - the Open Inference Protocol (KServe v2 REST, [`kserve`]): `GET /v2`, `/v2/health/live`, `/v2/health/ready`,
//!     `/v2/models/{name}`, `/v2/models/{name}/ready`, `POST /v2/models/{name}/infer` (JSON or binary tensor data);
//!   - `POST /v1/detect`: the image as the body (or a multipart form field), settings as query parameters, the
//!     answer a `predictions.jsonl` record with the rule changes and, for georeferenced rasters, GeoJSON;
//!   - `GET /openapi.json` (this API), `/metrics` (the telemetry catalog plus the service's series), `/healthz`,
//!     `/readyz`.
//! * Load: at most `workers` images run at once and `queue` wait; more are shed with `503` and `Retry-After`; a
//!   request that waits past `timeout` gets `503` too; bodies above `max_body` get `413`; every error is JSON
//!   `{"error": "..."}`. Shutdown (the future given to [`Server::run`]) stops accepting, lets every accepted
//!   request finish up to `drain`, then cancels what still runs and stops the workers.
//! * Untrusted requests, bounded work: a request's work is counted in model runs before any is done and refused
//!   above `max_runs_per_request`; a job is cancelled between batches of slices when its request times out, its
//!   client disconnects or the drain ends ([`pool`]); headers must arrive within `header_timeout` and a body
//!   within `body_timeout` (a total deadline), at most `max_uploads` bodies are read at once, and open connections
//!   are capped from `RLIMIT_NOFILE` ([`conn`]); bodies open only with self-contained single-file GDAL drivers
//!   ([`nsod_raster::BODY_DRIVERS`]), so a request never makes the server read its own files or fetch a URL; no
//!   answer shows an internal path.
//! * Optional bearer-token authentication (constant-time comparison, `subtle`; the scheme is case-insensitive):
//!   every route but health; `/metrics` has its own optional token. An empty token is refused at start-up.

pub mod conn;
pub mod kserve;
pub mod params;
pub mod pool;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nsod_pipeline::{Overrides, Pipeline, error_chain};
use nsod_telemetry::{InferMetrics, ServiceMetrics, Telemetry};
use pool::{Job, JobError, Pool};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The OpenAPI document of the service.
pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("{0}")]
    Start(String),
    /// A setting the server cannot run with (`--max-body 0`, an empty token...).
    #[error("{0}")]
    Config(String),
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// The name clients use (`/v2/models/{name}`).
    pub model_name: String,
    /// Session workers (concurrent images).
    pub workers: usize,
    /// Requests that may wait for a worker.
    pub queue: usize,
    /// Longest wait for a request's result (queue and processing).
    pub timeout: Duration,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Longest time shutdown waits for accepted requests.
    pub drain: Duration,
    /// Bearer token for every route except health (and `/metrics`, see `metrics_token`).
    pub token: Option<String>,
    /// Bearer token for `/metrics` (open when absent).
    pub metrics_token: Option<String>,
    /// Longest time a request's head (request line and headers) may take to arrive; also how long an idle
    /// keep-alive connection stays open.
    pub header_timeout: Duration,
    /// Longest time a request's whole body may take to arrive (a total deadline, not one per chunk).
    pub body_timeout: Duration,
    /// The most model runs (slices and the full-image pass) one request may take; more is refused with 400.
    pub max_runs_per_request: u64,
    /// Bodies read at once (each up to `max_body` in memory); more are shed with 503. `None`: `workers + queue`.
    pub max_uploads: Option<usize>,
    /// Open connections; `None`: from `RLIMIT_NOFILE` ([`conn::connection_cap`]).
    pub max_connections: Option<usize>,
}

impl ServeConfig {
    /// Refuses settings the server cannot run with, naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            (self.timeout.is_zero(), "--timeout must be longer than 0s"),
            (
                self.header_timeout.is_zero(),
                "--header-timeout must be longer than 0s",
            ),
            (
                self.body_timeout.is_zero(),
                "--body-timeout must be longer than 0s",
            ),
            (self.max_body == 0, "--max-body must be at least 1 byte"),
            (
                self.max_runs_per_request == 0,
                "--max-runs-per-request must be at least 1",
            ),
            (
                self.max_uploads == Some(0),
                "--max-uploads must be at least 1",
            ),
            (
                self.max_connections == Some(0),
                "--max-connections must be at least 1",
            ),
            (
                self.workers == 0 || self.workers > 256,
                "--workers: use 1 to 256",
            ),
        ];
        if let Some((_, m)) = positive.iter().find(|(bad, _)| *bad) {
            return Err((*m).into());
        }
        for (t, what) in [
            (&self.token, "token"),
            (&self.metrics_token, "metrics token"),
        ] {
            if let Some(t) = t
                && (t.trim().is_empty() || t.trim() != t)
            {
                return Err(format!(
                    "the {what} is empty or has surrounding spaces (an empty token would turn authentication off)"
                ));
            }
        }
        Ok(())
    }

    fn uploads(&self) -> usize {
        self.max_uploads.unwrap_or(self.workers + self.queue).max(1)
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            model_name: "nsod".into(),
            workers: 1,
            queue: 8,
            timeout: Duration::from_secs(60),
            // A 8192 x 8192 RGB PNG that barely compresses, with room to spare.
            max_body: 256 << 20,
            drain: Duration::from_secs(30),
            token: None,
            metrics_token: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            max_runs_per_request: 4096,
            max_uploads: None,
            max_connections: None,
        }
    }
}

struct Shared {
    config: ServeConfig,
    pipeline: Pipeline,
    pool: Pool,
    telemetry: Arc<Telemetry>,
    service: ServiceMetrics,
    metrics: Option<InferMetrics>,
    on_outcome: pool::OnOutcome,
    ready: AtomicBool,
    next_id: AtomicU64,
    /// Bodies being read.
    uploads: Arc<Semaphore>,
    /// Connections served at once.
    max_connections: usize,
    /// The OpenAPI document of this server (its address; security only when a token is set).
    openapi: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
}

/// An error answer: status, JSON body, the reason counted in `nsod_requests_rejected_total` (if any).
struct Fail {
    status: StatusCode,
    message: String,
    reason: Option<&'static str>,
    /// Close the connection after the answer (a body left unread).
    close: bool,
}

fn fail(status: StatusCode, message: impl Into<String>, reason: Option<&'static str>) -> Fail {
    Fail {
        status,
        message: message.into(),
        reason,
        close: false,
    }
}

impl Fail {
    fn closing(mut self) -> Self {
        self.close = true;
        self
    }
}

/// A message for a client: GDAL's in-memory file names (`/vsimem/...`) replaced by `name` (the request's image),
/// so that no answer shows an internal path.
fn public(message: &str, name: &str) -> String {
    const MEM: &str = "/vsimem/";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(MEM) {
        out.push_str(&rest[..i]);
        out.push_str(name);
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ':' | '\'' | '"' | ',' | ')' | '`'))
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn bad_request(message: impl Into<String>) -> Fail {
    fail(StatusCode::BAD_REQUEST, message, Some("bad_request"))
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": public(&self.message, "the request body")}).to_string(),
        )
            .into_response();
        if self.close {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(reason) = self.reason {
            r.extensions_mut().insert(Rejected(reason));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl Server {
    /// Binds the address and starts the workers (their sessions are open when this returns).
    pub fn bind(
        config: ServeConfig,
        pipeline: Pipeline,
        telemetry: Arc<Telemetry>,
        metrics: Option<InferMetrics>,
    ) -> Result<Self, ServeError> {
        config.validate().map_err(ServeError::Config)?;
        let bind_err = |e: std::io::Error| ServeError::Bind {
            addr: config.addr.to_string(),
            message: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(config.addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let service = ServiceMetrics::new(&telemetry, config.workers);
        let m = metrics.clone();
        let on_outcome: pool::OnOutcome = Arc::new(move |r| {
            if let Some(m) = &m {
                match r {
                    Ok(o) => {
                        m.record(o);
                        m.served();
                    }
                    Err(JobError::Decode(_)) => m.failed(nsod_pipeline::Stage::Decode, "image"),
                    Err(JobError::Pipeline(_)) => {
                        m.failed(nsod_pipeline::Stage::Detect, "inference")
                    }
                    Err(JobError::Cancelled) => m.abandoned(),
                }
            }
        });
        let pool = Pool::start(&pipeline, config.workers, config.queue, on_outcome.clone())?;
        let max_connections = config
            .max_connections
            .unwrap_or_else(|| conn::connection_cap().0);
        let local = listener.local_addr().unwrap_or(config.addr);
        let openapi = openapi_document(&config, local);
        let uploads = Arc::new(Semaphore::new(config.uploads()));
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                config,
                pipeline,
                pool,
                telemetry,
                service,
                metrics,
                on_outcome,
                ready: AtomicBool::new(true),
                next_id: AtomicU64::new(1),
                uploads,
                max_connections,
                openapi,
            }),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.shared.config.addr)
    }

    /// The most connections served at once (from `RLIMIT_NOFILE` unless configured).
    pub fn max_connections(&self) -> usize {
        self.shared.max_connections
    }

    /// Bodies read at once.
    pub fn max_uploads(&self) -> usize {
        self.shared.config.uploads()
    }

    /// Serves until `shutdown` completes, then drains (up to the configured deadline), cancels what still runs
    /// (workers stop within one batch of slices) and stops the workers. Returns whether every accepted request
    /// finished before the deadline.
    pub fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<bool, ServeError> {
        let threads = self.shared.config.workers.clamp(2, 8);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("nsod-http")
            .enable_all()
            .build()
            .map_err(|e| ServeError::Start(format!("cannot start the HTTP runtime: {e}")))?;
        let shared = self.shared.clone();
        let drained = runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)
                .map_err(|e| ServeError::Start(e.to_string()))?;
            let app = router(shared.clone());
            let limits = conn::ConnLimits {
                header_timeout: shared.config.header_timeout,
                max_connections: shared.max_connections,
                drain: shared.config.drain,
            };
            let shared2 = shared.clone();
            let stop = async move {
                shutdown.await;
                shared2.ready.store(false, Ordering::SeqCst);
            };
            Ok::<bool, ServeError>(conn::serve(listener, app, shared.clone(), limits, stop).await)
        })?;
        runtime.shutdown_timeout(Duration::from_secs(1));
        self.shared.pool.cancel_all();
        self.shared.pool.shutdown();
        Ok(drained)
    }
}

/// The OpenAPI document as this server answers it: its own address, and bearer security only where a token is
/// required (a document that declares security the server does not ask for misleads clients and generators).
fn openapi_document(config: &ServeConfig, addr: SocketAddr) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(OPENAPI) else {
        return OPENAPI.to_owned();
    };
    doc["servers"] = json!([{ "url": format!("http://{addr}") }]);
    let bearer = json!([{ "bearer": [] }]);
    let any_token = config.token.is_some() || config.metrics_token.is_some();
    match (&config.token, doc.as_object_mut()) {
        (Some(_), _) => doc["security"] = bearer.clone(),
        (None, Some(o)) => {
            o.remove("security");
        }
        (None, None) => {}
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|i| i.values_mut())
            {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                if path == "/metrics" {
                    // Its own token; open (an explicit empty requirement) when only the API has one.
                    match (&config.metrics_token, &config.token) {
                        (Some(_), _) => op.insert("security".into(), bearer.clone()),
                        (None, Some(_)) => op.insert("security".into(), json!([])),
                        (None, None) => op.remove("security"),
                    };
                } else if config.token.is_none() {
                    // Health routes say "no security" only where the others have some.
                    op.remove("security");
                }
            }
        }
    }
    if !any_token && let Some(c) = doc["components"].as_object_mut() {
        c.remove("securitySchemes");
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| OPENAPI.to_owned())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/detect", post(detect))
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_v),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_v),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_v))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            observe,
        ))
        .with_state(shared)
}

/// The route label of a path (a fixed set: no per-request labels).
fn route_of(path: &str) -> &'static str {
    match path {
        "/v1/detect" => "/v1/detect",
        "/v2" => "/v2",
        "/v2/health/live" | "/v2/health/ready" | "/healthz" | "/readyz" => "health",
        "/openapi.json" => "/openapi.json",
        "/metrics" => "/metrics",
        p if p.starts_with("/v2/models/") && p.ends_with("/infer") => "/v2/models/{name}/infer",
        p if p.starts_with("/v2/models/") => "/v2/models/{name}",
        _ => "other",
    }
}

/// Authentication, the request id, and the service's metrics for every request.
async fn observe(
    State(s): State<Arc<Shared>>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    let start = Instant::now();
    let route = route_of(req.uri().path());
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:x}", s.next_id.fetch_add(1, Ordering::Relaxed)));
    let needed = match route {
        "health" => None,
        "/metrics" => s.config.metrics_token.as_deref(),
        _ => s.config.token.as_deref(),
    };
    let mut response = match needed {
        Some(token) if !authorized(req.headers(), token) => {
            s.service.rejected("unauthorized");
            fail(
                StatusCode::UNAUTHORIZED,
                "missing or invalid bearer token",
                None,
            )
            .into_response()
        }
        _ => {
            req.extensions_mut().insert(RequestId(id.clone()));
            next.run(req).await
        }
    };
    if let Some(Rejected(reason)) = response.extensions().get::<Rejected>() {
        s.service.rejected(reason);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    s.service.request(
        route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
        &id,
    );
    response
}

#[derive(Clone, Debug)]
struct RequestId(String);

/// Why a request was refused, for `nsod_requests_rejected_total` (set by [`Fail`]).
#[derive(Clone, Copy, Debug)]
struct Rejected(&'static str);

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    // RFC 7235: the scheme is case-insensitive, one or more spaces before the credentials.
    let Some((scheme, given)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
    else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return false;
    }
    given
        .trim_start_matches(' ')
        .as_bytes()
        .ct_eq(token.as_bytes())
        .into()
}

async fn not_found() -> Fail {
    fail(StatusCode::NOT_FOUND, "no such route", Some("not_found"))
}

async fn ready(State(s): State<Arc<Shared>>) -> StatusCode {
    if s.ready.load(Ordering::SeqCst) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn openapi(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.clone(),
    )
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    s.service.set_load(
        s.pool.load.queued.load(Ordering::SeqCst),
        s.pool.load.busy.load(Ordering::SeqCst),
    );
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let t = s.telemetry.clone();
    match tokio::task::spawn_blocking(move || {
        if openmetrics {
            t.openmetrics()
        } else {
            t.classic()
        }
    })
    .await
    {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                if openmetrics {
                    nsod_telemetry::OPENMETRICS_CONTENT_TYPE
                } else {
                    nsod_telemetry::CLASSIC_CONTENT_TYPE
                },
            )],
            body,
        )
            .into_response(),
        Err(_) => fail(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed", None).into_response(),
    }
}

async fn server_metadata() -> impl IntoResponse {
    axum_json(json!({
        "name": "nsod",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

fn axum_json(v: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn check_model(s: &Shared, name: &str, version: Option<&str>) -> Result<(), Fail> {
    if name != s.config.model_name {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!(
                "unknown model {name:?} (this server has {:?})",
                s.config.model_name
            ),
            Some("not_found"),
        ));
    }
    if let Some(v) = version
        && v != "1"
    {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("model {name:?} has no version {v:?} (it has \"1\")"),
            Some("not_found"),
        ));
    }
    Ok(())
}

fn metadata(s: &Shared) -> Value {
    let names = s.pipeline.names().as_slice();
    json!({
        "name": s.config.model_name,
        "versions": ["1"],
        "platform": "nsod",
        "inputs": [{"name": kserve::INPUT, "datatype": "BYTES", "shape": [1]}],
        "outputs": kserve::OUTPUTS.iter().map(|(n, t, sh)| json!({"name": n, "datatype": t, "shape": sh})).collect::<Vec<_>>(),
        "parameters": {
            "class_names": names,
            "oriented": s.pipeline.oriented(),
            "rules": s.pipeline.rules().is_some(),
        },
    })
}

async fn model_metadata(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Response, Fail> {
    check_model(&s, &name, None)?;
    Ok(axum_json(metadata(&s)))
}

async fn model_metadata_v(
    State(s): State<Arc<Shared>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, Fail> {
    check_model(&s, &name, Some(&version))?;
    Ok(axum_json(metadata(&s)))
}

async fn model_ready(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<StatusCode, Fail> {
    check_model(&s, &name, None)?;
    Ok(ready(State(s)).await)
}

async fn model_ready_v(
    State(s): State<Arc<Shared>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, Fail> {
    check_model(&s, &name, Some(&version))?;
    Ok(ready(State(s)).await)
}

/// Bytes read and thrown away from a body over the limit before answering 413, so that a client still sending gets
/// the answer rather than a reset connection (beyond this the connection is closed).
const DRAIN_CAP: usize = 64 << 20;

/// Reads the body: a declared `Content-Length` above the limit refused before anything is kept (413), at most
/// `max_uploads` bodies at once (503 above), the whole body within `body_timeout` (408: a total deadline, which a slow
/// drip cannot stretch), never more than `max_body` bytes kept (413).
async fn body_bytes(s: &Shared, body: Body, headers: &HeaderMap) -> Result<Bytes, Fail> {
    use futures_util::StreamExt;
    let limit = s.config.max_body;
    let too_large = || {
        fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes (--max-body)"),
            Some("body_too_large"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        // Refused from the header: nothing is kept. A client waiting for `100 Continue` never sends the body; one
        // that sends it at once is drained (up to DRAIN_CAP, within the body deadline) so that it reads the answer
        // rather than a reset connection.
        if n <= (limit as u64).saturating_add(DRAIN_CAP as u64) {
            discard(s, body, headers).await;
        }
        return Err(too_large().closing());
    }
    // After the declared size: a body that will be refused anyway gets its final answer (413), never a 503 that
    // tells the client to retry.
    let Ok(_upload) = s.uploads.clone().try_acquire_owned() else {
        // Shed: the body is read and thrown away (nothing kept, bounded by DRAIN_CAP and the body deadline) so that
        // a client sending it reads the 503 rather than a reset connection.
        discard(s, body, headers).await;
        return Err(fail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "server busy: {} request bodies are being received (--max-uploads); retry later",
                s.config.uploads()
            ),
            Some("uploads_full"),
        )
        .closing());
    };
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut total = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| bad_request(format!("cannot read the body: {e}")))?;
            total = total.saturating_add(chunk.len());
            if total <= limit {
                buf.extend_from_slice(&chunk);
            } else {
                buf = Vec::new();
                if total > limit.saturating_add(DRAIN_CAP) {
                    break;
                }
            }
        }
        if total > limit {
            return Err(too_large().closing());
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(s.config.body_timeout, read).await {
        Ok(r) => r,
        Err(_) => Err(fail(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received in full within {:?} (--body-timeout)",
                s.config.body_timeout
            ),
            Some("body_timeout"),
        )
        .closing()),
    }
}

/// Reads a body that will not be used and throws it away: at most DRAIN_CAP bytes, within the body deadline; not at
/// all when the client waits for `100 Continue` (it then never sends it).
async fn discard(s: &Shared, body: Body, headers: &HeaderMap) {
    use futures_util::StreamExt;
    if headers.contains_key(header::EXPECT) {
        return;
    }
    let drain = async {
        let mut stream = body.into_data_stream();
        let mut total = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            total = total.saturating_add(chunk.len());
            if total > DRAIN_CAP {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(s.config.body_timeout, drain).await;
}

/// Refuses a parameter that is neither a setting nor one of `also`.
fn known_keys<'a>(keys: impl Iterator<Item = &'a String>, also: &[&str]) -> Result<(), Fail> {
    params::known_keys(keys, also).map_err(bad_request)
}

/// Settings from query or KServe parameters (see [`params::SETTINGS`]).
fn overrides(s: &Shared, get: &dyn Fn(&str) -> Option<Value>) -> Result<Overrides, Fail> {
    params::overrides(s.pipeline.config(), s.pipeline.rules().is_some(), get).map_err(bad_request)
}

/// The image in flight for `nsod_images_in_flight`: counted when admitted, settled once by whoever ends it (the
/// worker, a decode error, a refusal); a request dropped before that (its client gone) settles it on drop.
struct InFlight<'a> {
    metrics: Option<&'a InferMetrics>,
    settled: bool,
}

impl<'a> InFlight<'a> {
    fn new(metrics: Option<&'a InferMetrics>) -> Self {
        if let Some(m) = metrics {
            m.image_started();
        }
        Self {
            metrics,
            settled: false,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.settled
            && let Some(m) = self.metrics
        {
            m.abandoned();
        }
    }
}

/// Cancels a submitted job when the request's future is dropped before its answer: the client closed the
/// connection (hyper notices the end of its stream while the request runs and drops the request).
struct CancelOnDrop<'a> {
    flag: Arc<AtomicBool>,
    service: &'a ServiceMetrics,
    answered: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.flag.store(true, Ordering::SeqCst);
            self.service.rejected("client_gone");
        }
    }
}

/// Admits, decodes, checks the work budget of, runs and waits for one image.
async fn run_job(
    s: &Arc<Shared>,
    bytes: Vec<u8>,
    name: String,
    overrides: Overrides,
) -> Result<nsod_pipeline::ImageOutcome, Fail> {
    if bytes.is_empty() {
        return Err(bad_request("empty body: send an image file"));
    }
    let Some(permit) = s.pool.admit() else {
        return Err(fail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "server busy: {} workers and a queue of {} are full; retry later",
                s.config.workers, s.config.queue
            ),
            Some("queue_full"),
        ));
    };
    let mut in_flight = InFlight::new(s.metrics.as_ref());
    // Decoded off the async threads while the workers run earlier requests (as nsod infer decodes ahead); the
    // admission permit bounds how many decoded images wait.
    let raster = s.pipeline.config().raster.clone();
    let name2 = name.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        nsod_pipeline::source::load_bytes(&bytes, &name2, &raster)
            .map(|i| (i, t.elapsed().as_secs_f64()))
    })
    .await
    .map_err(|_| {
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the decoder stopped",
            None,
        )
    })?;
    let (input, decode_seconds) = match decoded {
        Ok(d) => d,
        Err(e) => {
            let m = public(&error_chain(&e), &name);
            in_flight.settled = true;
            (s.on_outcome)(&Err(JobError::Decode(m.clone())));
            return Err(bad_request(m));
        }
    };
    // The work budget, counted before any of it is done.
    let (w, h) = input.size();
    let runs = s.pipeline.model_runs(w, h, &overrides).unwrap_or(1);
    let max = s.config.max_runs_per_request;
    if runs > max {
        let full = s
            .pipeline
            .model_runs(w, h, &overrides.with("full_pass", "false"));
        let slices = full.unwrap_or(runs);
        let pass = if slices < runs {
            " and the full-image pass"
        } else {
            ""
        };
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!(
                "{name}: {w} x {h} px with these settings takes {runs} model runs ({slices} slices{pass}), more \
                 than this server's maximum of {max} per request (--max-runs-per-request): use larger slices, less \
                 overlap or a smaller image"
            ),
            Some("over_budget"),
        ));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let job = Job {
        input,
        decode_seconds,
        name: name.clone(),
        overrides,
        reply: tx,
        cancel: cancel.clone(),
        permit,
    };
    if s.pool.submit(job).is_err() {
        return Err(fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
            None,
        ));
    }
    // From here the worker settles the image.
    in_flight.settled = true;
    s.service.set_load(
        s.pool.load.queued.load(Ordering::SeqCst),
        s.pool.load.busy.load(Ordering::SeqCst),
    );
    let mut guard = CancelOnDrop {
        flag: cancel.clone(),
        service: &s.service,
        answered: false,
    };
    let result = tokio::time::timeout(s.config.timeout, rx).await;
    guard.answered = true;
    match result {
        Err(_) => {
            cancel.store(true, Ordering::SeqCst);
            Err(fail(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "no result within {:?} (--timeout); the request was cancelled; retry later",
                    s.config.timeout
                ),
                Some("timeout"),
            ))
        }
        Ok(Err(_)) => Err(fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the worker stopped",
            None,
        )),
        Ok(Ok(Err(JobError::Decode(m)))) => Err(bad_request(public(&m, &name))),
        Ok(Ok(Err(JobError::Pipeline(m)))) => Err(fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            public(&m, &name),
            None,
        )),
        Ok(Ok(Err(JobError::Cancelled))) => Err(fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "the request was cancelled: the server is stopping",
            None,
        )),
        Ok(Ok(Ok(outcome))) => Ok(outcome),
    }
}

/// The image of a `multipart/form-data` body: the field `image` (or the first file field).
async fn multipart_image(content_type: &str, body: Bytes) -> Result<Vec<u8>, Fail> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| bad_request(format!("multipart body: {e}")))?;
    let stream =
        futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut first = None;
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| bad_request(format!("multipart body: {e}")))?
    {
        let is_image = field.name() == Some("image");
        let is_file = field.file_name().is_some();
        let data = field
            .bytes()
            .await
            .map_err(|e| bad_request(format!("multipart body: {e}")))?;
        if is_image {
            return Ok(data.to_vec());
        }
        if is_file && first.is_none() {
            first = Some(data.to_vec());
        }
    }
    first.ok_or_else(|| bad_request("multipart body: no field \"image\" and no file"))
}

async fn detect(
    State(s): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    axum::Extension(RequestId(id)): axum::Extension<RequestId>,
    body: Body,
) -> Result<Response, Fail> {
    known_keys(query.keys(), &["name"])?;
    let o = overrides(&s, &|k| query.get(k).map(|v| Value::String(v.clone())))?;
    let bytes = body_bytes(&s, body, &headers).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bytes = if content_type.starts_with("multipart/form-data") {
        multipart_image(content_type, bytes).await?
    } else {
        bytes.to_vec()
    };
    let name = query
        .get("name")
        .cloned()
        .unwrap_or_else(|| format!("request-{id}"));
    let outcome = run_job(&s, bytes, name, o).await?;
    let record = nsod_pipeline::sink::prediction_record(&outcome);
    // Through text, so numbers read exactly as in predictions.jsonl (f32 written shortest, not widened to f64).
    let mut v: Value = serde_json::to_string(&record)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let changes: Vec<Value> = outcome
        .rules
        .as_ref()
        .map(|r| {
            r.adjustment
                .changes
                .iter()
                .map(|c| {
                    nsod_symbolic::report::json_row(&outcome.image, c, &r.raw, &r.adjustment.scores)
                })
                .collect()
        })
        .unwrap_or_default();
    v["changes"] = Value::Array(changes);
    if record.geo.is_some() {
        v["geojson"] = nsod_raster::export::feature_collection(std::slice::from_ref(&record));
    }
    v["request_id"] = json!(id);
    Ok(axum_json(v))
}

async fn infer(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    infer_inner(s, name, None, headers, body).await
}

async fn infer_v(
    State(s): State<Arc<Shared>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    infer_inner(s, name, Some(version), headers, body).await
}

async fn infer_inner(
    s: Arc<Shared>,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    check_model(&s, &name, version.as_deref())?;
    let bytes = body_bytes(&s, body, &headers).await?;
    if bytes.is_empty() {
        return Err(bad_request("empty body: send an inference request"));
    }
    let header_len = headers
        .get("inference-header-content-length")
        .and_then(|v| v.to_str().ok());
    let req = kserve::parse(&bytes, header_len).map_err(bad_request)?;
    // Triton's reserved request parameters are accepted (and ignored, but for binary_data_output).
    known_keys(
        req.parameters.keys(),
        &[
            "binary_data_output",
            "priority",
            "timeout",
            "sequence_id",
            "sequence_start",
            "sequence_end",
        ],
    )?;
    let o = overrides(&s, &|k| req.parameters.get(k).cloned())?;
    let image_name = req.id.clone().unwrap_or_else(|| "request".into());
    let outcome = run_job(&s, req.image.clone(), image_name, o).await?;
    let changes = outcome
        .rules
        .as_ref()
        .map(|r| r.adjustment.changes.len())
        .unwrap_or(0);
    let params = json!({
        "width": outcome.size.width,
        "height": outcome.size.height,
        "detections": outcome.detections.len(),
        "rule_changes": changes,
    });
    let (body, header_len) = kserve::response(&s.config.model_name, &req, &outcome, params);
    let mut r = Response::new(Body::from(body));
    let ct = if header_len.is_some() {
        "application/octet-stream"
    } else {
        "application/json"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Some(n) = header_len
        && let Ok(v) = HeaderValue::from_str(&n.to_string())
    {
        r.headers_mut().insert("inference-header-content-length", v);
    }
    Ok(r)
}
