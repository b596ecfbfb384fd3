//! `GET /login` shows the form; `POST /login` checks the password (argon2id, off the runtime,
//! bounded), starts a new session (a new id every time: no fixation) and resumes the request.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use latchkey_core::SecretToken;
use latchkey_storage::SessionRecord;
use latchkey_web::cookies::{self, csrf_ok, csrf_token, session_cookie_name, set_cookie};
use latchkey_web::errors::html;
use latchkey_web::limits::{self, Kind};
use latchkey_web::params::{FormParams, QueryParams};
use latchkey_web::{AppState, ErrorPage};

use crate::common::{self, LANG};
use crate::views::LoginView;

const BAD_LOGIN: &str = "The username or password is incorrect.";

/// "12 seconds", "3 minutes": a wait in words.
fn describe_wait(secs: i64) -> String {
    match secs {
        ..=1 => "a second".into(),
        2..=90 => format!("{secs} seconds"),
        _ => format!("{} minutes", (secs + 59) / 60),
    }
}

pub async fn show(State(state): State<AppState>, QueryParams(q): QueryParams, headers: HeaderMap) -> Response {
    let p = match common::load_query(&state, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let hint = p.record.request.login_hint.clone().unwrap_or_default();
    form_page(&state, &headers, &p, &hint, None, StatusCode::OK)
}

/// The login form (again), with a fresh CSRF token, the username kept and an error if any.
fn form_page(
    state: &AppState,
    headers: &HeaderMap,
    p: &common::Pending,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf, set) = csrf_token(&state.settings, headers);
    let view = LoginView { lang: LANG, client_name: &p.client.name, interaction: &p.raw, csrf: &csrf, username, error };
    common::with_cookie(html(status, &view), set)
}

