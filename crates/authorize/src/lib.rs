//! (filled by issue "Sign in end to end")

use axum::Router;
use latchkey_core::Settings;
use latchkey_web::{AppState, Capabilities};

pub fn router() -> Router<AppState> {
    Router::new()
}

pub fn capabilities(_settings: &Settings) -> Capabilities {
    Capabilities::new()
}
