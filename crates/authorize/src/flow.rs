//! Step 11 of `/authorize`: session, account choice, consent, then the code. Shared by the
//! first request and every resume after a login, account or consent page.

use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use latchkey_core::authz::{AuthorizationRequest, InteractivePrompt};
use latchkey_core::model::Client;
use latchkey_core::scope::Scope;
use latchkey_core::{OAuthError, SecretToken, UnixTime};
use latchkey_storage::{CodeRecord, GrantRecord, InteractionRecord, SessionRecord};
use latchkey_web::interaction::{self, CONSENT_PATH, LOGIN_PATH, SELECT_ACCOUNT_PATH};
use latchkey_web::{AppState, ErrorPage, VerifiedRedirect};

/// What the user still has to do before a code can be issued.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Login,
    SelectAccount,
    Consent,
    Denied,
    Issue,
}

/// The decision, from loaded records and an explicit `now`.
fn decide(
    req: &AuthorizationRequest,
    client: &Client,
    session: Option<&SessionRecord>,
    session_subject: Option<&str>,
    pending: Option<&InteractionRecord>,
    consented: Option<&[String]>,
    now: UnixTime,
) -> Next {
    let Some(s) = session else { return Next::Login };
    // The user confirmed this session for this very request (logged in or "continue as").
    let confirmed = pending.is_some_and(|p| p.login_sid.as_deref() == Some(s.sid.as_str()));
    let fresh = confirmed && pending.is_some_and(|p| s.auth_time >= p.created_at);
    if req.prompt.has(InteractivePrompt::Login) && !fresh {
        return Next::Login;
    }
    // OIDC Core §3.1.2.1 max_age: re-authenticate when the session's login is older.
    if req.max_age.is_some_and(|m| now - s.auth_time > m) {
        return Next::Login;
    }
    // id_token_hint naming another user than the session's: a fresh login.
    if req.hint_sub.as_deref().is_some_and(|h| Some(h) != session_subject) && !confirmed {
        return Next::Login;
    }
    if req.prompt.has(InteractivePrompt::SelectAccount) && !confirmed {
        return Next::SelectAccount;
    }
    // The consent page's answer counts only for the user and session that gave it; any other
    // session resuming this request is asked again (architecture habit 13).
    match pending.and_then(|p| p.consent.as_ref()).filter(|c| c.sid == s.sid && c.user_id == s.user_id) {
        Some(c) if !c.granted => return Next::Denied,
        Some(_) => return Next::Issue,
        None => {}
    }
    if client.skip_consent {
        return Next::Issue;
    }
    if req.prompt.has(InteractivePrompt::Consent) {
        return Next::Consent;
    }
    let requested = Scope::parse(&req.scope).unwrap_or_default();
    let granted = Scope::from_tokens(consented.unwrap_or_default().iter().cloned());
    if requested.is_subset(&granted) && req.claims.is_none() { Next::Issue } else { Next::Consent }
}

pub async fn proceed(
    state: &AppState,
    client: &Client,
    req: AuthorizationRequest,
    redirect: VerifiedRedirect,
    headers: &HeaderMap,
    pending: Option<(String, InteractionRecord)>,
) -> Response {
    match proceed_inner(state, client, req, &redirect, headers, pending).await {
        Ok(r) => r,
        Err(e) => redirect.error(e),
    }
}

