//! Prometheus metrics: the process-wide recorder, the per-request middleware and `GET /metrics`.
//!
//! Counters are recorded where things happen, through the `metrics` facade:
//! `tokens_issued_total{grant,type}` (latchkey-token), `logins_total{result}` (latchkey-login),
//! `refresh_reuse_detected_total` (latchkey-token). This module records the HTTP metrics and
//! sets the gauges that are read from state (signing key age, database pool, rate-limiter size)
//! at every scrape.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use latchkey_web::AppState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `http_request_duration_seconds` bucket bounds: a cached GET answers in tens of µs, a login
/// spends tens of ms in argon2 and can queue for seconds behind the bounded pool.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often histogram samples are folded into their buckets when nobody scrapes, so an
/// unscraped server does not accumulate them.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process-wide Prometheus recorder, installed on first use. `None` when another recorder
/// was installed first (Latchkey embedded in a program with its own): `/metrics` then answers 503.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let recorder = match PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), LATENCY_BUCKETS)
    {
        Ok(b) => b.build_recorder(),
        Err(e) => {
            tracing::error!(error = %e, "cannot configure the Prometheus recorder; /metrics is off");
            return None;
        }
    };
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        tracing::warn!(error = %e, "another metrics recorder is installed; /metrics is off");
        return None;
    }
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are folded at scrape time only");
    }
    Some(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("http_requests_total", "HTTP requests answered, by route template, method and status");
    describe_histogram!("http_request_duration_seconds", Unit::Seconds, "Time to answer an HTTP request, by route");
    describe_counter!("tokens_issued_total", "Tokens issued, by grant type and token type");
    describe_counter!("logins_total", "Password logins, by result (success or failure)");
    describe_counter!(
        "refresh_reuse_detected_total",
        "Rotated refresh tokens presented again (the token family was revoked)"
    );
    describe_gauge!("signing_key_age_seconds", Unit::Seconds, "Age of the signing key in use, by algorithm");
    describe_gauge!("db_pool_connections", "Database pool connections, by state (in_use, idle, max)");
    describe_gauge!(
        "rate_limiter_subjects",
        "Subjects the in-memory rate limiter tracks, by kind (each at most limits.max_subjects_per_kind)"
    );
    describe_gauge!(
        "in_process_entries",
        "Entries of an in-process map, by map (client_cache, jwks_cache, rate_limiter, single_use_undoing)"
    );
    describe_gauge!(
        "in_process_capacity",
        "The most entries an in-process map holds, by map, from its setting (a full map starts over or stops adding)"
    );
    describe_gauge!(
        "backchannel_logout_lag_seconds",
        Unit::Seconds,
        "How long the oldest back-channel logout token due for delivery had been due at the last delivery run"
    );
    describe_gauge!(
        "backchannel_logout_behind",
        "1 when the last delivery run found a full batch due (more were waiting)"
    );
    describe_counter!("housekeeping_rows_deleted_total", "Due rows housekeeping deleted, by table");
    describe_gauge!("housekeeping_last_run_seconds", Unit::Seconds, "Duration of the last housekeeping run");
    describe_gauge!(
        "housekeeping_last_run_timestamp_seconds",
        Unit::Seconds,
        "Unix time the last housekeeping run ended (stale: the job is not running)"
    );
    describe_gauge!(
        "housekeeping_behind",
        "1 when the last housekeeping run stopped at housekeeping.max_run_seconds with due rows left"
    );
    describe_gauge!(
        "housekeeping_lag_seconds",
        Unit::Seconds,
        "How long the oldest row still due for deletion has been due, by table, after the last run"
    );
}

/// Middleware: `http_requests_total{route,method,status}` and
/// `http_request_duration_seconds{route}`. The route is the matched template (`/static/{file}`),
/// never the raw path, so label values stay few; unmatched requests share one value. `on`:
/// `metrics.enabled`.
pub async fn track(State(on): State<bool>, req: Request, next: Next) -> Response {
    if !on {
        return next.run(req).await;
    }
    let route = match req.extensions().get::<MatchedPath>() {
        Some(p) => p.as_str().to_owned(),
        None => "unmatched".to_owned(),
    };
    // Standard methods only: anything else is one label value, not one per invented verb.
    let method: &'static str = match *req.method() {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::HEAD => "HEAD",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(req).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route).record(elapsed);
    response
}

/// Set `signing_key_age_seconds{alg}`: seconds since the key that signs for `alg` became active.
pub fn record_key_ages(state: &AppState) {
    let now = state.now();
    let mut newest: BTreeMap<String, i64> = BTreeMap::new();
    for k in state.keys.summaries(now).into_iter().filter(|k| k.state == "active") {
        let e = newest.entry(k.alg).or_insert(k.activates_at);
        *e = (*e).max(k.activates_at);
    }
    for (alg, activated) in newest {
        let age = now.saturating_sub(activated).max(0) as f64;
        metrics::gauge!("signing_key_age_seconds", "alg" => alg).set(age);
    }
}

fn record_pool(state: &AppState) {
    let (open, idle) = state.store.pool_stats();
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(open.saturating_sub(idle)));
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_connections", "state" => "max").set(f64::from(state.settings.database.max_connections));
}

/// Set `rate_limiter_subjects{kind}`: the limiter's entries per kind, each of a fixed size.
pub fn record_limiter(state: &AppState) {
    for (kind, n) in state.limiter.sizes() {
        metrics::gauge!("rate_limiter_subjects", "kind" => kind.prefix()).set(n as f64);
    }
}

/// Set `in_process_entries{map}` and `in_process_capacity{map}` for every in-process map whose
/// size depends on what clients send: each is bounded by a setting, so memory is too.
pub fn record_in_process(state: &AppState) {
    let set = |map: &'static str, (n, max): (usize, usize)| {
        metrics::gauge!("in_process_entries", "map" => map).set(n as f64);
        metrics::gauge!("in_process_capacity", "map" => map).set(max as f64);
    };
    set("client_cache", state.clients.size());
    set("jwks_cache", state.jwks_cache.size());
    let subjects: usize = state.limiter.sizes().iter().map(|(_, n)| n).sum();
    let per_kind = usize::try_from(state.settings.limits.max_subjects_per_kind).unwrap_or(0);
    set("rate_limiter", (subjects, per_kind.saturating_mul(state.limiter.sizes().len())));
    // One per request in flight; the capacity is the server's connection limit's concern.
    metrics::gauge!("in_process_entries", "map" => "single_use_undoing")
        .set(latchkey_storage::single_use::undoing_now() as f64);
}

/// Does the request carry `Authorization: Bearer <metrics.bearer_token>` (or is none set)?
/// Compared as hashes in constant time.
fn authorized(state: &AppState, headers: &http::HeaderMap) -> bool {
    let want = &state.settings.metrics.bearer_token;
    if want.is_empty() {
        return true;
    }
    let Some(got) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    else {
        return false;
    };
    let hash = |s: &str| latchkey_core::SecretToken::from_presented(s).hash();
    hash(got).matches(&hash(want))
}

/// `GET /metrics`: the Prometheus text exposition format, behind `metrics.bearer_token` when
/// one is set (always, on the main listener).
pub async fn serve(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        // RFC 6750 §3.
        let mut r = (StatusCode::UNAUTHORIZED, "a bearer token is required").into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"metrics\""));
        return r;
    }
    let Some(handle) = handle() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are not available in this process").into_response();
    };
    record_key_ages(&state);
    record_pool(&state);
    record_limiter(&state);
    record_in_process(&state);
    let mut r = handle.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}