pub async fn submit(State(state): State<AppState>, form: FormParams) -> Response {
    let params = match form.params {
        Ok(p) => p,
        Err(e) => return ErrorPage::new(latchkey_core::OAuthError::invalid_request(e.describe())).into_response(),
    };
    let p = match common::load(&state, &form.headers, params.get("interaction")).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !csrf_ok(&state.settings, &form.headers, params.get("csrf")) {
        return common::csrf_failed();
    }
    let username = params.get("username").unwrap_or("").chars().take(255).collect::<String>();
    let password = params.get("password").unwrap_or("").to_owned();
    let ip = latchkey_web::client_ip::client_ip(&form.headers, form.peer, &state.settings);
    let raw_ip = ip.as_deref().unwrap_or("");
    let source = limits::ip_subject(raw_ip);

    // Abuse limits, before any password is checked: failed sign-ins from this IP (credential
    // stuffing; IPv6 also per /56 and /48), then, once a verification slot is held (so attempts
    // arriving together are checked a few at a time and each sees the failures before it), the
    // backoff of this account from this source (at every IPv6 level) and the account's floor
    // across all sources. Refusals are logged, not audited: the audit log records every
    // failure, and a refused flood must cost no write.
    let now = state.now();
    let lim = &state.settings.limits;
    let user = match state.store.get_user_by_username(&username).await {
        Ok(u) => u,
        Err(e) => return ErrorPage::new(latchkey_core::OAuthError::server_error(e)).into_response(),
    };
    // An unknown user is checked against a dummy hash: both failures cost the same.
    let empty_password = password.is_empty();
    let verified = match state.limiter.check_ip(lim, Kind::LoginFailures, raw_ip, now) {
        Err(w) => Err((w, "login_failures_per_ip")),
        Ok(()) if empty_password => Ok(false),
        Ok(()) => {
            let store = state.store.as_ref();
            let gate = async {
                match limits::login_gate(store, lim, &username, raw_ip, now).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(w)) => Err(Some(w)),
                    Err(e) => {
                        tracing::error!(error = %e, "reading sign-in failures failed");
                        Err(None)
                    }
                }
            };
            match state.passwords.verify_gated(user.as_ref().map(|u| u.password_hash.as_str()), password, gate).await {
                Ok(ok) => Ok(ok),
                Err(Some(w)) => Err((w, "account_backoff")),
                Err(None) => {
                    return ErrorPage::new(latchkey_core::OAuthError::server_error("sign-in limits unavailable"))
                        .into_response();
                }
            }
        }
    };
    let ok = match verified {
        Ok(ok) => ok,
        Err((wait, why)) => {
            tracing::info!(client_id = %p.client.client_id, limit = why, retry_after = wait.0, "sign-in refused by a rate limit");
            let message = format!("Too many sign-in attempts. Please wait {} and try again.", describe_wait(wait.0));
            let status = StatusCode::TOO_MANY_REQUESTS;
            let mut r = form_page(&state, &form.headers, &p, &username, Some(&message), status);
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.0));
            return r;
        }
    };
    let user = match (ok, user) {
        (true, Some(u)) => u,
        (_, found) => {
            metrics::counter!("logins_total", "result" => "failure").increment(1);
            tracing::info!(client_id = %p.client.client_id, "login failed");
            let reason = match &found {
                None => "unknown_user",
                Some(_) if empty_password => "empty_password",
                Some(_) => "bad_password",
            };
            state.limiter.count_ip(lim, Kind::LoginFailures, raw_ip, now);
            if let Err(e) = limits::login_failed(state.store.as_ref(), lim, &username, raw_ip, now).await {
                tracing::error!(error = %e, "recording a failed sign-in failed");
            }
            let detail = serde_json::json!({"user": username, "reason": reason, "source": source});
            let actor = found.as_ref().map(|u| u.id.as_str());
            latchkey_web::audit::record(&state, "login.failed", actor, Some(&p.client.client_id), ip, detail).await;
            return form_page(&state, &form.headers, &p, &username, Some(BAD_LOGIN), StatusCode::OK);
        }
    };

    if let Err(e) = limits::login_succeeded(state.store.as_ref(), lim, &username, raw_ip).await {
        tracing::warn!(error = %e, "clearing sign-in failures failed");
    }

    // A fresh session; the previous one (if any) ends.
    let cookie_name = session_cookie_name(&state.settings);
    let now = state.now();
    if let Some(old) = cookies::read_cookie(&form.headers, &cookie_name)
        && let Ok(Some(ended)) = state.store.delete_session(&SecretToken::from_presented(&old).hash()).await
    {
        // Back-Channel Logout 1.0 §2: the old session ended, so its relying parties are told.
        let told = latchkey_web::backchannel::session_ended(
            state.store.as_ref(),
            &state.keys,
            &state.settings,
            &state.pairwise_salt,
            &ended.sid,
            &ended.user_id,
            now,
        )
        .await;
        if let Err(e) = told {
            tracing::error!(error = %e, "queueing back-channel logouts for the replaced session failed");
        }
    }
    let token = SecretToken::generate();
    let session = SessionRecord {
        id_hash: token.hash(),
        sid: SecretToken::generate().expose().chars().take(22).collect(),
        user_id: user.id.clone(),
        auth_time: now,
        acr: Some("0".into()),
        amr: vec!["pwd".into()],
        created_at: now,
        expires_at: now + state.settings.lifetimes.session,
    };
    if let Err(e) = state.store.create_session(&session).await {
        return ErrorPage::new(latchkey_core::OAuthError::server_error(e)).into_response();
    }
    match state.store.set_interaction_login(&p.record.id_hash, &session.sid).await {
        Ok(true) => {}
        Ok(false) => return common::csrf_failed(),
        Err(e) => return ErrorPage::new(latchkey_core::OAuthError::server_error(e)).into_response(),
    }
    metrics::counter!("logins_total", "result" => "success").increment(1);
    tracing::info!(client_id = %p.client.client_id, "login succeeded");
    let detail = serde_json::json!({"user": user.username, "sid": session.sid});
    latchkey_web::audit::record(&state, "login.succeeded", Some(&user.id), Some(&p.client.client_id), ip, detail).await;
    let mut r = common::resume(&p.raw);
    let c = set_cookie(&state.settings, &cookie_name, token.expose(), state.settings.lifetimes.session);
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