async fn proceed_inner(
    state: &AppState,
    client: &Client,
    req: AuthorizationRequest,
    redirect: &VerifiedRedirect,
    headers: &HeaderMap,
    pending: Option<(String, InteractionRecord)>,
) -> Result<Response, OAuthError> {
    let now = state.now();
    let mut session = latchkey_web::cookies::current_session(state, headers).await.map_err(OAuthError::server_error)?;
    // A session whose user was removed is no session.
    let user = match &session {
        Some(s) => state.store.get_user(&s.user_id).await.map_err(OAuthError::server_error)?,
        None => None,
    };
    if user.is_none() {
        session = None;
    }
    let consented = match &user {
        Some(u) if !client.skip_consent => {
            state.store.get_consent(&u.id, &client.client_id).await.map_err(OAuthError::server_error)?
        }
        _ => None,
    };
    // The id_token_hint carries the sub this client knows (pairwise or public).
    let session_subject = session.as_ref().map(|s| latchkey_web::subject::for_client(state, client, &s.user_id));
    let next = decide(
        &req,
        client,
        session.as_ref(),
        session_subject.as_deref(),
        pending.as_ref().map(|p| &p.1),
        consented.as_deref(),
        now,
    );

    if req.prompt.is_none() {
        // OIDC Core §3.1.2.6: prompt=none never shows a page.
        match next {
            Next::Login if session.is_some() && req.hint_sub.is_some() => {
                return Err(OAuthError::login_required("the signed-in user is not the one the id_token_hint names"));
            }
            Next::Login => return Err(OAuthError::login_required("the user is not signed in")),
            Next::SelectAccount => {
                return Err(OAuthError::account_selection_required("the user must choose an account"));
            }
            Next::Consent => return Err(OAuthError::consent_required("the user has not consented to this request")),
            Next::Denied | Next::Issue => {}
        }
    }

    let page = match next {
        Next::Denied => {
            if let Some((raw, _)) = &pending {
                let _ = state.store.take_interaction(&interaction::hash(raw)).await;
            }
            return Err(OAuthError::access_denied("the user declined the request"));
        }
        Next::Issue => {
            let (Some(s), Some(u)) = (session.as_ref(), user.as_ref()) else {
                return Err(OAuthError::server_error("issuing without a session"));
            };
            return issue(state, client, &req, redirect, s, &u.id, pending.as_ref().map(|p| p.0.as_str())).await;
        }
        Next::Login => LOGIN_PATH,
        Next::SelectAccount => SELECT_ACCOUNT_PATH,
        Next::Consent => CONSENT_PATH,
    };

    // Park the request, bound to this browser, and send the browser to the page.
    let (raw, set_cookie) = match pending {
        Some((raw, _)) => (raw, None),
        None => {
            let id = SecretToken::generate();
            let (browser_hash, set_cookie) = interaction::bind_browser(&state.settings, headers);
            let rec = InteractionRecord {
                id_hash: id.hash(),
                client_id: client.client_id.clone(),
                request: req,
                browser_hash,
                login_sid: None,
                consent: None,
                created_at: now,
                expires_at: now + state.settings.lifetimes.interaction,
            };
            state.store.create_interaction(&rec).await.map_err(OAuthError::server_error)?;
            (id.expose().to_owned(), Some(set_cookie))
        }
    };
    let mut r = interaction::see_other(&interaction::url(page, &raw));
    if let Some(c) = set_cookie.and_then(|c| http::HeaderValue::from_str(&c).ok()) {
        r.headers_mut().append(http::header::SET_COOKIE, c);
    }
    Ok(r)
}

fn random_id() -> String {
    SecretToken::generate().expose().chars().take(22).collect()
}

