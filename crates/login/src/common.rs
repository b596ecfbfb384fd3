//! What every page needs: the pending request it belongs to, its client, the form's CSRF check.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use latchkey_core::OAuthError;
use latchkey_core::model::Client;
use latchkey_storage::InteractionRecord;
use latchkey_web::{AppState, ErrorPage, ParamError, Params, interaction};

pub struct Pending {
    pub raw: String,
    pub record: InteractionRecord,
    pub client: Client,
}

/// Load a pending request by the id the browser carries, for the browser that started it; an
/// error page when it is unknown, expired, malformed or was started in another browser.
pub async fn load(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Result<Pending, Response> {
    let record = interaction::load(state, headers, raw).await.map_err(|e| ErrorPage::new(e).into_response())?;
    let client = match state.store.get_client(&record.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(ErrorPage::new(OAuthError::invalid_request("the application no longer exists")).into_response());
        }
        Err(e) => return Err(ErrorPage::new(OAuthError::server_error(e)).into_response()),
    };
    let raw = raw.unwrap_or_default().to_owned();
    Ok(Pending { raw, record, client })
}

/// `load` for a page's query string, parsed strictly (a repeated or malformed parameter is an
/// error page).
pub async fn load_query(
    state: &AppState,
    headers: &HeaderMap,
    q: &Result<Params, ParamError>,
) -> Result<Pending, Response> {
    match q {
        Ok(q) => load(state, headers, q.get("interaction")).await,
        Err(e) => Err(ErrorPage::new(OAuthError::invalid_request(e.describe())).into_response()),
    }
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
