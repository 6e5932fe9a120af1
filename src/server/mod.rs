//! The HTTP service behind `faceprint serve`: a versioned JSON API over [`FaceAnalyzer`] and the
//! [`Gallery`].
//!
//! Routes: `/v1/detect`, `/v1/embed`, `/v1/verify`, `/v1/identify`, `/v1/gallery/...` (see
//! `/openapi.json`, generated from this code), `/healthz`, `/readyz`, `/metrics` (Prometheus).
//!
//! Limits ([`ServerConfig`]): body size, pixel count, request time, concurrent inferences and a
//! bounded wait queue; past them the answer is a JSON error (413, or 503 with Retry-After), never
//! an unbounded queue. Inference runs on blocking threads, several at once (the analyzer's session
//! pool), without a global lock; with batching on, the faces of requests arriving within
//! [`ServerConfig::batch_wait_us`] are embedded in one recogniser call (module `batch`).
//!
//! [`start`] binds, then loads the models in the background (`/readyz` answers 503 until they
//! are loaded) and serves until [`ServerHandle::shutdown`] or, with `handle_signals`, SIGTERM or
//! SIGINT: in-flight requests finish, the batch workers drain, the gallery index is saved (gallery
//! writes are durable when they are answered: SQLite with `synchronous=FULL`).

mod api;
mod batch;
pub mod config;
pub mod error;
mod gallery_api;
mod metrics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::calibrate::Calibration;
use crate::embed::ModelId;
use crate::gallery::{Gallery, GalleryOptions};
use crate::pipeline::{AnalyzerConfig, FaceAnalyzer};

pub use config::{hash_key, ApiKeyEntry, Scope, ServerConfig};
pub use error::{ApiError, ErrorBody, ErrorDetail};

use batch::Batcher;
use metrics::Metrics;

/// Errors of starting or running the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting out of range, or an unreadable configuration file.
    #[error("configuration: {0}")]
    Config(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The models (or the gallery) could not be loaded.
    #[error(transparent)]
    Load(#[from] crate::Error),
    /// The async runtime failed.
    #[error("server runtime: {0}")]
    Runtime(String),
}

/// Where the analyzer comes from.
pub enum AnalyzerSource {
    /// Already loaded (shared, e.g. by tests running several servers).
    Loaded(Arc<FaceAnalyzer>),
    /// Loaded by the server in the background after binding.
    Load(AnalyzerConfig),
}

/// What exists once the models are loaded.
pub(crate) struct Ready {
    pub analyzer: Arc<FaceAnalyzer>,
    pub batcher: Option<Batcher>,
    pub calibration: Option<Calibration>,
    pub detector_id: String,
    pub gallery: Arc<Gallery>,
}

/// Shared state of the handlers.
pub(crate) struct AppState {
    pub cfg: ServerConfig,
    keys: HashMap<String, (String, Scope)>,
    ready: OnceLock<Arc<Ready>>,
    inflight: Arc<Semaphore>,
    queue: Semaphore,
    pub metrics: Arc<Metrics>,
    request_ids: AtomicU64,
}

/// The caller, as authenticated.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub name: String,
    pub scope: Scope,
}

impl Caller {
    /// 403 `forbidden` unless the caller has `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scope >= scope {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this API key has the {:?} scope; the request needs {:?}", self.scope, scope)))
        }
    }
}

/// An inference slot; frees itself on drop.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.inflight.dec();
    }
}

struct Waiting<'a>(&'a Metrics);
impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.admission_queue.dec();
    }
}

impl AppState {
    pub(crate) fn ready(&self) -> Result<Arc<Ready>, ApiError> {
        self.ready
            .get()
            .cloned()
            .ok_or_else(|| ApiError::unavailable("not_ready", "the models are still loading", self.cfg.retry_after_s))
    }

