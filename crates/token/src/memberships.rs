//! The `groups` and `roles` claims. They are resolved from the database when a token or
//! response is made (one query for everything one token response needs, none when no scope or
//! `claims` request asks for them), so a change takes effect at the next issuance, and nothing
//! outlives the token that carries it.

use latchkey_core::OAuthError;
use latchkey_core::claims::MembershipClaims;
use latchkey_core::model::Memberships;
use latchkey_web::AppState;
use serde_json::{Map, Value};

/// A user's memberships, loaded once for every token of one response.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Which lists were loaded.
    covers: MembershipClaims,
    data: Memberships,
}

impl Resolved {
    /// Load what `wanted` names for `user_id`'s tokens of `client_id`; no query when it names
    /// nothing or there is no user.
    pub async fn load(
        state: &AppState,
        user_id: Option<&str>,
        client_id: &str,
        wanted: MembershipClaims,
    ) -> Result<Self, OAuthError> {
        let Some(user_id) = user_id.filter(|_| wanted.any()) else { return Ok(Self::default()) };
        let data = state.store.memberships(user_id, client_id, wanted).await.map_err(OAuthError::server_error)?;
        Ok(Self { covers: wanted, data })
    }

    /// Put the `wanted` lists into `claims`. Asking for a list that was not loaded is a bug:
    /// it fails rather than claim that the user has none.
    pub fn insert(&self, claims: &mut Map<String, Value>, wanted: MembershipClaims) -> Result<(), OAuthError> {
        if (wanted.groups && !self.covers.groups) || (wanted.roles && !self.covers.roles) {
            return Err(OAuthError::server_error("membership claims were not resolved for this token"));
        }
        wanted.insert(claims, &self.data);
        Ok(())
    }
}
