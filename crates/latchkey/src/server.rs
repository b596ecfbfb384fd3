//! Start-up, router composition and graceful shutdown.

use axum::Router;
use axum::routing::get;
use latchkey_core::{Clock, Settings};
use latchkey_signer::{MasterKey, SignerError};
use latchkey_web::{AppState, AppStateInner, Capabilities, Passwords};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::{discovery, jobs};

/// Why the server could not start. Displayed as one line naming the resource and the reason.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(String),
    #[error("cannot open database {url}: {reason}")]
    Database { url: String, reason: String },
    #[error("{0}")]
    Keys(#[from] SignerError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
}

/// A database URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Open the store, check the master key, load (or create) signing keys.
pub async fn build_state(
    settings: Settings,
    clock: Arc<dyn Clock>,
    master: MasterKey,
) -> Result<AppState, StartupError> {
    let url = settings.effective_database_url();
    let store = latchkey_storage::open(&settings)
        .await
        .map_err(|e| StartupError::Database { url: redact(&url), reason: e.to_string() })?;
    let keys = latchkey_signer::bootstrap(store.as_ref(), &settings, &master, clock.now()).await?;
    let jwks_cache = latchkey_web::jwks_cache::JwksCache::new(settings.client_auth.jwks_cache_max_entries);
    let pairwise_salt = latchkey_signer::pairwise_salt(store.as_ref(), &master).await?;
    let (client_cache_ms, client_cache_max) =
        (settings.database.client_cache_ms, settings.database.client_cache_max_entries);
    let passwords = Passwords::new(&settings.argon2).map_err(|e| StartupError::Config(e.to_string()))?;
    Ok(AppState(Arc::new(AppStateInner {
        settings: Arc::new(settings),
        store,
        keys: Arc::new(keys),
        clock,
        passwords,
        master,
        jwks_cache,
        pairwise_salt,
        limiter: Default::default(),
        clients: latchkey_web::clients::ClientCache::new(client_cache_ms, client_cache_max),
    })))
}

/// Every crate's routes and discovery contributions, composed, plus `extra` routes (the demo
/// relying party) that add nothing to discovery.
pub fn router(state: AppState, extra: Router<AppState>) -> Router {
    let s = &state.settings;
    let caps = Capabilities::new()
        .merge(latchkey_authorize::capabilities(s))
        .merge(latchkey_token::capabilities(s))
        .merge(latchkey_login::capabilities(s))
        .merge(latchkey_registration::capabilities(s));
    let discovery = discovery::Documents::build(s, caps);
    let metrics_on = s.metrics.enabled;
    if metrics_on {
        // Install the recorder before the first request, so nothing recorded is lost.
        let _ = crate::metrics::handle();
    }
    // /metrics is here unless metrics.bind puts it on the admin listener.
    let metrics_route = match metrics_on && s.metrics.bind.is_empty() {
        true => Router::new().route(METRICS_PATH, get(crate::metrics::serve)),
        false => Router::new(),
    };
    Router::new()
        .merge(discovery.router())
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .merge(latchkey_authorize::router())
        .merge(latchkey_token::router())
        .merge(latchkey_login::router())
        .merge(latchkey_registration::router(s))
        .merge(extra)
        .merge(metrics_route)
        // Hostile input: the body cap for any extractor without its own, a deadline for the
        // whole request (body included), header/URI/declared-body caps and a bound on requests
        // in flight, and a last-resort 500 should a handler ever panic.
        .layer(axum::extract::DefaultBodyLimit::max(s.http.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(s.http.request_timeout),
        ))
        .layer(axum::middleware::from_fn_with_state(crate::guard::Caps::new(&s.http), crate::guard::caps))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn_with_state(metrics_on, crate::metrics::track))
        .layer(axum::middleware::from_fn(latchkey_web::headers::security_headers))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            // The path only: query strings can carry codes and tokens.
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        .with_state(state)
}

pub const METRICS_PATH: &str = "/metrics";

/// A random (v4) UUID per request, from the thread's CSPRNG: `MakeRequestUuid` asks the kernel
/// (`getrandom`) for every request, a system call per request for an identifier.
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        http::HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)).ok().map(RequestId::new)
    }
}

/// The admin listener's routes (`metrics.bind`): `/metrics` only.
pub fn admin_router(state: AppState) -> Router {
    Router::new().route(METRICS_PATH, get(crate::metrics::serve)).with_state(state)
}

/// The admin listener, when `metrics.bind` asks for one.
fn admin_listener(settings: &Settings) -> Result<Option<TcpListener>, StartupError> {
    let bind = &settings.metrics.bind;
    if !settings.metrics.enabled || bind.is_empty() {
        return Ok(None);
    }
    let fail = |e: std::io::Error| StartupError::Bind { addr: bind.clone(), reason: e.to_string() };
    let std_listener = std::net::TcpListener::bind(bind.as_str()).map_err(fail)?;
    std_listener.set_nonblocking(true).map_err(fail)?;
    TcpListener::from_std(std_listener).map(Some).map_err(fail)
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> (http::StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (http::StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (http::StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `metrics.bind` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Serve on `listener` until [`Server::shutdown`] or `external` resolves.
    pub fn spawn(state: AppState, listener: TcpListener) -> Result<Self, StartupError> {
        Self::spawn_with(state, listener, None)
    }

    /// Serve, with the demo relying party at `/demo` when `demo` is given.
    pub fn spawn_with(
        state: AppState,
        listener: TcpListener,
        demo: Option<&crate::demo::DemoInfo>,
    ) -> Result<Self, StartupError> {
        let addr = listener.local_addr().map_err(|e| StartupError::Bind { addr: "?".into(), reason: e.to_string() })?;
        let (tx, mut rx) = watch::channel(false);
        let extra = match demo {
            Some(info) => crate::demo::router(info, addr),
            None => Router::new(),
        };
        let app = router(state.clone(), extra);
        let admin = admin_listener(&state.settings)?;
        let metrics_addr = match &admin {
            Some(l) => Some(l.local_addr().map_err(|e| StartupError::Bind {
                addr: state.settings.metrics.bind.clone(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        let admin_task = admin.map(|listener| {
            let app = admin_router(state.clone());
            let mut stop = rx.clone();
            tokio::spawn(async move {
                let signal = async move {
                    let _ = stop.wait_for(|v| *v).await;
                };
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            })
        });
        let jobs = jobs::spawn(state.clone(), rx.clone());
        let st = state.clone();
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = rx.wait_for(|v| *v).await;
            };
            let r = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(signal)
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "server failed");
            }
            jobs.abort();
            if let Some(t) = admin_task {
                let _ = t.await;
            }
            st.store.close().await;
        });
        Ok(Self { addr, metrics_addr, state, shutdown: tx, task })
    }

    /// Stop accepting, let in-flight requests finish, close the pool.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    pub fn trigger_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

pub async fn bind(addr: &str) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).await.map_err(|e| StartupError::Bind { addr: addr.to_owned(), reason: e.to_string() })
}