    /// An inference slot: at once if one is free, else after waiting in the bounded queue; 503
    /// `overloaded` when the queue is full. The wait is bounded by the request timeout.
    pub(crate) async fn admit(&self) -> Result<Slot, ApiError> {
        let permit = match self.inflight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let _q = self.queue.try_acquire().map_err(|_| {
                    ApiError::unavailable(
                        "overloaded",
                        format!("{} inferences running and {} waiting: retry later", self.cfg.max_concurrent_inferences, self.cfg.max_queue),
                        self.cfg.retry_after_s,
                    )
                })?;
                self.metrics.admission_queue.inc();
                let _w = Waiting(&self.metrics);
                self.inflight.clone().acquire_owned().await.map_err(|_| ApiError::unavailable("overloaded", "shutting down", self.cfg.retry_after_s))?
            }
        };
        self.metrics.inflight.inc();
        Ok(Slot { _permit: permit, metrics: self.metrics.clone() })
    }
}

// ---------------------------------------------------------------- health, readiness, metrics

/// Answer of `/healthz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// Always `ok` while the process serves.
    pub status: String,
}

/// A calibrated operating point.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperatingPointRecord {
    /// FAR asked for.
    pub far_target: f64,
    /// Cosine-similarity threshold.
    pub threshold: f64,
    /// FAR measured on the calibration pairs.
    pub far: f64,
    /// FRR measured on the calibration pairs.
    pub frr: f64,
    /// Whether the calibration pairs support this FAR.
    pub supported: bool,
}

/// Answer of `/readyz` once the models are loaded.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadyResponse {
    /// True.
    pub ready: bool,
    /// ONNX Runtime execution provider in use.
    pub execution_provider: String,
    /// Detector model id (name and first 16 hex digits of its SHA-256).
    pub detector: String,
    /// Recogniser model id: the model every embedding carries.
    pub recognizer: String,
    /// Whether faces of concurrent requests share recogniser batches.
    pub batching: bool,
    /// Operating point used when a request names none (`FAR=…`).
    pub default_operating_point: String,
    /// The recogniser's calibrated operating points.
    pub operating_points: Vec<OperatingPointRecord>,
    /// Faces enrolled in the gallery.
    pub gallery_faces: usize,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, body = HealthResponse)))]
async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".into() })
}

/// Readiness: 200 once the models are loaded, with the execution provider and model ids; 503 before.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "service",
    responses((status = 200, body = ReadyResponse), (status = 503, description = "Models still loading", body = ErrorBody))
)]
async fn readyz(State(st): State<Arc<AppState>>) -> Result<Json<ReadyResponse>, ApiError> {
    let r = st.ready()?;
    let recognizer = r.analyzer.model_id().map(|m| m.to_string()).map_err(ApiError::internal)?;
    Ok(Json(ReadyResponse {
        ready: true,
        execution_provider: "CPUExecutionProvider".into(),
        detector: r.detector_id.clone(),
        recognizer,
        batching: r.batcher.is_some(),
        default_operating_point: format!("FAR={:e}", st.cfg.default_far),
        operating_points: r
            .calibration
            .iter()
            .flat_map(|c| c.operating_points.iter())
            .map(|p| OperatingPointRecord { far_target: p.far_target, threshold: p.threshold as f64, far: p.far, frr: p.frr, supported: p.supported })
            .collect(),
        gallery_faces: r.gallery.len(),
    }))
}

/// Prometheus metrics: request counts and latencies per route, recogniser batch sizes, queue depths.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_route(State(st): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render()).into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service", responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi_route() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct SecurityAddon;
impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        }
    }
}

/// The OpenAPI document of the service, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "faceprint", description = "Face detection, embedding, 1:1 verification and 1:N identification. Send the API key in the X-API-Key header (or Authorization: Bearer)."),
    paths(
        healthz, readyz, metrics_route, openapi_route,
        api::detect, api::embed, api::verify,
        gallery_api::identify, gallery_api::list_identities, gallery_api::create_identity, gallery_api::get_identity,
        gallery_api::rename_identity, gallery_api::delete_identity, gallery_api::enroll_face, gallery_api::delete_face,
        gallery_api::merge_identities,
    ),
    modifiers(&SecurityAddon),
    tags((name = "faces"), (name = "verification"), (name = "identification"), (name = "gallery"), (name = "service"))
)]
pub struct ApiDoc;

