//! `GET /consent` lists what the client asks for in plain words; `POST /consent` records the
//! decision (approvals are remembered per user, client and scope set) and resumes the request.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use latchkey_core::OAuthError;
use latchkey_core::claims::{ClaimsRequest, MEMBERSHIP_CLAIMS};
use latchkey_core::scope::Scope;
use latchkey_storage::{InteractionConsent, SessionRecord};
use latchkey_web::cookies::{csrf_ok, csrf_token, current_session};
use latchkey_web::errors::html;
use latchkey_web::params::{FormParams, QueryParams};
use latchkey_web::{AppState, ErrorPage, interaction};

use crate::common::{self, LANG, Pending};
use crate::views::{ConsentView, describe_claim, describe_scope};

/// The signed-in user and their session: a consent is only ever shown to, and recorded for, them.
async fn signed_in_user(
    state: &AppState,
    headers: &HeaderMap,
    p: &Pending,
) -> Result<(SessionRecord, latchkey_core::model::User), Response> {
    let session = current_session(state, headers)
        .await
        .map_err(|e| ErrorPage::new(OAuthError::server_error(e)).into_response())?;
    let Some(s) = session else {
        // Not signed in (any more): log in first.
        return Err(interaction::see_other(&interaction::url(interaction::LOGIN_PATH, &p.raw)));
    };
    match state.store.get_user(&s.user_id).await {
        Ok(Some(u)) => Ok((s, u)),
        Ok(None) => Err(interaction::see_other(&interaction::url(interaction::LOGIN_PATH, &p.raw))),
        Err(e) => Err(ErrorPage::new(OAuthError::server_error(e)).into_response()),
    }
}

pub async fn show(State(state): State<AppState>, QueryParams(q): QueryParams, headers: HeaderMap) -> Response {
    let p = match common::load_query(&state, &headers, &q).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (_, user) = match signed_in_user(&state, &headers, &p).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let req = &p.record.request;
    let mut items: Vec<String> = Scope::parse(&req.scope).unwrap_or_default().iter().map(describe_scope).collect();
    if let Some(c) = &req.claims {
        for name in ClaimsRequest::from_json(c).names() {
            // Groups and roles asked for this way are released only to a client that may have
            // their scope (MembershipClaims::with_requested): nothing to consent to otherwise.
            if MEMBERSHIP_CLAIMS.contains(&name) && !p.client.scopes.iter().any(|s| s == name) {
                continue;
            }
            let d = describe_claim(name);
            if !items.contains(&d) {
                items.push(d);
            }
        }
    }
    let (csrf, set) = csrf_token(&state.settings, &headers);
    let view = ConsentView {
        lang: LANG,
        client_name: &p.client.name,
        interaction: &p.raw,
        csrf: &csrf,
        username: &user.username,
        items,
    };
    common::with_cookie(html(StatusCode::OK, &view), set)
}

pub async fn submit(State(state): State<AppState>, form: FormParams) -> Response {
    let params = match form.params {
        Ok(p) => p,
        Err(e) => return ErrorPage::new(OAuthError::invalid_request(e.describe())).into_response(),
    };
    let p = match common::load(&state, &form.headers, params.get("interaction")).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !csrf_ok(&state.settings, &form.headers, params.get("csrf")) {
        return common::csrf_failed();
    }
    let (session, user) = match signed_in_user(&state, &form.headers, &p).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let granted = match params.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => return ErrorPage::new(OAuthError::invalid_request("choose Allow or Deny")).into_response(),
    };
    if granted {
        let previous = match state.store.get_consent(&user.id, &p.client.client_id).await {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => return ErrorPage::new(OAuthError::server_error(e)).into_response(),
        };
        let all = Scope::from_tokens(previous).union(&Scope::parse(&p.record.request.scope).unwrap_or_default());
        let list: Vec<String> = all.iter().map(str::to_owned).collect();
        if let Err(e) = state.store.put_consent(&user.id, &p.client.client_id, &list, state.now()).await {
            return ErrorPage::new(OAuthError::server_error(e)).into_response();
        }
    }
    // The answer holds only for this user in this session (architecture habit 13): a resume
    // by any other session asks again.
    let answer = InteractionConsent { granted, user_id: user.id.clone(), sid: session.sid.clone() };
    match state.store.set_interaction_consent(&p.record.id_hash, &answer).await {
        Ok(_) => {
            let ip = latchkey_web::client_ip::client_ip(&form.headers, form.peer, &state.settings);
            let detail = serde_json::json!({"user": user.username, "scope": p.record.request.scope});
            let kind = if granted { "consent.granted" } else { "consent.denied" };
            latchkey_web::audit::record(&state, kind, Some(&user.id), Some(&p.client.client_id), ip, detail).await;
            common::resume(&p.raw)
        }
        Err(e) => ErrorPage::new(OAuthError::server_error(e)).into_response(),
    }
}
