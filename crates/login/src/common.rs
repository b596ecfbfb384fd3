//! What every page needs: the pending request it belongs to, its client, the form's CSRF check.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use latchkey_core::OAuthError;
use latchkey_core::model::Client;
use latchkey_storage::InteractionRecord;
use latchkey_web::{AppState, ErrorPage, interaction};

pub struct Pending {
    pub raw: String,
    pub record: InteractionRecord,
    pub client: Client,
}

/// Load a pending request by the id the browser carries; an error page when it is unknown,
/// expired or malformed.
pub async fn load(state: &AppState, raw: Option<&str>) -> Result<Pending, Response> {
    let expired = || {
        ErrorPage::new(OAuthError::invalid_request(
            "this sign-in request has expired or was already completed; start again from the application",
        ))
        .into_response()
    };
    let Some(raw) = raw.filter(|r| interaction::well_formed(r)) else { return Err(expired()) };
    let record = match state.store.get_interaction(&interaction::hash(raw), state.now()).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(expired()),
        Err(e) => return Err(ErrorPage::new(OAuthError::server_error(e)).into_response()),
    };
    let client = match state.store.get_client(&record.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(expired()),
        Err(e) => return Err(ErrorPage::new(OAuthError::server_error(e)).into_response()),
    };
    Ok(Pending { raw: raw.to_owned(), record, client })
}

/// Add the CSRF cookie to a page response when one had to be created.
pub fn with_cookie(mut r: Response, set_cookie: Option<String>) -> Response {
    if let Some(c) = set_cookie
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub fn csrf_failed() -> Response {
    ErrorPage::new(OAuthError::invalid_request(
        "the form expired or was not sent from this site; go back and try again",
    ))
    .into_response()
}

/// The `lang` of pages: only English is offered (`ui_locales_supported`).
pub const LANG: &str = "en";

pub fn resume(raw: &str) -> Response {
    interaction::see_other(&interaction::url(interaction::RESUME_PATH, raw))
}