// ---------------------------------------------------------------- middleware

/// A refusal before the body is read: the body is read and discarded first (bounded by the body
/// limit and the request timeout), so that a client still sending receives the answer.
async fn refuse(st: &AppState, req: Request, e: ApiError) -> Response {
    let (parts, body) = req.into_parts();
    let _ = tokio::time::timeout(st.cfg.request_timeout(), api::read_body(&parts.headers, body, st.cfg.max_body_bytes)).await;
    e.into_response()
}

async fn auth(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    if st.keys.is_empty() {
        req.extensions_mut().insert(Caller { name: "anonymous".into(), scope: Scope::Admin });
        return next.run(req).await;
    }
    let h = req.headers();
    let key = h
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
            // The auth scheme is case-insensitive (RFC 9110 §11.1).
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim().to_string())
        }));
    let Some(key) = key else {
        let e = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing API key: send it in the X-API-Key header or as Authorization: Bearer KEY");
        return refuse(&st, req, e).await;
    };
    match st.keys.get(&hash_key(&key)) {
        Some((name, scope)) => {
            let caller = Caller { name: name.clone(), scope: *scope };
            req.extensions_mut().insert(caller.clone());
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(caller);
            resp
        }
        None => refuse(&st, req, ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "the API key is not recognised")).await,
    }
}

async fn timeout(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(st.cfg.request_timeout(), next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::unavailable("timeout", format!("the request took longer than {} ms", st.cfg.request_timeout_ms), st.cfg.retry_after_s).into_response(),
    }
}

/// The error code of an answer, for metrics and logs.
#[derive(Clone, Copy)]
pub(crate) struct ErrorCode(pub &'static str);

async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let id = st.request_ids.fetch_add(1, Ordering::Relaxed);
    let mut resp = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    st.metrics.requests.with_label_values(&[route.as_str(), method.as_str(), &status.to_string()]).inc();
    st.metrics.latency.with_label_values(&[route.as_str()]).observe(secs);
    let code = resp.extensions().get::<ErrorCode>().map(|c| c.0);
    if let Some(c) = code {
        if matches!(c, "overloaded" | "timeout" | "body_too_large" | "image_too_large" | "not_ready") {
            st.metrics.rejected.with_label_values(&[c]).inc();
        }
    }
    let caller = resp.extensions().get::<Caller>().map(|c| c.name.clone());
    tracing::info!(request_id = id, method = %method, route = %route, status, error = code.unwrap_or(""), caller = caller.as_deref().unwrap_or(""), latency_ms = secs * 1e3, "request");
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see /openapi.json)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route (see /openapi.json)")
}

fn router(st: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/detect", post(api::detect))
        .route("/v1/embed", post(api::embed))
        .route("/v1/verify", post(api::verify))
        .route("/v1/identify", post(gallery_api::identify))
        .route("/v1/gallery/identities", get(gallery_api::list_identities).post(gallery_api::create_identity))
        .route(
            "/v1/gallery/identities/{identity}",
            get(gallery_api::get_identity).patch(gallery_api::rename_identity).delete(gallery_api::delete_identity),
        )
        .route("/v1/gallery/identities/{identity}/faces", post(gallery_api::enroll_face))
        .route("/v1/gallery/faces/{face}", delete(gallery_api::delete_face))
        .route("/v1/gallery/merge", post(gallery_api::merge_identities))
        .layer(middleware::from_fn_with_state(st.clone(), timeout))
        .layer(middleware::from_fn_with_state(st.clone(), auth));
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_route))
        .route("/openapi.json", get(openapi_route))
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(st.cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(st.clone(), track));
    if !st.cfg.cors_origins.is_empty() {
        use tower_http::cors::{AllowOrigin, Any, CorsLayer};
        let origins = if st.cfg.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(st.cfg.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        };
        app = app.layer(CorsLayer::new().allow_origin(origins).allow_methods(Any).allow_headers(Any));
    }
    app.with_state(st)
}