async fn issue(
    state: &AppState,
    client: &Client,
    req: &AuthorizationRequest,
    redirect: &VerifiedRedirect,
    session: &SessionRecord,
    user_id: &str,
    pending: Option<&str>,
) -> Result<Response, OAuthError> {
    // The interaction completes once: a second resume (double submit, replayed URL) stops here.
    if let Some(raw) = pending {
        let taken = state.store.take_interaction(&interaction::hash(raw)).await.map_err(OAuthError::server_error)?;
        if !taken {
            return Ok(ErrorPage::new(OAuthError::invalid_request("this sign-in request was already completed"))
                .into_response());
        }
    }
    let now = state.now();
    let lt = &state.settings.lifetimes;
    let grant = GrantRecord {
        id: random_id(),
        client_id: client.client_id.clone(),
        user_id: Some(user_id.to_owned()),
        scope: req.scope.clone(),
        claims: req.claims.as_ref().map(|c| c.to_string()),
        auth_time: Some(session.auth_time),
        acr: session.acr.clone(),
        amr: session.amr.clone(),
        sid: Some(session.sid.clone()),
        created_at: now,
        // The grant's end bounds its refresh family; public clients get the shorter lifetime.
        expires_at: now + state.settings.refresh_lifetimes(client.is_public()).0,
    };
    let code = SecretToken::generate();
    let rec = CodeRecord {
        code_hash: code.hash(),
        grant_id: grant.id.clone(),
        redirect_uri: req.redirect_uri_sent.then(|| req.redirect_uri.clone()),
        code_challenge: req.code_challenge.clone(),
        nonce: req.nonce.clone(),
        created_at: now,
        expires_at: now + lt.authorization_code,
    };
    state.store.issue_code(&grant, &rec).await.map_err(OAuthError::server_error)?;
    // Back-Channel Logout 1.0: remember who takes part in this session.
    state
        .store
        .record_session_client(&session.sid, &client.client_id, user_id)
        .await
        .map_err(OAuthError::server_error)?;
    Ok(redirect.success(&[("code", code.expose())]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::authz::{Prompt, ResponseMode};
    use latchkey_core::model::{ClientAuthMethod, GrantType};

    fn req(prompt: &str, max_age: Option<i64>) -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: "c".into(),
            redirect_uri: "https://a.example/cb".into(),
            redirect_uri_sent: true,
            response_mode: ResponseMode::Query,
            state: None,
            scope: "openid email".into(),
            nonce: None,
            code_challenge: None,
            prompt: Prompt::parse(Some(prompt)).unwrap(),
            max_age,
            hint_sub: None,
            login_hint: None,
            ui_locales: None,
            claims: None,
        }
    }

    fn client(skip: bool) -> Client {
        Client {
            client_id: "c".into(),
            name: "C".into(),
            secret_hash: None,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            auth_method: ClientAuthMethod::ClientSecretBasic,
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec![],
            skip_consent: skip,
            require_pkce: false,
            id_token_signed_response_alg: None,
            created_at: 0,
            updated_at: 0,
            ..Default::default()
        }
    }

    fn session(auth_time: i64) -> SessionRecord {
        SessionRecord {
            id_hash: SecretToken::generate().hash(),
            sid: "s1".into(),
            user_id: "u1".into(),
            auth_time,
            acr: None,
            amr: vec!["pwd".into()],
            created_at: auth_time,
            expires_at: auth_time + 1000,
        }
    }

    fn pending(login_sid: Option<&str>, created_at: i64, consent: Option<(bool, &str)>) -> InteractionRecord {
        InteractionRecord {
            id_hash: SecretToken::generate().hash(),
            client_id: "c".into(),
            request: req("", None),
            browser_hash: SecretToken::generate().hash(),
            login_sid: login_sid.map(str::to_owned),
            consent: consent.map(|(granted, sid)| latchkey_storage::InteractionConsent {
                granted,
                user_id: "u1".into(),
                sid: sid.into(),
            }),
            created_at,
            expires_at: created_at + 900,
        }
    }

    const SCOPES: &[String] = &[];

    #[test]
    fn no_session_means_login() {
        assert_eq!(decide(&req("", None), &client(false), None, None, None, None, 100), Next::Login);
    }

    #[test]
    fn prompt_login_needs_a_login_after_the_request() {
        let s = session(50);
        assert_eq!(decide(&req("login", None), &client(true), Some(&s), Some("u1"), None, None, 100), Next::Login);
        let p = pending(Some("s1"), 60, None);
        assert_eq!(decide(&req("login", None), &client(true), Some(&s), Some("u1"), Some(&p), None, 100), Next::Login);
        let s = session(70);
        assert_eq!(decide(&req("login", None), &client(true), Some(&s), Some("u1"), Some(&p), None, 100), Next::Issue);
    }

    #[test]
    fn max_age_forces_reauthentication_of_older_sessions() {
        let s = session(50);
        assert_eq!(decide(&req("", Some(49)), &client(true), Some(&s), Some("u1"), None, None, 100), Next::Login);
        assert_eq!(decide(&req("", Some(50)), &client(true), Some(&s), Some("u1"), None, None, 100), Next::Issue);
    }

    #[test]
    fn consent_is_remembered_per_scope_set() {
        let s = session(50);
        let granted = vec!["openid".to_string(), "email".to_string()];
        assert_eq!(
            decide(&req("", None), &client(false), Some(&s), Some("u1"), None, Some(&granted), 100),
            Next::Issue
        );
        let fewer = vec!["openid".to_string()];
        assert_eq!(
            decide(&req("", None), &client(false), Some(&s), Some("u1"), None, Some(&fewer), 100),
            Next::Consent
        );
        assert_eq!(
            decide(&req("consent", None), &client(false), Some(&s), Some("u1"), None, Some(&granted), 100),
            Next::Consent
        );
        assert_eq!(
            decide(&req("", None), &client(false), Some(&s), Some("u1"), None, Some(SCOPES), 100),
            Next::Consent
        );
        let denied = pending(Some("s1"), 60, Some((false, "s1")));
        assert_eq!(
            decide(&req("", None), &client(false), Some(&s), Some("u1"), Some(&denied), None, 100),
            Next::Denied
        );
    }

    #[test]
    fn a_consent_answer_counts_only_for_the_session_that_gave_it() {
        let s = session(50);
        let mine = pending(Some("s1"), 60, Some((true, "s1")));
        assert_eq!(decide(&req("", None), &client(false), Some(&s), Some("u1"), Some(&mine), None, 100), Next::Issue);
        // Given by another session (another browser, another user): asked again.
        let theirs = pending(None, 60, Some((true, "attacker-sid")));
        assert_eq!(
            decide(&req("", None), &client(false), Some(&s), Some("u1"), Some(&theirs), None, 100),
            Next::Consent
        );
        // The same sid but another user (a forged or stale row): asked again.
        let mut other_user = pending(Some("s1"), 60, Some((true, "s1")));
        if let Some(c) = other_user.consent.as_mut() {
            c.user_id = "u2".into();
        }
        assert_eq!(
            decide(&req("", None), &client(false), Some(&s), Some("u1"), Some(&other_user), None, 100),
            Next::Consent
        );
        let theirs_denied = pending(None, 60, Some((false, "attacker-sid")));
        assert_eq!(
            decide(&req("", None), &client(false), Some(&s), Some("u1"), Some(&theirs_denied), None, 100),
            Next::Consent
        );
    }

    #[test]
    fn select_account_asks_once() {
        let s = session(50);
        assert_eq!(
            decide(&req("select_account", None), &client(true), Some(&s), Some("u1"), None, None, 100),
            Next::SelectAccount
        );
        let p = pending(Some("s1"), 60, None);
        assert_eq!(
            decide(&req("select_account", None), &client(true), Some(&s), Some("u1"), Some(&p), None, 100),
            Next::Issue
        );
    }
}