// ---------------------------------------------------------------- lifecycle

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl ServerHandle {
    /// The address it listens on (with the actual port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful stop: no new connections, in-flight requests finish, the gallery index is saved.
    ///
    /// # Errors
    /// The error the server ended with (e.g. the models failed to load).
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.join()
    }

    /// Waits until the server stops (by a signal, with `handle_signals`, or a load failure).
    ///
    /// # Errors
    /// As [`Self::shutdown`].
    pub fn wait(mut self) -> Result<(), ServerError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), ServerError> {
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ServerError::Runtime("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.join();
    }
}

fn detector_id(a: &FaceAnalyzer) -> String {
    let d = a.detector();
    let stem = d.path().file_stem().and_then(|s| s.to_str()).unwrap_or("detector");
    ModelId::from_file(stem, d.sha256()).to_string()
}

fn make_ready(cfg: &ServerConfig, analyzer: Arc<FaceAnalyzer>, metrics: &Arc<Metrics>) -> Result<Ready, crate::Error> {
    let rec = analyzer.recognizer().ok_or(crate::Error::InvalidParameter { name: "load_recognizer", message: "the service needs the recogniser".into() })?;
    // Every recogniser batch shape once on every session before ready, so RSS does not grow
    // later as new batch sizes arrive (`embed::padded_batch`).
    rec.warm_up()?;
    let dir = cfg.gallery.clone().unwrap_or_else(|| Gallery::default_dir(analyzer.data_dir()));
    let gallery = if cfg.create_gallery && !dir.join(crate::gallery::STORE_FILE).exists() {
        Gallery::create(&dir, rec.model_id(), rec.dim(), GalleryOptions::default())?
    } else {
        // A missing gallery is refused, as the CLI commands refuse it.
        Gallery::open(&dir, GalleryOptions::default()).map_err(|e| match e {
            crate::gallery::GalleryError::NotAGallery { path, detail } => crate::gallery::GalleryError::NotAGallery {
                path,
                detail: format!("{detail}; start the service with --create-gallery (create_gallery = true) to create an empty one"),
            },
            e => e,
        })?
    };
    let calibration = analyzer.calibration().ok();
    let batcher = cfg.batching.then(|| {
        let threads = analyzer.config().workers.max(1);
        Batcher::start(analyzer.clone(), threads, Duration::from_micros(cfg.batch_wait_us), cfg.max_batch, metrics.clone())
    });
    let storage = gallery.meta().map(|m| m.index_storage.to_string()).unwrap_or_default();
    tracing::info!(gallery = %dir.display(), faces = gallery.len(), index_storage = %storage, index = gallery.index_origin(), "gallery opened");
    Ok(Ready { detector_id: detector_id(&analyzer), analyzer, batcher, calibration, gallery: Arc::new(gallery) })
}

/// Binds `cfg.bind`, then serves on a thread of its own (with its own async runtime) while the
/// models load. With `handle_signals`, SIGTERM and SIGINT stop it gracefully.
///
/// # Errors
/// [`ServerError::Config`] for invalid settings, [`ServerError::Bind`] when the address is taken.
pub fn start(cfg: ServerConfig, source: AnalyzerSource, handle_signals: bool) -> Result<ServerHandle, ServerError> {
    cfg.validate()?;
    // A gallery folder named but not there fails now, before the port is bound and the models
    // load (the full check, with the model id, comes when the models are loaded).
    if let (Some(dir), false) = (&cfg.gallery, cfg.create_gallery) {
        if !dir.join(crate::gallery::STORE_FILE).is_file() {
            return Err(ServerError::Config(format!(
                "gallery {}: not a faceprint gallery (no {}); create one with `faceprint gallery init --gallery {}`, or start with --create-gallery",
                dir.display(),
                crate::gallery::STORE_FILE,
                dir.display()
            )));
        }
    }
    let listener = std::net::TcpListener::bind(cfg.bind).map_err(|source| ServerError::Bind { addr: cfg.bind, source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: cfg.bind, source })?;
    listener.set_nonblocking(true).map_err(|source| ServerError::Bind { addr, source })?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("faceprint-server".into())
        .spawn(move || -> Result<(), ServerError> {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| ServerError::Runtime(e.to_string()))?;
            rt.block_on(run(cfg, listener, source, stop_rx, handle_signals))
        })
        .map_err(|e| ServerError::Runtime(e.to_string()))?;
    Ok(ServerHandle { addr, stop: Some(stop_tx), thread: Some(thread) })
}

async fn run(
    cfg: ServerConfig,
    listener: std::net::TcpListener,
    source: AnalyzerSource,
    stop_rx: tokio::sync::oneshot::Receiver<()>,
    handle_signals: bool,
) -> Result<(), ServerError> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| ServerError::Runtime(e.to_string()))?;
    let metrics = Arc::new(Metrics::new());
    let st = Arc::new(AppState {
        keys: cfg.key_table(),
        ready: OnceLock::new(),
        inflight: Arc::new(Semaphore::new(cfg.max_concurrent_inferences)),
        queue: Semaphore::new(cfg.max_queue),
        metrics: metrics.clone(),
        request_ids: AtomicU64::new(1),
        cfg,
    });
    if st.keys.is_empty() {
        tracing::warn!("no API keys configured: every caller has the admin scope (loopback or allow_unauthenticated only)");
    }
    let load_error: Arc<Mutex<Option<crate::Error>>> = Arc::new(Mutex::new(None));
    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let (st, load_error) = (st.clone(), load_error.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let cfg = st.cfg.clone();
            let m = st.metrics.clone();
            let res = tokio::task::spawn_blocking(move || -> Result<Ready, crate::Error> {
                let analyzer = match source {
                    AnalyzerSource::Loaded(a) => a,
                    AnalyzerSource::Load(c) => Arc::new(FaceAnalyzer::load(c)?),
                };
                make_ready(&cfg, analyzer, &m)
            })
            .await;
            match res {
                Ok(Ok(r)) => {
                    tracing::info!(detector = %r.detector_id, seconds = t0.elapsed().as_secs_f64(), batching = r.batcher.is_some(), "models loaded; ready");
                    let _ = st.ready.set(Arc::new(r));
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "loading failed; stopping");
                    *load_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    let _ = fail_tx.send(());
                }
                Err(e) => {
                    tracing::error!(error = %e, "loading panicked; stopping");
                    let _ = fail_tx.send(());
                }
            }
        });
    }
    let shutdown = async move {
        let signals = async {
            if !handle_signals {
                return std::future::pending::<()>().await;
            }
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending::<()>().await,
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down gracefully"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down gracefully"),
            }
        };
        tokio::select! {
            _ = stop_rx => {}
            Ok(()) = fail_rx => {}
            _ = signals => {}
        }
    };
    tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "listening");
    let served = axum::serve(listener, router(st.clone())).with_graceful_shutdown(shutdown).await;
    // In-flight requests have finished. Drain the batch workers and save the gallery index.
    if let Some(r) = st.ready.get() {
        if let Some(b) = &r.batcher {
            b.close();
        }
        if let Err(e) = r.gallery.save_index() {
            tracing::info!(error = %e, "gallery index not saved; it is rebuilt from the store on the next open (the store holds every write)");
        }
    }
    tracing::info!("stopped");
    if let Some(e) = load_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(ServerError::Load(e));
    }
    served.map_err(|e| ServerError::Runtime(e.to_string()))
}
